"""Benchmark figure 6: the cost of the display options per source.

For the sources of the dense visit × detector, with the image and mask
planes already in memory (as the task holds them for a crowded detector),
times what the options add to drawing one source (mask planes split once
per detector; the core reads each source's mask region by bbox, an extra
read not timed here): orienting, smoothing and
decorating the stamps (`lsst.analysis.ap.display.panels.prepare_source`)
and rendering the PNG (`TripletRenderer.render_source`), for the default
configuration and for marker + compass, the mask overlay, ``cardinal`` and
``north_up``, at 30 and 64 px.  The default path runs no preparation at
all: the core skips it when `DisplaySettings.is_default`.
"""

from __future__ import annotations

__all__ = ("OPTION_CASES", "measure_display_options")

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

OPTION_CASES: dict[str, dict[str, Any]] = {
    "default": {},
    "marker+compass": {"marker": "reticle", "compass": True},
    "mask overlay": {"mask_overlay": True},
    "cardinal": {"orientation": "cardinal", "compass": True},
    "north_up": {"orientation": "north_up", "compass": True},
}
"""Display configurations timed (``config.display`` fields)."""


def _config(options: dict[str, Any], size: int) -> Any:
    from lsst.analysis.ap.plotImageSubtractionCutouts import PlotImageSubtractionCutoutsConfig

    config = PlotImageSubtractionCutoutsConfig()
    config.sizes = [size]
    for name, value in options.items():
        setattr(config.display, name, value)
    config.validate()
    return config


def measure_display_options(
    butler: Any, sources: pd.DataFrame, n: int, report: Callable[[str], None]
) -> dict[str, Any]:
    """Milliseconds per source of each display configuration.

    Parameters
    ----------
    butler
        Butler of the benchmark repository.
    sources
        DiaSources of one visit × detector.
    n
        Number of sources timed per configuration.
    report
        Prints a summary line.

    Returns
    -------
    dict
        ``{size: {case: {"ms": ..., "ms_cpu": ..., "ratio_to_default": ...}}}``.

    """
    from lsst.analysis.ap.datasets import DEFAULT_SCIENCE_TYPE, IMAGE_ROLES, image_dataset_types
    from lsst.analysis.ap.display.annotation import SourceAnnotation
    from lsst.analysis.ap.display.overlays import canonical_plane_name
    from lsst.analysis.ap.display.panels import PanelInput, RoleStamps, prepare_source
    from lsst.analysis.ap.geometry import cut_stamp, stamp_box
    from lsst.analysis.ap.images.butler import butler_plane_reader
    from lsst.analysis.ap.plotImageSubtractionCutouts import _renderer_factory, _scalings
    from lsst.analysis.ap.stamp_wcs import projection_mappings

    first = sources.iloc[0]
    data_id = {
        "instrument": first["instrument"],
        "visit": int(first["visit"]),
        "detector": int(first["detector"]),
    }
    types = image_dataset_types(DEFAULT_SCIENCE_TYPE, None)
    readers = {role: butler_plane_reader(butler, types[role], data_id) for role in IMAGE_ROLES}
    planes = {role: readers[role].read_whole() for role in IMAGE_ROLES}
    # Whole mask planes, split once per detector (the core reads each
    # source's mask region by bbox instead; that read is not timed here).
    masks = {}
    for role in IMAGE_ROLES:
        mask = readers[role].read_component(readers[role].bbox, "mask")
        masks[role] = (
            {canonical_plane_name(n): mask.get(n).astype(np.float32) for n in mask.schema.names if n},
            mask.bbox,
        )
    mappings = {role: projection_mappings(readers[role].projection) for role in IMAGE_ROLES}
    take = np.unique(np.linspace(0, len(sources) - 1, min(n, len(sources))).astype(int))
    rows = sources.iloc[take].to_dict("records")
    ra = np.array([r["ra"] for r in rows], dtype=float)
    dec = np.array([r["dec"] for r in rows], dtype=float)
    positions = {role: readers[role].sky_to_pixel(ra, dec) for role in IMAGE_ROLES}
    scale = readers["science"].pixel_scale_arcsec()
    annotations = [SourceAnnotation.from_row(r, instrument=str(r["instrument"])) for r in rows]
    result: dict[str, Any] = {}
    for size in (30, 64):
        cases: dict[str, Any] = {}
        for case, options in OPTION_CASES.items():
            config = _config(options, size)
            renderer = _renderer_factory(config)((size,))
            settings = config.display.settings(_scalings(config)["template"])

            def one(i: int, renderer: Any = renderer, settings: Any = settings, size: int = size) -> bytes:
                stamps = []
                roles = []
                for role in IMAGE_ROLES:
                    x, y = positions[role][0][i], positions[role][1][i]
                    box = stamp_box(x, y, size)
                    stamp = cut_stamp(planes[role][0], planes[role][1], box)
                    stamps.append(stamp)
                    if not settings.is_default:
                        panel_planes = None
                        if settings.needs_mask:
                            whole, mask_box = masks[role]
                            panel_planes = {
                                name: cut_stamp(bits, mask_box, box, fill=0.0) > 0
                                for name, bits in whole.items()
                            }
                        panel = PanelInput(stamp, box.x0, box.y0, x, y, panel_planes)
                        roles.append(RoleStamps((panel,), *mappings[role]))
                contexts = None
                triplets = [tuple(stamps)]
                if not settings.is_default:
                    triplets, contexts, _ = prepare_source(settings, roles, ra[i], dec[i], scale)
                return renderer.render_source(triplets, annotations[i], scale, contexts).png

            for i in range(min(3, len(rows))):  # warm-up (fonts, caches)
                one(i)
            walls, cpus = [], []
            for i in range(len(rows)):
                wall, cpu = time.perf_counter(), time.process_time()
                one(i)
                cpus.append(time.process_time() - cpu)
                walls.append(time.perf_counter() - wall)
            cases[case] = {"ms": statistics.fmean(walls) * 1e3, "ms_cpu": statistics.fmean(cpus) * 1e3}
        base = cases["default"]["ms_cpu"]
        for entry in cases.values():
            entry["ratio_to_default"] = entry["ms_cpu"] / base
        result[str(size)] = cases
        report(
            f"[6 display] {size} px, ms/source including the cut (CPU; × default): "
            + "; ".join(
                f"{case} {entry['ms']:.2f} ({entry['ms_cpu']:.2f}; ×{entry['ratio_to_default']:.1f})"
                for case, entry in cases.items()
            )
            + f" (n={len(rows)})"
        )
    for reader in readers.values():
        reader.release()
    return result
