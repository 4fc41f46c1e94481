"""The record files of an output directory: what every writer drew there,
kept so that no writer can lose another's records.

Each unit of work (one visit × detector of a Python call, command or
quantum, or a piece of one that a process of a parallel run draws) writes
its records to files of its own, never changed again::

    records/<instrument>/<visit>/<token>.<stamp>.<pid>.<piece>.d<detector>.csv

(one file per checkpoint of a crowded visit × detector, each holding the
records added since the last, `GroupRecordFiles`; the gather step writes
``<token>.d<detector>.csv``), and a run writes the records that belong to no visit × detector file (for
instance sources rejected before drawing) to ``records/_run/<token>.csv``.
``<instrument>`` is the instrument's name, percent-encoded; a name longer
than 128 bytes is cut and followed by a digest of the whole name
(`_instrument_dir`), as file systems allow 255 bytes a name.
``<token>`` starts with the UTC time its writer (a task) was made and
carries the writer's host, PID namespace, PID and a random part, so two
writers never pick the same name; ``<stamp>`` is the time the unit of
work began and ``<pid>`` the process that drew it, so name order is time
order, also between the runs of one writer.  ``records.csv``, the manifests,
the failure list and the summary are views of the union of these files
(latest record of each diaSourceId), rebuilt by every writer; whatever
order writers finish in, each one's records stay in its own files.  The
union is read a chunk of sources at a time (`Ledger.union_chunks`), so
memory does not grow with the number of records.

Besides the record columns, each row holds the key of the display
configuration that drew the PNG (``drawing``) and the PNG's size in bytes
(``png_size``): a re-run keeps an existing PNG only when both match.
"""

from __future__ import annotations

__all__ = (
    "LEDGER_DIR",
    "LEDGER_EXTRA_COLUMNS",
    "UNION_CHUNK_ROWS",
    "GroupRecordFiles",
    "Ledger",
    "PriorDrawing",
    "group_part_path",
    "read_record_csv",
    "read_record_csv_chunks",
    "record_csv_bytes",
    "run_part_path",
    "run_token",
)

import collections
import contextlib
import dataclasses
import datetime
import hashlib
import io
import logging
import os
import pickle
import secrets
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO
from urllib.parse import quote

import numpy as np
import pandas as pd

from ..records import RECORD_COLUMNS, STATUS_SKIPPED, STATUS_WRITTEN, concat_records, id_array
from .atomic import TEMP_SUFFIX, writer_tag
from .csv_text import csv_text
from .store import OutputStore

_LOG = logging.getLogger(__name__)

LEDGER_DIR = "records"
"""Directory (relative to the output directory) of the record files."""

LEGACY_RECORDS_FILE = "records.csv"

LEDGER_EXTRA_COLUMNS: Mapping[str, str] = {"drawing": "object", "png_size": "Int64"}
"""Columns of a record file besides `RECORD_COLUMNS`."""

UNION_CHUNK_ROWS = 100_000
"""Sources per chunk of `Ledger.union_chunks`: the union of the record
files is never held in memory whole, only this many records at a time."""

_SEQUENCE = "_sequence"
"""Column of `Ledger.union_chunks`' spill files: order of a record among
all record files (file index, then row), so that the latest wins."""

_REQUIRED_COLUMNS = ("diaSourceId", "instrument", "visit", "detector", "path", "status")
"""Columns without which a file is not a record table; others missing
(written before they existed) are filled empty."""

_STRING_COLUMNS = tuple(
    name for name, dtype in {**RECORD_COLUMNS, **LEDGER_EXTRA_COLUMNS}.items() if dtype == "object"
)


def run_token() -> str:
    """A new writer token: UTC time, host, PID namespace, PID, random."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{now}-{writer_tag().replace('.', '-')}-{secrets.token_hex(4)}"


_INSTRUMENT_DIR_BYTES = 128
"""Longest name of an instrument's record directory: well within the
255 bytes file systems allow a name."""


def _instrument_dir(instrument: str) -> str:
    """Name of the record directory of an instrument: the instrument name,
    percent-encoded; a name longer than `_INSTRUMENT_DIR_BYTES` is cut, and
    a digest of the whole name added so that two long names never share a
    directory.

    Parameters
    ----------
    instrument : `str`
        Instrument name.

    Returns
    -------
    name : `str`
        Directory name (ASCII, at most `_INSTRUMENT_DIR_BYTES` bytes).

    """
    name = quote(str(instrument), safe="")
    if name in (".", ".."):  # the directory itself, or its parent
        name = name.replace(".", "%2E")
    if len(name) <= _INSTRUMENT_DIR_BYTES:
        return name
    digest = hashlib.sha256(str(instrument).encode()).hexdigest()[:16]
    prefix = name[: _INSTRUMENT_DIR_BYTES - len(digest) - 1]
    # No escape cut in two.
    cut = prefix.rfind("%", len(prefix) - 2)
    if cut >= 0:
        prefix = prefix[:cut]
    return f"{prefix}-{digest}"


def _group_dir(instrument: str, visit: int) -> str:
    return f"{LEDGER_DIR}/{_instrument_dir(instrument)}/{int(visit)}"


def group_part_path(instrument: str, visit: int, detector: int, token: str) -> str:
    """Record file of one visit × detector written by writer ``token``."""
    return f"{_group_dir(instrument, visit)}/{token}.d{int(detector)}.csv"


def run_part_path(token: str) -> str:
    """Record file of a run's records that belong to no visit × detector."""
    return f"{LEDGER_DIR}/_run/{token}.csv"


def record_csv_bytes(frame: pd.DataFrame, *, header: bool = True) -> bytes:
    """CSV bytes of a table, as the record files and all the CSV views of
    an output directory are written (no index); without ``header`` the
    rows only, to follow earlier rows of the same columns.
    """
    return csv_text(frame, header=header).encode()


def read_record_csv(data: bytes, origin: str) -> pd.DataFrame:
    """Read a record table written by `record_csv_bytes`.

    String columns keep their values verbatim (``NA``, ``None``, ``nan``,
    ``null`` stay strings; an empty cell is an empty string); only empty
    numeric cells are missing values.

    Raises
    ------
    ValueError
        Raised when the file is not a CSV table, lacks a record column, or
        does not end with a newline (it is truncated: its last row is
        cut); the message names ``origin``.

    """
    _require_whole_rows(data[-1:], origin)
    with _naming(origin):
        frame = pd.read_csv(io.BytesIO(data), **_RECORD_CSV_OPTIONS)
    return _record_table(frame, origin)


class _RecordTableError(ValueError):
    """A file that is not a record table; the message names it."""


def _require_whole_rows(last: bytes, origin: str) -> None:
    """Refuse a record table whose last byte ``last`` is not a newline:
    every table is written whole, ending with one, so such a file was
    truncated (copied in part, or damaged), and its last row is cut (pandas
    would read the missing values as empty).
    """
    if last and last != b"\n":
        raise _RecordTableError(f"{origin} is truncated (its last line is incomplete)")


def _last_byte(stream: BinaryIO) -> bytes:
    """The last byte of a seekable ``stream`` (rewound to its start); empty
    for an empty stream, or one that cannot seek."""
    try:
        size = stream.seek(0, io.SEEK_END)
        if size:
            stream.seek(size - 1)
            last = stream.read(1)
        else:
            last = b""
        stream.seek(0)
    except (OSError, ValueError, AttributeError):
        return b""
    return last


@contextlib.contextmanager
def _naming(origin: str) -> Iterator[None]:
    """Give a `ValueError` raised in the block (pandas' parser errors, a
    byte that is not UTF-8, a value of the wrong type) a message that
    names the file ``origin``.
    """
    try:
        yield
    except _RecordTableError:
        raise
    except ValueError as error:
        text = str(error).strip().splitlines()
        reason = text[0] if text else type(error).__name__
        raise _RecordTableError(f"{origin} is not a readable record table ({reason})") from error


def read_record_csv_chunks(
    stream: BinaryIO, origin: str, chunk_rows: int = UNION_CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """Read a record table written by `record_csv_bytes` a chunk of rows
    at a time (each chunk as `read_record_csv` reads a whole file).

    Parameters
    ----------
    stream : `typing.BinaryIO`
        The file, open for reading.
    origin : `str`
        Name of the file, for messages.
    chunk_rows : `int`, optional
        Rows per chunk.

    Yields
    ------
    chunk : `pandas.DataFrame`
        Consecutive rows; at least one chunk, empty for a file of no row.

    Raises
    ------
    ValueError
        Raised when the file is not a CSV table, lacks a record column, or
        does not end with a newline (it is truncated: its last row is
        cut); the message names ``origin``.

    """
    _require_whole_rows(_last_byte(stream), origin)
    empty = True
    with _naming(origin), pd.read_csv(stream, chunksize=chunk_rows, **_RECORD_CSV_OPTIONS) as reader:
        for frame in _naming_each(reader, origin):
            empty = False
            yield _record_table(frame, origin)
    if empty:
        stream.seek(0)
        yield read_record_csv(stream.read(), origin)


_RECORD_CSV_OPTIONS = {
    "dtype": {name: str for name in _STRING_COLUMNS},
    "keep_default_na": False,
    "na_values": {name: [""] for name in ("ra", "dec", "png_size")},
}


def _naming_each(frames: Iterator[pd.DataFrame], origin: str) -> Iterator[pd.DataFrame]:
    """The frames of ``frames``, an error while reading one named as
    `_naming` names it.
    """
    while True:
        with _naming(origin):
            frame = next(frames, None)
        if frame is None:
            return
        yield frame


def _record_table(frame: pd.DataFrame, origin: str) -> pd.DataFrame:
    """Record table of a frame read with `_RECORD_CSV_OPTIONS`."""
    with _naming(origin):
        return _record_columns(frame, origin)


def _record_columns(frame: pd.DataFrame, origin: str) -> pd.DataFrame:
    """`_record_table`, without naming ``origin`` in its errors."""
    # Record files written before the display columns existed.
    for name, default in (("display_limits", ""), ("resampled", False)):
        if name not in frame.columns:
            frame[name] = default
    if frame["resampled"].dtype != bool:
        frame["resampled"] = frame["resampled"].astype(bool)
    missing = [name for name in _REQUIRED_COLUMNS if name not in frame.columns]
    if missing:
        raise _RecordTableError(f"{origin} is not a record table: it lacks column(s) {', '.join(missing)}")
    # Columns added to the record after the file was written: empty.
    for name, dtype in RECORD_COLUMNS.items():
        if name not in frame.columns:
            frame[name] = pd.Series([False if dtype == "bool" else ""] * len(frame), dtype=dtype)
    # Ids beyond 2**63 - 1 are read as uint64 (or text): keep them exact.
    if frame["diaSourceId"].dtype != np.int64:
        frame["diaSourceId"] = id_array(frame["diaSourceId"])
    for name in ("visit", "detector"):
        if frame[name].dtype != np.int64:
            frame[name] = frame[name].astype("int64")
    for name, dtype in LEDGER_EXTRA_COLUMNS.items():
        if name not in frame.columns:
            frame[name] = pd.Series([""] * len(frame) if dtype == "object" else None, dtype=dtype)
        else:
            frame[name] = frame[name].astype(dtype)
    return frame


_STAMP_DIGITS = 11
"""Base-36 digits of a `_creation_stamp` (microseconds since 1970 fit until
the year 6000)."""

_last_stamp = 0
_stamp_lock = threading.Lock()


def _creation_stamp() -> str:
    """Microseconds since 1970 in `_STAMP_DIGITS` lowercase base-36 digits,
    so that name order is time order; strictly increasing in this process.
    """
    global _last_stamp
    with _stamp_lock:
        _last_stamp = max(time.time_ns() // 1000, _last_stamp + 1)
        now = _last_stamp
    return np.base_repr(now, 36).lower().rjust(_STAMP_DIGITS, "0")


class GroupRecordFiles:
    """The record files of one visit × detector (or piece of one) drawn
    by one process, written as the records come: each `write` puts only the
    records not yet written into a new file, so checkpoints of a crowded
    visit × detector cost as much as the records they add, not the whole
    list.

    Files are named ``<token>.<stamp>.<pid>.<piece>.d<detector>.csv`` under
    the visit's directory: the writer's token, the time these files were
    begun (`_creation_stamp`), the drawing process's id and the number of
    the file (zero-padded).  Name order is time order, also between two
    runs of one task (which share its token); the processes of one run
    share its token too, and the process id keeps apart the files of two
    processes that begin pieces of one visit × detector at the same time.

    Parameters
    ----------
    ledger : `Ledger`
        The output directory's record files.
    instrument : `str`
        Instrument of the visit × detector.
    visit, detector : `int`
        The visit × detector.
    token : `str`
        The writer's token (`run_token`).

    """

    def __init__(self, ledger: Ledger, instrument: str, visit: int, detector: int, token: str) -> None:
        self._ledger = ledger
        self._stem = f"{_group_dir(instrument, visit)}/{token}.{_creation_stamp()}.{os.getpid()}"
        self._detector = int(detector)
        self._pieces = 0
        self.written = 0

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Write the records of ``records`` beyond the first `written`
        (those of earlier calls; ``records`` only grows) to a new file.
        """
        new = records[self.written :]
        if not new:
            return
        self._pieces += 1
        relpath = f"{self._stem}.{self._pieces:04d}.d{self._detector}.csv"
        self._ledger.write_part(relpath, pd.DataFrame(list(new)))
        self.written = len(records)


@dataclasses.dataclass(frozen=True)
class PriorDrawing:
    """How the PNG of a source was drawn, as recorded."""

    drawing: str
    png_size: int | None


def _sequence(index: int, n: int) -> np.ndarray:
    """`_SEQUENCE` of the ``n`` rows of the ``index``-th record file."""
    return (np.int64(index) << np.int64(32)) + np.arange(n, dtype=np.int64)


def _concat_ids(arrays: list[np.ndarray]) -> np.ndarray:
    """One id array of several (`~lsst.analysis.ap.records.id_array`
    types), without a round trip through floats.
    """
    if not arrays:
        return np.zeros(0, dtype=np.int64)
    kinds = {array.dtype for array in arrays}
    if len(kinds) == 1:
        return np.concatenate(arrays)
    if np.dtype(object) not in kinds and all(
        array.dtype == np.uint64 or not len(array) or array.min() >= 0 for array in arrays
    ):
        return np.concatenate([array.astype(np.uint64) for array in arrays])
    return np.concatenate([array.astype(object) for array in arrays])


def _load_spill(path: str) -> Iterator[pd.DataFrame]:
    """The frames pickled one after the other into ``path``."""
    with open(path, "rb") as stream:
        while True:
            try:
                yield pickle.load(stream)
            except EOFError:
                return


def _token_of(relpath: str) -> str:
    """Sort key of a record file: its writer token (time first)."""
    return relpath.rsplit("/", 1)[-1]


_PRIOR_GROUPS = 64
"""Visit × detectors whose `Ledger.prior_drawings` a ledger keeps."""


class Ledger:
    """The record files of one output directory.

    Parameters
    ----------
    store : `OutputStore`
        The output directory.

    """

    def __init__(self, store: OutputStore) -> None:
        self.store = store
        # `prior_drawings` of the groups asked for last: the record files
        # folded in (in order) and the result, so that a group asked for
        # again (one alert packet after another of a visit × detector)
        # reads only its files written since.
        self._prior: collections.OrderedDict[tuple[str, int, int], tuple[list[str], dict[int, PriorDrawing]]]
        self._prior = collections.OrderedDict()

    def write_part(self, relpath: str, frame: pd.DataFrame) -> None:
        """Write one record file (record columns and the ledger's own)."""
        columns = [*RECORD_COLUMNS, *LEDGER_EXTRA_COLUMNS]
        self.store.write(relpath, record_csv_bytes(frame.reindex(columns=columns)))

    def list_parts(self) -> list[str]:
        """Record files present, oldest first."""
        parts = [p for p in self.store.list_files(LEDGER_DIR) if p.endswith(".csv")]
        return sorted(parts, key=_token_of)

    def _read(self, relpath: str) -> pd.DataFrame | None:
        """A record file (`None` when it is gone or not a record table;
        the latter is logged).  Nothing is kept in memory: a writer's
        memory does not grow with the sources it recorded.
        """
        origin = str(self.store.display(relpath))
        try:
            data = self.store.read(relpath)
        except FileNotFoundError:
            return None
        try:
            return read_record_csv(data, origin)
        except ValueError as error:
            _LOG.warning("%s; the record file is skipped.", error)
            return None

    def ids(self, parts: Iterable[str]) -> np.ndarray:
        """Ids (diaSourceId) of the records in the record files ``parts``
        (`~lsst.analysis.ap.records.id_array` types; repeated ids kept).
        """
        arrays = []
        for part in parts:
            try:
                data = self.store.read(part)
                arrays.append(id_array(pd.read_csv(io.BytesIO(data), usecols=["diaSourceId"])["diaSourceId"]))
            except FileNotFoundError:
                continue
            except ValueError as error:
                _LOG.warning("%s is not a record table (%s); it is ignored.", self.store.display(part), error)
        return _concat_ids(arrays)

    def _frames(self, parts: Iterable[str]) -> Iterator[pd.DataFrame]:
        for part in parts:
            frame = self._read(part)
            if frame is not None:
                yield frame

    def _legacy(self) -> list[pd.DataFrame]:
        """``records.csv`` of a directory written before record files
        existed, when it is a readable record table.
        """
        if self.store.is_local and self.store.local_path(LEGACY_RECORDS_FILE).is_symlink():
            return []
        try:
            data = self.store.read(LEGACY_RECORDS_FILE)
        except FileNotFoundError:
            return []
        try:
            return [read_record_csv(data, str(self.store.display(LEGACY_RECORDS_FILE)))]
        except (ValueError, pd.errors.ParserError) as error:
            _LOG.warning("%s; it is ignored.", error)
            return []

    def union(self, parts: Iterable[str]) -> pd.DataFrame:
        """Latest record of every source in the record files ``parts``
        (oldest first), sorted by diaSourceId; records of PNGs since
        removed are dropped.

        The whole union in memory: `union_chunks` gives the same rows a
        bounded number at a time.
        """
        return concat_records(self.union_chunks(parts, chunk_rows=None))

    def union_chunks(
        self, parts: Iterable[str], chunk_rows: int | None = UNION_CHUNK_ROWS
    ) -> Iterator[pd.DataFrame]:
        """The rows of `union` in consecutive chunks of at most about
        ``chunk_rows`` sources, in diaSourceId order.

        Parameters
        ----------
        parts : `~collections.abc.Iterable` [`str`]
            Record files, oldest first (`list_parts`).
        chunk_rows : `int` or `None`, optional
            Sources per chunk; `None` for one chunk.

        Yields
        ------
        chunk : `pandas.DataFrame`
            Record table (with the ledger's columns), sorted by
            diaSourceId; at least one, empty when there are no records.

        Notes
        -----
        Memory does not grow with the number of records: each file is
        read once, its ids kept (they fix the id ranges of the chunks) and
        its rows spilled to a temporary file; the spill is then split into
        a temporary file per id range, and each range is deduplicated
        (latest record wins), checked against the PNGs present and
        yielded.  When every record fits in one chunk nothing is spilled.

        """
        parts = list(parts)
        limit = chunk_rows if chunk_rows is not None else np.iinfo(np.int64).max
        frames = self._frames(parts) if parts else iter(self._legacy())
        with contextlib.ExitStack() as cleanup:
            # The scratch directory is made only when records are spilled.
            scratch = ""
            held: list[tuple[int, pd.DataFrame]] = []
            id_arrays = []
            n_rows = 0
            everything = None
            for index, frame in enumerate(frames):
                id_arrays.append(frame["diaSourceId"].to_numpy())
                n_rows += len(frame)
                held.append((index, frame))
                if n_rows > limit:
                    # More than one chunk: every record file goes to one
                    # spill file as it is read (each file is read once).
                    if everything is None:
                        scratch = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="cutout-records-"))
                        everything = open(os.path.join(scratch, "all.pickle"), "wb")
                    for kept_index, kept in held:
                        kept = kept.assign(**{_SEQUENCE: _sequence(kept_index, len(kept))})
                        pickle.dump(kept, everything, protocol=pickle.HIGHEST_PROTOCOL)
                    held = []
            if everything is None:
                if not n_rows:
                    yield read_record_csv(
                        record_csv_bytes(pd.DataFrame(columns=[*RECORD_COLUMNS])), "records"
                    )
                else:
                    # Rows in file order: the order of the latest.
                    yield self._latest(concat_records(frame for _, frame in held))
                return
            everything.close()
            unique = np.unique(_concat_ids(id_arrays))
            del id_arrays
            bounds = unique[limit::limit]
            del unique
            spills = [open(os.path.join(scratch, f"{k}.pickle"), "wb") for k in range(len(bounds) + 1)]
            try:
                for frame in _load_spill(os.path.join(scratch, "all.pickle")):
                    ids = frame["diaSourceId"].to_numpy()
                    if ids.dtype != bounds.dtype:
                        ids = ids.astype(bounds.dtype)
                    bucket = np.searchsorted(bounds, ids, side="right")
                    for k in np.unique(bucket):
                        pickle.dump(frame[bucket == k], spills[k], protocol=pickle.HIGHEST_PROTOCOL)
            finally:
                for spill in spills:
                    spill.close()
            os.remove(os.path.join(scratch, "all.pickle"))
            for k in range(len(bounds) + 1):
                yield self._latest(concat_records(_load_spill(os.path.join(scratch, f"{k}.pickle"))))

    def _latest(self, table: pd.DataFrame) -> pd.DataFrame:
        """Latest record of each id of ``table`` (all the records of those
        ids, with their `_SEQUENCE`, or without it in the order they were
        written), sorted by id, without the records of PNGs no longer
        present.
        """
        sequenced = _SEQUENCE in table.columns
        ids = table["diaSourceId"].to_numpy()
        if ids.dtype.kind not in "iu" or not (ids[1:] > ids[:-1]).all():
            by = ["diaSourceId", _SEQUENCE] if sequenced else "diaSourceId"
            table = table.sort_values(by, kind="stable")
            table = table.drop_duplicates("diaSourceId", keep="last")
        # else: one record per id, already in order.
        if sequenced:
            table = table.drop(columns=_SEQUENCE)
        present = table["status"].isin([STATUS_WRITTEN, STATUS_SKIPPED]).to_numpy()
        if present.any():
            exists = self._present(table["path"].to_numpy()[present])
            keep = ~present
            keep[present] = exists
            table = table[keep]
        return table.reset_index(drop=True)

    def _present(self, paths: np.ndarray) -> np.ndarray:
        """Whether each file of ``paths`` (relative, under ``images/``)
        exists, listing each directory once.
        """
        directories: dict[str, set[str]] = {}
        result = np.zeros(len(paths), dtype=bool)
        for i, path in enumerate(paths.tolist()):
            if not isinstance(path, str) or not path.startswith("images/"):
                continue
            directory, _, name = path.rpartition("/")
            if directory not in directories:
                directories[directory] = self._names(directory)
            result[i] = name in directories[directory]
        return result

    def _names(self, directory: str) -> set[str]:
        """Names of the files (not temporaries) directly in ``directory``."""
        if self.store.is_local:
            try:
                with os.scandir(self.store.local_path(directory)) as entries:
                    return {
                        entry.name
                        for entry in entries
                        if entry.is_file() and not entry.name.endswith(TEMP_SUFFIX)
                    }
            except (FileNotFoundError, NotADirectoryError):
                return set()
        prefix = directory + "/"
        return {
            path[len(prefix) :] for path in self.store.list_files(directory) if "/" not in path[len(prefix) :]
        }

    def prior_drawings(self, instrument: str, visit: int, detector: int) -> dict[int, PriorDrawing]:
        """How each PNG of a visit × detector was drawn, from its record
        files (latest first wins); sources without a drawn PNG are absent.

        The result of the last `_PRIOR_GROUPS` groups is kept (not to be
        modified by the caller): asked again, a group reads only the record
        files written since, so that drawing the sources of one visit ×
        detector one at a time (alert packets) does not read every earlier
        file again each time.
        """
        suffix = f".d{int(detector)}.csv"
        parts = sorted(
            (p for p in self.store.list_files(_group_dir(instrument, visit)) if p.endswith(suffix)),
            key=_token_of,
        )
        key = (str(instrument), int(visit), int(detector))
        folded, result = self._prior.pop(key, ([], {}))
        if parts[: len(folded)] != folded:
            # A file gone, or one that sorts among those read: read all.
            folded, result = [], {}
        for part in parts[len(folded) :]:
            frame = self._read(part)
            if frame is None:
                continue
            for row in frame.itertuples(index=False):
                if row.status in (STATUS_WRITTEN, STATUS_SKIPPED) and row.drawing:
                    size = None if pd.isna(row.png_size) else int(row.png_size)
                    result[int(row.diaSourceId)] = PriorDrawing(row.drawing, size)
                else:
                    result.pop(int(row.diaSourceId), None)
        self._prior[key] = (parts, result)
        while len(self._prior) > _PRIOR_GROUPS:
            self._prior.popitem(last=False)
        return result
