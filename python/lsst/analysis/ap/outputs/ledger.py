"""The record files of an output directory: what every writer drew there,
kept so that no writer can lose another's records.

Each unit of work (one visit × detector of a Python call, command or
quantum) writes its records to a file of its own, never changed again::

    records/<instrument>/<visit>/<token>.d<detector>.csv

and a run writes the records that belong to no visit × detector file (for
instance sources rejected before drawing) to ``records/_run/<token>.csv``.
``<token>`` starts with the UTC time of the write, so name order is time
order, and carries the writer's host, PID namespace, PID and a random part,
so two writers never pick the same name.  ``records.csv``, the manifests,
the failure list and the summary are views of the union of these files
(latest record of each diaSourceId), rebuilt by every writer; whatever
order writers finish in, each one's records stay in its own files.

Besides the record columns, each row holds the key of the display
configuration that drew the PNG (``drawing``) and the PNG's size in bytes
(``png_size``): a re-run keeps an existing PNG only when both match.
"""

from __future__ import annotations

__all__ = (
    "LEDGER_DIR",
    "LEDGER_EXTRA_COLUMNS",
    "Ledger",
    "PriorDrawing",
    "group_part_path",
    "read_record_csv",
    "record_csv_bytes",
    "run_part_path",
    "run_token",
)

import dataclasses
import datetime
import io
import logging
import secrets
from collections.abc import Iterable, Mapping
from urllib.parse import quote

import pandas as pd

from ..records import RECORD_COLUMNS, STATUS_SKIPPED, STATUS_WRITTEN, concat_records, id_array
from .atomic import writer_tag
from .store import OutputStore

_LOG = logging.getLogger(__name__)

LEDGER_DIR = "records"
"""Directory (relative to the output directory) of the record files."""

LEGACY_RECORDS_FILE = "records.csv"

LEDGER_EXTRA_COLUMNS: Mapping[str, str] = {"drawing": "object", "png_size": "Int64"}
"""Columns of a record file besides `RECORD_COLUMNS`."""

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


def _group_dir(instrument: str, visit: int) -> str:
    return f"{LEDGER_DIR}/{quote(str(instrument), safe='')}/{int(visit)}"


def group_part_path(instrument: str, visit: int, detector: int, token: str) -> str:
    """Record file of one visit × detector written by writer ``token``."""
    return f"{_group_dir(instrument, visit)}/{token}.d{int(detector)}.csv"


def run_part_path(token: str) -> str:
    """Record file of a run's records that belong to no visit × detector."""
    return f"{LEDGER_DIR}/_run/{token}.csv"


def record_csv_bytes(frame: pd.DataFrame) -> bytes:
    """CSV bytes of a table, as the record files and all the CSV views of
    an output directory are written (no index).
    """
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def read_record_csv(data: bytes, origin: str) -> pd.DataFrame:
    """Read a record table written by `record_csv_bytes`.

    String columns keep their values verbatim (``NA``, ``None``, ``nan``,
    ``null`` stay strings; an empty cell is an empty string); only empty
    numeric cells are missing values.

    Raises
    ------
    ValueError
        Raised when the file lacks a record column.

    """
    frame = pd.read_csv(
        io.BytesIO(data),
        dtype={name: str for name in _STRING_COLUMNS},
        keep_default_na=False,
        na_values={name: [""] for name in ("ra", "dec", "png_size")},
    )
    # Record files written before the display columns existed.
    for name, default in (("display_limits", ""), ("resampled", False)):
        if name not in frame.columns:
            frame[name] = default
    frame["resampled"] = frame["resampled"].astype(bool)
    missing = [name for name in _REQUIRED_COLUMNS if name not in frame.columns]
    if missing:
        raise ValueError(f"{origin} is not a record table: it lacks column(s) {', '.join(missing)}")
    # Columns added to the record after the file was written: empty.
    for name, dtype in RECORD_COLUMNS.items():
        if name not in frame.columns:
            frame[name] = pd.Series([False if dtype == "bool" else ""] * len(frame), dtype=dtype)
    # Ids beyond 2**63 - 1 are read as uint64 (or text): keep them exact.
    frame["diaSourceId"] = id_array(frame["diaSourceId"])
    for name in ("visit", "detector"):
        frame[name] = frame[name].astype("int64")
    for name, dtype in LEDGER_EXTRA_COLUMNS.items():
        if name not in frame.columns:
            frame[name] = pd.Series([""] * len(frame) if dtype == "object" else None, dtype=dtype)
        else:
            frame[name] = frame[name].astype(dtype)
    return frame


@dataclasses.dataclass(frozen=True)
class PriorDrawing:
    """How the PNG of a source was drawn, as recorded."""

    drawing: str
    png_size: int | None


def _token_of(relpath: str) -> str:
    """Sort key of a record file: its writer token (time first)."""
    return relpath.rsplit("/", 1)[-1]


class Ledger:
    """The record files of one output directory.

    Parameters
    ----------
    store : `OutputStore`
        The output directory.

    """

    def __init__(self, store: OutputStore) -> None:
        self.store = store
        self._cache: dict[str, pd.DataFrame] = {}

    def write_part(self, relpath: str, frame: pd.DataFrame) -> None:
        """Write one record file (record columns and the ledger's own)."""
        columns = [*RECORD_COLUMNS, *LEDGER_EXTRA_COLUMNS]
        frame = frame.reindex(columns=columns)
        self.store.write(relpath, record_csv_bytes(frame))
        self._cache[relpath] = read_record_csv(record_csv_bytes(frame), relpath)

    def list_parts(self) -> list[str]:
        """Record files present, oldest first."""
        parts = [p for p in self.store.list_files(LEDGER_DIR) if p.endswith(".csv")]
        return sorted(parts, key=_token_of)

    def _read(self, relpath: str) -> pd.DataFrame | None:
        if relpath not in self._cache:
            try:
                self._cache[relpath] = read_record_csv(
                    self.store.read(relpath), str(self.store.display(relpath))
                )
            except FileNotFoundError:
                return None
            except ValueError as error:
                _LOG.warning("%s; it is ignored.", error)
                return None
        return self._cache[relpath]

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
        """
        parts = list(parts)
        frames = [frame for frame in (self._read(p) for p in parts) if frame is not None]
        if not parts:
            frames = self._legacy()
        if not frames:
            return read_record_csv(record_csv_bytes(pd.DataFrame(columns=[*RECORD_COLUMNS])), "records")
        table = concat_records(frames)
        table = table.drop_duplicates("diaSourceId", keep="last")
        present = table["status"].isin([STATUS_WRITTEN, STATUS_SKIPPED])
        if present.any():
            images = set(self.store.list_files("images"))
            exists = table["path"].isin(images)
            table = table[~present | exists]
        return table.sort_values("diaSourceId", kind="stable").reset_index(drop=True)

    def prior_drawings(self, instrument: str, visit: int, detector: int) -> dict[int, PriorDrawing]:
        """How each PNG of a visit × detector was drawn, from its record
        files (latest first wins); sources without a drawn PNG are absent.
        """
        suffix = f".d{int(detector)}.csv"
        parts = [p for p in self.store.list_files(_group_dir(instrument, visit)) if p.endswith(suffix)]
        result: dict[int, PriorDrawing] = {}
        for part in sorted(parts, key=_token_of):
            frame = self._read(part)
            if frame is None:
                continue
            for row in frame.itertuples(index=False):
                if row.status in (STATUS_WRITTEN, STATUS_SKIPPED) and row.drawing:
                    size = None if pd.isna(row.png_size) else int(row.png_size)
                    result[int(row.diaSourceId)] = PriorDrawing(row.drawing, size)
                else:
                    result.pop(int(row.diaSourceId), None)
        return result
