"""The files assembled from the per-source records (`lsst.analysis.ap.records`):
the Zooniverse subject-set manifest, the panoptes-cli manifest, the failure
list, the record list and the run summary.

Each unit of work (a quantum, a worker, a Python call) returns a record
table; the manifests are always built from the union of those tables, so
parallel and distributed runs give one correct manifest.
"""

from __future__ import annotations

__all__ = ("MANIFEST_METADATA", "RECORDS_FILE", "ManifestFiles", "join_url", "write_manifests")

import dataclasses
import io
import json
from pathlib import Path

import pandas as pd

from ..records import RECORD_COLUMNS, STATUS_FAILED, STATUS_SKIPPED, STATUS_WRITTEN, summarize
from .atomic import atomic_write_bytes

MANIFEST_METADATA = ("diaSourceId", "instrument", "visit", "detector", "band", "ra", "dec")
"""Catalog values carried into the manifests."""


@dataclasses.dataclass(frozen=True)
class ManifestFiles:
    """Files written by `write_manifests` (`None` where not written)."""

    zooniverse: Path | None
    panoptes: Path | None
    failures: Path
    summary: Path


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def join_url(url_root: str, path: str) -> str:
    """``url_root`` and a relative path joined by exactly one slash."""
    return url_root.rstrip("/") + "/" + path.lstrip("/")


RECORDS_FILE = "records.csv"
"""Every source the output directory has seen, latest record first; earlier
runs (resumes, one call per table) are merged with it."""


def _merge_with_earlier(records: pd.DataFrame, earlier_file: Path) -> pd.DataFrame:
    """``records`` plus the records of earlier runs into the same directory
    that ``records`` does not supersede; rows whose PNG is gone are dropped.
    """
    frames = [records]
    if earlier_file.exists():
        earlier = pd.read_csv(
            earlier_file, dtype={"band": str, "reason_code": str, "reason": str, "url_root": str}
        )
        earlier = earlier[~earlier["diaSourceId"].isin(records["diaSourceId"])]
        present = earlier["status"].isin([STATUS_WRITTEN, STATUS_SKIPPED])
        exists = [bool(p) and (earlier_file.parent / str(p)).exists() for p in earlier["path"]]
        frames.insert(0, earlier[~present | pd.Series(exists, index=earlier.index, dtype=bool)])
    merged = pd.concat(frames, ignore_index=True).fillna(
        {"band": "", "reason_code": "", "reason": "", "url_root": ""}
    )
    return merged.sort_values("diaSourceId", kind="stable").drop_duplicates("diaSourceId", keep="last")


def write_manifests(records: pd.DataFrame, output_path: Path, url_root: str | None) -> ManifestFiles:
    """Write the manifests, the failure list and the summary of a run.

    Parameters
    ----------
    records
        Union of the record tables of every unit of work of the run.
    output_path
        Output directory of the run (holding ``images/``).
    url_root
        URL under which ``output_path`` will be served to Zooniverse; with
        `None` no Zooniverse manifest is written.

    Notes
    -----
    ``manifest.csv`` (Zooniverse subject-set import form) has one row per
    PNG present: ``external_id``, ``location:1`` (the PNG's URL under
    ``url_root``, with its chunk directory) and ``metadata:…`` columns.
    ``images/manifest.csv`` is a panoptes-cli manifest listing the PNG files
    relative to it, with identifying columns hidden from volunteers
    (``#diaSourceId``, …).  ``failures.csv`` lists every failed source with
    its reason; ``summary.json`` holds the counts.

    """
    output_path = Path(output_path)
    records = _merge_with_earlier(records, output_path / RECORDS_FILE)
    present = records[records["status"].isin([STATUS_WRITTEN, STATUS_SKIPPED])]
    zooniverse = None
    # Manifests of earlier runs that this run would not write are stale.
    (output_path / "manifest.csv").unlink(missing_ok=True)
    (output_path / "images" / "manifest.csv").unlink(missing_ok=True)
    if url_root:
        manifest = pd.DataFrame(
            {
                "external_id": present["diaSourceId"].to_numpy(),
                "location:1": [join_url(url_root, path) for path in present["path"]],
                **{f"metadata:{name}": present[name].to_numpy() for name in MANIFEST_METADATA},
            }
        )
        zooniverse = output_path / "manifest.csv"
        atomic_write_bytes(zooniverse, _csv_bytes(manifest))
    panoptes = None
    if len(present):
        panoptes_frame = pd.DataFrame(
            {
                "filename": [path.removeprefix("images/") for path in present["path"]],
                **{f"#{name}": present[name].to_numpy() for name in MANIFEST_METADATA},
            }
        )
        panoptes = output_path / "images" / "manifest.csv"
        atomic_write_bytes(panoptes, _csv_bytes(panoptes_frame))
    failed = records[records["status"] == STATUS_FAILED]
    failures = output_path / "failures.csv"
    atomic_write_bytes(
        failures,
        _csv_bytes(failed[["diaSourceId", "instrument", "visit", "detector", "reason_code", "reason"]]),
    )
    atomic_write_bytes(output_path / RECORDS_FILE, _csv_bytes(records[list(RECORD_COLUMNS)]))
    summary = output_path / "summary.json"
    atomic_write_bytes(summary, (json.dumps(summarize(records), indent=2) + "\n").encode())
    return ManifestFiles(zooniverse=zooniverse, panoptes=panoptes, failures=failures, summary=summary)
