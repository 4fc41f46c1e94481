"""Labels given on the vetting page: their names, the exported CSV, and
merging them into a record table.

The page exports ``diaSourceId,label,time`` (one row per labelled source,
``time`` in ISO 8601 UTC); `read_labels` reads that file back and
`merge_labels` adds ``label`` and ``label_time`` columns to the records.
"""

from __future__ import annotations

__all__ = (
    "LABELLED_RECORDS_FILE",
    "LABELS",
    "LABEL_NAMES",
    "Label",
    "LabelFileError",
    "merge_labels",
    "read_labels",
    "with_earlier_labels",
)

import dataclasses
from pathlib import Path

import pandas as pd

from ..records import id_array


@dataclasses.dataclass(frozen=True)
class Label:
    """One label of the page.

    Attributes
    ----------
    name : `str`
        Value written to the CSV.
    key : `str`
        Keyboard key that gives it on the page.
    color : `str`
        CSS colour of its mark.

    """

    name: str
    key: str
    color: str


LABELS: tuple[Label, ...] = (
    Label("real", "r", "#1a8f3c"),
    Label("bogus", "b", "#c62828"),
    Label("unsure", "u", "#b8860b"),
    Label("skip", "s", "#607d8b"),
)
"""The labels and their keys (arrow keys move to the next / previous source)."""

LABEL_NAMES: tuple[str, ...] = tuple(label.name for label in LABELS)

LABELLED_RECORDS_FILE = "records_labelled.csv"
"""The records with merged labels, in the output directory (``cutoutVetting
merge-labels``); ``records.csv`` stays as the runs wrote it."""

LABEL_FILE_COLUMNS = ("diaSourceId", "label", "time")
"""Columns of an exported label file."""


class LabelFileError(ValueError):
    """A label file that cannot be read; the message names the file, line
    and value."""


def read_labels(path: str | Path) -> pd.DataFrame:
    """Read a label file exported from the vetting page.

    Parameters
    ----------
    path : `str` or `pathlib.Path`
        CSV with columns ``diaSourceId,label,time``.

    Returns
    -------
    labels : `pandas.DataFrame`
        Columns ``diaSourceId`` (int64; uint64 when an id is beyond its
        range, as `~lsst.analysis.ap.records.id_array` gives them),
        ``label`` and ``label_time``
        (`pandas.Timestamp`, UTC); one row per source (the latest label
        when a source appears several times).

    Raises
    ------
    LabelFileError
        Raised when a column is missing, an id is not an integer, a label is
        not one of `LABEL_NAMES` or a time cannot be parsed.

    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise LabelFileError(f"{path}: cannot read the label file: {error}") from error
    except UnicodeDecodeError as error:
        raise LabelFileError(f"{path}: cannot read the label file: it is not UTF-8 text ({error})") from error
    missing = [column for column in LABEL_FILE_COLUMNS if column not in frame.columns]
    if missing:
        raise LabelFileError(
            f"{path}: missing column(s) {missing}; a label file has columns {list(LABEL_FILE_COLUMNS)}"
        )
    ids = []
    times = []
    for number, (raw_id, label, time) in enumerate(
        zip(frame["diaSourceId"], frame["label"], frame["time"], strict=True), start=2
    ):
        try:
            ids.append(int(raw_id.strip()))
        except ValueError:
            raise LabelFileError(f"{path}, line {number}: diaSourceId {raw_id!r} is not an integer") from None
        if label not in LABEL_NAMES:
            raise LabelFileError(
                f"{path}, line {number}: label {label!r} of diaSourceId {raw_id} is not one of "
                f"{', '.join(LABEL_NAMES)}"
            )
        try:
            times.append(pd.Timestamp(time).tz_convert("UTC") if time.strip() else pd.NaT)
        except (ValueError, TypeError):
            try:
                times.append(pd.Timestamp(time).tz_localize("UTC"))
            except (ValueError, TypeError):
                raise LabelFileError(
                    f"{path}, line {number}: time {time!r} of diaSourceId {raw_id} is not an ISO 8601 time"
                ) from None
    labels = pd.DataFrame(
        {
            # Exact, as the records' ids: uint64 beyond int64.
            "diaSourceId": pd.Series(id_array(ids)),
            "label": pd.Series(frame["label"].tolist(), dtype=object),
            # Microseconds: any year a time can be written with.
            "label_time": pd.Series(times, dtype="datetime64[us, UTC]"),
        }
    )
    labels = labels.sort_values("label_time", kind="stable", na_position="first")
    return labels.drop_duplicates("diaSourceId", keep="last").sort_index().reset_index(drop=True)


def merge_labels(records: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Add the labels to a record table.

    Parameters
    ----------
    records : `pandas.DataFrame`
        Record table (``records.csv``); earlier ``label`` and
        ``label_time`` columns are replaced where ``labels`` has a newer
        label for the source and kept otherwise.
    labels : `pandas.DataFrame`
        As returned by `read_labels`.

    Returns
    -------
    merged : `pandas.DataFrame`
        ``records`` (same rows, same order) with ``label`` ('' where
        unlabelled) and ``label_time`` (ISO 8601 text, '' where unlabelled)
        columns.  Labels of sources not in ``records`` are left out; the
        number is in ``merged.attrs["unmatched_labels"]``.

    """
    merged = records.copy()
    old_label = merged["label"].fillna("").astype(str) if "label" in merged else pd.Series("", merged.index)
    old_time = (
        merged["label_time"].fillna("").astype(str) if "label_time" in merged else pd.Series("", merged.index)
    )
    # Matched as Python ints: ids may be beyond int64 (unsigned 64-bit ids).
    new = {
        int(source): (label, "" if pd.isna(time) else time.isoformat(timespec="milliseconds"))
        for source, label, time in zip(
            labels["diaSourceId"].tolist(),
            labels["label"].tolist(),
            labels["label_time"].tolist(),
            strict=True,
        )
    }
    ids = [int(source) for source in merged["diaSourceId"].tolist()]
    out_label, out_time = [], []
    for source, label, time in zip(ids, old_label.tolist(), old_time.tolist(), strict=True):
        got = new.get(source)
        # An earlier label with a later time than the file's wins.
        if got is None or (time and time > got[1]):
            got = (label, time)
        out_label.append(got[0])
        out_time.append(got[1])
    merged["label"] = pd.Series(out_label, index=merged.index, dtype=object)
    merged["label_time"] = pd.Series(out_time, index=merged.index, dtype=object)
    known = set(ids)
    merged.attrs["unmatched_labels"] = sum(source not in known for source in new)
    return merged


def with_earlier_labels(records: pd.DataFrame, earlier: pd.DataFrame) -> pd.DataFrame:
    """The records with the ``label`` and ``label_time`` that an earlier
    merge gave each source (``earlier``: a table that `merge_labels`
    returned, read back from its file), so that merging another label file
    keeps them where it has no newer label.

    Parameters
    ----------
    records : `pandas.DataFrame`
        Record table (``records.csv``).
    earlier : `pandas.DataFrame`
        Earlier labelled records; sources it lacks, or left unlabelled,
        get no label.

    Returns
    -------
    records : `pandas.DataFrame`
        A copy of ``records`` with ``label`` and ``label_time`` columns;
        ``attrs["dropped_labels"]`` counts the earlier labels of sources
        that are not in ``records``.

    """
    given: dict[int, tuple[str, str]] = {}
    if "label" in earlier.columns:
        times = earlier["label_time"] if "label_time" in earlier.columns else pd.Series("", earlier.index)
        for source, label, time in zip(
            earlier["diaSourceId"].tolist(),
            earlier["label"].fillna("").astype(str).tolist(),
            times.fillna("").astype(str).tolist(),
            strict=True,
        ):
            # Of two rows of one source, the later label.
            if label and (int(source) not in given or time >= given[int(source)][1]):
                given[int(source)] = (label, time)
    ids = [int(source) for source in records["diaSourceId"].tolist()]
    found = [given.get(source, ("", "")) for source in ids]
    result = records.copy()
    result["label"] = pd.Series([label for label, _ in found], index=result.index, dtype=object)
    result["label_time"] = pd.Series([time for _, time in found], index=result.index, dtype=object)
    result.attrs["dropped_labels"] = len(given.keys() - set(ids))
    return result
