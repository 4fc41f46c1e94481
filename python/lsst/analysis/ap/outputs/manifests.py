"""The files assembled from the per-source records (`lsst.analysis.ap.records`):
the Zooniverse subject-set manifest, the panoptes-cli manifest, the failure
list, the record list and the run summary.

Each unit of work (a visit × detector of a quantum, a worker, a Python
call) writes its records to a record file of its own
(`lsst.analysis.ap.outputs.ledger`); the manifests are always built from
the union of those files, so parallel, distributed and concurrent runs
give one correct manifest.
"""

from __future__ import annotations

__all__ = ("MANIFEST_METADATA", "RECORDS_FILE", "ManifestFiles", "join_url", "write_manifests")

import dataclasses
import json
import urllib.parse
from pathlib import Path

import pandas as pd
from lsst.resources import ResourcePath, ResourcePathExpression

from ..records import RECORD_COLUMNS, STATUS_FAILED, STATUS_SKIPPED, STATUS_WRITTEN, summarize
from .ledger import Ledger, record_csv_bytes, run_part_path
from .store import OutputStore

MANIFEST_METADATA = ("diaSourceId", "instrument", "visit", "detector", "band", "ra", "dec")
"""Catalog values carried into the manifests."""


@dataclasses.dataclass(frozen=True)
class ManifestFiles:
    """Files written by `write_manifests` (`None` where not written): local
    paths, or URIs for other stores.
    """

    zooniverse: Path | ResourcePath | None
    panoptes: Path | ResourcePath | None
    failures: Path | ResourcePath
    summary: Path | ResourcePath


def join_url(url_root: str, path: str) -> str:
    """URL of a file at relative ``path`` under ``url_root``.

    The path's parts are percent-encoded (spaces, ``#``, ``?``, non-ASCII);
    the root's own path is encoded where it is not already; a query string
    or fragment of the root (a signed URL: ``https://host/c?sig=abc``) stays
    after the joined path.
    """
    parts = urllib.parse.urlsplit(url_root)
    base = urllib.parse.quote(parts.path, safe="/%:@!$&'()*+,;=~")
    relative = "/".join(urllib.parse.quote(part, safe="") for part in path.strip("/").split("/"))
    return urllib.parse.urlunsplit(
        (parts.scheme, parts.netloc, base.rstrip("/") + "/" + relative, parts.query, parts.fragment)
    )


RECORDS_FILE = "records.csv"
"""Every source the output directory has seen (its latest record), rebuilt
from the record files (`lsst.analysis.ap.outputs.ledger`) by every run."""

_MAX_REBUILDS = 50
"""Rebuilds of the views while other writers keep adding record files."""


def _write_views(store: OutputStore, records: pd.DataFrame, url_root: str | None) -> ManifestFiles:
    """Write the manifests, failure list, record list and summary of the
    union of the records.
    """
    present = records[records["status"].isin([STATUS_WRITTEN, STATUS_SKIPPED])]
    zooniverse = None
    if url_root:
        manifest = pd.DataFrame(
            {
                "external_id": present["diaSourceId"].to_numpy(),
                "location:1": [join_url(url_root, path) for path in present["path"]],
                **{f"metadata:{name}": present[name].to_numpy() for name in MANIFEST_METADATA},
            }
        )
        store.write("manifest.csv", record_csv_bytes(manifest))
        zooniverse = store.display("manifest.csv")
    else:
        # A manifest of an earlier run that this run would not write is stale.
        store.remove("manifest.csv")
    panoptes = None
    if len(present):
        panoptes_frame = pd.DataFrame(
            {
                "filename": [path.removeprefix("images/") for path in present["path"]],
                **{f"#{name}": present[name].to_numpy() for name in MANIFEST_METADATA},
            }
        )
        store.write("images/manifest.csv", record_csv_bytes(panoptes_frame))
        panoptes = store.display("images/manifest.csv")
    else:
        store.remove("images/manifest.csv")
    failed = records[records["status"] == STATUS_FAILED]
    store.write(
        "failures.csv",
        record_csv_bytes(failed[["diaSourceId", "instrument", "visit", "detector", "reason_code", "reason"]]),
    )
    store.write(RECORDS_FILE, record_csv_bytes(records[list(RECORD_COLUMNS)]))
    store.write("summary.json", (json.dumps(summarize(records), indent=2) + "\n").encode())
    return ManifestFiles(
        zooniverse=zooniverse,
        panoptes=panoptes,
        failures=store.display("failures.csv"),
        summary=store.display("summary.json"),
    )


def write_manifests(
    records: pd.DataFrame | None,
    output: OutputStore | ResourcePathExpression,
    url_root: str | None,
    *,
    token: str | None = None,
) -> ManifestFiles:
    """Write the manifests, the failure list, the record list and the
    summary of an output directory.

    Parameters
    ----------
    records
        Records of this run.  With ``token``, those not yet in a record
        file of that writer (sources that never reached a visit × detector)
        are written to one; the views are built from the record files.
    output
        Output directory (holding ``images/``): an `OutputStore`, a local
        path or a URI.
    url_root
        URL under which the output directory will be served to Zooniverse;
        with `None` no Zooniverse manifest is written.
    token
        Writer token of this run's record files.

    Notes
    -----
    ``manifest.csv`` (Zooniverse subject-set import form) has one row per
    PNG present: ``external_id``, ``location:1`` (the PNG's URL under
    ``url_root``, with its chunk directory) and ``metadata:…`` columns.
    ``images/manifest.csv`` is a panoptes-cli manifest listing the PNG files
    relative to it, with identifying columns hidden from volunteers
    (``#diaSourceId``, …).  ``failures.csv`` lists every failed source with
    its reason, ``records.csv`` the latest record of every source and
    ``summary.json`` holds the counts.

    All of them are views of the union of the directory's record files,
    each written atomically.  Writers that finish at the same time may
    overwrite each other's views; each writer rebuilds them until no new
    record file appeared while it wrote, so the last views written hold
    every writer's records.

    Raises
    ------
    lsst.analysis.ap.outputs.store.OutputError
        Raised when a file cannot be written (its name and the cause are
        in the message); every file present is complete, and a re-run
        writes the views again.

    """
    store = output if isinstance(output, OutputStore) else OutputStore(output)
    ledger = Ledger(store)
    if token is not None and records is not None and len(records):
        parts = ledger.list_parts()
        done = ledger.union([p for p in parts if token in p.rsplit("/", 1)[-1]])
        rest = records[~records["diaSourceId"].isin(done["diaSourceId"])]
        if len(rest):
            ledger.write_part(run_part_path(token), rest)
    parts = ledger.list_parts()
    for _ in range(_MAX_REBUILDS):
        files = _write_views(store, ledger.union(parts), url_root)
        latest = ledger.list_parts()
        if latest == parts:
            break
        parts = latest
    return files
