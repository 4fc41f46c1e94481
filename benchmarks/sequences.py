"""Benchmark figure 7: seconds per DiaObject sequence for 10 and 50 epochs.

A small demo repository with one detector and as many visits as the
largest epoch count is built (or reused) under the benchmark's repository
directory; the object with the most DiaSources is drawn with
`~lsst.analysis.ap.sequences.PlotDiaObjectSequencesTask` capped at each epoch
count (contact sheet, GIF, APNG and one PNG per epoch, resampled onto the
north-up grid since the demo visits differ in rotation).
"""

from __future__ import annotations

__all__ = ("measure_sequences",)

import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lsst.analysis.ap.demo import DemoSpec, build_demo_repo


def measure_sequences(
    directory: Path, work: Path, report: Callable[[str], None], epochs: Sequence[int] = (10, 50)
) -> dict[str, Any]:
    """Time one object's sequence at each epoch count.

    Parameters
    ----------
    directory : `pathlib.Path`
        Where the repository is built (reused when present).
    work : `pathlib.Path`
        Scratch output directory.
    report : callable
        Prints a summary line.
    epochs : sequence of `int`
        Epoch counts to time.

    Returns
    -------
    figures : `dict`
        Seconds per object (wall) by epoch count, and the repository size.

    """
    from lsst.daf.butler import Butler

    from lsst.analysis.ap.sequences import PlotDiaObjectSequencesConfig, PlotDiaObjectSequencesTask

    n_visits = max(epochs)
    root = directory / f"sequences_{n_visits}"
    spec = DemoSpec(
        n_visits=n_visits, n_detectors=1, image_size=256, objects_per_detector=4, bands=("g", "r", "i")
    )
    if not (root / "butler.yaml").exists():
        shutil.rmtree(root, ignore_errors=True)
        repo = build_demo_repo(root, spec, apdb=False)
        sources = repo.sources()
    else:
        butler = Butler.from_config(str(root), collections="DemoCam/runs/demo")
        from lsst.analysis.ap.sources import load_butler_sources

        sources = load_butler_sources(butler, "dia_source_detector")
    sources = sources.assign(instrument="DemoCam")
    object_id = int(sources.groupby("diaObjectId").size().idxmax())
    available = int((sources["diaObjectId"] == object_id).sum())
    figures: dict[str, Any] = {"object_epochs_available": available, "seconds_per_object": {}}
    butler = Butler.from_config(str(root), collections="DemoCam/runs/demo")
    for n in epochs:
        config = PlotDiaObjectSequencesConfig()
        config.max_epochs = n
        out = work / f"sequences_{n}"
        task = PlotDiaObjectSequencesTask(config=config, output_path=out)
        start = time.perf_counter()
        result = task.run([object_id], butler, sources)
        elapsed = time.perf_counter() - start
        drawn = int(result.objects.iloc[0]["n_epochs"])
        figures["seconds_per_object"][n] = {"wall_seconds": round(elapsed, 3), "epochs_drawn": drawn}
        report(f"[7 sequences] {drawn} epochs: {elapsed:.2f} s per object (contact sheet, GIF, APNG, frames)")
        shutil.rmtree(out, ignore_errors=True)
    return figures
