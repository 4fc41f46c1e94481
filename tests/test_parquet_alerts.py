"""Alert packets stored as Parquet, one alert per row, as the Fink broker
keeps the ZTF stream: the real file in ``tests/data/fink``."""

from __future__ import annotations

import gzip
import io
import logging
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet
from astropy.io import fits
from PIL import Image

from lsst.analysis.ap.display.renderer import TripletRenderer
from lsst.analysis.ap.images.alerts import read_packets
from lsst.analysis.ap.plotImageSubtractionCutouts import PlotImageSubtractionCutoutsConfig
from lsst.analysis.ap.standalone import make_alert_cutouts

FINK_FILE = Path(__file__).parent / "data" / "fink" / "ztf_20200101_part-00001.snappy.parquet"


def fink_rows() -> list[dict]:
    return pyarrow.parquet.read_table(FINK_FILE).to_pylist()


def stamp_of(row: dict, field: str) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ZTF stamps have a non-standard SIMPLE card
        data = fits.getdata(io.BytesIO(gzip.decompress(row[field]["stampData"])))
    return np.asarray(data, dtype=np.float32)


def test_each_row_of_a_fink_parquet_file_is_a_packet():
    packets = list(read_packets(FINK_FILE))
    rows = fink_rows()
    assert [name for name, _ in packets] == [f"{FINK_FILE}#{i}" for i in range(len(rows))]
    assert [record["candid"] for _, record in packets] == [row["candid"] for row in rows]


def test_fink_parquet_alerts_give_the_packet_stamps_and_fields(tmp_path):
    config = PlotImageSubtractionCutoutsConfig()
    config.sizes = [63]
    config.save_as_numpy = True
    result = make_alert_cutouts([FINK_FILE], tmp_path, config=config)
    rows = fink_rows()
    assert result.summary["written"] == len(rows) == 3 and result.summary["failed"] == 0
    records = result.records.set_index("diaSourceId")
    for row in rows:
        candid = row["candid"]
        record = records.loc[candid]
        assert record["status"] == "written"
        assert (tmp_path / record["path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        chunk = Path(record["path"]).parent.name
        for role, field in (
            ("sci", "cutoutScience"),
            ("temp", "cutoutTemplate"),
            ("diff", "cutoutDifference"),
        ):
            saved = np.load(tmp_path / "numpy" / chunk / f"{candid}_{role}_63.npy")[0]
            expected = stamp_of(row, field)
            if role == "diff" and row["candidate"]["isdiffpos"] == "f":
                expected = -expected  # reference − science, drawn as science − reference
            np.testing.assert_array_equal(saved, expected)
        assert record["ra"] == row["candidate"]["ra"] and record["dec"] == row["candidate"]["dec"]
    manifest = pd.read_csv(tmp_path / "images" / "manifest.csv")
    assert sorted(manifest["#diaSourceId"]) == sorted(row["candid"] for row in rows)


def test_a_damaged_parquet_file_fails_by_name_and_the_others_are_drawn(tmp_path):
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(FINK_FILE.read_bytes()[:50_000])
    empty = tmp_path / "empty.parquet"
    pyarrow.parquet.write_table(pyarrow.parquet.read_table(FINK_FILE).slice(0, 0), empty)
    out = tmp_path / "out"
    command = Path(sys.executable).parent / "plotAlertCutouts"
    done = subprocess.run(
        [str(command), str(FINK_FILE), str(damaged), str(empty), str(out)], capture_output=True, text=True
    )
    assert done.returncode == 1, done.stderr  # some failed
    failures = pd.read_csv(out / "failures.csv")
    reasons = " | ".join(failures["reason"])
    assert f"{damaged}: the Parquet file is damaged after 0 row(s)" in reasons
    assert f"{empty}: the Parquet file holds no alerts" in reasons
    assert len(pd.read_csv(out / "images" / "manifest.csv")) == 3


def test_real_negative_subtraction_alerts_are_drawn_science_minus_reference(tmp_path):
    """The three real alerts are ``isdiffpos = 'f'``: ZTF cut their difference
    stamps from the reference − science image (the candidate is positive
    there and the stamp anti-correlates with the science stamp); they are
    drawn as science − reference, the candidate dark.
    """
    config = PlotImageSubtractionCutoutsConfig()
    config.sizes = [63]
    config.save_as_numpy = True
    result = make_alert_cutouts([FINK_FILE], tmp_path, config=config)
    records = result.records.set_index("diaSourceId")
    rows = fink_rows()
    assert {row["candidate"]["isdiffpos"] for row in rows} == {"f"}
    renderer = TripletRenderer([63], True)
    box = renderer.panel_boxes[0][2]
    for row in rows:
        stamp = stamp_of(row, "cutoutDifference")
        science = stamp_of(row, "cutoutScience")
        centre = slice(24, 39)
        assert np.corrcoef(stamp[centre, centre].ravel(), science[centre, centre].ravel())[0, 1] < -0.5
        assert stamp[31, 31] > np.median(stamp)
        record = records.loc[row["candid"]]
        chunk = Path(record["path"]).parent.name
        drawn = np.load(tmp_path / "numpy" / chunk / f"{row['candid']}_diff_63.npy")[0]
        np.testing.assert_array_equal(drawn, -stamp)
        panel = np.asarray(Image.open(tmp_path / record["path"]).convert("L"), dtype=float)[box.slices]
        n = panel.shape[0]
        assert panel[n // 2 - 8 : n // 2 + 8, n // 2 - 8 : n // 2 + 8].mean() < np.median(panel) - 30


def test_ztf_runs_do_not_warn_of_missing_apdb_columns(tmp_path, caplog):
    """ZTF PNGs show ZTF's own fields: no warning that APDB columns are
    "shown as absent"; a Rubin table without them still gets it.
    """
    caplog.set_level(logging.WARNING)
    make_alert_cutouts([FINK_FILE], tmp_path / "ztf", config=PlotImageSubtractionCutoutsConfig())
    assert not [r for r in caplog.records if "lacks column" in r.getMessage()]
