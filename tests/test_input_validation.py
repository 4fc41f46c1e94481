"""Hostile input: DiaSource tables with bad ids, coordinates, instruments
and bytes strings, corrupt images, bad command lines; every row ends
written, skipped or failed with a reason, or the run stops before any work
with one clear line; exit statuses tell the outcome.
"""

from __future__ import annotations

import decimal
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

from lsst.analysis.ap.apdb import DiaSourceSelection
from lsst.analysis.ap.parallel import available_cores
from lsst.analysis.ap.plotImageSubtractionCutouts import (
    PlotImageSubtractionCutoutsConfig,
    PlotImageSubtractionCutoutsTask,
)
from lsst.analysis.ap.sources import SourceTableError, load_catalog, standardize_sources
from test_cli import FAST, cli, ctrl_c_while_drawing, png_files, run_cli, summary_counts

UINT64_MAX = 2**64 - 1
EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_ALL_FAILED = 0, 1, 2, 3


def base_table(**columns) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "diaSourceId": [11, 12, 13],
            "visit": [1001, 1001, 1002],
            "detector": [0, 0, 1],
            "ra": [10.0, 10.1, 10.2],
            "dec": [-5.0, -5.1, -5.2],
        }
    )
    for name, values in columns.items():
        table[name] = values
    return table


def assert_one_clear_line(process: subprocess.CompletedProcess, *words: str) -> None:
    assert "Traceback" not in process.stderr, process.stderr
    errors = [line for line in process.stderr.splitlines() if line.startswith("plotImageSubtractionCutouts")]
    assert len(errors) == 1, process.stderr
    for word in words:
        assert word in errors[0], (word, errors[0])


def make_task(output: Path, **overrides) -> PlotImageSubtractionCutoutsTask:
    config = PlotImageSubtractionCutoutsConfig()
    config.whole_read_min_sources = 1
    for name, value in overrides.items():
        setattr(config, name, value)
    config.validate()
    return PlotImageSubtractionCutoutsTask(config=config, output_path=output)


@pytest.fixture(scope="module")
def butler(demo_repo):
    with demo_repo.butler() as butler:
        yield butler


@pytest.fixture(scope="module")
def group(demo_sources, butler, tmp_path_factory) -> pd.DataFrame:
    """Six sources of one visit × detector that are drawn (the demo's
    deliberate no-data and off-image sources left out)."""
    first = demo_sources.iloc[0]
    sources = demo_sources[
        (demo_sources["visit"] == first["visit"]) & (demo_sources["detector"] == first["detector"])
    ]
    written = make_task(tmp_path_factory.mktemp("group")).run(sources, butler).written
    return sources[sources["diaSourceId"].isin(written)].iloc[:6].reset_index(drop=True)


# Validation of the table ------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "values", "row", "what"),
    [
        ("diaSourceId", ["11", "src0", "13"], 1, "'src0' is not an integer"),
        ("detector", [0, "S00", 1], 1, "'S00' is not an integer"),
        ("diaSourceId", [11.0, 1001000000.5, 13.0], 1, "1001000000.5 is not a whole number"),
        ("visit", [1001.0, 1001.0, 1001.7], 2, "1001.7 is not a whole number"),
        ("visit", [1001, None, 1002], 1, "null"),
        ("diaSourceId", [11, True, 13], 1, "boolean"),
        ("diaSourceId", [11, 2**64, 13], 1, "outside the 64-bit integer range"),
        ("diaSourceId", [11, 2.0**60, 13], 1, "beyond 2**53"),
    ],
)
def test_identity_column_problem_names_column_and_row(column, values, row, what):
    table = base_table(instrument="DemoCam")
    table[column] = pd.Series(values, dtype=object)
    with pytest.raises(SourceTableError) as caught:
        standardize_sources(table, origin="catalog c.csv")
    message = str(caught.value)
    assert message.startswith("catalog c.csv: ")
    assert f"column {column!r}" in message and f"row {row}:" in message and what in message


def test_ids_up_to_uint64_max_are_kept_exactly():
    ids = np.array([UINT64_MAX, 2**63, 5], dtype=np.uint64)
    table = standardize_sources(base_table(diaSourceId=ids), instrument="DemoCam")
    assert table.sources["diaSourceId"].dtype == np.uint64
    assert [int(i) for i in table.sources["diaSourceId"]] == [UINT64_MAX, 2**63, 5]
    # The same from text (a CSV read as strings) and from Python integers.
    as_text = standardize_sources(base_table(diaSourceId=[str(UINT64_MAX), "3", "4"]), instrument="D")
    assert int(as_text.sources["diaSourceId"].iloc[0]) == UINT64_MAX


def test_negative_and_huge_ids_together_are_refused():
    with pytest.raises(SourceTableError, match=r"column 'diaSourceId' mixes negative values \(row 1\)"):
        standardize_sources(base_table(diaSourceId=[UINT64_MAX, -4, 5]), instrument="DemoCam")


def test_duplicate_ids_are_refused_naming_rows():
    with pytest.raises(SourceTableError, match=r"column 'diaSourceId' must be unique.*12 in rows 1, 2"):
        standardize_sources(base_table(diaSourceId=[11, 12, 12]), instrument="DemoCam")


@pytest.mark.parametrize(
    ("dtype", "good", "bad", "bits"),
    [(np.float32, 2**24, 2**24 + 2, 24), (np.float64, 2**53, 2**53 + 2, 53)],
)
def test_float_ids_beyond_their_type_precision_are_refused(dtype, good, bad, bits):
    kept = standardize_sources(base_table(diaSourceId=np.array([11, good, 13], dtype=dtype)), instrument="D")
    assert kept.sources["diaSourceId"].tolist() == [11, good, 13]
    with pytest.raises(SourceTableError) as caught:
        standardize_sources(base_table(diaSourceId=np.array([11, 12, bad], dtype=dtype)), instrument="D")
    message = str(caught.value)
    assert "column 'diaSourceId'" in message and "row 2:" in message
    assert f"{np.dtype(dtype).name} value beyond 2**{bits}" in message


def test_repeated_column_names_are_refused_naming_the_column(tmp_path):
    from astropy.io import fits

    table = base_table(instrument="DemoCam")
    repeated = pd.concat([table, table[["ra"]]], axis=1)
    with pytest.raises(SourceTableError, match=r"^input table: column 'ra' appears 2 times"):
        standardize_sources(repeated)
    # Files: pandas would rename the second CSV column 'ra.1'; FITS may repeat a TTYPE.
    csv = tmp_path / "repeated.csv"
    csv.write_text("diaSourceId,visit,detector,ra,dec,dec\n11,1001,0,10.0,-5.0,-6.0\n")
    with pytest.raises(SourceTableError, match=rf"^Catalog {csv}: column 'dec' appears 2 times"):
        load_catalog(csv)
    path = tmp_path / "repeated.fits"
    fits.BinTableHDU(Table.from_pandas(table.assign(other=1.0))).writeto(path)
    with fits.open(path, mode="update") as hdus:
        hdus[1].header["TTYPE7"] = "visit"
    with pytest.raises(SourceTableError, match=rf"^Catalog {path}: column 'visit' appears 2 times"):
        load_catalog(path)


def test_fits_band_strings_are_decoded_before_selecting_by_band(tmp_path):
    catalog = Table.from_pandas(base_table(instrument="DemoCam"))
    catalog["band"] = np.array([b"g", b"r", b"g"])
    path = tmp_path / "sources.fits"
    catalog.write(path)
    frame = load_catalog(path)
    selected = DiaSourceSelection(bands=("g",)).apply(frame, f"catalog {path}")
    assert selected["diaSourceId"].tolist() == [11, 13]
    assert selected["band"].tolist() == ["g", "g"]


@pytest.mark.parametrize(
    ("unit", "ra", "dec"),
    [
        ("rad", np.radians([10.0, 10.1, 10.2]), np.radians([-5.0, -5.1, -5.2])),
        ("arcsec", [36000.0, 36360.0, 36720.0], [-18000.0, -18360.0, -18720.0]),
        ("hourangle", [10.0 / 15, 10.1 / 15, 10.2 / 15], None),
    ],
)
def test_fits_coordinates_in_other_angle_units_are_converted_to_degrees(tmp_path, unit, ra, dec):
    from astropy.io import fits

    table = base_table()
    columns = [fits.Column(name=name, format="K", array=table[name]) for name in ("diaSourceId", "visit")]
    columns.append(fits.Column(name="detector", format="J", array=table["detector"]))
    columns.append(fits.Column(name="ra", format="D", array=ra, unit=unit))
    columns.append(
        fits.Column(
            name="dec",
            format="D",
            array=table["dec"] if dec is None else dec,
            unit=None if dec is None else unit,
        )
    )
    path = tmp_path / "sources.fits"
    fits.BinTableHDU.from_columns(columns).writeto(path)
    sources = standardize_sources(load_catalog(path), instrument="DemoCam").sources
    np.testing.assert_allclose(sources["ra"], [10.0, 10.1, 10.2], rtol=1e-12)
    np.testing.assert_allclose(sources["dec"], [-5.0, -5.1, -5.2], rtol=1e-12)


def test_fits_coordinates_with_a_unit_that_is_not_an_angle_are_refused(tmp_path):
    catalog = Table.from_pandas(base_table())
    catalog["dec"].unit = "m"
    path = tmp_path / "sources.fits"
    catalog.write(path)
    with pytest.raises(SourceTableError) as caught:
        load_catalog(path)
    assert str(caught.value).startswith(f"Catalog {path}: column 'dec' has unit 'm', which is not an angle")


def test_messages_quote_column_names():
    with pytest.raises(SourceTableError, match=r"required DiaSource column\(s\) missing: 'ra', 'dec' "):
        standardize_sources(base_table().drop(columns=["ra", "dec"]), instrument="DemoCam")
    with pytest.raises(SourceTableError, match=r"cannot select on 'band': no such column"):
        DiaSourceSelection(bands=("g",)).apply(base_table())


def test_bytes_columns_are_decoded():
    table = base_table(band=[b"r", b"g", b"i"], instrument=[b"DemoCam", b"DemoCam", b"DemoCam"])
    sources = standardize_sources(table).sources
    assert sources["band"].tolist() == ["r", "g", "i"]
    assert sources["instrument"].tolist() == ["DemoCam"] * 3


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("dec", 95.0, "'dec' 95.0 is outside [-90, 90] degrees"),
        ("dec", -90.5, "'dec' -90.5 is outside [-90, 90] degrees"),
        ("ra", float("nan"), "'ra' is null or NaN"),
        ("ra", float("inf"), "'ra' inf is not finite"),
        ("ra", 361.0, "'ra' 361.0 is outside [0, 360] degrees"),
        ("dec", None, "'dec' is null or NaN"),
        ("ra", "abc", "'ra' 'abc' is not a number"),
    ],
)
def test_bad_coordinates_reject_only_their_row(column, value, reason):
    table = base_table(instrument="DemoCam")
    table[column] = table[column].astype(object)
    table.loc[1, column] = value
    result = standardize_sources(table)
    assert result.sources["diaSourceId"].tolist() == [11, 13]
    assert result.rejected["diaSourceId"].tolist() == [12]
    assert result.rejected["reason_code"].tolist() == ["bad_coordinates"]
    assert result.rejected["reason"].tolist() == [reason]


def test_null_instrument_is_filled_or_rejected_never_dropped():
    table = base_table(instrument=pd.Series(["DemoCam", None, np.nan], dtype=object))
    filled = standardize_sources(table, instrument="DemoCam")
    assert filled.sources["instrument"].tolist() == ["DemoCam"] * 3 and filled.rejected.empty
    unknown = standardize_sources(table)
    assert unknown.sources["diaSourceId"].tolist() == [11]
    assert unknown.rejected["diaSourceId"].tolist() == [12, 13]
    assert set(unknown.rejected["reason_code"]) == {"no_instrument"}


def test_columns_of_several_levels_are_refused_naming_the_fix():
    table = base_table(instrument="DemoCam")
    table.columns = pd.MultiIndex.from_tuples([(column, "") for column in table.columns])
    with pytest.raises(SourceTableError) as caught:
        standardize_sources(table, origin="catalog c.csv")
    message = str(caught.value)
    assert message.startswith("catalog c.csv: the columns have 2 levels (a pandas MultiIndex")
    assert "get_level_values(0)" in message


def test_decimal_ids_from_a_numeric_database_column_are_exact():
    ids = [decimal.Decimal(UINT64_MAX), decimal.Decimal("12.0"), decimal.Decimal(13)]
    table = standardize_sources(base_table(diaSourceId=ids), instrument="DemoCam")
    assert [int(i) for i in table.sources["diaSourceId"]] == [UINT64_MAX, 12, 13]
    for bad, what in [("12.5", "is not a whole number"), ("sNaN", "is not finite")]:
        wrong = base_table(diaSourceId=[decimal.Decimal(11), decimal.Decimal(bad), decimal.Decimal(13)])
        with pytest.raises(
            SourceTableError, match=rf"column 'diaSourceId' must hold integers: row 1: .*{what}"
        ):
            standardize_sources(wrong, instrument="DemoCam")


def test_text_no_file_can_hold_gets_the_replacement_character():
    """A lone surrogate (what undecodable bytes become under
    ``surrogateescape``) cannot be written as UTF-8: it becomes U+FFFD."""
    table = base_table(band=pd.Series(["r", "\udcff", "g\udc80x"], dtype=object), instrument="DemoCam")
    sources = standardize_sources(table).sources
    assert sources["band"].tolist() == ["r", "\ufffd", "g\ufffdx"]
    assert sources["instrument"].tolist() == ["DemoCam"] * 3


@pytest.mark.parametrize(
    ("selection", "column", "values", "rows"),
    [
        (DiaSourceSelection(visit_min=1001), "visit", [1001, "x", 1002], "row 1"),
        (DiaSourceSelection(detectors=(0,)), "detector", ["S0", 0, "S1"], "rows 0, 2"),
        (DiaSourceSelection(reliability_max=0.5), "reliability", [0.1, 0.2, "high"], "row 2"),
        (DiaSourceSelection(mjd_min=60000.0), "midpointMjdTai", [b"early", 60001.0, 60002.0], "row 0"),
    ],
)
def test_selection_on_a_column_holding_text_names_column_and_rows(selection, column, values, rows):
    table = base_table(**{column: pd.Series(values, dtype=object)})
    with pytest.raises(SourceTableError) as caught:
        selection.apply(table, "catalog c.csv")
    message = str(caught.value)
    assert message.startswith(f"catalog c.csv: cannot select on {column!r}: not a number in {rows} (")
    assert selection.describe() in message


def test_selection_reads_numbers_given_as_text_and_leaves_nulls_out():
    table = base_table(
        detector=pd.Series(["0", b"1", 1], dtype=object),
        reliability=pd.Series(["0.9", "nan", None], dtype=object),
        band=pd.Series([b"g", "g", None], dtype=object),
    )
    assert DiaSourceSelection(detectors=(1,)).apply(table)["diaSourceId"].tolist() == [12, 13]
    assert DiaSourceSelection(reliability_min=0.5).apply(table)["diaSourceId"].tolist() == [11]
    assert DiaSourceSelection(bands=("g",)).apply(table)["diaSourceId"].tolist() == [11, 12]


# The task on the demo repository ------------------------------------------------


@pytest.mark.parametrize("njobs", [0, 2])
def test_bad_declination_fails_alone_others_of_its_detector_drawn(
    tmp_path, butler, group, demo_sources, njobs
):
    other = demo_sources[demo_sources["visit"] != group["visit"].iloc[0]].iloc[:3]
    data = pd.concat([group, other], ignore_index=True)
    bad_id = int(data["diaSourceId"].iloc[2])
    data.loc[2, "dec"] = 95.0
    result = make_task(tmp_path / "out").run(data, butler, njobs=njobs)
    records = result.records.set_index("diaSourceId")
    assert len(records) == len(data)
    assert records.loc[bad_id, "status"] == "failed"
    assert records.loc[bad_id, "reason_code"] == "bad_coordinates"
    assert "'dec' 95.0" in records.loc[bad_id, "reason"]
    same_detector = [int(i) for i in group["diaSourceId"] if int(i) != bad_id]
    assert set(records.loc[same_detector, "status"]) == {"written"}
    failures = pd.read_csv(tmp_path / "out" / "failures.csv")
    assert failures["diaSourceId"].tolist() == [bad_id]


def test_rows_without_instrument_are_drawn_with_the_only_instrument(tmp_path, butler, group):
    data = group.copy()
    data["instrument"] = pd.Series([None, "DemoCam"] * (len(data) // 2), dtype=object)
    result = make_task(tmp_path / "out").run(data, butler)
    assert result.summary["total"] == len(data)
    assert result.summary["written"] == len(data)
    all_null = group.assign(instrument=None)
    result = make_task(tmp_path / "out2").run(all_null, butler)
    assert result.summary["written"] == len(data)


def test_band_that_no_file_can_hold_is_drawn_and_recorded(tmp_path, butler, group):
    """A lone surrogate in ``band`` used to fail the PNG write and then the
    records of every source; now every source is drawn and recorded."""
    data = group.copy()
    data["band"] = pd.Series(["g"] * len(data), dtype=object)
    data.loc[1, "band"] = "\udcff"
    result = make_task(tmp_path / "out").run(data, butler)
    assert result.summary["written"] == len(data)
    records = pd.read_csv(tmp_path / "out" / "records.csv", keep_default_na=False)
    bands = dict(zip(records["diaSourceId"], records["band"], strict=True))
    assert bands[int(data["diaSourceId"].iloc[1])] == "\ufffd"
    assert bands[int(data["diaSourceId"].iloc[0])] == "g"


def test_footprint_size_given_as_text(tmp_path, butler, group):
    """With use_footprint, a bboxSize that reads as a number is that size;
    one that does not fails its source as no_footprint, quoting it."""
    data = group.iloc[:3].copy()
    data["bboxSize"] = pd.Series(["41", "abc", 40], dtype=object)
    result = make_task(tmp_path / "out", use_footprint=True, save_as_numpy=True).run(data, butler)
    records = result.records.set_index(result.records["diaSourceId"].map(int))
    ids = [int(i) for i in data["diaSourceId"]]
    assert records.loc[ids[1], "reason_code"] == "no_footprint"
    assert (
        records.loc[ids[1], "reason"] == "use_footprint is set but bboxSize ('abc') is not a positive number"
    )
    assert list(records.loc[[ids[0], ids[2]], "status"]) == ["written", "written"]
    stamp = np.load(next((tmp_path / "out" / "numpy").rglob(f"{ids[0]}_sci_*.npy")))
    assert stamp.shape == (1, 41, 41)


def test_the_default_instrument_is_asked_for_only_when_a_row_needs_it(group):
    """The repository's instrument (a registry query) is looked up only for
    tables with rows that lack one; it fills exactly those rows."""
    from lsst.analysis.ap.sources import standardize_sources

    asked = []

    def default():
        asked.append(True)
        return "DemoCam"

    table = standardize_sources(group.assign(instrument="Other"), instrument=default)
    assert not asked and len(table.sources) == len(group)
    some_null = group.assign(instrument=[None] + ["Other"] * (len(group) - 1))
    table = standardize_sources(some_null, instrument=default)
    assert len(asked) == 1
    assert table.sources["instrument"].tolist() == ["DemoCam"] + ["Other"] * (len(group) - 1)
    asked.clear()
    table = standardize_sources(group.drop(columns="instrument", errors="ignore"), instrument=default)
    assert len(asked) == 1 and set(table.sources["instrument"]) == {"DemoCam"}
    with pytest.raises(SourceTableError, match="no 'instrument' column"):
        standardize_sources(group.drop(columns="instrument", errors="ignore"), instrument=lambda: None)


def test_uint64_max_id_written_and_listed_exactly(tmp_path, butler, group):
    data = group.iloc[:2].copy()
    data["diaSourceId"] = np.array([UINT64_MAX, 2**63 + 7], dtype=np.uint64)
    output = tmp_path / "out"
    result = make_task(output, url_root="https://example.org/c").run(data, butler)
    assert result.summary["written"] == 2
    assert sorted(int(i) for i in result.written) == [2**63 + 7, UINT64_MAX]
    png = output / "images" / str((UINT64_MAX // 10000) * 10000) / f"{UINT64_MAX}.png"
    assert png.stat().st_size > 0
    manifest = pd.read_csv(output / "manifest.csv", dtype=str)
    assert sorted(manifest["external_id"]) == sorted([str(UINT64_MAX), str(2**63 + 7)])
    assert manifest["location:1"].str.endswith(f"/{UINT64_MAX}.png").any()
    records = pd.read_csv(output / "records.csv", dtype={"diaSourceId": str})
    assert str(UINT64_MAX) in set(records["diaSourceId"])
    # The vetting page, which joins the DiaSource values to the records, shows them too.
    page_data = (output / "vetting" / "records.js").read_text()
    assert f'"{UINT64_MAX}"' in page_data and f'"{2**63 + 7}"' in page_data
    assert '"-1"' not in page_data and '"-9223372036854775801"' not in page_data


@pytest.fixture()
def repo_copy(demo_repo, tmp_path):
    """A writable copy of the demo repository."""
    root = tmp_path / "repo"
    shutil.copytree(demo_repo.root, root, symlinks=True)
    return root


def test_corrupt_image_file_is_reported_as_corrupt_naming_the_file(repo_copy, group, demo_repo):
    from lsst.daf.butler import Butler

    visit, detector = int(group["visit"].iloc[0]), int(group["detector"].iloc[0])
    with Butler.from_config(str(repo_copy), collections=[demo_repo.collection]) as butler:
        uri = butler.getURI("difference_image", instrument="DemoCam", visit=visit, detector=detector)
        path = Path(uri.ospath)
        size = path.stat().st_size
        path.write_bytes(b"SIMPLE  =  garbage" + bytes(size // 2))
        result = make_task(repo_copy.parent / "out").run(group, butler)
    records = result.records
    assert set(records["status"]) == {"failed"}
    assert set(records["reason_code"]) == {"corrupt_image"}
    assert all(str(path) in reason for reason in records["reason"])


# The command line ---------------------------------------------------------------


def write_catalog(tmp_path: Path, table: pd.DataFrame, name: str = "sources.csv") -> Path:
    path = tmp_path / name
    table.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("column", "value", "row_text"),
    [
        ("diaSourceId", "src0", "'src0' is not an integer"),
        ("detector", "S00", "'S00' is not an integer"),
        ("diaSourceId", 1001000000.5, "1001000000.5 is not a whole number"),
        ("visit", 1001.7, "1001.7 is not a whole number"),
    ],
)
def test_cli_refuses_bad_id_values_naming_row_and_column(tmp_path, demo_repo, group, column, value, row_text):
    table = group.copy()
    table[column] = table[column].astype(object)
    table.loc[3, column] = value
    process = run_cli(
        cli(demo_repo, tmp_path / "out", "--catalog", str(write_catalog(tmp_path, table)), "--all")
    )
    assert process.returncode == EXIT_USAGE
    assert_one_clear_line(process, f"column {column!r}", "row 3:", row_text)
    assert not (tmp_path / "out" / "images").exists()


@pytest.mark.parametrize(
    ("option", "column"),
    [(["--visit-min", "1"], "visit"), (["--reliabilityMin", "0.5"], "reliability")],
)
def test_cli_selection_on_text_values_is_one_line(tmp_path, demo_repo, group, option, column):
    table = group.copy()
    table[column] = table[column].astype(object)
    table.loc[3, column] = "unknown"
    catalog = str(write_catalog(tmp_path, table))
    process = run_cli(cli(demo_repo, tmp_path / "out", "--catalog", catalog, "--all", *option))
    assert process.returncode == EXIT_USAGE
    assert_one_clear_line(process, f"cannot select on {column!r}", "not a number in row 3", "'unknown'")
    assert not (tmp_path / "out" / "images").exists()


def _apdb_copy(demo_repo, tmp_path: Path) -> Path:
    path = tmp_path / "apdb.sqlite3"
    shutil.copy(demo_repo.apdb_file, path)
    return path


def test_cli_apdb_id_stored_as_text_is_one_line(tmp_path, demo_repo):
    """SQLite keeps what it is given: a text diaSourceId in a BIGINT column
    stops the run naming the column and the value (was a traceback)."""
    path = _apdb_copy(demo_repo, tmp_path)
    with sqlite3.connect(path) as connection:
        connection.execute(
            'UPDATE "DiaSource" SET "diaSourceId" = \'S00\' WHERE "diaSourceId" = '
            '(SELECT MAX("diaSourceId") FROM "DiaSource")'
        )
    process = run_cli(cli(demo_repo, tmp_path / "out", "--sqlitefile", str(path), "--all"))
    assert process.returncode == EXIT_USAGE
    assert_one_clear_line(process, "column 'diaSourceId' must hold integers", "'S00' is not an integer")
    assert not (tmp_path / "out" / "images").exists()


@pytest.mark.parametrize(
    ("indexes_too", "what"),
    [
        (False, "cannot read DiaSources: database disk image is malformed"),
        (True, "cannot count DiaSources: database disk image is malformed"),
    ],
)
def test_cli_damaged_apdb_is_one_line(tmp_path, demo_repo, indexes_too, what):
    """An APDB whose DiaSource pages are damaged (the schema and metadata
    intact, so it opens) stops the run with the database's reason: the
    table's first page (the count still answers from an index), or its
    indexes' too."""
    path = _apdb_copy(demo_repo, tmp_path)
    with sqlite3.connect(path) as connection:
        size = connection.execute("PRAGMA page_size").fetchone()[0]
        pages = connection.execute(
            "SELECT rootpage FROM sqlite_master WHERE tbl_name = 'DiaSource'"
            + ("" if indexes_too else " AND type = 'table'")
        ).fetchall()
    with path.open("r+b") as file:
        for (page,) in pages:
            file.seek((page - 1) * size)
            file.write(b"\xa5" * size)
    process = run_cli(cli(demo_repo, tmp_path / "out", "--sqlitefile", str(path), "--all"))
    assert process.returncode == EXIT_USAGE
    assert_one_clear_line(process, f"APDB sqlite:///{path}: {what}")
    assert not (tmp_path / "out" / "images").exists()


def test_cli_duplicate_rows_refused(tmp_path, demo_repo, group):
    table = pd.concat([group, group.iloc[[1]]], ignore_index=True)
    process = run_cli(
        cli(demo_repo, tmp_path / "out", "--catalog", str(write_catalog(tmp_path, table)), "--all")
    )
    assert process.returncode == EXIT_USAGE
    assert_one_clear_line(process, "column 'diaSourceId'", f"rows 1, {len(group)}")


def test_cli_fits_bytes_strings_decoded(tmp_path, demo_repo, group):
    from astropy.table import Table

    subset = group.iloc[:3][["diaSourceId", "visit", "detector", "ra", "dec"]].copy()
    fits = Table.from_pandas(subset)
    fits["band"] = np.array([b"r", b"r", b"g"])
    fits["instrument"] = np.array([b"DemoCam"] * 3)
    catalog = tmp_path / "sources.fits"
    fits.write(catalog)
    output = tmp_path / "out"
    process = run_cli(
        cli(demo_repo, output, "--catalog", str(catalog), "--url-root", "https://e.org/", *FAST)
    )
    assert process.returncode == EXIT_OK, process.stderr
    manifest = pd.read_csv(output / "manifest.csv")
    assert sorted(manifest["metadata:band"]) == ["g", "r", "r"]
    assert set(manifest["metadata:instrument"]) == {"DemoCam"}


def test_cli_bad_declination_with_two_drawing_processes(tmp_path, demo_repo, demo_sources, group):
    table = demo_sources.copy()
    bad_id = int(group["diaSourceId"].iloc[1])
    table.loc[table["diaSourceId"] == bad_id, "dec"] = -91.0
    output = tmp_path / "out"
    process = run_cli(
        cli(demo_repo, output, "--catalog", str(write_catalog(tmp_path, table)), "--all", "-j", "2", *FAST)
    )
    counts = summary_counts(process.stdout)
    assert "Traceback" not in process.stderr
    assert process.returncode == EXIT_SOME_FAILED, process.stderr
    assert counts["total"] == len(table)
    failures = pd.read_csv(output / "failures.csv").set_index("diaSourceId")
    assert failures.loc[bad_id, "reason_code"] == "bad_coordinates"
    drawn = {int(Path(p).stem) for p in png_files(output)}
    assert set(group["diaSourceId"]) - {bad_id} <= drawn
    assert counts["written"] + counts["failed"] == len(table)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--dataset-type", "no_such_type"], ["no_such_type", "not defined"]),
        (["--dataset-type", "dia_source_detector", "--where", "visit = "], ["--where", "visit ="]),
        (["--dataset-type", "dia_source_detector", "--where", "foo = 3"], ["--where", "foo"]),
    ],
)
def test_cli_bad_dataset_type_or_where_is_one_line(tmp_path, demo_repo, args, words):
    process = run_cli(cli(demo_repo, tmp_path / "out", *args))
    assert process.returncode == EXIT_USAGE
    assert_one_clear_line(process, *words)


@pytest.mark.parametrize("limit", ["-3", "0", "x"])
def test_cli_rejects_bad_limit(tmp_path, demo_repo, limit):
    process = run_cli(
        cli(demo_repo, tmp_path / "out", "--sqlitefile", str(demo_repo.apdb_file), "--limit", limit)
    )
    assert process.returncode == EXIT_USAGE
    assert "--limit" in process.stderr
    assert "Traceback" not in process.stderr


def test_cli_limit_that_leaves_sources_out_warns(tmp_path, demo_repo, group):
    catalog = str(write_catalog(tmp_path, group))
    whole = run_cli(cli(demo_repo, tmp_path / "whole", "--catalog", catalog, "--all", *FAST))
    assert summary_counts(whole.stdout)["total"] == len(group)
    assert "drawing only the first" not in whole.stderr
    cut = run_cli(cli(demo_repo, tmp_path / "cut", "--catalog", catalog, "--limit", "2", *FAST))
    assert summary_counts(cut.stdout)["total"] == 2
    assert f"{len(group)} DiaSources selected, drawing only the first 2 (--limit 2)" in cut.stderr
    assert "--all" in cut.stderr
    apdb = run_cli(
        cli(demo_repo, tmp_path / "apdb", "--sqlitefile", str(demo_repo.apdb_file), "--limit", "3", *FAST)
    )
    assert summary_counts(apdb.stdout)["total"] == 3
    assert f"{demo_repo.n_sources} DiaSources selected, drawing only the first 3 (--limit 3)" in apdb.stderr


def test_cli_mistyped_collection_is_a_usage_error(tmp_path, demo_repo):
    argv = [
        *cli(demo_repo, tmp_path / "out", "--sqlitefile", str(demo_repo.apdb_file)),
    ]
    argv[argv.index(demo_repo.collection)] = "DemoCam/runs/dmeo"
    process = run_cli(argv)
    assert process.returncode == EXIT_USAGE
    assert_one_clear_line(process, "DemoCam/runs/dmeo")


def test_cli_every_source_failed_exits_3(tmp_path, demo_repo, group):
    catalog = str(write_catalog(tmp_path, group))
    output = tmp_path / "out"
    process = run_cli(
        cli(demo_repo, output, "--catalog", catalog, "--all", "-c", "science_image_type='no_such_image'")
    )
    assert process.returncode == EXIT_ALL_FAILED, process.stderr
    counts = summary_counts(process.stdout)
    assert counts["failed"] == counts["total"] == len(group)
    assert "missing_exposure" in process.stdout


def test_cli_exit_status_some_failed_and_all_written(tmp_path, demo_repo, group):
    catalog = write_catalog(tmp_path, group)
    ok = run_cli(cli(demo_repo, tmp_path / "ok", "--catalog", str(catalog), "--all", *FAST))
    assert ok.returncode == EXIT_OK, ok.stderr
    resumed = run_cli(cli(demo_repo, tmp_path / "ok", "--catalog", str(catalog), "--all", *FAST))
    assert resumed.returncode == EXIT_OK and summary_counts(resumed.stdout)["skipped"] == len(group)
    table = group.copy()
    table.loc[0, "ra"] = float("nan")
    some = run_cli(
        cli(demo_repo, tmp_path / "some", "--catalog", str(write_catalog(tmp_path, table)), "--all", *FAST)
    )
    assert some.returncode == EXIT_SOME_FAILED, some.stderr


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kinds(pids: list[int]) -> set[str]:
    """``"worker"`` and ``"resource_tracker"`` for the processes of
    ``pids`` that are multiprocessing workers or its resource tracker."""
    kinds = set()
    for pid in pids:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" in command:
            kinds.add("resource_tracker")
        elif b"spawn_main" in command:
            kinds.add("worker")
    return kinds


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.skipif(available_cores() < 2, reason="njobs is capped at the cores: no worker on one core")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_parent_leaves_no_worker_or_resource_tracker(tmp_path, demo_repo, sig):
    # Two drawing processes (as many as two cores allow): the parent and a worker.
    argv = cli(demo_repo, tmp_path / "out", "--sqlitefile", str(demo_repo.apdb_file), "--all", "-j", "2")
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children: list[int] = []
    try:
        deadline = time.monotonic() + 120
        # The resource tracker and the worker, drawing.
        while time.monotonic() < deadline and process.poll() is None:
            children = _children(process.pid)
            if _kinds(children) == {"worker", "resource_tracker"} and list((tmp_path / "out").rglob("*.png")):
                break
            time.sleep(0.05)
        assert _kinds(children) == {"worker", "resource_tracker"}, "the worker did not start"
        process.send_signal(sig)
        process.wait(timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_running(pid) for pid in children):
            time.sleep(0.1)
        left = [pid for pid in children if _running(pid)]
        assert not left, f"still running after the parent was killed: {left}"
    finally:
        for pid in children:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()


@pytest.mark.skipif(available_cores() < 2, reason="njobs is capped at the cores: no worker on one core")
def test_ctrl_c_ends_in_one_line_and_the_same_command_finishes(tmp_path, demo_repo):
    """SIGINT to the whole process group (what Ctrl-C in a terminal sends),
    while a worker draws: no traceback from the command or its workers,
    status 130, no partial file; the same command then finishes the run."""
    output = tmp_path / "out"
    argv = cli(demo_repo, output, "--sqlitefile", str(demo_repo.apdb_file), "--all", "-j", "2", *FAST)
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        ctrl_c_while_drawing(process, output)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == (
        "plotImageSubtractionCutouts: interrupted. Every file written is complete; run the same command "
        "again to finish the run."
    )
    assert not [path for path in output.rglob("*") if ".partial" in path.name or path.name.startswith(".")]
    again = run_cli(argv)
    assert again.returncode in (EXIT_OK, EXIT_SOME_FAILED), again.stderr
    counts = summary_counts(again.stdout)
    assert counts["total"] == demo_repo.n_sources
    records = pd.read_csv(output / "records.csv")
    drawn = records[records["status"].isin(["written", "skipped"])]
    assert sorted(drawn["path"]) == sorted(str(p.relative_to(output)) for p in output.rglob("images/*/*.png"))


@pytest.mark.skipif(available_cores() < 2, reason="njobs is capped at the cores: no worker on one core")
@pytest.mark.parametrize("prog", ["plotAlertCutouts", "plotDiaObjectSequences"])
def test_ctrl_c_stops_the_workers_at_once(tmp_path, demo_repo, prog):
    """Ctrl-C while the workers start or draw: the command ends within
    seconds (its workers are stopped, not waited for), with one line, no
    traceback, status 130."""
    output = tmp_path / "out"
    scripts = Path(sys.executable).parent
    if prog == "plotAlertCutouts":
        packets = tmp_path / "packets"
        packets.mkdir()
        avro = Path(__file__).parent / "data" / "ztf" / "472263571115115000.avro"
        for k in range(60):
            shutil.copy(avro, packets / f"p{k:02d}.avro")
        argv = [str(scripts / prog), str(packets), str(output), "-j", "2"]
    else:
        argv = [str(scripts / prog), str(demo_repo.root), str(output), "--collections", demo_repo.collection]
        argv += ["--sqlitefile", str(demo_repo.apdb_file), "--most-epochs", "6", "-j", "2"]
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        # The workers draw: the first image is written.
        while time.monotonic() < deadline and process.poll() is None and not list(output.rglob("*.png")):
            time.sleep(0.02)
        assert process.poll() is None, "the run ended before it could be interrupted"
        os.killpg(process.pid, signal.SIGINT)
        signalled = time.monotonic()
        _, stderr = process.communicate(timeout=120)
        took = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].startswith(f"{prog}: interrupted.")
    assert took < 10, f"{took:.1f} s after Ctrl-C"


APDB_COLUMNS = Path(__file__).parent / "data" / "apdb_DiaSource_columns.csv"
"""The DiaSource columns of sdm_schemas' apdb.yaml (name, type, nullable)."""

SCHEMA_DTYPES = {
    "long": "Int64",
    "int": "Int32",
    "short": "Int16",
    "double": "Float64",
    "float": "Float32",
    "boolean": "boolean",
    "char": "string",
    "string": "string",
}
"""pandas nullable dtypes of the APDB types (as a reader that keeps NULLs
gives them)."""


def test_rows_with_the_real_apdb_schema_and_nulls_are_drawn(tmp_path, butler, group):
    """Every DiaSource column of the real APDB schema, with its type as a
    pandas nullable dtype and NULL in every nullable column: the sources
    are drawn; a NULL ra (not nullable in the schema) fails its row only.
    """
    schema = pd.read_csv(APDB_COLUMNS)
    n = len(group)
    columns = {}
    for name, kind, nullable in zip(schema["name"], schema["datatype"], schema["nullable"], strict=True):
        if name in group.columns and not nullable:
            values = group[name].tolist()
        elif kind == "boolean":
            values = [False] * n
        elif kind in ("char", "string"):
            values = ["r"] * n
        else:
            values = [1] * n
        if nullable:
            values = [None] * n
        columns[name] = pd.array(values, dtype=SCHEMA_DTYPES[kind])
    table = pd.DataFrame(columns)
    table["ra"] = table["ra"].astype("Float64")
    table.loc[1, "ra"] = pd.NA
    result = make_task(tmp_path / "out").run(table, butler)
    records = result.records.set_index(result.records["diaSourceId"].map(int))
    ids = [int(i) for i in group["diaSourceId"]]
    assert sorted(records.index) == sorted(ids)
    assert records.loc[ids[1], "reason_code"] == "bad_coordinates"
    assert set(records.drop(index=ids[1])["status"]) == {"written"}
