"""The per-source record: one row for every DiaSource a run was given,
saying whether its PNG was written, skipped or failed, and why.

Every unit of work (a quantum, a worker, a Python call) returns a record
table with the columns of `RECORD_COLUMNS`; the manifests, the failure list
and the summary are always built from the union of those tables
(`lsst.analysis.ap.outputs.manifests`).  This module is the only place that
defines the columns, the statuses, the reason codes and how one row is
built.
"""

from __future__ import annotations

__all__ = (
    "RECORD_COLUMNS",
    "STATUS_FAILED",
    "STATUS_SKIPPED",
    "STATUS_WRITTEN",
    "ReasonCode",
    "concat_records",
    "empty_records",
    "id_array",
    "make_record",
    "records_frame",
    "summarize",
    "summary_of_counts",
)

import enum
import functools
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

STATUS_WRITTEN = "written"
"""The PNG was drawn and written by this run."""

STATUS_SKIPPED = "skipped"
"""The PNG was already present and was kept (resume)."""

STATUS_FAILED = "failed"
"""No PNG: see the record's reason."""


class ReasonCode(enum.StrEnum):
    """Short machine-readable class of a record's reason (``reason_code``).

    The values are written to ``records.csv``, ``failures.csv`` and
    ``summary.json``; they do not change.
    """

    NONE = ""
    """Written: no reason."""
    EXISTS = "exists"
    """Skipped: the PNG is already present."""
    MISSING_IMAGE = "missing_exposure"
    """An image of the visit × detector is missing or cannot be opened (or,
    in the gather step, the visit × detector's cutout quantum did not run)."""
    NO_FOOTPRINT = "no_footprint"
    """``use_footprint`` is set but the source has no usable ``bboxSize``
    (missing, not positive, or above
    `~lsst.analysis.ap.geometry.MAX_STAMP_SIZE`)."""
    OFF_IMAGE = "off_image"
    """The source's centre is not on one of the images."""
    NO_DATA = "no_data"
    """A stamp has no valid pixel."""
    READ_ERROR = "read_error"
    """Reading the stamp's pixels failed."""
    ERROR = "error"
    """Any other error while drawing or writing the source."""
    BAD_PACKET = "bad_packet"
    """An alert packet cannot be decoded (damaged or truncated body or
    container, wrong magic byte, not an alert)."""
    UNKNOWN_SCHEMA = "unknown_schema"
    """An alert packet's schema id is not one lsst-alert-packet ships, and no
    shipped schema decodes its body."""
    NO_CUTOUT = "no_cutout"
    """An alert packet carries no stamp (null) for one of the images."""
    BAD_CUTOUT = "bad_cutout"
    """An alert packet's stamp is not a readable FITS image with what it
    needs (a celestial WCS for Rubin stamps)."""
    DUPLICATE_ID = "duplicate_id"
    """An alert packet carries the same source id as an earlier packet of
    the run (the first is drawn; the reason names both packets)."""
    CORRUPT_IMAGE = "corrupt_image"
    """An image file of the visit × detector exists but cannot be read as an
    image (damaged, truncated, not an image); the reason names the file."""
    NO_WCS = "no_wcs"
    """An image of the visit × detector has no celestial WCS (sky
    projection), so its sources cannot be placed on it; the reason names
    the file or dataset."""
    BAD_COORDINATES = "bad_coordinates"
    """The source's ``ra`` or ``dec`` is null, not a number, not finite, or
    outside [0, 360] / [-90, 90] degrees."""
    NO_INSTRUMENT = "no_instrument"
    """The source's ``instrument`` is null and no default is known (no
    ``instrument`` argument and not exactly one instrument in the
    repository)."""


RECORD_COLUMNS: Mapping[str, str] = {
    "diaSourceId": "int64",
    "instrument": "object",
    "visit": "int64",
    "detector": "int64",
    "band": "object",
    "ra": "float64",
    "dec": "float64",
    "path": "object",
    "status": "object",
    "reason_code": "object",
    "reason": "object",
    "output_path": "object",
    "url_root": "object",
    "display_limits": "object",
    "resampled": "bool",
}
"""Columns of a record table, with their types.

``path`` is the PNG path relative to ``output_path`` (empty when the source
had no place in an output directory); ``reason_code`` is a `ReasonCode`
value and ``reason`` the human-readable detail.  ``display_limits`` holds
the display limits of the drawn panels as JSON, ``{"template": [[vmin,
vmax] per size], "science": ..., "difference": ...}`` (``null`` for an
empty or constant stamp; empty when no PNG was drawn by this run), and
``resampled`` says whether the stamps were resampled (``north_up``).

``diaSourceId`` is ``uint64`` in a table holding ids beyond 2**63 - 1 (see
`id_array`, `concat_records`).
"""

_INT64_MAX = int(np.iinfo(np.int64).max)

_INTEGER_COLUMNS = tuple(name for name, dtype in RECORD_COLUMNS.items() if dtype == "int64")


def make_record(
    row: Mapping[str, Any],
    status: str,
    code: ReasonCode | str = ReasonCode.NONE,
    reason: str = "",
    *,
    path: str,
    output_path: str,
    url_root: str | None,
    display_limits: str = "",
    resampled: bool = False,
) -> dict[str, Any]:
    """The record of one source.

    Parameters
    ----------
    row : `~collections.abc.Mapping` [`str`, `~typing.Any`]
        The standardized DiaSource (``diaSourceId``, ``instrument``,
        ``visit``, ``detector``, ``ra``, ``dec``, optional ``band``).
    status : `str`
        `STATUS_WRITTEN`, `STATUS_SKIPPED` or `STATUS_FAILED`.
    code : `ReasonCode` or `str`, optional
        Class of the reason.
    reason : `str`, optional
        Human-readable reason.
    path : `str`
        PNG path relative to ``output_path`` (``""`` for none).
    output_path : `str`
        Output directory of the run.
    url_root : `str` or `None`
        URL the output directory is served from.
    display_limits : `str`, optional
        JSON display limits of the drawn panels.
    resampled : `bool`, optional
        Whether the stamps were resampled.

    Returns
    -------
    record : `dict` [`str`, `~typing.Any`]
        One value per column of `RECORD_COLUMNS`.

    """
    band = row["band"] if "band" in row else None
    return {
        "diaSourceId": int(row["diaSourceId"]),
        "instrument": str(row["instrument"]),
        "visit": int(row["visit"]),
        "detector": int(row["detector"]),
        "band": str(band) if band is not None and pd.notna(band) else "",
        "ra": float(row["ra"]),
        "dec": float(row["dec"]),
        "path": path,
        "status": status,
        "reason_code": str(code),
        "reason": reason,
        "output_path": output_path,
        "url_root": url_root or "",
        "display_limits": display_limits,
        "resampled": bool(resampled),
    }


def empty_records() -> pd.DataFrame:
    """A record table with no rows and the right columns.

    Returns
    -------
    records : `pandas.DataFrame`
        The empty table.

    """
    return _empty_records_template().copy()


@functools.cache
def _empty_records_template() -> pd.DataFrame:
    """The table `empty_records` copies (built once: building it takes
    about 1 ms, copying it 0.02 ms)."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in RECORD_COLUMNS.items()})


def records_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Record table from a list of records made by `make_record`.

    Parameters
    ----------
    rows : `list` [`dict` [`str`, `~typing.Any`]]
        The records.

    Returns
    -------
    records : `pandas.DataFrame`
        The table, with the columns of `RECORD_COLUMNS`.

    """
    if not rows:
        return empty_records()
    frame = pd.DataFrame(rows, columns=list(RECORD_COLUMNS))
    for name in _INTEGER_COLUMNS:
        frame[name] = id_array(frame[name]) if name == "diaSourceId" else frame[name].astype("int64")
    return frame


def id_array(values: Iterable[Any]) -> np.ndarray:
    """Exact ``diaSourceId`` values.

    Parameters
    ----------
    values : `~collections.abc.Iterable`
        Integer ids.

    Returns
    -------
    ids : `numpy.ndarray`
        ``int64``; ``uint64`` when an id is beyond 2**63 - 1 (ids up to
        2**64 - 1 are kept exactly); ``object`` (Python integers) when
        negative ids are mixed with those.

    """
    array = values.to_numpy() if isinstance(values, pd.Series) else values
    if isinstance(array, np.ndarray) and array.dtype.kind in "iu":
        # Already exact integers: no conversion of each value.
        if array.dtype == np.uint64 and len(array) and array.max() > _INT64_MAX:
            return array.astype(np.uint64)
        return array.astype(np.int64)
    ids = [int(v) for v in values]
    if not ids or max(ids) <= _INT64_MAX:
        return np.array(ids, dtype=np.int64)
    if min(ids) >= 0:
        return np.array(ids, dtype=np.uint64)
    return np.array(ids, dtype=object)


def concat_records(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Union of record tables, with ids kept exactly.

    `pandas.concat` of an ``int64`` and a ``uint64`` id column gives
    floats, which cannot hold every 64-bit id; use this instead.

    Parameters
    ----------
    frames : `~collections.abc.Iterable` [`pandas.DataFrame`]
        Record tables.

    Returns
    -------
    records : `pandas.DataFrame`
        Their rows in order (an empty record table when there are no
        frames).

    """
    frames = list(frames)
    nonempty = [frame for frame in frames if len(frame)]
    if not nonempty:
        return pd.concat(frames, ignore_index=True) if frames else empty_records()
    frames = nonempty
    if len({frame["diaSourceId"].dtype for frame in frames}) > 1:
        frames = [frame.astype({"diaSourceId": object}) for frame in frames]
    table = pd.concat(frames, ignore_index=True)
    table["diaSourceId"] = id_array(table["diaSourceId"])
    return table


def summarize(records: pd.DataFrame) -> dict[str, Any]:
    """Counts of written, skipped and failed sources, failures by reason.

    Parameters
    ----------
    records : `pandas.DataFrame`
        A record table.

    Returns
    -------
    summary : `dict` [`str`, `~typing.Any`]
        ``total``, ``written``, ``skipped``, ``failed`` and
        ``failed_by_reason`` (reason code -> count, sorted by code).

    """
    statuses = records["status"].tolist()
    reasons = records["reason_code"].tolist()
    pairs = zip(statuses, reasons, strict=True)
    failed = Counter(reason for status, reason in pairs if status == STATUS_FAILED)
    return summary_of_counts(Counter(statuses), failed)


def summary_of_counts(statuses: Mapping[str, int], failed_by_reason: Mapping[str, int]) -> dict[str, Any]:
    """The summary of `summarize` from counts (of a table read in chunks).

    Parameters
    ----------
    statuses : `~collections.abc.Mapping` [`str`, `int`]
        Records by status.
    failed_by_reason : `~collections.abc.Mapping` [`str`, `int`]
        Failed records by reason code.

    Returns
    -------
    summary : `dict` [`str`, `~typing.Any`]
        As `summarize` returns.

    """
    return {
        "total": int(sum(statuses.values())),
        "written": int(statuses.get(STATUS_WRITTEN, 0)),
        "skipped": int(statuses.get(STATUS_SKIPPED, 0)),
        "failed": int(statuses.get(STATUS_FAILED, 0)),
        "failed_by_reason": {str(k): int(v) for k, v in sorted(failed_by_reason.items()) if v},
    }
