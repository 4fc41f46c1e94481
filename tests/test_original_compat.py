"""Compatibility with the original ``lsst.analysis.ap.plotImageSubtractionCutouts``.

The cases of the original package's own test module, adapted to this
package's fixtures: the real demo Butler repository and its SQLite APDB take
the place of afw test exposures and mocked Butlers.  Each test names the
original case it stands for.  Where the original asserted exact matplotlib
pixel sizes, the invariant behind them is asserted instead (the PNG size
does not depend on the flags set, nor on the stamp size).
"""

from __future__ import annotations

import gzip
import io
import logging
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import astropy.units as u
import lsst.daf.butler as dafButler
import numpy as np
import pandas as pd
import pytest
from astropy.coordinates import SkyCoord
from PIL import Image

from lsst.analysis.ap import (
    CutoutPath,
    PlotImageSubtractionCutoutsConfig,
    PlotImageSubtractionCutoutsTask,
    plotImageSubtractionCutouts,
)

# The two diaSourceIds of the original test table (chunk directories
# 506428274000260000 and 527736141479140000 with the default chunk size).
ORIGINAL_IDS = (506428274000265570, 527736141479149732)
MISSING_VISIT = 999999
TASK_LOG = "lsst.plotImageSubtractionCutouts"
URL_ROOT = "https://example.org/zooniverse"

# The catalog flags the original annotated (all set on its first test row,
# none on its second).
FLAG_COLUMNS = (
    "psfFlux_flag",
    "psfFlux_flag_noGoodPixels",
    "psfFlux_flag_edge",
    "apFlux_flag",
    "apFlux_flag_apertureTruncated",
    "forced_PsfFlux_flag",
    "forced_PsfFlux_flag_noGoodPixels",
    "forced_PsfFlux_flag_edge",
    "pixelFlags_edge",
    "pixelFlags_interpolated",
    "pixelFlags_interpolatedCenter",
    "pixelFlags_saturated",
    "pixelFlags_saturatedCenter",
    "pixelFlags_cr",
    "pixelFlags_crCenter",
    "pixelFlags_bad",
    "pixelFlags_suspect",
    "pixelFlags_suspectCenter",
    "centroid_flag",
    "shape_flag",
    "shape_flag_no_pixels",
    "shape_flag_not_contained",
    "shape_flag_parent_source",
    "isDipole",
)


def make_task(output_path, **overrides) -> PlotImageSubtractionCutoutsTask:
    config = PlotImageSubtractionCutoutsTask.ConfigClass()
    for name, value in overrides.items():
        setattr(config, name, value)
    return PlotImageSubtractionCutoutsTask(config=config, output_path=output_path)


def png_size(png) -> tuple[int, int]:
    """``(height, width)`` of a PNG given as a file-like object or path."""
    with Image.open(png) as image:
        assert image.format == "PNG"
        return image.height, image.width


# Fixtures ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def butler(demo_repo):
    with demo_repo.butler() as butler:
        yield butler


@pytest.fixture(scope="module")
def clean_rows(demo_sources, demo_repo) -> pd.DataFrame:
    """Demo sources with no flag set, well inside their detector."""
    size = demo_repo.spec.image_size
    flags = [c for c in FLAG_COLUMNS if c in demo_sources.columns]
    rows = demo_sources[~demo_sources[flags].astype(bool).any(axis=1)]
    inside = (rows[["x", "y"]].min(axis=1) > 40) & (rows[["x", "y"]].max(axis=1) < size - 41)
    rows = rows[inside & rows["bboxSize"].gt(0)]
    assert len(rows) >= 2, "the demo should hold unflagged sources inside the detectors"
    return rows


@pytest.fixture(scope="module")
def two_sources(clean_rows) -> pd.DataFrame:
    """Two clean demo sources from different visit × detectors, renamed to
    the original test table's diaSourceIds.
    """
    first = clean_rows.iloc[0]
    other = clean_rows[
        (clean_rows["visit"] != first["visit"]) | (clean_rows["detector"] != first["detector"])
    ]
    data = pd.DataFrame([first, other.iloc[0]]).reset_index(drop=True)
    data["diaSourceId"] = list(ORIGINAL_IDS)
    return data


@pytest.fixture(scope="module")
def images(butler, clean_rows):
    """The science, template and difference images (lsst.images objects) of
    the first clean source, that source, and the pixel scale.
    """
    row = clean_rows.iloc[0]
    data_id = {"instrument": "DemoCam", "visit": int(row["visit"]), "detector": int(row["detector"])}
    science = butler.get("preliminary_visit_image", data_id)
    template = butler.get("template_detector", data_id)
    difference = butler.get("difference_image", data_id)
    center = SkyCoord(row["ra"] * u.deg, row["dec"] * u.deg)
    return science, template, difference, center, 0.2, row


def flagged(row: pd.Series, value: bool) -> pd.Series:
    """``row`` with every flag the original annotated set to ``value``."""
    row = row.copy()
    for column in FLAG_COLUMNS:
        row[column] = value
    row["instrument"] = "DemoCam"
    return row


# Imports -----------------------------------------------------------------------


def test_package_reexports_the_original_names():
    """``from lsst.analysis.ap import *`` gave the module's public names."""
    import lsst.analysis.ap as package

    assert (
        package.PlotImageSubtractionCutoutsTask is plotImageSubtractionCutouts.PlotImageSubtractionCutoutsTask
    )
    assert package.PlotImageSubtractionCutoutsConfig is PlotImageSubtractionCutoutsConfig
    assert package.CutoutPath is plotImageSubtractionCutouts.CutoutPath
    assert callable(plotImageSubtractionCutouts.main)


# TestCutoutPath ----------------------------------------------------------------


def test_cutout_path_normal_path():
    manager = CutoutPath("some/root/path")
    path = manager(id=12345678, filename="12345678.png")
    assert path == "some/root/path/images/12345678.png"


def test_cutout_path_chunking():
    manager = CutoutPath("some/root/path", chunk_size=10000)
    assert manager(id=12345678, filename="12345678.png") == "some/root/path/images/12340000/12345678.png"
    assert manager.directory(12345678) == "some/root/path/images/12340000"


def test_cutout_path_subdir():
    manager = CutoutPath("some/root/path", subdirectory="foo")
    assert manager(id=12345678, filename="12345678.png") == "some/root/path/foo/12345678.png"


@pytest.mark.parametrize("chunk_size", [123, 12300, 0, -10])
def test_cutout_path_chunk_size_must_be_a_power_of_ten(chunk_size):
    with pytest.raises(RuntimeError, match="chunk_size must be a power of 10"):
        CutoutPath("some/root/path", chunk_size=chunk_size)


@pytest.mark.parametrize("chunk_size", [1, 1000, 1000000])
def test_cutout_path_accepts_powers_of_ten(chunk_size):
    CutoutPath("some/root/path", chunk_size=chunk_size)


def test_cutout_path_exists_and_mkdir(tmp_path):
    manager = CutoutPath(str(tmp_path), chunk_size=100)
    assert not manager.exists(12345, "12345.png")
    manager.mkdir(12345)
    assert (tmp_path / "images" / "12300").is_dir()
    Path(manager(12345, "12345.png")).write_bytes(b"x")
    assert manager.exists(12345, "12345.png")


def test_task_paths_follow_config(tmp_path):
    task = make_task(tmp_path, chunk_size=1000)
    assert task.cutout_path.directory(123456) == str(tmp_path / "images" / "123000")
    assert task.numpy_path.directory(123456) == str(tmp_path / "numpy" / "123000")
    flat = make_task(tmp_path, chunk_size=None)
    assert flat.cutout_path(5, "5.png") == str(tmp_path / "images" / "5.png")


def test_task_rejects_chunk_size_not_a_power_of_ten(tmp_path):
    """The configuration is refused before any path is made."""
    import lsst.pex.config as pexConfig

    with pytest.raises(pexConfig.FieldValidationError, match="chunk_size.*power of ten"):
        make_task(tmp_path, chunk_size=123)


# Manifest ----------------------------------------------------------------------


@pytest.mark.parametrize("root", [URL_ROOT, URL_ROOT + "/"])
def test_make_manifest_single_slash(root):
    """check_make_manifest: the three columns, one slash after the root."""
    task = make_task("", url_root=root, chunk_size=None)
    manifest = task._make_manifest([5, 10, 20])
    assert manifest["external_id"].to_list() == [5, 10, 20]
    assert manifest["metadata:diaSourceId"].to_list() == [5, 10, 20]
    assert manifest["location:1"].to_list() == [f"{URL_ROOT}/images/{i}.png" for i in (5, 10, 20)]


def test_make_manifest_locations_include_chunk_directory():
    """The original's manifest left out the chunk directory the PNGs are
    written to (a bug): the URLs point where the files are.
    """
    task = make_task("", url_root=URL_ROOT + "/", chunk_size=10000)
    manifest = task._make_manifest([5, 123456])
    assert manifest["location:1"].to_list() == [
        f"{URL_ROOT}/images/0/5.png",
        f"{URL_ROOT}/images/120000/123456.png",
    ]


def test_write_manifest_without_url_root_writes_none(tmp_path, caplog):
    task = make_task(tmp_path)
    with caplog.at_level(logging.INFO, logger=TASK_LOG):
        task.write_manifest([])
    assert not (tmp_path / "manifest.csv").exists()
    assert any("No url_root" in r.getMessage() for r in caplog.records)


# Pickling ----------------------------------------------------------------------


def test_pickle_keeps_config_and_output_path(tmp_path):
    task = make_task(tmp_path / "something", sizes=[63])
    other = pickle.loads(pickle.dumps(task))
    assert other.config.sizes == [63]
    assert other._output_path == task._output_path
    assert other.cutout_path(7, "7.png") == task.cutout_path(7, "7.png")


def test_pickle_relative_output_path():
    task = make_task("something")
    other = pickle.loads(pickle.dumps(task))
    assert other._output_path == task._output_path


# generate_image ---------------------------------------------------------------


def test_generate_image(images):
    """An image comes out, as a file-like PNG (the original's io.BytesIO)."""
    science, template, difference, center, scale, _ = images
    cutout = make_task("").generate_image(science, template, difference, center, scale)
    assert isinstance(cutout, io.BytesIO)
    assert png_size(cutout)[0] > 0
    plain = make_task("", add_metadata=False).generate_image(science, template, difference, center, scale)
    height, width = png_size(plain)
    assert width > 2.5 * height  # three square panels side by side


def test_generate_image_larger_cutout_same_png_size(images):
    """Larger stamps give a PNG of the same size showing more pixels."""
    science, template, difference, center, scale, _ = images
    small = make_task("").generate_image(science, template, difference, center, scale)
    large = make_task("", sizes=[100]).generate_image(science, template, difference, center, scale)
    assert png_size(small) == png_size(large)
    assert small.getvalue() != large.getvalue()


def test_generate_image_accepts_ra_dec_degrees(images):
    science, template, difference, center, scale, _ = images
    task = make_task("")
    from_skycoord = task.generate_image(science, template, difference, center, scale)
    from_degrees = task.generate_image(science, template, difference, (center.ra.deg, center.dec.deg), scale)
    assert from_skycoord.getvalue() == from_degrees.getvalue()


@pytest.mark.parametrize("sizes", [[30], [32, 64]])
def test_generate_image_metadata_same_size_with_or_without_flags(images, sizes):
    """The original's pixel sizes, as our invariant: metadata makes the PNG
    taller; every flag set or none set gives the same size.
    """
    science, template, difference, center, scale, row = images
    plain = make_task("", sizes=sizes, add_metadata=False)
    annotated = make_task("", sizes=sizes, add_metadata=True)
    bare = plain.generate_image(science, template, difference, center, scale)
    all_flags = annotated.generate_image(
        science, template, difference, center, scale, source=flagged(row, True)
    )
    no_flags = annotated.generate_image(
        science, template, difference, center, scale, source=flagged(row, False)
    )
    assert png_size(all_flags) == png_size(no_flags)
    assert png_size(all_flags)[0] > png_size(bare)[0]
    assert all_flags.getvalue() != no_flags.getvalue()


def test_generate_image_annotates_a_given_source_of_any_row_type(images):
    """As the original: ``source`` may be a `numpy.record` (what its own
    code passed, ``data.to_records()``), and a source given is annotated
    even when ``add_metadata`` is off."""
    science, template, difference, center, scale, row = images
    annotated = make_task("", add_metadata=True)
    plain = make_task("", add_metadata=False)
    expected = annotated.generate_image(science, template, difference, center, scale, source=row)
    record = pd.DataFrame([row]).to_records(index=False)[0]
    assert isinstance(record, np.record)
    from_record = annotated.generate_image(science, template, difference, center, scale, source=record)
    assert from_record.getvalue() == expected.getvalue()
    given = plain.generate_image(science, template, difference, center, scale, source=row)
    assert given.getvalue() == expected.getvalue()
    bare = plain.generate_image(science, template, difference, center, scale)
    assert png_size(bare)[0] < png_size(given)[0]


def test_generate_image_multisize_is_taller(images):
    science, template, difference, center, scale, _ = images
    single = make_task("", add_metadata=False).generate_image(science, template, difference, center, scale)
    multi = make_task("", sizes=[32, 64], add_metadata=False).generate_image(
        science, template, difference, center, scale
    )
    assert png_size(multi)[0] > png_size(single)[0]
    assert png_size(multi)[1] == png_size(single)[1]


def test_generate_image_and_save_as_numpy(tmp_path, images):
    """Arrays of shape (1, s, s), as the original wrote them."""
    science, template, difference, center, scale, _ = images
    task = make_task(tmp_path, sizes=[100])
    dia_source_id = ORIGINAL_IDS[0]
    task.generate_image(
        science, template, difference, center, scale, dia_source_id=dia_source_id, save_as_numpy=True
    )
    directory = Path(task.numpy_path.directory(dia_source_id))
    assert directory == tmp_path / "numpy" / "506428274000260000"
    names = sorted(p.name for p in directory.iterdir())
    assert names == sorted(f"{dia_source_id}_{role}_100.npy" for role in ("sci", "temp", "diff"))
    for name in names:
        array = np.load(directory / name)
        assert array.shape == (1, 100, 100)
        assert np.squeeze(array, axis=0).shape == (100, 100)
    # The science stamp holds the science image's pixels around the source.
    stamp = np.load(directory / f"{dia_source_id}_sci_100.npy")[0]
    assert np.nanmax(stamp) <= np.nanmax(science.image.array)
    assert np.isfinite(stamp).mean() > 0.5


# write_images / run -------------------------------------------------------------


def test_write_images(tmp_path, two_sources, butler):
    task = make_task(tmp_path)
    result = task.write_images(two_sources, butler)
    assert result == list(ORIGINAL_IDS)
    for file in (
        "images/506428274000260000/506428274000265570.png",
        "images/527736141479140000/527736141479149732.png",
    ):
        assert png_size(tmp_path / file)[0] > 0
    # write_images writes no manifest; write_manifest does.
    assert not (tmp_path / "manifest.csv").exists()


def test_write_images_then_write_manifest(tmp_path, two_sources, butler):
    task = make_task(tmp_path, url_root=URL_ROOT)
    ids = task.write_images(two_sources, butler)
    task.write_manifest(ids)
    manifest = pd.read_csv(tmp_path / "manifest.csv")
    assert manifest["external_id"].to_list() == list(ORIGINAL_IDS)
    assert manifest["metadata:diaSourceId"].to_list() == list(ORIGINAL_IDS)
    for location in manifest["location:1"]:
        assert location.startswith(URL_ROOT + "/images/")
        assert (tmp_path / location.removeprefix(URL_ROOT + "/")).exists()


def test_write_manifest_given_the_table_says_it_expects_ids(tmp_path, two_sources, butler):
    task = make_task(tmp_path, url_root=URL_ROOT)
    task.write_images(two_sources, butler)
    with pytest.raises(TypeError) as error:
        task.write_manifest(two_sources)
    assert str(error.value) == (
        "write_manifest expects the diaSourceIds of the sources (the list write_images returns), not a "
        "pandas DataFrame; pass its diaSourceId column, e.g. write_manifest(table['diaSourceId'])"
    )
    with pytest.raises(TypeError, match=r"^write_manifest expects diaSourceIds \(integers\), not dict \{"):
        task.write_manifest([{"diaSourceId": ORIGINAL_IDS[0]}])
    task.write_manifest(two_sources["diaSourceId"])
    assert pd.read_csv(tmp_path / "manifest.csv")["external_id"].to_list() == list(ORIGINAL_IDS)


def test_write_images_skips_existing_and_returns_their_ids(tmp_path, two_sources, butler):
    """The original meant to skip PNGs already present; it returned a wrong
    id (or crashed) for them.  Here they are kept and their ids returned.
    """
    task = make_task(tmp_path)
    first = task.write_images(two_sources, butler)
    png = Path(task.cutout_path(ORIGINAL_IDS[0], f"{ORIGINAL_IDS[0]}.png"))
    before = png.stat().st_mtime_ns
    again = task.write_images(two_sources, butler)
    assert again == first == list(ORIGINAL_IDS)
    assert png.stat().st_mtime_ns == before


@pytest.mark.parametrize(
    "levels", [["diaSourceId"], ["visit", "detector"], ["visit", "diaSourceId"]], ids=str
)
def test_named_index_levels_are_columns(tmp_path, two_sources, butler, levels):
    """As the original (``to_records(index=...)``): index levels that are
    not columns are columns of the sources."""
    task = make_task(tmp_path)
    assert task.write_images(two_sources.set_index(levels), butler) == list(ORIGINAL_IDS)
    repeated = two_sources.set_index(two_sources["visit"].rename("visit"))
    assert make_task(tmp_path / "repeated").write_images(repeated, butler) == list(ORIGINAL_IDS)


def test_use_footprint(tmp_path, two_sources, butler):
    task = make_task(tmp_path, use_footprint=True)
    result = task.write_images(two_sources, butler)
    assert result == list(ORIGINAL_IDS)
    for dia_source_id in ORIGINAL_IDS:
        assert task.cutout_path.exists(dia_source_id, f"{dia_source_id}.png")


def test_run_returns_the_ids(tmp_path, two_sources, butler):
    """Code written for the original uses run()'s result as the id list."""
    task = make_task(tmp_path, url_root=URL_ROOT)
    result = task.run(two_sources, butler)
    assert len(result) == 2
    assert list(result) == list(ORIGINAL_IDS)
    assert result == list(ORIGINAL_IDS)
    assert all(isinstance(i, int) for i in result)
    assert (tmp_path / "manifest.csv").exists()
    # The full result of this package is there too.
    assert result.summary["written"] == 2


def test_make_cutouts_returns_struct(tmp_path, two_sources, butler):
    task = make_task(tmp_path)
    bad = two_sources.iloc[[0]].assign(diaSourceId=1, visit=MISSING_VISIT)
    result = task.makeCutouts(pd.concat([two_sources, bad], ignore_index=True), butler)
    assert result.written == list(ORIGINAL_IDS)
    assert result.failed == [1]
    assert result.skipped == []
    assert result.ids == list(ORIGINAL_IDS)
    assert set(result.records["diaSourceId"]) == {1, *ORIGINAL_IDS}


def test_run_save_as_numpy_shape(tmp_path, two_sources, butler):
    task = make_task(tmp_path, save_as_numpy=True, sizes=[20, 40])
    task.run(two_sources, butler)
    arrays = sorted((tmp_path / "numpy").rglob("*.npy"))
    assert len(arrays) == 2 * 3 * 2
    for path in arrays:
        size = int(path.stem.rsplit("_", 1)[1])
        assert np.load(path).shape == (1, size, size)


# Error logs ----------------------------------------------------------------------


ERROR_LINE = re.compile(r"^(\w+) processing diaSourceId (\d+): (.+)")


def failure_lines(caplog) -> list[re.Match]:
    lines = [r.getMessage() for r in caplog.records if r.name == TASK_LOG and r.levelno == logging.ERROR]
    return [m for m in map(ERROR_LINE.match, lines) if m]


def test_write_images_exception(tmp_path, two_sources, butler, caplog):
    """Each failed source is logged at ERROR with its id and the exception
    class, and the run goes on.
    """
    data = two_sources.assign(visit=MISSING_VISIT)
    task = make_task(tmp_path)
    with caplog.at_level(logging.ERROR, logger=TASK_LOG):
        result = task.write_images(data, butler)
    assert result == []
    matches = failure_lines(caplog)
    assert [int(m.group(2)) for m in matches] == list(ORIGINAL_IDS)
    for match in matches:
        error_class = getattr(dafButler, match.group(1))
        assert issubclass(error_class, LookupError)
        assert str(MISSING_VISIT) in match.group(3)
        # Every image of the visit is missing: the science image is named,
        # as the original (which loaded it first) named it.
        assert match.group(3).startswith(f"{task.config.science_image_type}@"), match.group(3)


def test_an_unexpected_error_of_a_visit_detector_is_logged_for_each_source(tmp_path, two_sources, caplog):
    """The original's own test butler (a ``Mock`` of the Butler, whose
    ``get`` raises) breaks each visit × detector with an error no real
    Butler gives: every source of it is still logged at ERROR with its id,
    as the original logged each failed source, and the run goes on.
    """
    import unittest.mock

    butler = unittest.mock.Mock(spec=dafButler.Butler)
    butler.get.side_effect = LookupError("Dataset not found")
    task = make_task(tmp_path)
    with caplog.at_level(logging.ERROR, logger=TASK_LOG):
        assert task.write_images(two_sources.assign(instrument="DemoCam"), butler) == []
    assert [int(m.group(2)) for m in failure_lines(caplog)] == list(ORIGINAL_IDS)


def test_error_log_bounded_at_scale(tmp_path, two_sources, butler, caplog):
    """Hundreds of failures: a bounded number of per-id lines, one line
    pointing to failures.csv for the rest, and the per-visit×detector line.
    """
    n = 300
    data = pd.DataFrame([two_sources.iloc[0]] * n).reset_index(drop=True)
    data["diaSourceId"] = np.arange(1, n + 1)
    data["visit"] = MISSING_VISIT
    task = make_task(tmp_path)
    with caplog.at_level(logging.INFO, logger=TASK_LOG):
        ids = task.run(data, butler)
    assert ids == []
    matches = failure_lines(caplog)
    logged = [int(m.group(2)) for m in matches]
    assert 0 < len(logged) < n
    assert logged == list(range(1, len(logged) + 1))
    messages = [r.getMessage() for r in caplog.records if r.name == TASK_LOG]
    rest = [m for m in messages if "failures.csv" in m and str(n - len(logged)) in m]
    assert rest, messages
    assert any(f"its {n} source(s) fail" in m for m in messages), messages
    failures = pd.read_csv(tmp_path / "failures.csv")
    assert sorted(failures["diaSourceId"]) == list(range(1, n + 1))


# Command line -----------------------------------------------------------------------


def command() -> list[str]:
    script = Path(sys.executable).parent / "plotImageSubtractionCutouts"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from lsst.analysis.ap.cli import main; sys.exit(main())"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*command(), *map(str, args)], capture_output=True, text=True, timeout=600)


def summary(output: Path) -> dict:
    import json

    return json.loads((output / "summary.json").read_text())


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    """The original's test config file (url_root set, so the manifest code
    path always runs), plus whole reads to keep runs fast.
    """
    path = tmp_path_factory.mktemp("config") / "plotImageSubtractionCutoutsConfig.py"
    path.write_text(f'config.url_root = "{URL_ROOT}"\nconfig.whole_read_min_sources = 1\n')
    return path


@pytest.fixture(scope="module")
def numpy_config_file(config_file) -> Path:
    path = config_file.with_name("numpyConfig.py")
    path.write_text(config_file.read_text() + "config.save_as_numpy = True\n")
    return path


def test_main_args(tmp_path, demo_repo, config_file):
    """Typical arguments: the default --limit is 5."""
    process = run_cli(
        f"--sqlitefile={demo_repo.apdb_file}",
        f"--collections={demo_repo.collection}",
        f"-C={config_file}",
        demo_repo.root,
        tmp_path,
    )
    assert process.returncode == 0, process.stderr
    assert summary(tmp_path)["total"] == 5
    manifest = pd.read_csv(tmp_path / "manifest.csv")
    assert len(manifest) == summary(tmp_path)["written"] > 0


def test_main_config_file_long_form(tmp_path, demo_repo, config_file):
    process = run_cli(
        "--sqlitefile",
        demo_repo.apdb_file,
        "--collections",
        demo_repo.collection,
        f"--configFile={config_file}",
        demo_repo.root,
        tmp_path,
    )
    assert process.returncode == 0, process.stderr
    assert (tmp_path / "manifest.csv").exists()


def test_main_args_no_collections(tmp_path, demo_repo, config_file):
    """Without --collections every collection is searched."""
    process = run_cli(f"--sqlitefile={demo_repo.apdb_file}", f"-C={config_file}", demo_repo.root, tmp_path)
    assert process.returncode == 0, process.stderr
    assert summary(tmp_path)["written"] > 0


def test_main_collection_list(tmp_path, demo_repo, config_file):
    """Several collections, given after the positional arguments."""
    repo = tmp_path / "repo"
    shutil.copytree(demo_repo.root, repo)
    collections = ["empty1", demo_repo.collection, "empty2"]
    with dafButler.Butler.from_config(str(repo), writeable=True) as writer:
        writer.collections.register("empty1")
        writer.collections.register("empty2")
    output = tmp_path / "out"
    process = run_cli(
        f"--sqlitefile={demo_repo.apdb_file}",
        repo,
        output,
        f"-C={config_file}",
        "--collections",
        *collections,
    )
    assert process.returncode == 0, process.stderr
    assert summary(output)["written"] > 0


def test_main_args_limit_offset(tmp_path, demo_repo, config_file):
    """--all with --limit pages through the whole APDB, --limit sources at a
    time; the manifest lists every source drawn from every page.
    """
    process = run_cli(
        f"--sqlitefile={demo_repo.apdb_file}",
        f"--collections={demo_repo.collection}",
        f"-C={config_file}",
        "--all",
        "--limit=5",
        demo_repo.root,
        tmp_path,
    )
    assert process.returncode == 0, process.stderr
    counts = summary(tmp_path)
    assert counts["total"] == demo_repo.n_sources
    assert counts["written"] + counts["failed"] == demo_repo.n_sources
    manifest = pd.read_csv(tmp_path / "manifest.csv")
    pngs = {int(p.stem) for p in (tmp_path / "images").rglob("*.png")}
    assert set(manifest["external_id"]) == pngs
    assert len(pngs) == counts["written"]


def test_main_save_as_numpy_exports_every_page(tmp_path, demo_repo, numpy_config_file):
    """all_diasources.csv.gz lists every selected source;
    exported_diasources.csv.gz every source drawn, from all pages (the
    original kept only the last page's).
    """
    process = run_cli(
        f"--sqlitefile={demo_repo.apdb_file}",
        f"--collections={demo_repo.collection}",
        f"-C={numpy_config_file}",
        "--all",
        "--limit=5",
        demo_repo.root,
        tmp_path,
    )
    assert process.returncode == 0, process.stderr
    with gzip.open(tmp_path / "all_diasources.csv.gz") as stream:
        all_sources = pd.read_csv(stream)
    with gzip.open(tmp_path / "exported_diasources.csv.gz") as stream:
        exported = pd.read_csv(stream)
    assert len(all_sources) == demo_repo.n_sources
    pngs = {int(p.stem) for p in (tmp_path / "images").rglob("*.png")}
    assert set(exported["diaSourceId"]) == pngs
    assert len(pngs) > 5
    for path in (tmp_path / "numpy").rglob("*_sci_30.npy"):
        assert np.load(path).shape == (1, 30, 30)


def test_main_args_multiprocessing(tmp_path, demo_repo, config_file):
    process = run_cli(
        f"--sqlitefile={demo_repo.apdb_file}",
        f"--collections={demo_repo.collection}",
        "-j2",
        f"-C={config_file}",
        "--limit=20",
        demo_repo.root,
        tmp_path,
    )
    assert process.returncode == 0, process.stderr
    assert summary(tmp_path)["total"] == 20


def test_main_postgres_options_exist():
    process = run_cli("--help")
    assert process.returncode == 0
    assert "--namespace" in process.stdout
    assert "--postgres_url" in process.stdout
    assert "--configFile" in process.stdout


@pytest.mark.parametrize(
    "instrument",
    ["DemoCam", "OtherCam"],
)
def test_main_instrument_from_apdb_metadata(tmp_path, demo_repo, config_file, instrument):
    """The instrument recorded in the APDB's metadata table labels its
    sources; an APDB of another instrument is not drawn from this
    repository's images.
    """
    import sqlite3

    apdb = tmp_path / "apdb.sqlite3"
    shutil.copy(demo_repo.apdb_file, apdb)
    with sqlite3.connect(apdb) as connection:
        connection.execute("INSERT OR REPLACE INTO metadata VALUES (?, ?)", ("instrument", instrument))
    output = tmp_path / "out"
    process = run_cli(
        f"--sqlitefile={apdb}",
        f"--collections={demo_repo.collection}",
        f"-C={config_file}",
        "--limit=5",
        demo_repo.root,
        output,
    )
    if instrument == "DemoCam":
        assert process.returncode == 0, process.stderr
        assert set(pd.read_csv(output / "records.csv")["instrument"]) == {instrument}
        assert summary(output)["written"] > 0
    elif (output / "records.csv").exists():
        # Labelled with their own instrument, the sources find no images.
        assert set(pd.read_csv(output / "records.csv")["instrument"]) == {instrument}
        assert summary(output)["written"] == 0
    else:
        # Or the command stops, naming the instrument.
        assert process.returncode != 0
        assert "OtherCam" in process.stdout + process.stderr
