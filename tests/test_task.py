"""The Python API of the cutout task, run on the real demo Butler repository:
files written per DiaSource, manifests, failure handling, resume, pixel
content of the stamps and PNGs, worker processes and configuration.

Most tests share one module-scoped run of every demo DiaSource (plus two
synthetic rows); the others run small subsets.  ``whole_read_min_sources=1``
(one whole-plane read per image) keeps runs fast; the documented-example test
uses the default configuration, i.e. bbox reads, and checks both give the
same bytes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import stat
import time
from pathlib import Path

import lsst.daf.butler as dafButler
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lsst.analysis.ap import plotImageSubtractionCutouts
from lsst.analysis.ap.display.annotation import BADGE_COLORS, BADGES
from lsst.analysis.ap.display.renderer import TripletRenderer
from lsst.analysis.ap.geometry import MAX_STAMP_SIZE
from lsst.analysis.ap.images.butler import only_instrument
from lsst.analysis.ap.parallel import MIN_PIECE_SOURCES
from lsst.analysis.ap.plotImageSubtractionCutouts import (
    PlotImageSubtractionCutoutsConfig,
    PlotImageSubtractionCutoutsConnections,
    PlotImageSubtractionCutoutsTask,
)
from lsst.analysis.ap.sources import SourceTableError, group_by_detector, standardize_sources

URL_ROOT = "https://example.org/cutouts"
OFF_IMAGE_ID = 1001009990
DIPOLE_COPY_ID = 1001009991
MISSING_VISIT = 999999


# Helpers -----------------------------------------------------------------------


def make_config(**overrides) -> PlotImageSubtractionCutoutsConfig:
    """Task configuration reading whole planes (fast on the small demo)."""
    config = PlotImageSubtractionCutoutsConfig()
    config.whole_read_min_sources = 1
    for name, value in overrides.items():
        setattr(config, name, value)
    config.validate()
    return config


def run_task(data, butler, output: Path, njobs: int = 0, **overrides):
    task = PlotImageSubtractionCutoutsTask(config=make_config(**overrides), output_path=output)
    return task.run(data, butler, njobs=njobs)


def renderer_for(config: PlotImageSubtractionCutoutsConfig, sizes=None) -> TripletRenderer:
    """A renderer with the layout of the task's PNGs (the layout depends only
    on sizes, add_metadata and panel_pixels).
    """
    return TripletRenderer(
        tuple(sizes if sizes is not None else config.sizes),
        config.add_metadata,
        panel_pixels=config.panel_pixels,
    )


def png_files(output: Path) -> dict[int, Path]:
    """PNGs under images/, keyed by the diaSourceId of their name."""
    return {int(p.stem): p for p in (output / "images").rglob("*.png")}


def chunk_of(dia_source_id: int, chunk_size: int = 10000) -> int:
    return (dia_source_id // chunk_size) * chunk_size


def rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def has_colour(pixels: np.ndarray, colour) -> bool:
    return bool(np.all(pixels == np.asarray(colour, dtype=np.uint8), axis=-1).any())


def clean_rows(sources: pd.DataFrame) -> pd.DataFrame:
    """Sources with no badge flag set at all."""
    flags = [c for badge in BADGES for c in badge.all_columns if c in sources.columns]
    return sources[~sources[flags].any(axis=1)]


# Fixtures ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def butler(demo_repo):
    with demo_repo.butler() as butler:
        yield butler


@pytest.fixture(scope="module")
def image_size(demo_repo) -> int:
    return demo_repo.spec.image_size


@pytest.fixture(scope="module")
def clean_source(demo_sources, image_size) -> pd.Series:
    """A real demo source with no flag set, well inside its detector."""
    rows = clean_rows(demo_sources)
    inside = rows[(rows[["x", "y"]].min(axis=1) > 20) & (rows[["x", "y"]].max(axis=1) < image_size - 21)]
    assert len(inside), "the demo should hold unflagged sources"
    return inside.iloc[0]


@pytest.fixture(scope="module")
def baseline_input(demo_sources, clean_source) -> pd.DataFrame:
    """Every demo DiaSource, plus a copy of a clean one moved far off its
    detector and a copy with isDipole set.
    """
    off_image = clean_source.copy()
    off_image["diaSourceId"] = OFF_IMAGE_ID
    off_image["dec"] = off_image["dec"] + 1.0
    dipole = clean_source.copy()
    dipole["diaSourceId"] = DIPOLE_COPY_ID
    dipole["isDipole"] = True
    return pd.concat([demo_sources, pd.DataFrame([off_image, dipole])], ignore_index=True)


@dataclasses.dataclass
class Run:
    output: Path
    result: object
    config: PlotImageSubtractionCutoutsConfig
    data: pd.DataFrame


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, baseline_input, butler) -> Run:
    """One run of every source: chunked, numpy stamps saved, url_root with a
    trailing slash.
    """
    output = tmp_path_factory.mktemp("baseline") / "cutouts"
    config = make_config(save_as_numpy=True, url_root=URL_ROOT + "/")
    task = PlotImageSubtractionCutoutsTask(config=config, output_path=output)
    result = task.run(baseline_input, butler)
    return Run(output, result, config, baseline_input)


# 1. Files per source --------------------------------------------------------------


def test_one_png_per_source_in_chunk_directories(baseline):
    result, output = baseline.result, baseline.output
    ids = set(baseline.data["diaSourceId"].astype(int))
    files = png_files(output)
    assert set(result.written) | set(result.failed) == ids
    assert not set(result.written) & set(result.failed)
    assert result.skipped == []
    assert set(files) == set(result.written)
    assert len(result.written) > 0.8 * len(ids)
    for dia_source_id, path in files.items():
        assert path == output / "images" / str(chunk_of(dia_source_id)) / f"{dia_source_id}.png"
    summary = result.summary
    assert (summary["written"], summary["failed"], summary["skipped"]) == (
        len(result.written),
        len(result.failed),
        0,
    )


def test_every_failure_has_a_reason(baseline):
    records = baseline.result.records.set_index("diaSourceId")
    failed = records.loc[baseline.result.failed]
    assert (failed["reason_code"].str.len() > 0).all()
    assert (failed["reason"].str.len() > 0).all()


def test_all_pngs_valid_same_size_and_readable_by_others(baseline):
    expected = renderer_for(baseline.config).canvas_size
    umask = os.umask(0o022)
    os.umask(umask)
    for path in png_files(baseline.output).values():
        with Image.open(path) as image:
            image.load()
            assert image.format == "PNG"
            assert image.size == expected
        # Files served to Zooniverse by a web server must not be private.
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_chunk_size_none_writes_flat_directory(tmp_path, demo_sources, butler):
    group = demo_sources[(demo_sources["visit"] == 1001) & (demo_sources["detector"] == 1)]
    result = run_task(group, butler, tmp_path, chunk_size=None, url_root=None)
    assert result.written
    pngs = sorted(p for p in (tmp_path / "images").rglob("*.png"))
    assert [p.parent for p in pngs] == [tmp_path / "images"] * len(pngs)
    assert {int(p.stem) for p in pngs} == set(result.written)
    # No url_root: no Zooniverse manifest, but the panoptes manifest lists
    # the files relative to images/.
    assert not (tmp_path / "manifest.csv").exists()
    assert result.manifest.zooniverse is None
    panoptes = pd.read_csv(tmp_path / "images" / "manifest.csv")
    assert sorted(panoptes["filename"]) == sorted(p.name for p in pngs)


# 2. The documented example --------------------------------------------------------


def test_documented_usage_example(tmp_path, demo_repo, baseline):
    repo = str(demo_repo.root)
    collections = demo_repo.collection
    butler = dafButler.Butler(repo, collections=collections)
    where = "instrument='DemoCam' and visit=1001"
    limit = 10
    cutoutConfig = plotImageSubtractionCutouts.PlotImageSubtractionCutoutsConfig(
        science_image_type="preliminary_visit_image"
    )
    cutoutTask = plotImageSubtractionCutouts.PlotImageSubtractionCutoutsTask(
        config=cutoutConfig, output_path=str(tmp_path)
    )
    data_refs = butler.query_datasets("dia_source_detector", where=where, limit=limit)
    for ref in data_refs:
        diaSourceTable = butler.get(ref)
        diaSourceTable["instrument"] = "DemoCam"
        cutoutTask.run(diaSourceTable, butler)
    butler.close()

    visit_ids = set(baseline.data.loc[baseline.data["visit"] == 1001, "diaSourceId"]) - {
        OFF_IMAGE_ID,
        DIPOLE_COPY_ID,
    }
    expected = visit_ids & set(baseline.result.written)
    files = png_files(tmp_path)
    assert set(files) == expected
    # The default configuration reads bbox sub-images; the baseline read
    # whole planes: the cutouts are the same.
    reference = png_files(baseline.output)
    for dia_source_id in sorted(expected):
        assert files[dia_source_id].read_bytes() == reference[dia_source_id].read_bytes()
    # One run() per table: the manifests cover every table, not only the last.
    panoptes = pd.read_csv(tmp_path / "images" / "manifest.csv")
    assert set(panoptes["#diaSourceId"]) == expected
    assert {d for d in pd.read_csv(tmp_path / "images" / "manifest.csv")["#detector"]} == {0, 1}


# 3. Manifests -------------------------------------------------------------------


def expected_url(dia_source_id: int) -> str:
    return f"{URL_ROOT}/images/{chunk_of(dia_source_id)}/{dia_source_id}.png"


def test_zooniverse_manifest_matches_files(baseline):
    manifest = pd.read_csv(baseline.output / "manifest.csv")
    files = png_files(baseline.output)
    assert sorted(manifest["external_id"]) == sorted(files)
    assert not manifest["external_id"].duplicated().any()
    assert list(manifest["location:1"]) == [expected_url(i) for i in manifest["external_id"]]
    assert (manifest["metadata:diaSourceId"] == manifest["external_id"]).all()
    sources = baseline.data.set_index("diaSourceId").loc[manifest["external_id"]]
    np.testing.assert_array_equal(manifest["metadata:visit"], sources["visit"])
    np.testing.assert_array_equal(manifest["metadata:detector"], sources["detector"])


def test_url_root_without_trailing_slash_gives_same_urls(tmp_path, baseline, butler):
    """Re-running over a finished output skips every PNG and rewrites the
    manifest with the new url_root: one slash either way.
    """
    output = tmp_path / "cutouts"
    shutil.copytree(baseline.output, output)
    before = {i: p.stat().st_mtime_ns for i, p in png_files(output).items()}
    result = run_task(baseline.data, butler, output, url_root=URL_ROOT)
    assert sorted(result.skipped) == sorted(baseline.result.written)
    assert result.written == []
    assert {i: p.stat().st_mtime_ns for i, p in png_files(output).items()} == before
    manifest = pd.read_csv(output / "manifest.csv")
    assert list(manifest["location:1"]) == [expected_url(i) for i in manifest["external_id"]]
    assert manifest.equals(pd.read_csv(baseline.output / "manifest.csv"))


def test_panoptes_manifest_lists_existing_files(baseline):
    images = baseline.output / "images"
    manifest = pd.read_csv(images / "manifest.csv")
    for column in ("#diaSourceId", "#visit", "#detector", "#instrument"):
        assert column in manifest.columns
    visible = [c for c in manifest.columns if not c.startswith("#")]
    assert visible == ["filename"]
    for filename, dia_source_id in zip(manifest["filename"], manifest["#diaSourceId"], strict=True):
        assert (images / filename).is_file()
        assert filename == f"{chunk_of(dia_source_id)}/{dia_source_id}.png"
    assert sorted(manifest["#diaSourceId"]) == sorted(png_files(baseline.output))


def test_failures_csv_lists_failed_sources(baseline):
    failures = pd.read_csv(baseline.output / "failures.csv")
    assert sorted(failures["diaSourceId"]) == sorted(baseline.result.failed)
    assert failures["reason"].notna().all() and failures["reason_code"].notna().all()
    assert OFF_IMAGE_ID in set(failures["diaSourceId"])


# 5. Pixel truth ---------------------------------------------------------------------


def isolated_transients(sources: pd.DataFrame, image_size: int) -> pd.DataFrame:
    """Bright positive, unflagged, non-dipole sources far from the edges
    and from every other source of their detector.
    """
    pixel_flags = [c for c in sources.columns if c.startswith("pixelFlags")]
    candidates = sources[
        (sources["psfFlux"] / sources["psfFluxErr"] > 20)
        & ~sources[pixel_flags].any(axis=1)
        & ~sources["isDipole"]
        & (sources[["x", "y"]].min(axis=1) > 25)
        & (sources[["x", "y"]].max(axis=1) < image_size - 26)
    ]
    keep = []
    for index, row in candidates.iterrows():
        same = sources[
            (sources["visit"] == row["visit"])
            & (sources["detector"] == row["detector"])
            & (sources["diaSourceId"] != row["diaSourceId"])
        ]
        distance = np.hypot(same["x"] - row["x"], same["y"] - row["y"])
        if distance.min() > 22:  # nothing else on a 30-px stamp
            keep.append(index)
    return candidates.loc[keep]


def test_isolated_transient_peaks_at_stamp_centre(baseline, demo_sources, image_size):
    transients = isolated_transients(demo_sources, image_size)
    assert len(transients) >= 1, "the demo should hold isolated positive transients"
    (size,) = baseline.config.sizes
    renderer = renderer_for(baseline.config)
    box = renderer.panel_boxes[0][2]  # difference
    centre = size // 2
    for dia_source_id in transients["diaSourceId"]:
        assert dia_source_id in baseline.result.written
        # Saved difference stamp.
        saved = np.load(
            baseline.output / "numpy" / str(chunk_of(dia_source_id)) / f"{dia_source_id}_diff_{size}.npy"
        )
        assert saved.shape == (1, size, size)  # the original package's layout
        stamp = saved[0]
        row, col = np.unravel_index(np.nanargmax(stamp), stamp.shape)
        assert abs(row - centre) <= 1 and abs(col - centre) <= 1, (dia_source_id, row, col)
        # Difference panel of the PNG (row 0 of the stamp is drawn at the
        # bottom).  The scale bar (white) sits in the lower-left corner.
        panel = rgb(png_files(baseline.output)[dia_source_id])[box.slices].astype(float).mean(axis=2)
        n = renderer.panel_pixels
        corner = np.zeros_like(panel, dtype=bool)
        corner[int(0.75 * n) :, : int(0.5 * n)] = True
        brightness = np.where(corner, -1.0, panel)
        ys, xs = np.nonzero(brightness == brightness.max())
        stamp_x = (xs.mean() + 0.5) * size / n - 0.5
        stamp_y = size - 1 - ((ys.mean() + 0.5) * size / n - 0.5)
        assert abs(stamp_x - centre) <= 1 and abs(stamp_y - centre) <= 1, (dia_source_id, stamp_x, stamp_y)


# 6. Edges -----------------------------------------------------------------------------


def test_edge_source_same_size_with_no_data_pixels(baseline, demo_sources, image_size, clean_source):
    renderer = renderer_for(baseline.config)
    near = demo_sources[
        np.minimum(
            demo_sources[["x", "y"]].min(axis=1), image_size - 1 - demo_sources[["x", "y"]].max(axis=1)
        )
        < 4
    ]
    edge_ids = [i for i in near["diaSourceId"] if i in set(baseline.result.written)]
    assert edge_ids, "the demo should hold sources within a few pixels of the edge"
    files = png_files(baseline.output)
    for dia_source_id in edge_ids:
        pixels = rgb(files[dia_source_id])
        assert pixels.shape[:2] == renderer.canvas_size[::-1]
        for box in renderer.panel_boxes[0]:
            assert has_colour(pixels[box.slices], renderer.no_data_rgb), dia_source_id
    # A source well inside has data everywhere on its science panel.
    inside = rgb(files[int(clean_source["diaSourceId"])])
    assert not has_colour(inside[renderer.panel_boxes[0][1].slices], renderer.no_data_rgb)


def test_off_image_source_fails_alone(baseline, clean_source):
    records = baseline.result.records.set_index("diaSourceId")
    assert records.loc[OFF_IMAGE_ID, "status"] == "failed"
    assert records.loc[OFF_IMAGE_ID, "reason_code"] == "off_image"
    assert OFF_IMAGE_ID not in png_files(baseline.output)
    same = records[
        (records["visit"] == clean_source["visit"]) & (records["detector"] == clean_source["detector"])
    ]
    # The reason is one readable line naming the image, not a dump of huge pixel values.
    reason = records.loc[OFF_IMAGE_ID, "reason"]
    assert reason.startswith("centre (") and "is off the " in reason and "\n" not in reason, reason
    assert f"'visit': {clean_source['visit']}, 'detector': {clean_source['detector']}" in reason, reason
    assert len(reason) < 200 and max(len(number) for number in re.findall(r"[-+.\de]+", reason)) < 12, reason
    others = same.drop(index=OFF_IMAGE_ID)
    assert len(others) > 1
    assert (others["status"] == "written").all()


# 7. Badges -----------------------------------------------------------------------------


def expected_badges(row: pd.Series) -> set[str]:
    return {b.name for b in BADGES if any(bool(row.get(c, False)) for c in b.columns)}


def test_badge_colour_exactly_when_flag_set(baseline, demo_sources, clean_source):
    renderer = renderer_for(baseline.config)
    files = png_files(baseline.output)
    data = baseline.data.set_index("diaSourceId")
    edge_flagged = demo_sources[demo_sources["pixelFlags_edge"]]["diaSourceId"]
    edge_id = next(i for i in edge_flagged if i in files)
    clean_id = int(clean_source["diaSourceId"])
    checked = {clean_id: set(), DIPOLE_COPY_ID: {"DIPOLE"}, edge_id: None}
    # ... and every other written source, against the documented table.
    for dia_source_id in sorted(files):
        checked.setdefault(dia_source_id, None)
    sizes = set()
    for dia_source_id, expected in checked.items():
        row = data.loc[dia_source_id]
        badges = expected_badges(row)
        if expected is not None:
            assert badges == expected
        if dia_source_id == edge_id:
            assert "EDGE" in badges
        pixels = rgb(files[dia_source_id])
        sizes.add(pixels.shape)
        for name, box in renderer.badge_boxes.items():
            shown = has_colour(pixels[box.slices], BADGE_COLORS[name])
            assert shown == (name in badges), (dia_source_id, name)
    assert len(sizes) == 1
    # The dipole copy differs from its original only by the badge.
    original = rgb(files[clean_id])
    copy = rgb(files[DIPOLE_COPY_ID])
    diff = np.any(original != copy, axis=-1)
    for box in renderer.panel_boxes[0]:
        assert not diff[box.slices].any()


# 8. Failures are never fatal ---------------------------------------------------------


def test_missing_exposure_fails_its_sources_logged_once(tmp_path, demo_sources, butler, caplog):
    group = demo_sources[(demo_sources["visit"] == 1001) & (demo_sources["detector"] == 1)]
    ghosts = group.iloc[[0, 1, 2]].copy()
    ghosts["visit"] = MISSING_VISIT
    ghosts["detector"] = [0, 0, 1]
    ghosts["diaSourceId"] = [9_000_000_001, 9_000_000_002, 9_000_000_003]
    data = pd.concat([group, ghosts], ignore_index=True)
    with caplog.at_level(logging.INFO):
        result = run_task(data, butler, tmp_path)
    records = result.records.set_index("diaSourceId")
    assert set(result.failed) >= set(ghosts["diaSourceId"])
    assert (records.loc[ghosts["diaSourceId"], "reason_code"] == "missing_exposure").all()
    assert set(png_files(tmp_path)) == set(group["diaSourceId"]) & set(result.written)
    assert len(result.written) >= len(group) - 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    about_missing = [m for m in warnings if str(MISSING_VISIT) in m]
    assert len(about_missing) == 2, about_missing  # one per visit × detector
    # And one ERROR line per failed source, naming it and the error class.
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    for dia_source_id in ghosts["diaSourceId"]:
        prefix = f"DatasetNotFoundError processing diaSourceId {dia_source_id}:"
        assert [m for m in errors if m.startswith(prefix)], errors


def test_missing_optional_column_still_writes(tmp_path, demo_sources, butler, caplog):
    data = demo_sources[demo_sources["visit"] == 1001].drop(columns=["psfChi2"])
    with caplog.at_level(logging.INFO):
        result = run_task(data, butler, tmp_path)
    assert len(result.written) >= len(data) - 1
    assert set(png_files(tmp_path)) == set(result.written)
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING and "psfChi2" in r.getMessage()]
    assert len(warned) == 1


def test_missing_required_column_raises_before_writing(tmp_path, demo_sources, butler):
    data = demo_sources.drop(columns=["ra"])
    task = PlotImageSubtractionCutoutsTask(config=make_config(), output_path=tmp_path / "out")
    with pytest.raises(SourceTableError, match=r"\bra\b"):
        task.run(data, butler)
    assert not list(tmp_path.rglob("*.png"))


# 9. Resume -----------------------------------------------------------------------------


def test_resume_rewrites_only_missing_pngs(tmp_path, baseline, butler):
    output = tmp_path / "cutouts"
    shutil.copytree(baseline.output, output)
    files = png_files(output)
    removed = sorted(files)[::15]
    for dia_source_id in removed:
        files[dia_source_id].unlink()
    # A temporary file left by a killed writer is cleaned up.
    stale = files[removed[0]].parent / f".{removed[0]}.png.abc123.partial"
    stale.write_bytes(b"\x89PNG half")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    result = run_task(baseline.data, butler, output, save_as_numpy=True, url_root=URL_ROOT + "/")
    assert sorted(result.written) == removed
    assert sorted(result.skipped) == sorted(set(baseline.result.written) - set(removed))
    assert sorted(result.failed) == sorted(baseline.result.failed)
    assert not stale.exists()
    reference = png_files(baseline.output)
    for dia_source_id in removed:
        assert files[dia_source_id].read_bytes() == reference[dia_source_id].read_bytes()
    for name in ("manifest.csv", "images/manifest.csv", "failures.csv"):
        assert (output / name).read_bytes() == (baseline.output / name).read_bytes(), name


# 10. Worker processes --------------------------------------------------------------------


def test_two_drawing_processes_give_same_pngs(tmp_path, baseline, butler):
    result = run_task(baseline.data, butler, tmp_path, njobs=2, url_root=URL_ROOT + "/")
    assert sorted(result.written) == sorted(baseline.result.written)
    assert sorted(result.failed) == sorted(baseline.result.failed)
    files, reference = png_files(tmp_path), png_files(baseline.output)
    assert set(files) == set(reference)
    for dia_source_id in sorted(files):
        assert files[dia_source_id].read_bytes() == reference[dia_source_id].read_bytes()
    assert (tmp_path / "manifest.csv").read_bytes() == (baseline.output / "manifest.csv").read_bytes()


def crowded_group(demo_sources: pd.DataFrame, n: int, seed: int = 5) -> pd.DataFrame:
    """At least ``n`` sources on the first demo visit × detector: its
    sources repeated with new ids, moved by about a tenth of a pixel."""
    first = demo_sources.iloc[0]
    group = demo_sources[
        (demo_sources["visit"] == first["visit"]) & (demo_sources["detector"] == first["detector"])
    ]
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(-(-n // len(group)) + 1):
        copy = group.copy()
        copy["diaSourceId"] = group["diaSourceId"].to_numpy() + k * 1_000_000
        if k:
            copy["ra"] = copy["ra"] + rng.normal(0, 5e-5, len(copy))
            copy["dec"] = copy["dec"] + rng.normal(0, 5e-5, len(copy))
        frames.append(copy)
    return pd.concat(frames, ignore_index=True)


def test_only_crowded_groups_read_by_tiles_are_cut(tmp_path, demo_sources, butler):
    """Groups whose images are missing, or that are read whole, are drawn
    whole by one process (so a missing image is reported once)."""
    crowded = crowded_group(demo_sources, 2 * MIN_PIECE_SOURCES)
    missing = crowded.assign(visit=9999, diaSourceId=crowded["diaSourceId"] + 500_000)
    table = standardize_sources(
        pd.concat([crowded, missing], ignore_index=True), instrument=only_instrument(butler)
    )
    groups = [frame for _, frame in group_by_detector(table.sources)]
    assert [int(group["visit"].iloc[0]) for group in groups] == [int(crowded["visit"].iloc[0]), 9999]
    task = PlotImageSubtractionCutoutsTask(
        config=make_config(whole_read_min_sources=None), output_path=tmp_path / "a"
    )
    pieces = task._pieces(butler, groups, 2)
    assert pieces[-1] is groups[1] and len(pieces) > 2
    assert all((piece["visit"] == groups[0]["visit"].iloc[0]).all() for piece in pieces[:-1])
    # A configured whole read: nothing is cut.
    whole = PlotImageSubtractionCutoutsTask(config=make_config(), output_path=tmp_path / "b")
    assert whole._pieces(butler, groups, 2) == groups


def test_one_crowded_visit_detector_is_shared_by_two_processes(tmp_path, demo_sources, butler):
    """A run of one crowded visit × detector with njobs=2 draws in both
    processes (in bands of rows) and gives what one process gives."""
    first = demo_sources.iloc[0]
    crowded = crowded_group(demo_sources, 2 * MIN_PIECE_SOURCES)
    visit_records = tmp_path / "j2" / "records" / only_instrument(butler) / str(int(first["visit"]))
    runs = {}
    for njobs in (0, 2):
        task = PlotImageSubtractionCutoutsTask(
            config=make_config(sizes=[21], whole_read_min_sources=None), output_path=tmp_path / f"j{njobs}"
        )
        if njobs:
            # The demo's pieces are drawn faster than a worker starts: this
            # process waits for the worker's first piece before its own.
            draw = task.drawGroups

            def after_a_worker(*args, draw=draw, **kwargs):
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline and not any(
                    int(path.name.split(".")[2]) != os.getpid() for path in visit_records.glob("*.csv")
                ):
                    time.sleep(0.05)
                return draw(*args, **kwargs)

            task.drawGroups = after_a_worker
        runs[njobs] = task.run(crowded, butler, njobs=njobs)
    assert sorted(runs[2].written) == sorted(runs[0].written)
    assert len(runs[2].written) > 2 * MIN_PIECE_SOURCES * 0.9
    files, reference = png_files(tmp_path / "j2"), png_files(tmp_path / "j0")
    assert set(files) == set(reference)
    for dia_source_id in sorted(files):
        assert files[dia_source_id].read_bytes() == reference[dia_source_id].read_bytes()
    for name in ("images/manifest.csv", "records.csv", "failures.csv", "summary.json"):
        texts = [
            (tmp_path / f"j{n}" / name).read_text().replace(str(tmp_path / f"j{n}"), "OUT") for n in (0, 2)
        ]
        assert texts[0] == texts[1], name
    # Record files named by the process that drew them: two processes
    # drew parts of the one visit × detector, this one among them.
    drawers = {
        int(path.name.split(".")[2])
        for path in (tmp_path / "j2" / "records").rglob("*.csv")
        if path.parent.name == str(int(first["visit"]))
    }
    assert len(drawers) == 2 and os.getpid() in drawers


def test_threads_draw_what_one_thread_draws(tmp_path, baseline, butler, monkeypatch):
    """Sources drawn in several threads at once (through the tile reader,
    the default reads) give the same PNGs, records and failures as one
    source at a time; options that are not drawn in threads fall back to
    one thread.
    """
    from lsst.analysis.ap import core
    from lsst.analysis.ap.images.butler import butler_plane_reader

    # Threads are drawn in even on a one-core machine (the cap by the cores
    # the process may use is checked below, with a real affinity).
    monkeypatch.setattr(core, "available_cores", lambda: 4)

    runs = {}
    for threads in (1, 4):
        output = tmp_path / f"threads{threads}"
        task = PlotImageSubtractionCutoutsTask(
            config=make_config(threads=threads, whole_read_min_sources=None), output_path=output
        )
        first = baseline.data.iloc[0]
        data_id = {
            "instrument": only_instrument(butler),
            "visit": int(first["visit"]),
            "detector": int(first["detector"]),
        }
        readers = {
            role: butler_plane_reader(butler, dataset_type, data_id)
            for role, dataset_type in plotImageSubtractionCutouts._image_types(task.config).items()
        }
        assert task._cutouter().threads_for(readers) == threads
        if threads > 1:
            # Pinned to one core, the process draws one source at a time.
            monkeypatch.undo()
            cores = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {min(cores)})
            try:
                assert task._cutouter().threads_for(readers) == 1
            finally:
                os.sched_setaffinity(0, cores)
            monkeypatch.setattr(core, "available_cores", lambda: 4)
        for reader in readers.values():
            reader.release()
        runs[threads] = (output, task.run(baseline.data, butler))
    (one, serial), (four, threaded) = runs[1], runs[4]
    assert sorted(threaded.written) == sorted(serial.written) == sorted(baseline.result.written)
    assert sorted(threaded.failed) == sorted(serial.failed)
    files = png_files(four)
    assert set(files) == set(png_files(one))
    for dia_source_id, path in files.items():
        assert path.read_bytes() == png_files(one)[dia_source_id].read_bytes()
    columns = [c for c in serial.records.columns if c != "output_path"]
    pd.testing.assert_frame_equal(
        threaded.records[columns].sort_values("diaSourceId", ignore_index=True),
        serial.records[columns].sort_values("diaSourceId", ignore_index=True),
    )
    marker = make_config(threads=4)
    marker.display.marker = "reticle"
    task = PlotImageSubtractionCutoutsTask(config=marker, output_path=tmp_path / "marker")
    assert task._cutouter().threads_for({}) == 1


def test_worker_processes_draw_in_their_share_of_the_cores(monkeypatch):
    """Workers that fill the cores draw one source at a time; with cores
    to spare they use up to the configured threads.
    """
    from lsst.analysis.ap import parallel

    monkeypatch.setattr(parallel, "available_cores", lambda: 2)
    assert parallel.threads_per_worker(3, 2) == 1
    assert parallel.threads_per_worker(3, 1) == 2
    assert parallel.threads_per_worker(1, 1) == 1
    monkeypatch.setattr(parallel, "available_cores", lambda: 8)
    assert parallel.threads_per_worker(3, 2) == 3
    assert parallel.threads_per_worker(3, 16) == 1


def test_njobs_beyond_the_cores_is_capped_with_one_warning(tmp_path, baseline, butler, monkeypatch, caplog):
    """On one core, njobs=4 draws in this process only (every record file
    is this process's), the same PNGs, with one warning saying so."""
    from lsst.analysis.ap import parallel

    monkeypatch.setattr(parallel, "available_cores", lambda: 1)
    with caplog.at_level(logging.WARNING):
        result = run_task(baseline.data, butler, tmp_path, njobs=4, url_root=URL_ROOT + "/")
    warned = [r.getMessage() for r in caplog.records if "njobs" in r.getMessage()]
    assert warned == ["njobs=4 is more than the 1 core(s) this process may run on; using njobs=1."]
    assert sorted(result.written) == sorted(baseline.result.written)
    drawers = {int(path.name.split(".")[2]) for path in (tmp_path / "records").rglob("*.csv")}
    assert drawers == {os.getpid()}
    files, reference = png_files(tmp_path), png_files(baseline.output)
    assert set(files) == set(reference)
    for dia_source_id in sorted(files):
        assert files[dia_source_id].read_bytes() == reference[dia_source_id].read_bytes()


# 11. Configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sizes", []),
        ("sizes", [30, 0]),
        ("sizes", [-5]),
        ("chunk_size", 50),
        ("chunk_size", 0),
        ("colormap", "no_such_map"),
    ],
)
def test_validate_rejects_bad_values(field, value):
    config = PlotImageSubtractionCutoutsConfig()
    setattr(config, field, value)
    with pytest.raises(ValueError, match=field):
        config.validate()


def test_validate_names_a_cutout_size_beyond_the_largest():
    config = PlotImageSubtractionCutoutsConfig()
    config.sizes = [30, 5000]
    with pytest.raises(ValueError, match=r"sizes.*must be 1 to 4096 pixels, got \[5000\]"):
        config.validate()
    config.sizes = [1, MAX_STAMP_SIZE]
    config.validate()


@pytest.mark.parametrize("chunk_size", [None, 1, 10, 1000, 10000])
def test_validate_accepts_powers_of_ten(chunk_size):
    config = PlotImageSubtractionCutoutsConfig()
    config.chunk_size = chunk_size
    config.validate()


def test_image_type_config_changes_connections():
    default = PlotImageSubtractionCutoutsConnections(config=PlotImageSubtractionCutoutsConfig())
    assert (default.science.name, default.template.name, default.difference.name) == (
        "preliminary_visit_image",
        "template_detector",
        "difference_image",
    )
    config = PlotImageSubtractionCutoutsConfig()
    config.science_image_type = "calexp"
    config.diff_image_type = "goodSeeingDiff"
    connections = PlotImageSubtractionCutoutsConnections(config=config)
    assert connections.science.name == "calexp"
    assert connections.template.name == "goodSeeingDiff_templateExp"
    assert connections.difference.name == "goodSeeingDiff_differenceExp"
    assert connections.diaSources.name == "dia_source_detector"
    # An explicit connection override wins over the image-type fields.
    config.connections.science = "visit_image"
    assert PlotImageSubtractionCutoutsConnections(config=config).science.name == "visit_image"


def test_output_path_is_required():
    with pytest.raises(ValueError, match="output_path"):
        PlotImageSubtractionCutoutsTask(config=PlotImageSubtractionCutoutsConfig())


def test_wrong_image_type_fails_every_source_without_raising(tmp_path, demo_sources, butler):
    group = demo_sources[(demo_sources["visit"] == 1001) & (demo_sources["detector"] == 0)]
    result = run_task(group, butler, tmp_path, science_image_type="calexp")
    assert result.written == []
    assert sorted(result.failed) == sorted(group["diaSourceId"])
    assert set(result.records["reason_code"]) == {"missing_exposure"}
    assert "calexp" in result.records["reason"].iloc[0]


# 12. Footprint-sized stamps ----------------------------------------------------------


def test_use_footprint_stamps_are_square_of_bbox_size(tmp_path, demo_sources, butler):
    group = demo_sources[(demo_sources["visit"] == 1001) & (demo_sources["detector"] == 0)]
    result = run_task(group, butler, tmp_path, use_footprint=True, save_as_numpy=True)
    assert len(result.written) > len(group) // 2
    # A small footprint stamp may lie wholly in the template's no-data corner.
    assert set(result.records.loc[result.records["status"] == "failed", "reason_code"]) <= {"no_data"}
    config = make_config(use_footprint=True)
    canvas = renderer_for(config, sizes=(30,)).canvas_size
    data = group.set_index("diaSourceId")
    sizes_seen = set()
    for dia_source_id, path in png_files(tmp_path).items():
        size = int(data.loc[dia_source_id, "bboxSize"])
        sizes_seen.add(size)
        for role in ("sci", "temp", "diff"):
            stamp = np.load(
                tmp_path / "numpy" / str(chunk_of(dia_source_id)) / f"{dia_source_id}_{role}_{size}.npy"
            )
            assert stamp.shape == (1, size, size)
        with Image.open(path) as image:
            assert image.size == canvas
    assert len(sizes_seen) > 1


def test_bbox_reads_give_the_same_cutouts_as_whole_reads(tmp_path, baseline, butler):
    """One bbox read per source and image (the sparse-detector path) draws
    exactly what one whole-plane read per image draws."""
    subset = baseline.data[baseline.data["visit"] == 1002]
    result = run_task(subset, butler, tmp_path, whole_read_min_sources=10**6)
    reference = png_files(baseline.output)
    files = png_files(tmp_path)
    assert set(files) == set(result.written) == set(subset["diaSourceId"]) & set(baseline.result.written)
    for dia_source_id, path in files.items():
        assert path.read_bytes() == reference[dia_source_id].read_bytes()


def test_empty_png_is_redrawn_and_stale_manifest_removed(tmp_path, baseline, butler):
    """An empty PNG left by a crash is not "already present"; a run without
    url_root leaves no Zooniverse manifest of an earlier run behind."""
    subset = baseline.data[baseline.data["visit"] == 1003].iloc[:4]
    first = run_task(subset, butler, tmp_path, url_root=URL_ROOT)
    assert (tmp_path / "manifest.csv").exists()
    victim = png_files(tmp_path)[first.written[0]]
    victim.write_bytes(b"")
    second = run_task(subset, butler, tmp_path)
    assert second.written == [first.written[0]]
    assert victim.stat().st_size > 0
    assert not (tmp_path / "manifest.csv").exists()
    panoptes = pd.read_csv(tmp_path / "images" / "manifest.csv")
    assert set(panoptes["#diaSourceId"]) == set(first.written)


def test_tasks_import_from_the_package():
    """The package re-exports the tasks (as the original package did, and as
    the ``lsst-task-topic`` doc directive needs), the same classes as the
    public module path the pipeline YAML names."""
    from lsst.analysis.ap import (
        GatherCutoutManifestTask,
        PlotImageSubtractionCutoutsConfig,
        PlotImageSubtractionCutoutsTask,
    )

    assert PlotImageSubtractionCutoutsTask is plotImageSubtractionCutouts.PlotImageSubtractionCutoutsTask
    assert PlotImageSubtractionCutoutsConfig is plotImageSubtractionCutouts.PlotImageSubtractionCutoutsConfig
    assert GatherCutoutManifestTask is plotImageSubtractionCutouts.GatherCutoutManifestTask
    assert PlotImageSubtractionCutoutsTask.ConfigClass is PlotImageSubtractionCutoutsConfig
