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

__all__ = (
    "MANIFEST_METADATA",
    "RECORDS_FILE",
    "SEQUENCE_DIR",
    "SEQUENCE_EPOCHS_FILE",
    "SEQUENCE_LOCK_FILE",
    "SEQUENCE_OBJECTS_FILE",
    "ManifestFiles",
    "join_url",
    "url_joiner",
    "write_manifests",
)

import dataclasses
import json
import logging
import re
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

import pandas as pd
from lsst.resources import ResourcePath, ResourcePathExpression

from ..records import RECORD_COLUMNS, STATUS_FAILED, STATUS_SKIPPED, STATUS_WRITTEN, summary_of_counts
from .ledger import UNION_CHUNK_ROWS, Ledger, record_csv_bytes, run_part_path
from .store import OutputStore

_LOG = logging.getLogger(__name__)

MANIFEST_METADATA = ("diaSourceId", "instrument", "visit", "detector", "band", "ra", "dec")
"""Catalog values carried into the manifests."""


@dataclasses.dataclass(frozen=True)
class ManifestFiles:
    """Files written by `write_manifests` (`None` where not written): local
    paths, or URIs for other stores.

    ``records`` is the union the views were written from (record columns
    and the record files' own), when it was read as one chunk; `None` when
    it was read in several (it is then in ``records.csv`` only).
    """

    zooniverse: Path | ResourcePath | None
    panoptes: Path | ResourcePath | None
    failures: Path | ResourcePath
    summary: Path | ResourcePath
    records: pd.DataFrame | None = dataclasses.field(default=None, compare=False, repr=False)


def join_url(url_root: str, path: str) -> str:
    """URL of a file at relative ``path`` under ``url_root``.

    The path's parts are percent-encoded (spaces, ``#``, ``?``, non-ASCII);
    the root's own path is encoded where it is not already; a query string
    or fragment of the root (a signed URL: ``https://host/c?sig=abc``) stays
    after the joined path.
    """
    return url_joiner(url_root)(path)


_MARK = "\uffff"
"""Stand-in for the joined path while the root is assembled (not a
character of a URL, and left alone by `urllib.parse.urlunsplit`)."""

_UNRESERVED = re.compile(r"[A-Za-z0-9_.~/-]*")
"""Paths that percent-encoding leaves as they are."""


def url_joiner(url_root: str) -> Callable[[str], str]:
    """`join_url` for one ``url_root``: the root is parsed once, for the
    URLs of many files.
    """
    parts = urllib.parse.urlsplit(url_root)
    base = urllib.parse.quote(parts.path, safe="/%:@!$&'()*+,;=~")
    template = urllib.parse.urlunsplit(
        (parts.scheme, parts.netloc, base.rstrip("/") + "/" + _MARK, parts.query, parts.fragment)
    )
    if _MARK in url_root or template.count(_MARK) != 1:
        head, tail = None, None
    else:
        head, _, tail = template.partition(_MARK)

    def join(path: str) -> str:
        relative = path.strip("/")
        if not _UNRESERVED.fullmatch(relative):
            relative = "/".join(urllib.parse.quote(part, safe="") for part in relative.split("/"))
        if head is None:
            return urllib.parse.urlunsplit(
                (parts.scheme, parts.netloc, base.rstrip("/") + "/" + relative, parts.query, parts.fragment)
            )
        return head + relative + tail

    return join


RECORDS_FILE = "records.csv"
"""Every source the output directory has seen (its latest record), rebuilt
from the record files (`lsst.analysis.ap.outputs.ledger`) by every run."""

SEQUENCE_DIR = "sequences"
"""Subdirectory of the output directory holding the sequence products
(`lsst.analysis.ap.sequences`)."""

SEQUENCE_OBJECTS_FILE = f"{SEQUENCE_DIR}/objects.csv"
"""The DiaObjects whose sequences the output directory holds, one row each
(status, frames, contact sheet...)."""

SEQUENCE_EPOCHS_FILE = f"{SEQUENCE_DIR}/epochs.csv"
"""The epochs of those DiaObjects, one row each (with the ``diaSourceId`` of
each detection)."""

SEQUENCE_LOCK_FILE = f"{SEQUENCE_DIR}/.tables.lock"
"""Lock file of the sequence tables: a run holds it while it merges its
objects into the tables and writes them (`OutputStore.locked`), so that
concurrent runs into one directory lose none of each other's rows."""

_MAX_REBUILDS = 50
"""Rebuilds of the views while other writers keep adding record files."""


class _ViewWriter:
    """One CSV view written chunk by chunk into a temporary (opened at the
    first chunk), put in place atomically by `commit`; the bytes are those
    of writing the concatenated chunks at once (the header once, no index).
    """

    def __init__(self, store: OutputStore, relpath: str) -> None:
        self._context = store.open_write(relpath)
        self._stream: BinaryIO | None = None
        self.rows = 0

    @property
    def opened(self) -> bool:
        return self._stream is not None

    def add(self, frame: pd.DataFrame) -> None:
        header = self._stream is None
        if header:
            self._stream = self._context.__enter__()
        self._stream.write(record_csv_bytes(frame, header=header))
        self.rows += len(frame)

    def commit(self) -> None:
        if self._stream is not None:
            self._stream = None
            self._context.__exit__(None, None, None)

    def abort(self, error: BaseException) -> None:
        if self._stream is not None:
            self._stream = None
            try:
                self._context.__exit__(type(error), error, error.__traceback__)
            except BaseException:
                pass


_PRESENT_COLUMNS = list(dict.fromkeys(["diaSourceId", "path", *MANIFEST_METADATA]))
"""Columns of the manifests' rows read from the records."""


def _manifest_frame(present: pd.DataFrame, url_root: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "external_id": present["diaSourceId"].to_numpy(),
            "location:1": list(map(url_joiner(url_root), present["path"].tolist())),
            **{f"metadata:{name}": present[name].to_numpy() for name in MANIFEST_METADATA},
        }
    )


def _panoptes_frame(present: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "filename": [path.removeprefix("images/") for path in present["path"].tolist()],
            **{f"#{name}": present[name].to_numpy() for name in MANIFEST_METADATA},
        }
    )


_FAILURE_COLUMNS = ["diaSourceId", "instrument", "visit", "detector", "reason_code", "reason"]


@dataclasses.dataclass(frozen=True)
class _Views:
    """What `_write_views` wrote, and what `write_manifests` warns about."""

    files: ManifestFiles
    drawings: Counter[str]
    """PNGs the manifests list, by the display configuration key that drew
    them (``drawing`` of the record files; PNGs without one left out)."""
    removed_manifest: bool
    """Whether a ``manifest.csv`` of an earlier run was removed."""


def _write_views(
    store: OutputStore, chunks: pd.DataFrame | Iterable[pd.DataFrame], url_root: str | None
) -> _Views:
    """Write the manifests, failure list, record list and summary of the
    union of the records: one table, or consecutive chunks of it (each
    view is written as the chunks come, so memory holds one chunk).  The
    union is returned with the files when it came as one chunk.
    """
    if isinstance(chunks, pd.DataFrame):
        chunks = [chunks]
    counts: Counter[str] = Counter()
    failed_by_reason: Counter[str] = Counter()
    drawings: Counter[str] = Counter()
    manifest = _ViewWriter(store, "manifest.csv") if url_root else None
    panoptes = _ViewWriter(store, "images/manifest.csv")
    failures = _ViewWriter(store, "failures.csv")
    everything = _ViewWriter(store, RECORDS_FILE)
    views = [view for view in (manifest, panoptes, failures, everything) if view is not None]
    only: pd.DataFrame | None = None
    try:
        for index, records in enumerate(chunks):
            only = records if index == 0 else None
            status = records["status"]
            in_place = status.isin([STATUS_WRITTEN, STATUS_SKIPPED]).to_numpy()
            # (Every row: no row selection.)
            present = records[_PRESENT_COLUMNS] if in_place.all() else records.loc[in_place, _PRESENT_COLUMNS]
            if manifest is not None:
                manifest.add(_manifest_frame(present, url_root))
            if len(present):
                panoptes.add(_panoptes_frame(present))
                if "drawing" in records.columns:
                    keys = records.loc[in_place, "drawing"].value_counts(sort=False)
                    drawings.update({key: int(n) for key, n in keys.items() if key})
            failed = records.loc[(status == STATUS_FAILED).to_numpy(), _FAILURE_COLUMNS]
            failures.add(failed)
            everything.add(records[list(RECORD_COLUMNS)])
            counts.update(status.tolist())
            failed_by_reason.update(failed["reason_code"].tolist())
    except BaseException as error:
        for view in views:
            view.abort(error)
        raise
    wrote_panoptes = panoptes.opened
    for index, view in enumerate(views):
        try:
            view.commit()
        except BaseException as error:
            for later in views[index + 1 :]:
                later.abort(error)
            raise
    removed_manifest = False
    if manifest is None and store.size("manifest.csv") is not None:
        # A manifest of an earlier run that this run would not write is stale.
        store.remove("manifest.csv")
        removed_manifest = True
    if not wrote_panoptes:
        # No PNG: no panoptes manifest (and none of an earlier run).
        store.remove("images/manifest.csv")
    summary = summary_of_counts(counts, failed_by_reason)
    store.write("summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    files = ManifestFiles(
        zooniverse=store.display("manifest.csv") if manifest is not None else None,
        panoptes=store.display("images/manifest.csv") if wrote_panoptes else None,
        failures=store.display("failures.csv"),
        summary=store.display("summary.json"),
        records=only,
    )
    return _Views(files, drawings, removed_manifest)


def _warn_about(views: _Views, store: OutputStore) -> None:
    """Log a warning for manifests that mix display configurations, and
    for the ``manifest.csv`` of an earlier run that was removed.
    """
    if len(views.drawings) > 1:
        manifests = [str(path) for path in (views.files.zooniverse, views.files.panoptes) if path is not None]
        counts = ", ".join(f"{n} by {key}" for key, n in views.drawings.most_common())
        _LOG.warning(
            "%s list PNGs drawn with %d different display configurations (%s): their stamps do not "
            "look alike. Draw every source again with one configuration (PNGs of another one are "
            "redrawn), or write each configuration to a directory of its own.",
            " and ".join(manifests),
            len(views.drawings),
            counts,
        )
    if views.removed_manifest:
        _LOG.warning(
            "Removed %s, written by an earlier run: this run has no url_root, so it writes no "
            "Zooniverse manifest (set url_root, --url-root, to write one).",
            store.display("manifest.csv"),
        )


def write_manifests(
    records: pd.DataFrame | None,
    output: OutputStore | ResourcePathExpression,
    url_root: str | None,
    *,
    token: str | None = None,
    chunk_rows: int = UNION_CHUNK_ROWS,
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
    chunk_rows
        Sources held in memory at a time while the views are written
        (`~lsst.analysis.ap.outputs.ledger.Ledger.union_chunks`).

    Notes
    -----
    ``manifest.csv`` (Zooniverse subject-set import form) has one row per
    PNG present: ``external_id``, ``location:1`` (the PNG's URL under
    ``url_root``, with its chunk directory) and ``metadata:…`` columns.
    ``images/manifest.csv`` is a panoptes-cli manifest listing the PNG files
    relative to it, with identifying columns hidden from volunteers
    (``#diaSourceId``, …).  ``failures.csv`` lists every failed source with
    its reason, ``records.csv`` the latest record of every source and
    ``summary.json`` holds the counts.  A warning is logged when the PNGs
    the manifests list were drawn with more than one display configuration
    (``drawing`` of the record files), and when a ``manifest.csv`` of an
    earlier run is removed because ``url_root`` is `None`.

    All of them are views of the union of the directory's record files,
    each written atomically.  Writers that finish at the same time may
    overwrite each other's views; each writer rebuilds them until no new
    record file appeared while it wrote, so the last views written hold
    every writer's records.  The union is read and the views are written
    ``chunk_rows`` sources at a time, in diaSourceId order: memory does not
    grow with the number of sources in the directory.

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
        done = ledger.ids([p for p in parts if token in p.rsplit("/", 1)[-1]])
        rest = records[~records["diaSourceId"].isin(done)]
        if len(rest):
            ledger.write_part(run_part_path(token), rest)
            parts = None
    else:
        parts = None
    # Temporaries of views whose writer was killed.
    store.sweep_temporaries(("", "images"), recursive=False)
    if parts is None:
        parts = ledger.list_parts()
    removed_manifest = False
    for _ in range(_MAX_REBUILDS):
        views = _write_views(store, ledger.union_chunks(parts, chunk_rows), url_root)
        removed_manifest = removed_manifest or views.removed_manifest
        latest = ledger.list_parts()
        if latest == parts:
            break
        parts = latest
    _warn_about(dataclasses.replace(views, removed_manifest=removed_manifest), store)
    return views.files
