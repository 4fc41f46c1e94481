"""Draw the pictures of the display options on the task page from the demo.

Usage (after ``make demo-repo``)::

    .venv/bin/python scripts/make_display_pictures.py demo_repo doc/lsst.analysis.ap/tasks/display

Each picture is one demo DiaSource drawn by the task with one display option
set (metadata off, 160-px panels, to keep the files small).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from lsst.analysis.ap.demo import DEFAULT_COLLECTION, DIA_SOURCE_TYPE
from lsst.analysis.ap.plotImageSubtractionCutouts import (
    PlotImageSubtractionCutoutsConfig,
    PlotImageSubtractionCutoutsTask,
)

PICTURES: dict[str, tuple[str, dict, dict]] = {
    # name: (which source, task fields, display fields)
    "default": ("new", {}, {}),
    "percentile_sqrt": (
        "new",
        {"template_interval": "percentile", "science_interval": "percentile", "template_stretch": "sqrt"},
        {"template_interval_params": {"pmin": 1.0, "pmax": 99.0}},
    ),
    "central_window": (
        "new",
        {"difference_interval": "central_window"},
        {"difference_interval_params": {"window": 8}},
    ),
    "sign_aware_fading": ("fading", {}, {"difference_sign_aware": True}),
    "sign_aware_new": ("new", {}, {"difference_sign_aware": True}),
    "colormaps": ("new", {"colormap": "viridis"}, {"difference_colormap": "coolwarm"}),
    "smoothing": (
        "new",
        {},
        {"template_smoothing": "gauss", "science_smoothing": "gauss", "smoothing_width": 1.0},
    ),
    "shared_limits": ("new", {}, {"share_template_science_limits": True}),
    "mask_overlay": ("masked", {}, {"mask_overlay": True}),
    "marker_reticle": ("new", {}, {"marker": "reticle"}),
    "marker_crosshair": ("new", {}, {"marker": "crosshair"}),
    "marker_ticks": ("new", {}, {"marker": "ticks"}),
    "compass_detector": ("rotated", {}, {"compass": True, "marker": "reticle"}),
    "compass_cardinal": ("rotated", {}, {"compass": True, "marker": "reticle", "orientation": "cardinal"}),
    "compass_north_up": ("rotated", {}, {"compass": True, "marker": "reticle", "orientation": "north_up"}),
    "empty_template": ("empty", {}, {}),
}


def choose_sources(sources: pd.DataFrame, size: int) -> dict[str, int]:
    """A demo DiaSource for each kind of picture."""
    width = max(sources["x"].max(), sources["y"].max())
    inner = sources[sources["x"].between(size, width - size) & sources["y"].between(size, width - size)]
    new = inner[inner["psfFlux"] > 0].sort_values("snr", ascending=False)
    fading = inner[inner["psfFlux"] < 0].sort_values("snr", ascending=False)
    masked = inner[inner["pixelFlags_saturated"] | inner["pixelFlags_cr"]]
    rotated = new[new["visit"] != new["visit"].min()]
    return {
        "new": int(new["diaSourceId"].iloc[0]),
        "fading": int(fading["diaSourceId"].iloc[0]) if len(fading) else int(new["diaSourceId"].iloc[1]),
        "masked": int(masked["diaSourceId"].iloc[0]) if len(masked) else int(new["diaSourceId"].iloc[0]),
        "rotated": int(rotated["diaSourceId"].iloc[0]) if len(rotated) else int(new["diaSourceId"].iloc[0]),
        "empty": 0,
    }


def main() -> None:
    """Draw every picture into the output directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", help="Demo Butler repository.")
    parser.add_argument("output", help="Directory of the pictures.")
    args = parser.parse_args()
    from lsst.daf.butler import Butler

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    with Butler.from_config(args.repo, collections=[DEFAULT_COLLECTION]) as butler:
        sources = pd.concat(
            [butler.get(ref) for ref in butler.query_datasets(DIA_SOURCE_TYPE)], ignore_index=True
        )
        chosen = choose_sources(sources, 30)
        with tempfile.TemporaryDirectory() as scratch:
            # The empty-template source: the one a default run draws with an all-NaN template.
            empty_run = _run(sources, butler, Path(scratch) / "all", {}, {})
            chosen["empty"] = _empty_template_source(empty_run, Path(scratch) / "all")
            for name, (kind, task_fields, display_fields) in PICTURES.items():
                rows = sources[sources["diaSourceId"] == chosen[kind]]
                out = Path(scratch) / name
                result = _run(rows, butler, out, task_fields, display_fields)
                path = out / result.records["path"].iloc[0]
                shutil.copyfile(path, output / f"{name}.png")
                print(f"{name}: diaSourceId {chosen[kind]}")
            rows = sources[sources["diaSourceId"] == chosen["new"]]
            out = Path(scratch) / "single"
            task = _run(rows, butler, out, {"single_stamps": True}, {}, keep_task=True)
            layout = task._cutouter().layout
            for tag in ("temp", "sci", "diff"):
                shutil.copyfile(
                    out / layout.single_stamp_relpath(chosen["new"], tag, 30), output / f"single_{tag}.png"
                )


def _run(rows, butler, out, task_fields, display_fields, keep_task=False):
    config = PlotImageSubtractionCutoutsConfig()
    config.add_metadata = False
    config.panel_pixels = 160
    for key, value in task_fields.items():
        setattr(config, key, value)
    for key, value in display_fields.items():
        setattr(config.display, key, value)
    config.validate()
    task = PlotImageSubtractionCutoutsTask(config=config, output_path=out)
    result = task.run(rows, butler)
    return task if keep_task else result


def _empty_template_source(result, out) -> int:
    from PIL import Image

    from lsst.analysis.ap.display.palette import NO_DATA_RGB
    from lsst.analysis.ap.display.renderer import TripletRenderer

    box = TripletRenderer([30], False, panel_pixels=160).panel_boxes[0][0]
    for path, dia_source_id in zip(result.records["path"], result.records["diaSourceId"], strict=True):
        file = out / path
        if not file.exists():
            continue
        rgb = np.asarray(Image.open(file).convert("RGB"))
        template = rgb[box.y0 : box.y0 + 40, box.x0 : box.x1]
        if np.all(template == NO_DATA_RGB):
            return int(dia_source_id)
    raise RuntimeError("the demo has no source with an empty template")


if __name__ == "__main__":
    main()
