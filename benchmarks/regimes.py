"""Figures of the second speed round (`benchmarks.benchmark`, figure 7).

- the read floor: the time to inflate only the row tiles that the stamps of
  one visit × detector touch (their union, each tile once, for the three
  images), with the tile reader's own inflater on the same files the task
  reads, and nothing else (no reading, un-shuffling or conversion);
- the libraries' fixed work of each visit × detector, measured beside the
  floor: the task's dataset lookup (`find_image_datasets`, once for all the
  visit × detectors, as a run does) and opening the three image files to
  their bounding box and sky projection (lsst-images), before any pixel;
- the typical regime: a subset of about 55 sources of each visit × detector
  of the main repository (the same image files), end to end against the
  original way and the floor;
- records and manifests of many sources without images: synthetic record
  rows written through the package's own ledger and manifest writer
  (`lsst.analysis.ap.outputs.manifests.write_manifests`) in a child process,
  timed, with its peak RSS;
- the target table: one line per row of the issue's targets, with the
  measured figure, the target, the baseline of the same run and the floor.
"""

from __future__ import annotations

__all__ = (
    "measure_fixed",
    "measure_floor",
    "measure_manifests",
    "measure_typical",
    "measure_subset",
    "median_run",
    "report_targets",
    "typical_subset",
)

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

_MARK = "BENCH_MANIFEST_RESULT "
_REPOSITORY_ROOT = Path(__file__).resolve().parents[1]


def _round(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits}g}")


def measure_floor(butler: Any, sources: pd.DataFrame, size: int = 30) -> dict[str, Any]:
    """Inflate, once each, the row tiles the ``size`` stamps of ``sources``
    touch in the three images of their visit × detector(s).

    Returns the seconds and tiles over all visit × detectors and the ms per
    source; only the inflation is timed (not file opening, stamp geometry,
    reading the compressed bytes, or converting the inflated bytes to
    pixels).  ``fixed`` holds the libraries' fixed work of the same visit ×
    detectors (`measure_fixed`), reported beside the floor.
    """
    from lsst.analysis.ap.datasets import DEFAULT_SCIENCE_TYPE, IMAGE_ROLES, image_dataset_types
    from lsst.analysis.ap.geometry import stamp_box
    from lsst.analysis.ap.images.butler import butler_plane_reader
    from lsst.analysis.ap.images.tiles import TiledPlane, open_plane, tile_rows_for_box

    types = image_dataset_types(DEFAULT_SCIENCE_TYPE, None)
    seconds = 0.0
    tiles = 0
    untiled = 0
    for (instrument, visit, detector), group in sources.groupby(["instrument", "visit", "detector"]):
        data_id = {"instrument": instrument, "visit": int(visit), "detector": int(detector)}
        ra = group["ra"].to_numpy(dtype=float)
        dec = group["dec"].to_numpy(dtype=float)
        for role in IMAGE_ROLES:
            reader = butler_plane_reader(butler, types[role], data_id)
            try:
                xs, ys = reader.sky_to_pixel(ra, dec)
                origin = reader.bbox
                uri = butler.getURI(butler.find_dataset(types[role], data_id))
            finally:
                reader.release()
            plane = open_plane(uri.ospath, "IMAGE")
            try:
                if not isinstance(plane, TiledPlane):
                    untiled += 1
                    continue
                rows: set[int] = set()
                for x, y in zip(xs, ys, strict=True):
                    box = stamp_box(x, y, size)
                    y0 = max(box.y0 - origin.y.start, 0)
                    y1 = min(box.y0 + box.size - origin.y.start, plane.shape[0])
                    rows.update(tile_rows_for_box(y0, y1, plane.tile_shape[0]))
                columns = -(-plane.shape[1] // plane.tile_shape[1])
                keys = [tile_y * columns + tile_x for tile_y in sorted(rows) for tile_x in range(columns)]
                payloads = [plane.compressed_tiles([key])[0] for key in keys]
                start = time.perf_counter()
                for key, payload in zip(keys, payloads, strict=True):
                    plane.inflate_tile(*divmod(key, columns), payload)
                seconds += time.perf_counter() - start
                tiles += len(keys)
            finally:
                plane.close()
    n = max(len(sources), 1)
    return {
        "n_sources": len(sources),
        "tiles_decoded": tiles,
        "seconds": _round(seconds) if seconds else 0.0,
        "ms_per_source": _round(seconds / n * 1e3) if seconds else 0.0,
        "planes_not_tiled": untiled,
        "fixed": measure_fixed(butler, sources),
    }


def measure_fixed(butler: Any, sources: pd.DataFrame, repeats: int = 3) -> dict[str, Any]:
    """Time the libraries' work a run does for ``sources`` before any
    pixel: the dataset lookup of all their visit × detectors (one
    `find_image_datasets`, as the task makes), and, for each visit ×
    detector, opening its three image files to their bounding box and sky
    projection (lsst-images, through the task's readers).

    Returns the median of ``repeats`` of each (ms), their sum and the sum
    per source.
    """
    from lsst.analysis.ap.datasets import DEFAULT_SCIENCE_TYPE, IMAGE_ROLES, image_dataset_types
    from lsst.analysis.ap.images.butler import butler_plane_reader, find_image_datasets

    types = image_dataset_types(DEFAULT_SCIENCE_TYPE, None)
    data_ids = [
        {"instrument": instrument, "visit": int(visit), "detector": int(detector)}
        for instrument, visit, detector in sources[["instrument", "visit", "detector"]]
        .drop_duplicates()
        .itertuples(index=False)
    ]
    lookups, opens = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        found = find_image_datasets(butler, types, data_ids)
        lookups.append(time.perf_counter() - start)
        seconds = 0.0
        for data_id in data_ids:
            datasets = found.get((str(data_id["instrument"]), data_id["visit"], data_id["detector"]), {})
            readers = [
                butler_plane_reader(butler, types[role], data_id, datasets.get(role)) for role in IMAGE_ROLES
            ]
            try:
                start = time.perf_counter()
                for reader in readers:
                    _ = reader.bbox, reader.projection
                seconds += time.perf_counter() - start
            finally:
                for reader in readers:
                    reader.release()
        opens.append(seconds)
    lookup_ms = float(np.median(lookups)) * 1e3
    open_ms = float(np.median(opens)) * 1e3
    return {
        "visit_detectors": len(data_ids),
        "lookup_ms": _round(lookup_ms),
        "open_ms": _round(open_ms),
        "ms_per_source": _round((lookup_ms + open_ms) / max(len(sources), 1)),
    }


def _floor_text(floor: dict[str, Any]) -> str:
    text = (
        f"floor {floor['ms_per_source']:.2f} ms/source ({floor['tiles_decoded']} tiles of 3 images "
        f"inflated in {floor['seconds'] * 1e3:.0f} ms)"
    )
    fixed = floor.get("fixed")
    if fixed:
        n = fixed["visit_detectors"]
        text += (
            f" + the libraries' fixed work {fixed['ms_per_source']:.2f} ms/source (dataset lookup "
            f"{fixed['lookup_ms']:.1f} ms, opening the 3 files of {n} visit × detector{'s' if n > 1 else ''} "
            f"{fixed['open_ms']:.1f} ms)"
        )
    return text


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median wall time among repeated timed runs, with the
    number of runs as ``repeats``."""
    runs = sorted(runs, key=lambda r: r["wall_s"])
    chosen = dict(runs[len(runs) // 2])
    chosen["repeats"] = len(runs)
    return chosen


def typical_subset(sources: pd.DataFrame, per_detector: int) -> pd.DataFrame:
    """Up to ``per_detector`` sources of each visit × detector (a seeded
    random choice), in diaSourceId order."""
    shuffled = sources.sample(frac=1.0, random_state=7)
    rank = shuffled.groupby(["visit", "detector"]).cumcount()
    return shuffled[rank < per_detector].sort_values("diaSourceId", ignore_index=True)


def measure_subset(
    butler: Any,
    sources: pd.DataFrame,
    per_detector: int,
    work: Path,
    time_task_run: Callable[..., dict[str, Any]],
    report: Callable[[str], None],
    what: str,
    repeats: int = 1,
) -> dict[str, Any]:
    """End to end on `typical_subset` (default configuration, ``njobs=0``,
    the run of median wall time of ``repeats``), reported as a ``[7 ...]``
    line about ``what`` (with ``{n}``, ``{detectors}``, ``{cores}`` and
    ``{threads}`` filled in): the typical regime on every core of the
    process, or a few sources on each of many visit × detectors.
    """
    from lsst.analysis.ap.parallel import available_cores
    from lsst.analysis.ap.plotImageSubtractionCutouts import PlotImageSubtractionCutoutsConfig

    subset = typical_subset(sources, per_detector)
    ours = median_run([time_task_run(butler, subset, work / "subset") for _ in range(repeats)])
    cores = available_cores()
    threads = min(PlotImageSubtractionCutoutsConfig().threads, cores)
    detectors = len(subset.groupby(["visit", "detector"]))
    report(
        what.format(n=len(subset), detectors=detectors, cores=cores, threads=threads)
        + f": {ours['ms_per_source']:.1f} ms/source (CPU {ours['ms_per_source_cpu']:.1f}; median of "
        f"{ours['repeats']})"
    )
    return {
        "cores": cores,
        "threads": threads,
        "n_sources": len(subset),
        "detectors": detectors,
        "ours": ours,
    }


def measure_typical(
    butler: Any,
    sources: pd.DataFrame,
    per_detector: int,
    time_fresh: Callable[[], dict[str, Any]],
    report: Callable[[str], None],
) -> dict[str, Any]:
    """End to end on ``per_detector`` sources of each visit × detector of
    ``sources`` (`typical_subset`), default configuration, ``njobs=0``,
    against the original way and the read floor.

    ``time_fresh`` times ours (the run of median wall time of repeated
    runs, after a warm-up run) and the original way in a fresh process, as
    a user's run starts: in the benchmark's own process, after the figures
    before it (whole exposures of the original way, the display options),
    the same runs cost about a third more, ours and the original way alike.
    It returns ``{"ours": ..., "original": ...}``.
    """
    subset = typical_subset(sources, per_detector)
    counts = subset.groupby(["visit", "detector"]).size()
    fresh = time_fresh()
    ours, original = fresh["ours"], fresh["original"]
    floor = measure_floor(butler, subset)
    entry = {
        "n_sources": len(subset),
        "n_exposures": len(counts),
        "sources_per_exposure_min": int(counts.min()),
        "sources_per_exposure_max": int(counts.max()),
        "ours": ours,
        "original": original,
        "floor": floor,
        "speedup_vs_original": _round(original["ms_per_source"] / ours["ms_per_source"]),
        "speedup_vs_original_cpu": _round(original["ms_per_source_cpu"] / ours["ms_per_source_cpu"]),
    }
    report(
        f"[7 typical] {entry['n_sources']} sources over {entry['n_exposures']} visit × detector(s) "
        f"({entry['sources_per_exposure_min']}-{entry['sources_per_exposure_max']} each), default config, "
        f"njobs=0: {ours['ms_per_source']:.1f} ms/source (CPU {ours['ms_per_source_cpu']:.1f}; median of "
        f"{ours['repeats']}); original way "
        f"{original['ms_per_source']:.0f} ms/source (CPU {original['ms_per_source_cpu']:.0f}) → "
        f"×{entry['speedup_vs_original']:.0f} (CPU ×{entry['speedup_vs_original_cpu']:.0f}); "
        + _floor_text(floor)
    )
    return entry


_GROUP_SOURCES = 1000
"""Sources per visit × detector of the synthetic records."""


def synthetic_records(start: int, n: int) -> pd.DataFrame:
    """Records ``start`` to ``start + n`` of a synthetic run: written
    sources with the columns of `~lsst.analysis.ap.records.RECORD_COLUMNS`,
    `_GROUP_SOURCES` per visit × detector (189 detectors per visit)."""
    from lsst.analysis.ap.records import RECORD_COLUMNS

    index = np.arange(start, start + n, dtype=np.int64)
    ids = index + 1 + 10**12
    rng = np.random.default_rng(12 + start)
    frame = pd.DataFrame(
        {
            "diaSourceId": ids,
            "instrument": "LSSTCam",
            "visit": 1000 + index // (189 * _GROUP_SOURCES),
            "detector": (index // _GROUP_SOURCES) % 189,
            "band": np.array(["g", "r", "i"])[ids % 3],
            "ra": rng.uniform(0, 360, n),
            "dec": rng.uniform(-80, 10, n),
            "path": [f"images/{i // 10000 * 10000}/{i}.png" for i in ids.tolist()],
            "status": "written",
            "reason_code": "",
            "reason": "",
            "output_path": "/cutouts",
            "url_root": "https://example.org/cutouts",
            "display_limits": '{"template": [[-1.0, 1.0]], "science": [[-1.0, 1.0]], '
            '"difference": [[-1.0, 1.0]]}',
            "resampled": False,
        }
    )
    return frame[list(RECORD_COLUMNS)]


_DRAWING_KEY = "3f9a1c0d5e7b2468"
"""A display-configuration key of the synthetic records (the task's are 16
hexadecimal digits, `~lsst.analysis.ap.plotImageSubtractionCutouts.drawing_key`)."""


def _vm_hwm_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return _round(int(line.split()[1]) / 1024)
    except OSError:
        return None
    return None


def _manifest_child(n: int, output: str, pngs: str) -> dict[str, Any]:
    """Write ``n`` records as a run does, in this fresh process: one ledger
    record file per visit × detector as the groups finish
    (`~lsst.analysis.ap.outputs.ledger.Ledger.write_part`), then the views
    (`~lsst.analysis.ap.outputs.manifests.write_manifests`: Zooniverse and
    panoptes manifests, failures, records.csv, summary, built from the
    union of the record files) and the vetting page
    (`~lsst.analysis.ap.vetting.write_output_vetting_page`).

    The union keeps only records whose PNG is present, so an empty file is
    made at each PNG path first, under ``pngs`` (kept for later runs; its
    chunk directories are linked into ``output/images`` and listed once, as
    a run's own PNG directories are in memory when it lists them; not
    timed).  Each group's synthetic records are made outside the timers (a
    run makes its records as it draws); the record files' writes are timed.
    No table of all the records is ever made here: the peak RSS is that of
    the writers.
    """
    from lsst.analysis.ap.outputs.ledger import Ledger, group_part_path, run_token
    from lsst.analysis.ap.outputs.manifests import write_manifests
    from lsst.analysis.ap.outputs.store import OutputStore
    from lsst.analysis.ap.vetting import write_output_vetting_page

    store = OutputStore(output)
    ledger = Ledger(store)
    token = run_token()
    imports_rss = _vm_hwm_mib()
    start = time.perf_counter()
    first_id, last_id = 1 + 10**12, n + 10**12
    chunks = [str(chunk * 10000) for chunk in range(first_id // 10000, last_id // 10000 + 1)]
    done = os.path.join(pngs, f"complete-{n}")
    if not os.path.exists(done):
        shutil.rmtree(pngs, ignore_errors=True)
        for chunk in chunks:
            os.makedirs(os.path.join(pngs, chunk))
        for i in range(first_id, last_id + 1):
            path = os.path.join(pngs, str(i // 10000 * 10000), f"{i}.png")
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
        Path(done).touch()
    os.makedirs(os.path.join(output, "images"))
    for chunk in chunks:
        os.symlink(os.path.join(pngs, chunk), os.path.join(output, "images", chunk))
        # A run lists the PNG directories it has just written, from memory;
        # these were made by an earlier benchmark: list them once first.
        with os.scandir(os.path.join(pngs, chunk)) as entries:
            for entry in entries:
                entry.is_file()
    pngs_s = time.perf_counter() - start
    cpu = {}
    # Only the writes are timed: a run makes its records as it draws.
    parts_s = cpu["ledger_parts"] = 0.0
    for first in range(0, n, _GROUP_SOURCES):
        group = synthetic_records(first, min(_GROUP_SOURCES, n - first))
        # The ledger's own columns as a run fills them: the display key and
        # the size of each PNG.
        group = group.assign(
            drawing=_DRAWING_KEY,
            png_size=np.random.default_rng(first).integers(15_000, 22_000, len(group)),
        )
        row = group.iloc[0]
        relpath = group_part_path(row["instrument"], row["visit"], row["detector"], token)
        start = time.perf_counter()
        cpu_start = time.process_time()
        ledger.write_part(relpath, group)
        parts_s += time.perf_counter() - start
        cpu["ledger_parts"] += time.process_time() - cpu_start
    start = time.perf_counter()
    cpu_start = time.process_time()
    files = write_manifests(None, store, "https://example.org/cutouts")
    views_s = time.perf_counter() - start
    cpu["views"] = time.process_time() - cpu_start
    start = time.perf_counter()
    cpu_start = time.process_time()
    write_output_vetting_page(store)
    page_s = time.perf_counter() - start
    cpu["vetting_page"] = time.process_time() - cpu_start
    written = pd.read_csv(files.zooniverse, usecols=["external_id"])["external_id"].size
    sizes = {p.name: p.stat().st_size for p in [*Path(output).glob("*"), *Path(output, "vetting").glob("*")]}
    scale = 1.0 if sys.platform == "darwin" else 1024.0
    return {
        "n_sources": n,
        "manifest_rows": int(written),
        "png_files_s": _round(pngs_s),
        "ledger_parts_s": _round(parts_s),
        "views_s": _round(views_s),
        "vetting_page_s": _round(page_s),
        "write_s": _round(parts_s + views_s + page_s),
        "write_cpu_s": _round(sum(cpu.values())),
        "cpu_s": {name: _round(value) for name, value in cpu.items()},
        "imports_vmhwm_mib": imports_rss,
        "peak_rss_mib": _round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20),
        "bytes": {name: size for name, size in sizes.items() if not Path(output, name).is_dir()},
    }


def measure_manifests(n: int, work: Path, pngs: Path, report: Callable[[str], None]) -> dict[str, Any]:
    """`_manifest_child` in a fresh process (started through ``/bin/sh`` so
    its peak RSS is its own); ``pngs`` keeps the empty PNG files."""
    output = work / "manifests"
    shutil.rmtree(output, ignore_errors=True)
    command = [sys.executable, "-m", "benchmarks.regimes", str(n), str(output), str(pngs)]
    if os.name == "posix" and Path("/bin/sh").exists():
        command = ["/bin/sh", "-c", '"$@"; exit $?', "sh", *command]
    path = os.pathsep.join(filter(None, [str(_REPOSITORY_ROOT), os.environ.get("PYTHONPATH")]))
    start = time.perf_counter()
    completed = subprocess.run(
        command, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": path}
    )
    wall = time.perf_counter() - start
    entry = None
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith(_MARK):
            entry = json.loads(line[len(_MARK) :])
            break
    if entry is None:
        raise RuntimeError(
            f"manifest child failed (exit {completed.returncode}):\n{completed.stderr[-4000:]}"
        )
    shutil.rmtree(output, ignore_errors=True)
    entry["process_wall_s"] = _round(wall)
    cpu = entry["cpu_s"]
    report(
        f"[7 manifests] {n:,} records, no images (child process): written in {entry['write_s']:.1f} s "
        f"(CPU {entry['write_cpu_s']:.1f} s) = ledger files (1 per visit × detector) "
        f"{entry['ledger_parts_s']:.1f} s (CPU {cpu['ledger_parts']:.1f}) + manifests, records.csv, "
        f"failures, summary from their union {entry['views_s']:.1f} s (CPU {cpu['views']:.1f}) + vetting "
        f"page {entry['vetting_page_s']:.1f} s (CPU {cpu['vetting_page']:.1f}) "
        f"(process {wall:.1f} s incl. imports and {entry['png_files_s']:.0f} s making empty PNG files), "
        f"peak RSS {entry['peak_rss_mib']:.0f} MiB ({entry['imports_vmhwm_mib'] or 0:.0f} MiB after imports)"
    )
    return entry


def _mark(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def report_targets(result: dict[str, Any], report: Callable[[str], None]) -> dict[str, Any]:
    """One line per row of the issue's target table (measured, target,
    baseline of this run, floor), from the figures in ``result``."""
    rows: dict[str, Any] = {}
    e2e = result["end_to_end"]
    typical = result["typical"]
    t_ours = typical["ours"]["ms_per_source"]
    t_ratio = typical["speedup_vs_original"]
    rows["typical"] = {
        "ms_per_source": t_ours,
        "ratio": t_ratio,
        "meets": bool(t_ours <= 8 and t_ratio >= 60),
    }
    report(
        f"[target] typical ({typical['sources_per_exposure_min']}-{typical['sources_per_exposure_max']} "
        f"sources/detector): {t_ours:.1f} ms/source, ×{t_ratio:.0f} vs original — target ≤ 8 ms, ≥ 60× — "
        f"baseline {typical['original']['ms_per_source']:.0f} ms/source — "
        f"{_floor_text(typical['floor'])} — {_mark(rows['typical']['meets'])}"
    )
    sparse = e2e["sparse"]
    s_ours = sparse["default"]["ms_per_source"]
    rows["sparse"] = {"ms_per_source": s_ours, "meets": bool(s_ours <= 12)}
    report(
        f"[target] sparse ({sparse['n_sources']} sources): {s_ours:.1f} ms/source — target ≤ 12 ms — "
        f"baseline {sparse['original']['ms_per_source']:.0f} ms/source — {_floor_text(sparse['floor'])} — "
        f"{_mark(rows['sparse']['meets'])}"
    )
    dense = e2e["dense"]
    d_ours = dense["default"]["sources_per_s"]
    d_floor = dense["floor"]["ms_per_source"]
    rows["dense"] = {"sources_per_s": d_ours, "meets": bool(d_ours >= 300)}
    report(
        f"[target] dense ({dense['n_sources']} sources): {d_ours:.0f} sources/s — target ≥ 300/s — "
        f"baseline {dense['original']['sources_per_s']:.1f}/s — floor "
        + (f"{1e3 / d_floor:.0f} sources/s" if d_floor > 0 else "n/a")
        + f" ({_floor_text(dense['floor'])}) — {_mark(rows['dense']['meets'])}"
    )
    render = next(c for c in result["render"]["configs"] if c["metadata"] and c["sizes"] == [30])
    rows["render"] = {"ms": render["ours_ms"], "meets": bool(render["ours_ms"] <= 1.5)}
    report(
        f"[target] render only, 30 px with metadata: {render['ours_ms']:.2f} ms/triplet "
        f"(CPU {render['ours_ms_cpu']:.2f}) — target ≤ 1.5 ms — baseline {render['baseline_ms']:.0f} ms "
        f"— floor n/a (no reads) — {_mark(rows['render']['meets'])}"
    )
    scaling = result["scaling"]
    speedup = scaling["njobs2_speedup"]
    n2 = scaling["njobs2"]["n_sources"]
    rows["njobs2"] = {"speedup": speedup, "n_sources": n2, "meets": bool(speedup >= 1.7)}
    report(
        f"[target] njobs=2 vs njobs=0, {n2:,} sources: ×{speedup:.3f} (njobs=0 in one thread; the pair "
        f"of median ratio of {len(scaling['njobs2_pair_speedups'])}: "
        f"{', '.join(f'×{ratio:.2f}' for ratio in scaling['njobs2_pair_speedups'])}; "
        f"×{scaling['njobs2_speedup_vs_default_threads']:.2f} against its default threads) — "
        f"target ≥ ×1.7 (on 10,000) — {_mark(rows['njobs2']['meets'])}"
    )
    flat = result["flat"]
    small, large = flat["runs"][0], flat["runs"][-1]
    peak = max(r["peak_vmhwm_mib"] or r["peak_rss_mib"] for r in flat["runs"])
    ok = flat["cpu_ratio"] <= 1.1 and peak < 1024
    rows["flat"] = {"n_sources": large["n_sources"], "cpu_ratio": flat["cpu_ratio"], "peak_rss_mib": peak}
    rows["flat"]["meets"] = bool(ok)
    report(
        f"[target] 100,000 sources (here {large['n_sources']:,}, up to {large['sources_per_exposure_max']:,} "
        f"per visit × detector): CPU {large['ms_per_source_cpu']:.2f} ms/source "
        f"(wall {large['ms_per_source']:.2f}), "
        f"×{flat['cpu_ratio']:.2f} the cost at {small['n_sources']:,}; peak RSS {peak:.0f} MiB — "
        "target flat (≤ ×1.1) from 1,000 to 100,000, peak RSS < 1024 MiB — "
        f"baseline {small['n_sources']:,} sources: CPU "
        f"{small['ms_per_source_cpu']:.2f} ms/source, peak RSS "
        f"{small['peak_vmhwm_mib'] or small['peak_rss_mib']:.0f} MiB — {_mark(ok)}"
    )
    manifests = result["manifests"]
    ok = manifests["write_s"] < 60 and manifests["peak_rss_mib"] < 1024
    rows["manifests"] = {**{k: manifests[k] for k in ("n_sources", "write_s", "peak_rss_mib")}, "meets": ok}
    report(
        f"[target] records + manifests of {manifests['n_sources']:,} sources (+ vetting page): written in "
        f"{manifests['write_s']:.1f} s (CPU {manifests['write_cpu_s']:.1f} s), peak RSS "
        f"{manifests['peak_rss_mib']:.0f} MiB — target < 60 s, < 1024 MiB (for 1,000,000) — baseline "
        "before the records were streamed (1,000,000, load 3.3): 50.7 s without the vetting page, "
        f"1869 MiB — {_mark(ok)}"
    )
    return rows


if __name__ == "__main__":
    print(_MARK + json.dumps(_manifest_child(int(sys.argv[1]), sys.argv[2], sys.argv[3])), flush=True)
