"""Speed and memory benchmark of the cutout job.

Run as ``python -m benchmarks.benchmark --output DIR [--quick]``
(``make bench``).  It builds realistic demo repositories once (cached under
``DIR/repos``, rebuilt only when their specification changes), then, in the
same run, measures and prints one line per figure and writes every figure to
``DIR/benchmark.json``:

1. render only: ms per triplet, `~lsst.analysis.ap.display.renderer.TripletRenderer`
   against the matplotlib baseline (`benchmarks.baseline`), on the
   same stamps, for sizes [30] and [30, 64], metadata on and off;
2. end to end through `PlotImageSubtractionCutoutsTask.run` from the Butler
   repository: sources/s with bbox reads and with whole-plane reads, on a
   dense visit × detector (≥ 1000 sources) and a sparse one (≤ 10), against
   the original way (three whole exposures per visit × detector and one
   matplotlib figure per source, time-boxed to a sample of sources and
   extrapolated per source); plus where the time goes (cProfile);
3. peak RSS of the benchmark process and of a child-process run of 10,000
   sources over 8 detectors;
4. scaling: wall time of 100, 1,000 and 10,000 sources (fresh child
   processes), and ``njobs=2`` against ``njobs=0`` drawing in one thread
   (the one-core reference; also against its default threads) on the
   largest run, in pairs run one after the other (the pair of median
   ratio is kept);
5. PNG bytes per triplet at the configured compression level, and
   compress_level 0-9 against ms and bytes;
6. display options (`benchmarks.display_options`) and DiaObject sequences
   (`benchmarks.sequences`);
7. (`benchmarks.regimes`; lines ``[7 typical]``, ``[7 manifests]``,
   ``[target]``) the read floor of the dense and sparse visit ×
   detectors (decompressing only the row tiles their stamps touch), the
   typical regime (about 55 sources of each detector of the main
   repository), records and manifests of 1,000,000 sources without images
   (child process, peak RSS), and one ``[target]`` line per row of the
   target table: figure, target, baseline and floor of the same run.

Times are given as wall clock and as CPU time of the process (plus its
children for ``njobs > 0``): the CPU figures do not depend on other load on
the machine.  Image files are read with a warm page cache: each timed run of
the task and of the original way first reads its image files once
(`warm_page_cache`), as the machine may drop cached pages it has not used for
a while.
"""

from __future__ import annotations

__all__ = ("PLANS", "BenchmarkPlan", "main", "run_benchmark")

import argparse
import concurrent.futures
import contextlib
import cProfile
import dataclasses
import json
import logging
import math
import multiprocessing
import os
import platform
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.display_options import measure_display_options
from benchmarks.regimes import (
    measure_floor,
    measure_manifests,
    measure_subset,
    measure_typical,
    median_run,
    report_targets,
    typical_subset,
)
from benchmarks.sequences import measure_sequences
from lsst.analysis.ap.core import CutoutSettings, whole_read_threshold
from lsst.analysis.ap.datasets import DEFAULT_DIFFERENCE_TYPE
from lsst.analysis.ap.demo import DEFAULT_COLLECTION, DIA_SOURCE_TYPE, DemoSpec, build_demo_repo

_CHILD_MARK = "BENCH_CHILD_RESULT "
_REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
"""Root of the source tree (``benchmarks`` is not installed; children import it from here)."""
_HUGE = 1_000_000_000


@dataclasses.dataclass(frozen=True)
class BenchmarkPlan:
    """Sizes of one benchmark run.

    Attributes
    ----------
    name
        ``full``, ``quick`` or ``tiny`` (tests).
    main
        Repository of the dense detectors and of the scaling runs.
    sparse
        Repository with one visit × detector of a few sources.
    render_sources
        Sources rendered per configuration with our renderer (figure 1).
    baseline_sources
        Of those, how many are also drawn with matplotlib (figure 1).
    original_sample
        Sources drawn the original way on the dense visit × detector; the
        cost of the others is extrapolated (figure 2).
    sparse_repeats
        Timed repetitions of the dense, sparse and typical runs; the run of
        median wall time is kept (figures on this machine vary by 10–25 %
        from run to run).
    scaling_counts
        Source counts of the scaling runs (figure 4).
    png_sources
        Sources encoded at every compression level (figure 5).
    min_dense_sources, max_sparse_sources
        What the dense and sparse visit × detector must hold.
    typical_per_detector
        Sources per visit × detector of the typical regime (figure 7).
    manifest_sources
        Records of the records-and-manifests figure (figure 7).
    scale_counts
        Smallest and largest run of the flat-cost figure (figure 8): the
        main repository's sources repeated to that many.
    njobs_pairs
        Pairs of child runs (``njobs=0`` in one thread, then ``njobs=2``)
        of the ``njobs`` ratio (figure 4); the pair of median ratio is
        kept (one pair's ratio varies by ±20 % on this machine).

    """

    name: str
    main: DemoSpec
    sparse: DemoSpec
    render_sources: int
    baseline_sources: int
    original_sample: int
    sparse_repeats: int
    scaling_counts: tuple[int, ...]
    png_sources: int
    min_dense_sources: int
    max_sparse_sources: int
    typical_per_detector: int = 55
    manifest_sources: int = 1_000_000
    scale_counts: tuple[int, int] = (1_000, 100_000)
    njobs_pairs: int = 3


_STARS_4K = 150 * 64  # the demo's star density (150 per 512²) on a 4096² detector

PLANS: dict[str, BenchmarkPlan] = {
    "full": BenchmarkPlan(
        name="full",
        main=DemoSpec(
            n_visits=2,
            n_detectors=4,
            image_size=4096,
            objects_per_detector=1280,
            singles_per_detector=10,
            stars_per_detector=_STARS_4K,
            seed=20261121,
        ),
        sparse=DemoSpec(
            n_visits=1,
            n_detectors=1,
            image_size=4096,
            objects_per_detector=4,
            singles_per_detector=4,
            stars_per_detector=_STARS_4K,
            seed=20261122,
        ),
        render_sources=300,
        baseline_sources=12,
        original_sample=30,
        sparse_repeats=3,
        scaling_counts=(100, 1000, 10000),
        png_sources=40,
        min_dense_sources=1000,
        max_sparse_sources=10,
    ),
    "quick": BenchmarkPlan(
        name="quick",
        main=DemoSpec(
            n_visits=2,
            n_detectors=2,
            image_size=1024,
            objects_per_detector=150,
            singles_per_detector=10,
            stars_per_detector=600,
            seed=20261121,
        ),
        sparse=DemoSpec(
            n_visits=1,
            n_detectors=1,
            image_size=1024,
            objects_per_detector=4,
            singles_per_detector=4,
            stars_per_detector=600,
            seed=20261122,
        ),
        render_sources=100,
        baseline_sources=5,
        original_sample=8,
        sparse_repeats=2,
        scaling_counts=(100, 500),
        png_sources=15,
        min_dense_sources=100,
        max_sparse_sources=10,
        manifest_sources=100_000,
        scale_counts=(1_000, 10_000),
    ),
    "tiny": BenchmarkPlan(
        name="tiny",
        main=DemoSpec(
            n_visits=2,
            n_detectors=1,
            image_size=256,
            objects_per_detector=12,
            singles_per_detector=4,
            stars_per_detector=40,
            seed=20261121,
        ),
        sparse=DemoSpec(
            n_visits=1,
            n_detectors=1,
            image_size=256,
            objects_per_detector=2,
            singles_per_detector=3,
            stars_per_detector=40,
            seed=20261122,
        ),
        render_sources=6,
        baseline_sources=2,
        original_sample=2,
        sparse_repeats=1,
        scaling_counts=(5, 15),
        png_sources=3,
        min_dense_sources=5,
        max_sparse_sources=10,
        typical_per_detector=6,
        manifest_sources=2_000,
        scale_counts=(5, 40),
        njobs_pairs=1,
    ),
}
"""The plans: ``full`` (``make bench``), ``quick`` (``--quick``) and
``tiny`` (the smoke test)."""


# Small helpers ---------------------------------------------------------------


class _Report:
    """Collects the printed summary lines."""

    def __init__(self, echo: bool) -> None:
        self.lines: list[str] = []
        self.echo = echo

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        if self.echo:
            print(line, flush=True)


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _maxrss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak RSS from ``getrusage``.

    On Linux a process's ``ru_maxrss`` also counts the high-water RSS of
    the process image it replaced by ``exec``, i.e. of its parent at fork
    time: children are therefore started through a small shell
    (`run_child`), and `_vm_hwm_mib` is given alongside.
    """
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    scale = 1.0 if sys.platform == "darwin" else 1024.0
    return resource.getrusage(who).ru_maxrss * scale / 2**20


def _vm_hwm_mib(pid: int | str = "self") -> float | None:
    """Peak RSS (``VmHWM``) of one process since its last ``exec`` (Linux)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


def _descendants(root: int) -> set[int]:
    """Process ids of the descendants of ``root`` (Linux ``/proc``)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier and pid not in found}
        found |= frontier
    return found


class _DescendantPeak:
    """Polls the ``VmHWM`` of this process's descendants (the task's worker
    processes) in a thread, keeping the largest.
    """

    def __init__(self, interval: float = 0.2) -> None:
        import threading

        self.peak: float | None = None
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        for pid in _descendants(os.getpid()):
            hwm = _vm_hwm_mib(pid)
            if hwm is not None:
                self.peak = hwm if self.peak is None else max(self.peak, hwm)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> _DescendantPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class _Timer:
    """Wall clock and CPU time (this process and reaped children)."""

    def __enter__(self) -> _Timer:
        self._wall = time.perf_counter()
        self._cpu = time.process_time()
        self._children = _cpu_children()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu_self = time.process_time() - self._cpu
        _wait_for_child_processes()
        self.cpu = self.cpu_self + _cpu_children() - self._children


def _wait_for_child_processes(timeout: float = 120.0) -> None:
    """Wait, outside the wall clock, for the worker processes a run leaves
    to end on their own (``njobs > 1``: the run returns while a worker's
    interpreter ends), so that their CPU time is counted once reaped."""
    deadline = time.monotonic() + timeout
    while multiprocessing.active_children():
        if time.monotonic() > deadline:
            logging.getLogger(__name__).warning(
                "child processes still running %.0f s after the run; their CPU time is not counted",
                timeout,
            )
            return
        time.sleep(0.01)


@contextlib.contextmanager
def one_core() -> Iterator[int | None]:
    """Run the block on one CPU core, as the target table assumes ("one
    core unless said"): the calling thread's CPU affinity is set to one of
    the process's cores, and threads started inside inherit it, so the task
    draws in one thread.  Child processes are not started inside.

    Yields the core, or `None` where affinity cannot be set.
    """
    try:
        cores = os.sched_getaffinity(0)
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except (AttributeError, OSError):
        yield None
        return
    core = max(cores)
    # Every thread of the process (numpy's BLAS pool too), not only this one.
    for tid in threads:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(tid, {core})
    try:
        yield core
    finally:
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(tid), cores)


def _round(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits}g}") if math.isfinite(value) else value


def _load_average() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover
        return []


def _cpu_ticks() -> tuple[int, int] | None:
    """``(steal, total)`` clock ticks of all CPUs since boot (Linux
    ``/proc/stat``), or `None` where they cannot be read."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice]:
    # guest time is counted in user time already.
    return (fields[7], sum(fields[:8])) if len(fields) >= 8 else None


def _steal_share(start: tuple[int, int] | None, end: tuple[int, int] | None) -> float | None:
    """Share of the CPU time between two `_cpu_ticks` that the hypervisor
    gave to other machines (steal); `None` when unknown."""
    if start is None or end is None or end[1] <= start[1]:
        return None
    return (end[0] - start[0]) / (end[1] - start[1])


def _file_create_ms(directory: Path, n: int = 200) -> float:
    """Mean milliseconds to create one 16 KiB file in a new subdirectory of
    ``directory`` as the package writes its PNGs (a temporary file, written,
    closed and renamed); the files are removed afterwards.

    Every PNG and record file of a run pays this cost of the file system,
    which varies between machines, and on one machine over time.
    """
    where = Path(tempfile.mkdtemp(prefix="file-create-", dir=directory))
    data = os.urandom(16384)
    try:
        start = time.perf_counter()
        for i in range(n):
            temp = where / f".{i}.png.tmp"
            with open(temp, "xb") as stream:
                stream.write(data)
            os.replace(temp, where / f"{i}.png")
        return (time.perf_counter() - start) / n * 1e3
    finally:
        shutil.rmtree(where, ignore_errors=True)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    result = {"python": platform.python_version()}
    for name in ("lsst-images", "lsst-daf-butler", "matplotlib", "pillow", "numpy", "astropy"):
        try:
            result[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover
            pass
    return result


# Repositories ------------------------------------------------------------------


def _spec_json(spec: DemoSpec) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(spec)))


def _build_worker(root: str, spec: DemoSpec) -> dict[str, Any]:
    """Build one repository (run in a child process); return its record."""
    start = time.perf_counter()
    repo = build_demo_repo(root, spec, apdb=False)
    record = {
        "spec": _spec_json(spec),
        "n_sources": repo.n_sources,
        "n_exposures": len(repo.data_ids),
        "build_seconds": time.perf_counter() - start,
        "build_peak_rss_mib": _maxrss_mib(),
    }
    (Path(root) / "bench_build.json").write_text(json.dumps(record, indent=2))
    return record


def _cached(root: Path, spec: DemoSpec) -> dict[str, Any] | None:
    try:
        record = json.loads((root / "bench_build.json").read_text())
    except (OSError, ValueError):
        return None
    if record.get("spec") != _spec_json(spec) or not (root / "butler.yaml").exists():
        return None
    return record


def prepare_repos(directory: Path, plan: BenchmarkPlan, report: Callable[[str], None]) -> dict[str, Any]:
    """Build (in parallel child processes) or reuse the main and sparse
    repositories under ``directory``.

    Returns ``{"main": record, "sparse": record}``; each record has the
    ``root``, the spec, source counts, the build time and whether it was
    reused.
    """
    directory.mkdir(parents=True, exist_ok=True)
    records: dict[str, Any] = {}
    todo = {}
    for name, spec in (("main", plan.main), ("sparse", plan.sparse)):
        root = directory / f"{plan.name}_{name}"
        record = _cached(root, spec)
        if record is not None:
            records[name] = {**record, "root": str(root), "reused": True}
        else:
            shutil.rmtree(root, ignore_errors=True)
            todo[name] = (root, spec)
    if todo:
        context = multiprocessing.get_context("spawn")
        with _Timer() as timer:
            with concurrent.futures.ProcessPoolExecutor(len(todo), mp_context=context) as pool:
                futures = {
                    name: pool.submit(_build_worker, str(root), spec) for name, (root, spec) in todo.items()
                }
                for name, future in futures.items():
                    records[name] = {**future.result(), "root": str(todo[name][0]), "reused": False}
        records["build_wall_seconds"] = timer.wall
    for name in ("main", "sparse"):
        r = records[name]
        spec = r["spec"]
        report(
            f"[repo] {name}: {spec['n_visits']} visit(s) × {spec['n_detectors']} detector(s) of "
            f"{spec['image_size']}², {r['n_sources']} DiaSources; "
            + (
                f"reused (built earlier in {r['build_seconds']:.0f} s)"
                if r["reused"]
                else f"built in {r['build_seconds']:.0f} s (peak RSS {r['build_peak_rss_mib']:.0f} MiB)"
            )
        )
    if "build_wall_seconds" in records:
        report(f"[repo] build wall time {records['build_wall_seconds']:.0f} s (two builds in parallel)")
    return records


def _butler(root: str) -> Any:
    from lsst.daf.butler import Butler

    return Butler.from_config(root, collections=[DEFAULT_COLLECTION])


def _all_sources(butler: Any) -> pd.DataFrame:
    frames = [butler.get(ref) for ref in butler.query_datasets(DIA_SOURCE_TYPE)]
    sources = pd.concat(frames, ignore_index=True).sort_values("diaSourceId", ignore_index=True)
    instruments = [record.name for record in butler.query_dimension_records("instrument")]
    sources["instrument"] = instruments[0]
    return sources


def _densest(sources: pd.DataFrame) -> pd.DataFrame:
    counts = sources.groupby(["visit", "detector"]).size()
    visit, detector = counts.idxmax()
    return sources[(sources["visit"] == visit) & (sources["detector"] == detector)].reset_index(drop=True)


# 1. Render only -------------------------------------------------------------------


@dataclasses.dataclass
class StampSet:
    """Real stamps of one visit × detector, cut once, for the render figures."""

    rows: list[dict]
    stamps: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]
    """Per size, one (template, science, difference) per row."""
    pixel_scale: float
    whole_read_seconds: float
    """Wall time of reading the three whole image planes (bbox mode's rival)."""


def cut_stamp_set(butler: Any, sources: pd.DataFrame, n: int, sizes: Sequence[int] = (30, 64)) -> StampSet:
    """Read the three image planes of the visit × detector of ``sources``
    and cut ``sizes`` stamps of ``n`` of its sources (spread over the list).
    """
    from lsst.analysis.ap.datasets import DEFAULT_SCIENCE_TYPE, IMAGE_ROLES, image_dataset_types
    from lsst.analysis.ap.geometry import cut_stamp, stamp_box
    from lsst.analysis.ap.images.butler import butler_plane_reader

    first = sources.iloc[0]
    data_id = {
        "instrument": first["instrument"],
        "visit": int(first["visit"]),
        "detector": int(first["detector"]),
    }
    types = image_dataset_types(DEFAULT_SCIENCE_TYPE, None)
    take = np.unique(np.linspace(0, len(sources) - 1, min(n, len(sources))).astype(int))
    rows = sources.iloc[take].to_dict("records")
    with _Timer() as timer:
        readers = {role: butler_plane_reader(butler, types[role], data_id) for role in IMAGE_ROLES}
        planes = {role: readers[role].read_whole() for role in IMAGE_ROLES}
    ra = np.array([r["ra"] for r in rows], dtype=float)
    dec = np.array([r["dec"] for r in rows], dtype=float)
    positions = {role: readers[role].sky_to_pixel(ra, dec) for role in IMAGE_ROLES}
    stamps: dict[int, list] = {}
    for size in sizes:
        stamps[size] = [
            tuple(
                cut_stamp(
                    planes[role][0],
                    planes[role][1],
                    stamp_box(positions[role][0][i], positions[role][1][i], size),
                )
                for role in IMAGE_ROLES
            )
            for i in range(len(rows))
        ]
    scale = readers["science"].pixel_scale_arcsec()
    for reader in readers.values():
        reader.release()
    return StampSet(rows=rows, stamps=stamps, pixel_scale=scale, whole_read_seconds=timer.wall)


def _task_renderer(sizes: Sequence[int], add_metadata: bool, compress_level: int | None = None) -> Any:
    """The renderer the task builds with its default configuration."""
    from lsst.analysis.ap.plotImageSubtractionCutouts import (
        PlotImageSubtractionCutoutsConfig,
        _renderer_factory,
    )

    config = PlotImageSubtractionCutoutsConfig()
    config.add_metadata = add_metadata
    if compress_level is not None:
        config.png_compress_level = compress_level
    return _renderer_factory(config)(tuple(sizes))


def _triplets(stamp_set: StampSet, sizes: Sequence[int], i: int) -> list:
    return [stamp_set.stamps[size][i] for size in sizes]


def _time_calls(calls: Iterable[Callable[[], bytes]]) -> tuple[list[float], list[float], list[int]]:
    walls, cpus, sizes = [], [], []
    for call in calls:
        wall, cpu = time.perf_counter(), time.process_time()
        png = call()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
        sizes.append(len(png))
    return walls, cpus, sizes


def measure_render(stamp_set: StampSet, plan: BenchmarkPlan, report: Callable[[str], None]) -> dict[str, Any]:
    """Figure 1: ms per triplet, ours against the matplotlib baseline."""
    from benchmarks.baseline import baseline_triplet_png

    n = len(stamp_set.rows)
    m = min(plan.baseline_sources, n)
    annotations = _annotations(stamp_set.rows)
    configs = []
    for sizes in ((30,), (30, 64)):
        for metadata in (True, False):
            renderer = _task_renderer(sizes, metadata)

            def ours(
                i: int, renderer: Any = renderer, sizes: Sequence[int] = sizes, metadata: bool = metadata
            ):
                return lambda: renderer.render_png(
                    _triplets(stamp_set, sizes, i),
                    annotations[i] if metadata else None,
                    stamp_set.pixel_scale,
                )

            def base(i: int, sizes: Sequence[int] = sizes, metadata: bool = metadata):
                return lambda: baseline_triplet_png(
                    _triplets(stamp_set, sizes, i),
                    annotations[i] if metadata else None,
                    stamp_set.pixel_scale,
                )

            _time_calls(ours(i) for i in range(min(3, n)))  # warm-up (fonts, caches)
            _time_calls([base(0)])
            o_wall, o_cpu, o_bytes = _time_calls(ours(i) for i in range(n))
            b_wall, b_cpu, b_bytes = _time_calls(base(i) for i in range(m))
            same_wall = statistics.fmean(o_wall[:m]) * 1e3
            same_cpu = statistics.fmean(o_cpu[:m]) * 1e3
            entry = {
                "sizes": list(sizes),
                "metadata": metadata,
                "ours_ms": _round(statistics.fmean(o_wall) * 1e3),
                "ours_ms_cpu": _round(statistics.fmean(o_cpu) * 1e3),
                "ours_ms_median": _round(statistics.median(o_wall) * 1e3),
                "ours_ms_same_sources": _round(same_wall),
                "ours_ms_same_sources_cpu": _round(same_cpu),
                "baseline_ms": _round(statistics.fmean(b_wall) * 1e3),
                "baseline_ms_cpu": _round(statistics.fmean(b_cpu) * 1e3),
                "ratio": _round(statistics.fmean(b_wall) * 1e3 / same_wall),
                "ratio_cpu": _round(statistics.fmean(b_cpu) * 1e3 / same_cpu),
                "ours_png_bytes": _round(statistics.fmean(o_bytes)),
                "baseline_png_bytes": _round(statistics.fmean(b_bytes)),
            }
            configs.append(entry)
            report(
                f"[1 render] sizes={list(sizes)} metadata={'on' if metadata else 'off'}: ours "
                f"{entry['ours_ms']:.2f} ms/triplet (CPU {entry['ours_ms_cpu']:.2f}, n={n}); matplotlib "
                f"{entry['baseline_ms']:.0f} ms (CPU {entry['baseline_ms_cpu']:.0f}, n={m}); "
                f"ratio {entry['ratio']:.0f}× (CPU {entry['ratio_cpu']:.0f}×, same {m} sources)"
                + (" — target ≥ 100×" if metadata and sizes == (30,) else "")
            )
    headline = next(c for c in configs if c["metadata"] and c["sizes"] == [30])
    breakdown = _render_breakdown(stamp_set, annotations)
    report(
        "[1 render] where ours spends its time (30 px, metadata on, cProfile): "
        + ", ".join(f"{name} {v['fraction'] * 100:.0f}%" for name, v in breakdown["parts"].items())
    )
    return {
        "n_sources_ours": n,
        "n_sources_baseline": m,
        "configs": configs,
        "target_ratio": 100,
        "meets_target": bool(min(headline["ratio"], headline["ratio_cpu"]) >= 100),
        "ours_breakdown": breakdown,
    }


def _code_keys(*functions: Any) -> set[tuple[str, str]]:
    """``(file, name)`` of functions, as cProfile keys its entries (robust to
    modules moving)."""
    return {(f.__code__.co_filename, f.__code__.co_name) for f in functions}


def _render_functions() -> dict[str, set[tuple[str, str]]]:
    from PIL import Image

    from lsst.analysis.ap.display.png import PalettePng
    from lsst.analysis.ap.display.renderer import TripletRenderer
    from lsst.analysis.ap.display.scaling import stamp_levels

    # render_png delegates to render_source, which the core calls directly.
    # Panels are scaled by stamp_levels; palette PNGs (the default) are
    # encoded by PalettePng, RGB ones (display options) by Pillow.
    return {
        "render_png": _code_keys(TripletRenderer.render_source),
        "scaling": _code_keys(stamp_levels),
        "annotation": _code_keys(TripletRenderer._draw_annotation),
        "encode": _code_keys(PalettePng.encode_rows, Image.Image.save),
    }


def _render_breakdown(stamp_set: StampSet, annotations: list) -> dict[str, Any]:
    """Where `render_png` spends its time (cProfile; 30 px, metadata on)."""
    renderer = _task_renderer((30,), True)
    profile = cProfile.Profile()
    profile.enable()
    for i in range(len(stamp_set.rows)):
        renderer.render_png(_triplets(stamp_set, (30,), i), annotations[i], stamp_set.pixel_scale)
    profile.disable()
    functions = _render_functions()
    c = dict.fromkeys(functions, 0.0)
    for (filename, _, function), (_, _, _, ct, _callers) in pstats.Stats(profile).stats.items():  # type: ignore[attr-defined]
        for key, keys in functions.items():
            if (filename, function) in keys:
                c[key] += ct
    total = max(c["render_png"], 1e-12)
    parts = {
        "display scaling (intervals, stretches)": c["scaling"],  # and colour levels
        "annotation text and badges": c["annotation"],
        "PNG encode": c["encode"],
    }
    parts["rest (upsampling, canvas, scale bars)"] = max(total - sum(parts.values()), 0.0)
    n = max(len(stamp_set.rows), 1)
    return {
        "parts": {
            name: {"ms_per_triplet": _round(v / n * 1e3), "fraction": _round(v / total, 3)}
            for name, v in parts.items()
        }
    }


def write_samples(stamp_set: StampSet, directory: Path) -> list[str]:
    """One PNG of ours and one of the baseline, to compare by eye."""
    from benchmarks.baseline import baseline_triplet_png
    from lsst.analysis.ap.display.annotation import SourceAnnotation

    directory.mkdir(parents=True, exist_ok=True)
    row = stamp_set.rows[0]
    annotation = SourceAnnotation.from_row(row, instrument=str(row["instrument"]))
    written = []
    for sizes in ((30,), (30, 64)):
        tag = "_".join(str(s) for s in sizes)
        ours = _task_renderer(sizes, True).render_png(
            _triplets(stamp_set, sizes, 0), annotation, stamp_set.pixel_scale
        )
        base = baseline_triplet_png(_triplets(stamp_set, sizes, 0), annotation, stamp_set.pixel_scale)
        for name, png in ((f"ours_{tag}.png", ours), (f"matplotlib_{tag}.png", base)):
            (directory / name).write_bytes(png)
            written.append(str(directory / name))
    return written


# 2. End to end ------------------------------------------------------------------


def warm_page_cache(butler: Any, sources: pd.DataFrame) -> None:
    """Read the image files of the sources' visit × detectors once, so a
    timed run reads them from the page cache ("files are read with a warm
    page cache"): the machine may drop cached pages it has not used for a
    while, and a run would then wait for the disk.
    """
    from lsst.analysis.ap.datasets import DEFAULT_SCIENCE_TYPE, IMAGE_ROLES, image_dataset_types
    from lsst.analysis.ap.images.butler import find_image_datasets

    types = image_dataset_types(DEFAULT_SCIENCE_TYPE, None)
    keys = sources[["instrument", "visit", "detector"]].drop_duplicates().itertuples(index=False)
    data_ids = [{"instrument": i, "visit": int(v), "detector": int(d)} for i, v, d in keys]
    found = find_image_datasets(butler, {role: types[role] for role in IMAGE_ROLES}, data_ids)
    for datasets in found.values():
        for dataset in datasets.values():
            path = dataset.uri.ospath if dataset.uri is not None and dataset.uri.isLocal else None
            if path is None:
                continue
            with open(path, "rb", buffering=0) as stream:
                while stream.read(1 << 23):
                    pass


def time_task_run(
    butler: Any,
    sources: pd.DataFrame,
    output: Path,
    *,
    whole_read_min_sources: int | None = None,
    njobs: int = 0,
    profile: cProfile.Profile | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Run the task on ``sources`` into a fresh ``output`` and time it.

    ``whole_read_min_sources`` and ``threads`` `None` keep the task's
    defaults.  A profiled run draws in one thread (``threads = 1``):
    cProfile sees only the thread that enabled it.
    """
    from lsst.analysis.ap.plotImageSubtractionCutouts import (
        PlotImageSubtractionCutoutsConfig,
        PlotImageSubtractionCutoutsTask,
    )

    shutil.rmtree(output, ignore_errors=True)
    config = PlotImageSubtractionCutoutsConfig()
    if whole_read_min_sources is not None:
        config.whole_read_min_sources = whole_read_min_sources
    if threads is not None:
        config.threads = threads
    if profile is not None:
        config.threads = 1
    task = PlotImageSubtractionCutoutsTask(config=config, output_path=output)
    warm_page_cache(butler, sources)
    with _Timer() as timer:
        if profile is not None:
            profile.enable()
        try:
            result = task.run(sources, butler, njobs=njobs)
        finally:
            if profile is not None:
                profile.disable()
    written = result.records[result.records["status"] == "written"]
    sizes = [(output / path).stat().st_size for path in written["path"]]
    n = len(sources)
    entry = {
        "n_sources": n,
        "written": int(result.summary["written"]),
        "failed": int(result.summary["failed"]),
        "failed_by_reason": dict(result.summary["failed_by_reason"]),
        "njobs": njobs,
        "whole_read_min_sources": config.whole_read_min_sources,
        "wall_s": _round(timer.wall),
        "cpu_s": _round(timer.cpu),
        "ms_per_source": _round(timer.wall / n * 1e3),
        "ms_per_source_cpu": _round(timer.cpu / n * 1e3),
        "sources_per_s": _round(n / timer.wall),
        "sources_per_s_cpu": _round(n / timer.cpu),
        "mean_png_bytes": _round(statistics.fmean(sizes)) if sizes else 0.0,
    }
    shutil.rmtree(output, ignore_errors=True)
    return entry


def _shares_tiles(butler: Any, sources: pd.DataFrame) -> bool:
    """Whether the difference image of the first source's visit × detector
    is read through shared row tiles (then the default configuration
    never reads whole planes)."""
    from lsst.analysis.ap.datasets import DEFAULT_DIFFERENCE_TYPE
    from lsst.analysis.ap.images.butler import butler_plane_reader

    first = sources.iloc[0]
    data_id = {
        "instrument": first["instrument"],
        "visit": int(first["visit"]),
        "detector": int(first["detector"]),
    }
    reader = butler_plane_reader(butler, DEFAULT_DIFFERENCE_TYPE, data_id)
    try:
        return bool(reader.shares_tiles)
    finally:
        reader.release()


def time_original(butler: Any, sources: pd.DataFrame, output: Path, sample: int | None) -> dict[str, Any]:
    """The original way on ``sources`` (see `benchmarks.baseline.draw_original`)."""
    from benchmarks.baseline import draw_original

    shutil.rmtree(output, ignore_errors=True)
    warm_page_cache(butler, sources)
    run = draw_original(butler, sources, output, max_draw_per_exposure=sample)
    shutil.rmtree(output, ignore_errors=True)
    read_wall = sum(g.read_wall for g in run.groups)
    read_cpu = sum(g.read_cpu for g in run.groups)
    draw_wall = sum(g.draw_wall for g in run.groups)
    draw_cpu = sum(g.draw_cpu for g in run.groups)
    return {
        "n_sources": run.n_sources,
        "n_drawn": run.n_drawn,
        "extrapolated": run.extrapolated,
        "read_whole_exposures_s": _round(read_wall),
        "read_whole_exposures_s_cpu": _round(read_cpu),
        "draw_ms_per_source": _round(draw_wall / max(run.n_drawn, 1) * 1e3),
        "draw_ms_per_source_cpu": _round(draw_cpu / max(run.n_drawn, 1) * 1e3),
        "ms_per_source": _round(run.seconds_per_source() * 1e3),
        "ms_per_source_cpu": _round(run.seconds_per_source(cpu=True) * 1e3),
        "sources_per_s": _round(1.0 / run.seconds_per_source()),
        "sources_per_s_cpu": _round(1.0 / run.seconds_per_source(cpu=True)),
    }


def _profile_functions() -> dict[str, set[tuple[str, str]]]:
    from PIL import Image

    from lsst.analysis.ap import geometry
    from lsst.analysis.ap.core import DetectorCutouter
    from lsst.analysis.ap.display.annotation import SourceAnnotation
    from lsst.analysis.ap.display.png import PalettePng
    from lsst.analysis.ap.display.renderer import TripletRenderer
    from lsst.analysis.ap.images.butler import PlaneReader, butler_plane_reader
    from lsst.analysis.ap.outputs.store import OutputStore
    from lsst.analysis.ap.plotImageSubtractionCutouts import PlotImageSubtractionCutoutsTask

    return {
        "lookup": _code_keys(butler_plane_reader),
        "describe": _code_keys(PlaneReader._describe),
        "sky": _code_keys(PlaneReader.sky_to_pixel, geometry.pixel_scale_arcsec),
        "whole": _code_keys(PlaneReader.read_whole),
        "bbox": _code_keys(PlaneReader.read),
        "cut": _code_keys(DetectorCutouter._cut),
        "annotation": _code_keys(SourceAnnotation.from_row.__func__),
        "render_png": _code_keys(TripletRenderer.render_source),
        # encode and render_source both go through encode_rows (or Pillow).
        "png_encode": _code_keys(PalettePng.encode_rows, Image.Image.save),
        "write": _code_keys(OutputStore.write),
        "finish": _code_keys(PlotImageSubtractionCutoutsTask.finish),
    }


def profile_breakdown(profile: cProfile.Profile, n_sources: int) -> dict[str, Any]:
    """Where the time of a profiled task run goes, in exclusive categories.

    Returns ms per source and the fraction of the profiled time for each
    category (cProfile inflates pure-Python parts; read the fractions as
    approximate).
    """
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    functions = _profile_functions()
    cumulative = dict.fromkeys(functions, 0.0)
    total = 0.0
    for (filename, _, function), (_, _, _, ct, _callers) in stats.items():
        if function == "run" and filename.endswith("plotImageSubtractionCutouts.py"):
            total = max(total, ct)
        for key, keys in functions.items():
            if (filename, function) in keys:
                cumulative[key] += ct
    c = cumulative
    parts = {
        "dataset lookup (find_dataset, getURI)": c["lookup"],
        "file open + bbox/WCS components": c["describe"],
        "sky_to_pixel + pixel scale": max(c["sky"] - c["describe"], 0.0),
        "whole-plane reads (decompression)": c["whole"],
        "bbox reads (decompression)": c["bbox"],
        "stamp cutting": max(c["cut"] - c["bbox"], 0.0),
        "annotation from catalog row": c["annotation"],
        "render (scaling, colour map, text)": max(c["render_png"] - c["png_encode"], 0.0),
        "PNG encode (zlib)": c["png_encode"],
        "PNG file writes": c["write"],
        "manifests + summary": c["finish"],
    }
    parts["other (records, pandas, task overhead)"] = max(total - sum(parts.values()), 0.0)
    total = max(total, 1e-12)
    return {
        "profiled_total_s": _round(total),
        "parts": {
            name: {"ms_per_source": _round(seconds / n_sources * 1e3), "fraction": _round(seconds / total, 3)}
            for name, seconds in parts.items()
        },
    }


def _profile_line(label: str, breakdown: dict[str, Any]) -> str:
    parts = sorted(breakdown["parts"].items(), key=lambda item: -item[1]["fraction"])
    text = ", ".join(f"{name} {v['fraction'] * 100:.0f}%" for name, v in parts if v["fraction"] >= 0.02)
    return f"[2 profile] {label}: {text}"


def measure_end_to_end(
    repos: dict[str, Any], plan: BenchmarkPlan, work: Path, report: Callable[[str], None]
) -> tuple[dict[str, Any], StampSet]:
    """Figure 2 (and the stamps of figures 1 and 5, cut from the dense
    visit × detector)."""
    main_butler = _butler(repos["main"]["root"])
    sparse_butler = _butler(repos["sparse"]["root"])
    dense = _densest(_all_sources(main_butler))
    sparse = _all_sources(sparse_butler)
    result: dict[str, Any] = {}
    if len(dense) < plan.min_dense_sources:
        report(f"[2 e2e] WARNING: the dense visit × detector has only {len(dense)} sources")
    if len(sparse) > plan.max_sparse_sources:
        report(f"[2 e2e] WARNING: the sparse visit × detector has {len(sparse)} sources")

    # Warm-up: imports, first Butler reads.
    time_task_run(sparse_butler, sparse, work / "warmup")

    for label, butler, sources, repeats in (
        ("dense", main_butler, dense, plan.sparse_repeats),
        ("sparse", sparse_butler, sparse, plan.sparse_repeats),
    ):
        first = sources.iloc[0]
        entry: dict[str, Any] = {
            "visit": int(first["visit"]),
            "detector": int(first["detector"]),
            "n_sources": len(sources),
            "image_size": repos["main" if label == "dense" else "sparse"]["spec"]["image_size"],
        }
        for mode, threshold in (("whole", 1), ("bbox", _HUGE), ("default", None)):
            runs = [
                time_task_run(butler, sources, work / f"{label}_{mode}", whole_read_min_sources=threshold)
                for _ in range(repeats)
            ]
            entry[mode] = median_run(runs)
        threshold = whole_read_threshold(CutoutSettings(), entry["image_size"])
        entry["default"]["whole_read_min_sources"] = threshold
        entry["default"]["read_mode"] = (
            "shared row tiles"
            if _shares_tiles(butler, sources)
            else ("whole" if len(sources) >= threshold else "bbox")
        )
        sample = plan.original_sample if label == "dense" else None
        entry["original"] = time_original(butler, sources, work / f"{label}_original", sample)
        entry["floor"] = measure_floor(butler, sources)
        ours = entry["default"]
        entry["speedup_vs_original"] = _round(entry["original"]["ms_per_source"] / ours["ms_per_source"])
        entry["speedup_vs_original_cpu"] = _round(
            entry["original"]["ms_per_source_cpu"] / ours["ms_per_source_cpu"]
        )
        ours_mode = entry["default"]["read_mode"]
        for mode in ("whole", "bbox", "default"):
            r = entry[mode]
            report(
                f"[2 e2e] {label} ({len(sources)} sources, visit {entry['visit']} det {entry['detector']}), "
                f"{mode if mode != 'default' else 'default config → ' + ours_mode} reads: "
                f"{r['sources_per_s']:.1f} sources/s ({r['ms_per_source']:.1f} ms/source; CPU "
                f"{r['sources_per_s_cpu']:.1f}/s, {r['ms_per_source_cpu']:.1f} ms)"
                + (f", median of {r['repeats']}" if r["repeats"] > 1 else "")
                + (f", {r['failed']} failed {r['failed_by_reason']}" if r["failed"] else "")
            )
        o = entry["original"]
        report(
            f"[2 e2e] {label} original way (3 whole exposures + 1 matplotlib figure/source): "
            f"{o['ms_per_source']:.0f} ms/source (CPU {o['ms_per_source_cpu']:.0f}) = reads "
            f"{o['read_whole_exposures_s']:.1f} s + {o['draw_ms_per_source']:.0f} ms/figure"
            + (
                f"; drew {o['n_drawn']} of {o['n_sources']} sources, the rest extrapolated per source"
                if o["extrapolated"]
                else f"; all {o['n_drawn']} sources drawn"
            )
            + f" → ours (default config) ×{entry['speedup_vs_original']:.0f} faster "
            + f"(CPU ×{entry['speedup_vs_original_cpu']:.0f})"
            + " — target ≥ 20×"
        )
        result[label] = entry

    d, s = result["dense"], result["sparse"]
    result["targets"] = {
        "dense_sources_per_s_min": 100,
        "dense_meets": bool(d["default"]["sources_per_s"] >= 100),
        "dense_meets_cpu": bool(d["default"]["sources_per_s_cpu"] >= 100),
        "sparse_ms_per_source_max": 40,
        "sparse_meets": bool(s["default"]["ms_per_source"] <= 40),
        "sparse_meets_cpu": bool(s["default"]["ms_per_source_cpu"] <= 40),
        "speedup_min": 20,
        "speedup_meets": bool(min(d["speedup_vs_original"], s["speedup_vs_original"]) >= 20),
    }

    # Stamps for figures 1 and 5 (and the whole-read time for the crossover).
    stamp_set = cut_stamp_set(main_butler, dense, plan.render_sources)
    bbox_ms = (
        (d["bbox"]["wall_s"] - d["whole"]["wall_s"] + stamp_set.whole_read_seconds) / d["n_sources"] * 1e3
    )
    result["read_crossover"] = {
        "whole_read_s": _round(stamp_set.whole_read_seconds),
        "bbox_read_ms_per_source": _round(bbox_ms),
        "crossover_sources": _round(stamp_set.whole_read_seconds / (bbox_ms / 1e3)) if bbox_ms > 0 else None,
        "default_whole_read_min_sources": d["default"]["whole_read_min_sources"],
    }
    rc = result["read_crossover"]
    report(
        f"[2 e2e] reads of one {d['image_size']}² visit × detector: whole planes {rc['whole_read_s']:.2f} s, "
        f"bbox reads {rc['bbox_read_ms_per_source']:.1f} ms/source → "
        + (
            f"whole reads pay off from ~{rc['crossover_sources']:.0f} sources"
            if rc["crossover_sources"] is not None
            else "bbox reads cost no more than whole reads at this count"
        )
        + f" (config default whole_read_min_sources = {rc['default_whole_read_min_sources']})"
    )

    # Where the time goes (separate, profiled runs).
    result["profile"] = {}
    for label, butler, sources, threshold in (
        ("dense_whole", main_butler, dense, 1),
        ("sparse_bbox", sparse_butler, sparse, _HUGE),
    ):
        profile = cProfile.Profile()
        time_task_run(
            butler, sources, work / f"profile_{label}", whole_read_min_sources=threshold, profile=profile
        )
        result["profile"][label] = profile_breakdown(profile, len(sources))
        report(_profile_line(label, result["profile"][label]))
    return result, stamp_set


# 3 and 4. Child-process runs: scaling and memory ------------------------------------------


def _child_run(params: dict[str, Any]) -> dict[str, Any]:
    """Run the task in this (fresh) process on ``n_sources`` sources: a
    seeded random sample of the repository, or, with ``packed``, the first
    ones in visit × detector order (as few visit × detectors as possible).
    """
    logging.getLogger("lsst").setLevel(logging.ERROR)
    butler = _butler(params["root"])
    sources = _all_sources(butler)
    if "typical" in params:
        return _child_typical(butler, sources, params["typical"], Path(params["output"]))
    n = min(int(params["n_sources"]), len(sources))
    if params.get("replicate"):
        sample = replicated_sources(sources, int(params["n_sources"]), int(params["seed"]))
        n = len(sample)
    elif params.get("packed"):
        sample = sources.sort_values(["visit", "detector", "diaSourceId"], ignore_index=True).iloc[:n]
    elif n < len(sources):
        sample = sources.sample(n=n, random_state=int(params["seed"]))
    else:
        sample = sources
    per_exposure = sample.groupby(["visit", "detector"]).size()
    rss_before = _vm_hwm_mib()
    with _DescendantPeak() as workers:
        entry = time_task_run(
            butler, sample, Path(params["output"]), njobs=int(params["njobs"]), threads=params.get("threads")
        )
    entry.update(
        {
            "sampling": "replicated"
            if params.get("replicate")
            else "packed"
            if params.get("packed")
            else "random",
            "n_exposures": int(len(per_exposure)),
            "sources_per_exposure_min": int(per_exposure.min()),
            "sources_per_exposure_max": int(per_exposure.max()),
            "peak_rss_mib": _round(_maxrss_mib()),
            "peak_vmhwm_mib": _vm_hwm_mib(),
            "vmhwm_before_run_mib": rss_before,
            "peak_rss_workers_mib": _round(_maxrss_mib(resource.RUSAGE_CHILDREN)),
            "peak_vmhwm_workers_mib": workers.peak,
        }
    )
    return entry


def _child_typical(butler: Any, sources: pd.DataFrame, spec: dict[str, int], output: Path) -> dict[str, Any]:
    """The typical regime in this (fresh) process, on one core: a warm-up
    run, then ours ``repeats`` times (the run of median wall time) and the
    original way once."""
    subset = typical_subset(sources, spec["per_detector"])
    with one_core():
        time_task_run(butler, subset, output / "warmup")
        ours = median_run([time_task_run(butler, subset, output / "typical") for _ in range(spec["repeats"])])
        original = time_original(butler, subset, output / "typical_original", spec["original_sample"])
    return {"ours": ours, "original": original}


def replicated_sources(sources: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """``n`` sources on the images of ``sources``: its rows repeated with
    new diaSourceIds and positions moved by about a pixel (seeded), then a
    random ``n`` of them, in id order.
    """
    copies = -(-n // len(sources))
    stride = int(sources["diaSourceId"].max()) + 1
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(copies):
        copy = sources.copy()
        copy["diaSourceId"] = sources["diaSourceId"].to_numpy() + k * stride
        if k:
            # About 1 pixel (0.2 arcsec) in each direction.
            copy["ra"] = copy["ra"] + rng.normal(0, 5.5e-5, len(copy))
            copy["dec"] = copy["dec"] + rng.normal(0, 5.5e-5, len(copy))
        frames.append(copy)
    table = pd.concat(frames, ignore_index=True)
    return table.sample(n=n, random_state=seed).sort_values("diaSourceId", ignore_index=True)


def run_child(
    root: str,
    n_sources: int,
    njobs: int,
    output: Path,
    seed: int = 1,
    packed: bool = False,
    replicate: bool = False,
    threads: int | None = None,
) -> dict[str, Any]:
    """`_child_run` in a fresh Python process; returns its figures.

    The process is started through ``/bin/sh`` (which forks it) so that
    its ``ru_maxrss`` does not inherit this process's peak RSS.
    ``threads`` `None` keeps the task's default drawing threads.
    """
    params = {
        "root": root,
        "n_sources": n_sources,
        "njobs": njobs,
        "output": str(output),
        "seed": seed,
        "packed": packed,
        "replicate": replicate,
        "threads": threads,
    }
    return _in_child(params)


def _in_child(params: dict[str, Any]) -> dict[str, Any]:
    """`_child_run` with ``params`` in a fresh Python process."""
    command = [sys.executable, "-m", "benchmarks.benchmark", "--child-run", json.dumps(params)]
    if os.name == "posix" and Path("/bin/sh").exists():
        command = ["/bin/sh", "-c", '"$@"; exit $?', "sh", *command]
    path = os.pathsep.join(filter(None, [str(_REPOSITORY_ROOT), os.environ.get("PYTHONPATH")]))
    completed = subprocess.run(
        command, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": path}
    )
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith(_CHILD_MARK):
            return json.loads(line[len(_CHILD_MARK) :])
    raise RuntimeError(
        f"benchmark child run failed (exit {completed.returncode}):\n{completed.stdout[-2000:]}\n"
        f"{completed.stderr[-4000:]}"
    )


def _scaling_line(entry: dict[str, Any]) -> str:
    return (
        f"[4 scaling] {entry['n_sources']} sources ({entry['sampling']}) over {entry['n_exposures']} "
        f"visit × detector(s) ({entry['sources_per_exposure_min']}-{entry['sources_per_exposure_max']} "
        f"each), njobs=0: {entry['wall_s']:.1f} s wall = {entry['ms_per_source']:.1f} ms/source "
        f"(CPU {entry['ms_per_source_cpu']:.1f}), peak RSS {entry['peak_rss_mib']:.0f} MiB"
    )


def measure_scaling(
    repos: dict[str, Any], plan: BenchmarkPlan, work: Path, report: Callable[[str], None]
) -> dict[str, Any]:
    """Figures 3 (child-process peak RSS) and 4 (scaling, njobs).

    Every run is a fresh child process.  The main series takes random
    samples of the repository (the sources per visit × detector grow with
    the count); the ``packed`` series takes the first sources in visit ×
    detector order (the fewest visit × detectors).
    """
    root = repos["main"]["root"]
    total = repos["main"]["n_sources"]
    runs = []
    for count in plan.scaling_counts:
        entry = run_child(root, count, 0, work / f"scaling_{count}")
        runs.append(entry)
        report(_scaling_line(entry))
        if count > total:
            report(f"[4 scaling] (the repository has {total} sources; all were used)")
    packed = []
    for count in plan.scaling_counts[:-1]:
        entry = run_child(root, count, 0, work / f"scaling_packed_{count}", packed=True)
        packed.append(entry)
        report(_scaling_line(entry))
    largest = max(runs, key=lambda r: r["n_sources"])
    # njobs=0 draws in threads by default; the one-core reference of the
    # njobs ratio draws in one.  Each pair runs one after the other, so a
    # change of the host's speed between pairs cancels out.
    pairs = []
    for _ in range(plan.njobs_pairs):
        one_core = run_child(root, largest["n_sources"], 0, work / "scaling_one_thread", threads=1)
        parallel = run_child(root, largest["n_sources"], 2, work / "scaling_njobs2")
        pairs.append((one_core["wall_s"] / parallel["wall_s"], one_core, parallel))
    pair_speedups = [pair[0] for pair in pairs]
    speedup, one_core, parallel = sorted(pairs, key=lambda pair: pair[0])[len(pairs) // 2]
    worker_peak = parallel["peak_vmhwm_workers_mib"]
    report(
        f"[4 scaling] {parallel['n_sources']} sources, njobs=2 (this process and one worker): "
        f"{parallel['wall_s']:.1f} s wall vs "
        f"{one_core['wall_s']:.1f} s with njobs=0 in one thread → ×{speedup:.2f} "
        f"(CPU {parallel['cpu_s']:.1f} s incl. workers vs {one_core['cpu_s']:.1f} s; pair of median "
        f"ratio of {len(pairs)}: {', '.join(f'×{ratio:.2f}' for ratio in pair_speedups)}); njobs=0 with "
        f"the default threads: {largest['wall_s']:.1f} s → ×{largest['wall_s'] / parallel['wall_s']:.2f}"
    )
    per_source = [r["ms_per_source"] for r in runs]
    flat = max(per_source) / min(per_source)
    growth = max(b / a for a, b in zip(per_source, per_source[1:], strict=False)) if len(runs) > 1 else 1.0
    report(
        f"[4 scaling] ms/source across {', '.join(str(r['n_sources']) for r in runs)} random sources: "
        f"{', '.join(f'{v:.1f}' for v in per_source)}; largest step-to-step growth ×{growth:.2f} "
        + (
            "(no growth with the count: the cost per source falls as each visit × detector holds more "
            "sources and its reads are shared)"
            if growth <= 1.1
            else "(the cost per source GROWS with the count)"
        )
    )
    memory_run = largest
    peaks = [memory_run["peak_rss_mib"], parallel["peak_rss_mib"]]
    if worker_peak is not None:
        peaks.append(worker_peak)
    report(
        f"[3 memory] child process, {memory_run['n_sources']} sources over {memory_run['n_exposures']} "
        f"visit × detector(s), njobs=0: peak RSS {memory_run['peak_rss_mib']:.0f} MiB (ru_maxrss; VmHWM "
        f"{memory_run['peak_vmhwm_mib'] or float('nan'):.0f}); njobs=2: parent "
        f"{parallel['peak_rss_mib']:.0f} MiB, largest worker "
        + (f"{worker_peak:.0f} MiB (VmHWM)" if worker_peak is not None else "n/a")
        + " — target < 1024 MiB"
    )
    return {
        "runs": runs,
        "packed_runs": packed,
        "njobs2": parallel,
        "njobs0_one_thread": one_core,
        "njobs2_speedup": _round(speedup),
        "njobs2_pair_speedups": [_round(ratio) for ratio in pair_speedups],
        "njobs2_speedup_vs_default_threads": _round(largest["wall_s"] / parallel["wall_s"]),
        "ms_per_source_max_over_min": _round(flat),
        "ms_per_source_largest_over_smallest": _round(per_source[-1] / per_source[0]),
        "ms_per_source_max_step_growth": _round(growth),
        "memory_run": {
            "n_sources": memory_run["n_sources"],
            "n_exposures": memory_run["n_exposures"],
            "peak_rss_mib": memory_run["peak_rss_mib"],
            "peak_vmhwm_mib": memory_run["peak_vmhwm_mib"],
            "njobs2_parent_peak_rss_mib": parallel["peak_rss_mib"],
            "njobs2_worker_peak_vmhwm_mib": worker_peak,
            "njobs2_worker_peak_ru_maxrss_mib": parallel["peak_rss_workers_mib"],
            "worker_ru_maxrss_note": "ru_maxrss of spawned workers includes their parent's peak RSS at "
            "spawn time (Linux keeps it across exec); the VmHWM figure is the workers' own.",
            "meets_target": bool(max(peaks) < 1024),
        },
    }


# 8. Flat cost per source up to 100,000 ------------------------------------------------------


def measure_flat(
    repos: dict[str, Any], plan: BenchmarkPlan, work: Path, report: Callable[[str], None]
) -> dict[str, Any]:
    """The task on the smallest and the largest of ``plan.scale_counts``
    sources (the main repository's, repeated: many per visit × detector),
    default configuration, ``njobs=0``, each in a fresh child process: CPU
    and wall ms per source and peak RSS (VmHWM of the child).
    """
    root = repos["main"]["root"]
    runs = []
    for count in plan.scale_counts:
        entry = run_child(root, count, 0, work / f"flat_{count}", seed=3, replicate=True)
        runs.append(entry)
        report(
            f"[8 flat] {entry['n_sources']:,} sources (repository's sources repeated) over "
            f"{entry['n_exposures']} visit × detector(s) ({entry['sources_per_exposure_min']:,}-"
            f"{entry['sources_per_exposure_max']:,} each), njobs=0: {entry['ms_per_source']:.2f} ms/source "
            f"(CPU {entry['ms_per_source_cpu']:.2f}), {entry['failed']} failed, peak RSS "
            f"{entry['peak_vmhwm_mib'] or entry['peak_rss_mib']:.0f} MiB (VmHWM; "
            f"{entry['vmhwm_before_run_mib'] or 0:.0f} MiB before the run)"
        )
    small, large = runs[0], runs[-1]
    return {
        "runs": runs,
        "cpu_ratio": _round(large["ms_per_source_cpu"] / small["ms_per_source_cpu"]),
        "wall_ratio": _round(large["ms_per_source"] / small["ms_per_source"]),
    }


# 5. PNG size and compression ------------------------------------------------------------


def measure_png(stamp_set: StampSet, plan: BenchmarkPlan, report: Callable[[str], None]) -> dict[str, Any]:
    """Figure 5: PNG bytes per triplet; compress_level 0-9 → ms and bytes
    of `~lsst.analysis.ap.display.renderer.TripletRenderer.render_png` (30 px,
    metadata on), against the level-independent drawing alone
    (``render_indices``, when the renderer has it).
    """
    from lsst.analysis.ap.plotImageSubtractionCutouts import PlotImageSubtractionCutoutsConfig

    default_level = PlotImageSubtractionCutoutsConfig().png_compress_level
    n = min(plan.png_sources, len(stamp_set.rows))
    annotations = _annotations(stamp_set.rows[:n])
    triplets = [_triplets(stamp_set, (30,), i) for i in range(n)]
    scale = stamp_set.pixel_scale
    renderer = _task_renderer((30,), True)
    draw_only = None
    if hasattr(renderer, "render_indices"):
        _time_calls([lambda: renderer.render_indices(triplets[0], annotations[0], scale)])
        walls, _, _ = _time_calls(
            (lambda i=i: renderer.render_indices(triplets[i], annotations[i], scale)) for i in range(n)
        )
        draw_only = _round(statistics.fmean(walls) * 1e3)
    levels = []
    for level in range(10):
        renderer = _task_renderer((30,), True, compress_level=level)
        _time_calls([lambda renderer=renderer: renderer.render_png(triplets[0], annotations[0], scale)])
        walls, cpus, sizes = _time_calls(
            (lambda i=i, renderer=renderer: renderer.render_png(triplets[i], annotations[i], scale))
            for i in range(n)
        )
        levels.append(
            {
                "level": level,
                "ms": _round(statistics.fmean(walls) * 1e3),
                "ms_cpu": _round(statistics.fmean(cpus) * 1e3),
                "bytes": _round(statistics.fmean(sizes)),
            }
        )
    chosen = levels[default_level]
    report(
        f"[5 png] compress_level={default_level} (configured default): {chosen['bytes'] / 1024:.1f} KiB "
        f"per triplet (30 px, metadata on, {renderer.canvas_size[0]}×{renderer.canvas_size[1]} px), "
        f"render_png {chosen['ms']:.2f} ms"
        + (f", of which drawing {draw_only:.2f} ms" if draw_only is not None else "")
        + f" (n={n})"
    )
    report(
        "[5 png] compress_level → ms / KiB: "
        + "; ".join(f"{e['level']}: {e['ms']:.2f} / {e['bytes'] / 1024:.1f}" for e in levels)
    )
    return {
        "configured_level": default_level,
        "n_sources": n,
        "canvas_size": list(renderer.canvas_size),
        "draw_ms_without_encode": draw_only,
        "mean_bytes_per_triplet": chosen["bytes"],
        "levels": levels,
    }


def _annotations(rows: Sequence[dict]) -> list:
    from lsst.analysis.ap.display.annotation import SourceAnnotation

    return [SourceAnnotation.from_row(row, instrument=str(row["instrument"])) for row in rows]


# The whole run ----------------------------------------------------------------


def measure_butler_read(
    repos: dict[str, Any], report: Callable[[str], None], repeats: int = 5
) -> dict[str, Any]:
    """Time ``butler.get`` of a 30 × 30 bbox of a difference image against
    a get of the whole image (all planes), as a user would call them.
    """
    from lsst.images import Box

    butler = _butler(repos["main"]["root"])
    ref = next(iter(butler.query_datasets(DEFAULT_DIFFERENCE_TYPE, limit=1)))
    height = repos["main"]["spec"]["image_size"]
    box = Box.from_shape((30, 30), start=(height // 2, height // 3))
    bbox_times, full_times = [], []
    for _ in range(repeats):
        with _Timer() as timer:
            sub = butler.get(ref, parameters={"bbox": box})
        bbox_times.append(timer.wall)
        if sub.bbox != box or sub.image.array.shape != (30, 30):
            raise RuntimeError(f"bbox read returned {sub.bbox}, not {box}")
    for _ in range(2):
        with _Timer() as timer:
            whole = butler.get(ref)
        full_times.append(timer.wall)
    entry = {
        "image_shape": list(whole.image.array.shape),
        "bbox_shape": list(sub.image.array.shape),
        "bbox_get_ms": _round(statistics.median(bbox_times) * 1e3),
        "full_get_ms": _round(statistics.median(full_times) * 1e3),
    }
    entry["ratio"] = _round(entry["full_get_ms"] / entry["bbox_get_ms"])
    report(
        f"[0 read] butler.get of difference_image {entry['image_shape'][1]}×{entry['image_shape'][0]}: "
        f"30×30 bbox {entry['bbox_get_ms']:.1f} ms "
        f"(returns {entry['bbox_shape'][1]}×{entry['bbox_shape'][0]}) "
        f"vs whole {entry['full_get_ms']:.0f} ms (×{entry['ratio']:.0f})"
    )
    return entry


def run_benchmark(
    output: str | Path, plan: BenchmarkPlan | str = "full", *, echo: bool = True
) -> dict[str, Any]:
    """Build or reuse the repositories, measure every figure and write
    ``output/benchmark.json``.

    Parameters
    ----------
    output
        Directory of the repositories (``repos/``), scratch outputs
        (``work/``, emptied), sample PNGs (``samples/``) and the JSON.
    plan
        A `BenchmarkPlan` or the name of one of `PLANS`.
    echo
        Print the summary lines as they are measured.

    Returns
    -------
    dict
        What ``benchmark.json`` holds.

    """
    if isinstance(plan, str):
        plan = PLANS[plan]
    logging.getLogger("lsst").setLevel(logging.ERROR)
    output = Path(output).absolute()
    output.mkdir(parents=True, exist_ok=True)
    work = output / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    report = _Report(echo)
    start = time.perf_counter()
    load_start = _load_average()
    ticks_start = _cpu_ticks()
    report(
        f"[meta] plan {plan.name}; {os.cpu_count()} CPU(s); load average {load_start}; "
        "times are wall clock (CPU time of the process in parentheses)"
    )
    create_start = _file_create_ms(work)
    report(
        f"[meta] creating a file in the work directory costs {create_start:.2f} ms (16 KiB, written "
        "through a temporary and renamed, as each PNG and record file is)"
    )
    result: dict[str, Any] = {
        "meta": {
            "plan": plan.name,
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "versions": _versions(),
            "load_average_start": load_start,
            "file_create_ms_start": _round(create_start),
            "notes": [
                "Wall clock and CPU time (of this process, plus reaped children for njobs > 0) are both "
                "given; the machine may be shared, so CPU figures are the steadier ones.",
                "Files are read with a warm page cache: before each timed run of ours and of the original "
                "way, the image files of its visit × detectors are read once (the machine may drop "
                "cached pages it has not used for a while).",
                "The original way is time-boxed: on the dense visit × detector only a sample of sources "
                "is drawn with matplotlib and the draw cost is extrapolated per source; its "
                "whole-exposure reads are measured in full.",
                "Repositories are built without an APDB (not needed here) and reused when their spec "
                "matches.",
            ],
        }
    }
    with _Timer() as build_timer:
        repos = prepare_repos(output / "repos", plan, report)
    result["repos"] = {**repos, "prepare_wall_seconds": _round(build_timer.wall)}
    main_butler = _butler(repos["main"]["root"])
    with one_core() as core:
        report(
            "[meta] figures 0, 1, 2, 5, 6 and 7 typical run on one core "
            + (f"(CPU {core}, by affinity; the task then draws in one thread)" if core is not None else "")
        )
        result["meta"]["one_core"] = core
        result["butler_read"] = measure_butler_read(repos, report)
        result["end_to_end"], stamp_set = measure_end_to_end(repos, plan, work, report)
        result["render"] = measure_render(stamp_set, plan, report)
        result["png"] = measure_png(stamp_set, plan, report)
        result["samples"] = write_samples(stamp_set, output / "samples")
        result["display_options"] = measure_display_options(
            main_butler, _densest(_all_sources(main_butler)), plan.render_sources, report
        )
        del stamp_set
        result["sequences"] = measure_sequences(
            output / "repos", work, report, epochs=(3,) if plan.name == "tiny" else (10, 50)
        )
        spec = {
            "per_detector": plan.typical_per_detector,
            "repeats": plan.sparse_repeats,
            "original_sample": plan.original_sample,
        }
        result["typical"] = measure_typical(
            main_butler,
            _all_sources(main_butler),
            plan.typical_per_detector,
            lambda: _in_child(
                {"root": repos["main"]["root"], "typical": spec, "output": str(work / "typical")}
            ),
            report,
        )
        # The sparse regime's run-level costs (manifests, page, lookups)
        # shared by several visit × detectors, as in a real run.
        result["sparse_spread"] = measure_subset(
            main_butler,
            _all_sources(main_butler),
            plan.max_sparse_sources,
            work,
            time_task_run,
            report,
            "[7 sparse] {n} sources, up to "
            + str(plan.max_sparse_sources)
            + " on each of {detectors} visit × detector(s), one run, default config",
            repeats=plan.sparse_repeats,
        )
    result["typical"]["all_cores"] = measure_subset(
        main_butler,
        _all_sources(main_butler),
        plan.typical_per_detector,
        work,
        time_task_run,
        report,
        "[7 typical] the same {n} sources on {cores} core(s), default config "
        "(up to {threads} drawing thread(s))",
        repeats=plan.sparse_repeats,
    )
    result["scaling"] = measure_scaling(repos, plan, work, report)
    result["manifests"] = measure_manifests(
        plan.manifest_sources, work, output / "repos" / f"empty_pngs_{plan.manifest_sources}", report
    )
    result["flat"] = measure_flat(repos, plan, work, report)
    result["targets"] = report_targets(result, report)
    self_rss = _maxrss_mib()
    result["memory"] = {
        "benchmark_process_peak_rss_mib": _round(self_rss),
        "benchmark_process_peak_vmhwm_mib": _vm_hwm_mib(),
        "benchmark_process_note": "includes the original way's whole-exposure reads (all planes of three "
        "images) and the matplotlib figures",
        **result["scaling"]["memory_run"],
    }
    report(
        f"[3 memory] benchmark process peak RSS {self_rss:.0f} MiB (includes the original way's "
        "all-plane whole-exposure reads)"
    )
    create_end = _file_create_ms(work)
    shutil.rmtree(work, ignore_errors=True)
    elapsed = time.perf_counter() - start
    result["meta"]["load_average_end"] = _load_average()
    result["meta"]["file_create_ms_end"] = _round(create_end)
    result["meta"]["wall_seconds"] = _round(elapsed)
    steal = _steal_share(ticks_start, _cpu_ticks())
    result["meta"]["steal_share"] = steal
    report(
        f"[meta] benchmark wall time {elapsed:.0f} s (repositories {build_timer.wall:.0f} s, "
        f"measurements {elapsed - build_timer.wall:.0f} s); load average "
        f"{result['meta']['load_average_end']}; creating a file: "
        f"{result['meta']['file_create_ms_end']:.2f} ms"
        + (
            f"; CPU time taken by the hypervisor for other machines during the run (steal): {steal:.1%}"
            if steal is not None
            else ""
        )
    )
    result["summary_lines"] = report.lines
    (output / "benchmark.json").write_text(json.dumps(result, indent=2, default=str))
    if echo:
        print(f"Wrote {output / 'benchmark.json'}", flush=True)
    return result


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.benchmark",
        description="Measure the speed and memory of the cutout job; write DIR/benchmark.json.",
    )
    parser.add_argument("--output", default="bench_output", help="Directory of repositories and results.")
    parser.add_argument(
        "--quick", action="store_true", help="Small images and few sources (a ~2 minute smoke test)."
    )
    parser.add_argument("--plan", choices=sorted(PLANS), help=argparse.SUPPRESS)
    parser.add_argument("--child-run", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_run:
        entry = _child_run(json.loads(args.child_run))
        print(_CHILD_MARK + json.dumps(entry), flush=True)
        return
    run_benchmark(args.output, args.plan or ("quick" if args.quick else "full"))


if __name__ == "__main__":
    main()
