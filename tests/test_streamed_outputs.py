"""The views of an output directory (manifests, failures, records.csv,
summary, the vetting page's data file) written a chunk of sources at a
time: the same bytes as the whole table written at once, for record files
of several writers, records replaced by later writers, PNGs since removed,
ids beyond 2**63 - 1 and sources that lack some records.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lsst.analysis.ap.outputs import ledger as ledger_module
from lsst.analysis.ap.outputs.ledger import GroupRecordFiles, Ledger, group_part_path, read_record_csv
from lsst.analysis.ap.outputs.manifests import MANIFEST_METADATA, join_url, write_manifests
from lsst.analysis.ap.outputs.store import OutputError, OutputStore
from lsst.analysis.ap.records import RECORD_COLUMNS
from lsst.analysis.ap.vetting import page as vetting_page
from lsst.analysis.ap.vetting.page import write_output_vetting_page, write_vetting_page

URL_ROOT = "https://example.org/cut outs"
VIEWS = ("manifest.csv", "images/manifest.csv", "failures.csv", "records.csv", "summary.json")


def synthetic_records(n: int, seed: int, first_id: int = 10**12) -> pd.DataFrame:
    """``n`` records of shuffled ids over 4 visit × detectors, every status,
    NaN coordinates, quoted and NA-like reasons.
    """
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.arange(n, dtype=np.uint64) * np.uint64(7) + np.uint64(first_id))
    status = rng.choice(["written", "skipped", "failed"], n, p=[0.6, 0.2, 0.2])
    frame = pd.DataFrame(
        {
            "diaSourceId": ids,
            "instrument": "Cam",
            "visit": 1000 + rng.integers(0, 2, n),
            "detector": rng.integers(0, 2, n),
            "band": rng.choice(["g", "r", "NA", ""], n),
            "ra": np.where(rng.random(n) < 0.05, np.nan, rng.uniform(0, 360, n)),
            "dec": rng.uniform(-90, 90, n),
            "path": [f"images/{int(i) // 100 * 100}/{int(i)}.png" for i in ids],
            "status": status,
            "reason_code": np.where(status == "failed", "off_image", ""),
            "reason": np.where(status == "failed", rng.choice(['off, "far" off', "None"], n), ""),
            "output_path": "/out",
            "url_root": URL_ROOT,
            "display_limits": '{"template": [[-1.5, 2.0]]}',
            "resampled": rng.random(n) < 0.5,
        }
    )
    if frame["diaSourceId"].max() <= np.iinfo(np.int64).max:
        frame["diaSourceId"] = frame["diaSourceId"].astype(np.int64)
    return frame


def fill_directory(root: Path, frame: pd.DataFrame, seed: int) -> OutputStore:
    """Record files of two writers (the second replaces a tenth of the
    records with failures) and the PNGs of 90 % of the drawn sources.
    """
    store = OutputStore(root)
    ledger = Ledger(store)
    for (instrument, visit, detector), group in frame.groupby(["instrument", "visit", "detector"]):
        ledger.write_part(group_part_path(instrument, visit, detector, "20260101T000000000000Z-a"), group)
    redone = frame.sample(frac=0.1, random_state=seed).assign(
        status="failed", reason_code="error", reason="redone", path=""
    )
    ledger.write_part(group_part_path("Cam", 1000, 1, "20260101T000001000000Z-b"), redone)
    drawn = frame.loc[frame["status"] != "failed", "path"]
    for path in drawn.sample(frac=0.9, random_state=seed):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"png")
    return store


def expected_records(root: Path, frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The latest record of each source whose PNG (if any) is present,
    sorted by id: computed here with pandas from what `fill_directory` did.
    """
    redone = frame.sample(frac=0.1, random_state=seed).assign(
        status="failed", reason_code="error", reason="redone", path=""
    )
    latest = pd.concat([frame.astype({"diaSourceId": object}), redone.astype({"diaSourceId": object})])
    latest = latest.drop_duplicates("diaSourceId", keep="last")
    drawn = latest["status"] != "failed"
    present = latest["path"].map(lambda p: (root / p).is_file() if p else False)
    latest = latest[~drawn | present]
    return latest.sort_values("diaSourceId", key=lambda s: s.map(int)).reset_index(drop=True)


def read_views(root: Path) -> dict[str, bytes]:
    return {name: (root / name).read_bytes() for name in VIEWS if (root / name).exists()}


@pytest.mark.parametrize("first_id", [10**12, 2**63 - 2000], ids=["int64", "beyond-2**63"])
def test_streamed_views_equal_the_whole_table_written_at_once(tmp_path, first_id):
    frame = synthetic_records(3000, seed=1, first_id=first_id)
    streamed = fill_directory(tmp_path / "streamed", frame, seed=1)
    whole = fill_directory(tmp_path / "whole", frame, seed=1)

    write_manifests(None, streamed, URL_ROOT, chunk_rows=97)
    write_manifests(None, whole, URL_ROOT, chunk_rows=10**9)

    views = read_views(tmp_path / "streamed")
    assert set(views) == set(VIEWS)
    assert views == read_views(tmp_path / "whole")

    # ... and they are the views of the latest present records.
    expected = expected_records(tmp_path / "streamed", frame, seed=1)
    records = read_record_csv(views["records.csv"], "records.csv")
    assert [int(i) for i in records["diaSourceId"]] == [int(i) for i in expected["diaSourceId"]]
    assert records["status"].tolist() == expected["status"].tolist()
    assert records["reason"].tolist() == expected["reason"].tolist()
    present = expected[expected["status"] != "failed"]
    manifest = pd.read_csv(io.BytesIO(views["manifest.csv"]), dtype=str, keep_default_na=False)
    assert manifest["external_id"].tolist() == [str(int(i)) for i in present["diaSourceId"]]
    assert manifest["location:1"].tolist() == [join_url(URL_ROOT, p) for p in present["path"]]
    assert [c for c in manifest.columns if c.startswith("metadata:")] == [
        f"metadata:{name}" for name in MANIFEST_METADATA
    ]
    failures = pd.read_csv(io.BytesIO(views["failures.csv"]), dtype=str, keep_default_na=False)
    assert failures["reason"].tolist() == expected.loc[expected["status"] == "failed", "reason"].tolist()
    summary = json.loads(views["summary.json"])
    assert summary["total"] == len(expected)
    assert (
        summary["failed_by_reason"]
        == expected.loc[expected["status"] == "failed", "reason_code"].value_counts().sort_index().to_dict()
    )


def test_union_chunks_hold_at_most_chunk_rows_sources(tmp_path):
    frame = synthetic_records(2000, seed=2)
    store = fill_directory(tmp_path, frame, seed=2)
    ledger = Ledger(store)
    chunks = list(ledger.union_chunks(ledger.list_parts(), chunk_rows=150))
    assert len(chunks) == -(-len(frame) // 150)
    assert max(len(chunk) for chunk in chunks) <= 150
    ids = [int(i) for chunk in chunks for i in chunk["diaSourceId"]]
    assert ids == sorted(ids)
    assert ids == [int(i) for i in expected_records(tmp_path, frame, seed=2)["diaSourceId"]]
    assert ids == [int(i) for i in ledger.union(ledger.list_parts())["diaSourceId"]]


def test_views_of_no_record(tmp_path):
    """No record file: header-only views, no panoptes manifest."""
    files = write_manifests(None, tmp_path, URL_ROOT, chunk_rows=10)
    assert files.panoptes is None
    assert not (tmp_path / "images" / "manifest.csv").exists()
    assert (tmp_path / "records.csv").read_text().strip() == ",".join(RECORD_COLUMNS)
    assert json.loads((tmp_path / "summary.json").read_text())["total"] == 0


def test_a_view_that_cannot_be_written_leaves_no_partial_file(tmp_path):
    """An error in the middle of the streamed views: each view is whole (the
    earlier one) or absent, and no temporary is left.
    """
    frame = synthetic_records(500, seed=3)
    store = fill_directory(tmp_path, frame, seed=3)
    write_manifests(None, store, URL_ROOT, chunk_rows=50)
    before = read_views(tmp_path)
    # A directory where records.csv should be renamed into place.
    (tmp_path / "records.csv").unlink()
    (tmp_path / "records.csv").mkdir()
    Ledger(store).write_part(group_part_path("Cam", 1000, 0, "20260101T000002000000Z-c"), frame.iloc[:5])
    with pytest.raises(OutputError, match="records.csv"):
        write_manifests(None, store, URL_ROOT, chunk_rows=50)
    assert not list(tmp_path.glob(".*.partial"))
    for name in ("summary.json",):
        assert (tmp_path / name).read_bytes() == before[name]


@pytest.mark.parametrize(
    ("missing", "spill_bytes"),
    [(0, None), (400, None), (0, 64)],
    ids=["every-source", "sources-missing", "columns-spilled-to-files"],
)
def test_streamed_vetting_data_equals_the_page_of_the_whole_table(
    tmp_path, monkeypatch, missing, spill_bytes
):
    """The page's data file written from records.csv a chunk at a time is
    the one of the whole table, also when integer and boolean source
    columns are widened because some records have no source, and when
    each column's values move from memory to a temporary file.
    """
    if spill_bytes is not None:
        monkeypatch.setattr(vetting_page, "_SPILL_MEMORY_BYTES", spill_bytes)
    frame = synthetic_records(1500, seed=4)
    store = fill_directory(tmp_path, frame, seed=4)
    write_manifests(None, store, URL_ROOT, chunk_rows=100)
    records = read_record_csv((tmp_path / "records.csv").read_bytes(), "records.csv")
    rng = np.random.default_rng(4)
    ids = records["diaSourceId"].to_numpy()[missing:]
    sources = pd.DataFrame(
        {
            "diaSourceId": ids,
            "snr": rng.normal(10, 3, len(ids)),
            "psfNdata": rng.integers(1, 50, len(ids)),
            "pixelFlags_saturated": rng.random(len(ids)) < 0.2,
            "diaObjectId": rng.integers(1, 99, len(ids)),
        }
    )
    streamed = write_output_vetting_page(store, sources, title="T", chunk_rows=64)
    data = (tmp_path / "vetting" / "records.js").read_bytes()
    page = (tmp_path / "index.html").read_bytes()
    whole = write_vetting_page(tmp_path / "whole", records, sources, title="T")
    assert streamed.n_records == whole.n_records == len(records)
    assert data == (tmp_path / "whole" / "vetting" / "records.js").read_bytes()
    assert page == (tmp_path / "whole" / "index.html").read_bytes()
    payload = json.loads(data.decode().removeprefix("window.CUTOUT_RECORDS = ").rstrip().rstrip(";"))
    names = [c["name"] for c in payload["columns"]]
    psf_ndata = payload["values"][names.index("psfNdata")]
    if missing:
        assert psf_ndata[:missing] == [None] * missing
        assert all(isinstance(v, float) for v in psf_ndata[missing:])
    else:
        assert all(isinstance(v, int) for v in psf_ndata)


@pytest.mark.parametrize(
    ("first_id", "missing"),
    [(10**12, 0), (10**12, 300), (2**63 - 2000, 0)],
    ids=["every-source", "sources-missing", "beyond-2**63"],
)
def test_page_from_the_union_in_memory_equals_the_page_read_from_records_csv(tmp_path, first_id, missing):
    """A union read as one chunk is handed to the page by `write_manifests`
    (no read-back of records.csv): the page's files are those built from
    records.csv, for records replaced by a later writer, PNGs since
    removed, NA-like and quoted text, NaN coordinates, ids beyond
    2**63 - 1, merged labels and sources that lack some records.
    """
    frame = synthetic_records(1200, seed=5, first_id=first_id)
    in_memory = fill_directory(tmp_path / "memory", frame, seed=5)
    from_file = fill_directory(tmp_path / "file", frame, seed=5)
    rng = np.random.default_rng(5)
    ids = frame["diaSourceId"].to_numpy()[missing:]
    sources = pd.DataFrame(
        {
            "diaSourceId": ids.astype(np.int64) if first_id < 2**62 else ids.astype(object),
            "snr": rng.normal(10, 3, len(ids)),
            "psfNdata": rng.integers(1, 50, len(ids)),
            "pixelFlags_saturated": rng.random(len(ids)) < 0.2,
            "diaObjectId": rng.integers(1, 99, len(ids)),
        }
    )
    if first_id >= 2**62:
        sources = None
    labelled = frame[["diaSourceId"]].iloc[::7].assign(label="real", label_time="2026-01-01T00:00:00Z")
    for root in (tmp_path / "memory", tmp_path / "file"):
        labelled.to_csv(root / "records_labelled.csv", index=False)

    files = write_manifests(None, in_memory, URL_ROOT)
    assert files.records is not None
    write_output_vetting_page(in_memory, sources, title="T", records=files.records)
    assert write_manifests(None, from_file, URL_ROOT, chunk_rows=100).records is None
    write_output_vetting_page(from_file, sources, title="T")

    for name in ("index.html", "vetting/records.js", *VIEWS):
        assert (tmp_path / "memory" / name).read_bytes() == (tmp_path / "file" / name).read_bytes(), name
    data = (tmp_path / "memory" / "vetting" / "records.js").read_text()
    payload = json.loads(data.removeprefix("window.CUTOUT_RECORDS = ").rstrip().rstrip(";"))
    names = [c["name"] for c in payload["columns"]]
    assert payload["count"] == len(read_record_csv((tmp_path / "file" / "records.csv").read_bytes(), "r"))
    assert payload["values"][names.index("label")].count("real") > 0


def test_a_later_run_of_one_task_wins_whichever_process_drew_it(tmp_path, monkeypatch):
    """Two runs of one task share its writer token; a source drawn by a
    worker in the first run (failed) and by the parent, whose process id is
    lower, in the second (written) has the second run's record as its
    latest, in the views and for the next resume."""
    rows = synthetic_records(10, 3).assign(instrument="Cam", visit=1000, detector=0, drawing="k", png_size=3)
    store = OutputStore(tmp_path)
    ledger = Ledger(store)
    token = "20260101T000000000000Z-a"
    monkeypatch.setattr(ledger_module.os, "getpid", lambda: 99999)
    first = rows.assign(status="failed", reason_code="error", reason="first run", path="")
    GroupRecordFiles(ledger, "Cam", 1000, 0, token).write(first.to_dict("records"))
    monkeypatch.setattr(ledger_module.os, "getpid", lambda: 100)
    second = rows.assign(status="written", reason_code="", reason="")
    GroupRecordFiles(ledger, "Cam", 1000, 0, token).write(second.to_dict("records"))
    for path in rows["path"]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"png")
    write_manifests(None, store, URL_ROOT)
    table = read_record_csv((tmp_path / "records.csv").read_bytes(), "records.csv")
    assert len(table) == 10 and (table["status"] == "written").all()
    assert len(ledger.prior_drawings("Cam", 1000, 0)) == 10
