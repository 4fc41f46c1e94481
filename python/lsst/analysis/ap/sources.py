"""DiaSource tables: where they come from, what they must hold, how they
are grouped.

Sources reach the cutout task as a pandas DataFrame (an astropy Table is
converted) with APDB ``DiaSource`` column names.  They can be read from a
catalog file (parquet, CSV or FITS table), from the Butler's DiaSource table
datasets, or from an APDB (`lsst.analysis.ap.apdb`).
"""

from __future__ import annotations

__all__ = (
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "SourceTableError",
    "group_by_detector",
    "load_butler_sources",
    "load_catalog",
    "missing_optional_columns",
    "standardize_sources",
)

import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .display.annotation import REQUESTED_COLUMNS

_LOG = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("diaSourceId", "visit", "detector", "ra", "dec")
"""Columns without which no cutout can be made."""

OPTIONAL_COLUMNS = tuple(
    column for column in (*REQUESTED_COLUMNS, "bboxSize") if column not in REQUIRED_COLUMNS
)
"""Columns shown in the annotations (and ``bboxSize`` for footprint stamps); a
missing one is shown as absent."""


class SourceTableError(ValueError):
    """A DiaSource table or catalog that cannot be used at all."""


def standardize_sources(
    data: Any, *, instrument: str | None = None, origin: str = "input table"
) -> pd.DataFrame:
    """Check a DiaSource table and bring it to the form the task uses.

    Parameters
    ----------
    data : `pandas.DataFrame` or `astropy.table.Table`
        DiaSources with APDB column names.
    instrument : `str`, optional
        Instrument name to use where the table has no ``instrument`` column.
    origin : `str`, optional
        Where the table came from, for error messages.

    Returns
    -------
    sources : `pandas.DataFrame`
        A copy with an ``instrument`` column and integer ``diaSourceId``,
        ``visit`` and ``detector`` columns, in the input order.

    Raises
    ------
    SourceTableError
        Raised when a required column is missing, holds nulls, or an
        instrument cannot be determined; the message names the column.

    """
    if not isinstance(data, pd.DataFrame):
        try:
            data = data.to_pandas()
        except AttributeError:
            raise SourceTableError(
                f"{origin}: expected a pandas DataFrame or astropy Table of DiaSources, "
                f"not {type(data).__name__}."
            ) from None
    frame = data.reset_index(drop=("diaSourceId" in data.columns or data.index.name != "diaSourceId"))
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise SourceTableError(
            f"{origin}: required DiaSource column(s) missing: {', '.join(missing)} "
            f"(columns present: {', '.join(map(str, frame.columns[:20]))}"
            f"{', …' if len(frame.columns) > 20 else ''})."
        )
    for column in REQUIRED_COLUMNS:
        nulls = frame[column].isna()
        if nulls.any():
            bad = frame.index[nulls][:5].tolist()
            raise SourceTableError(f"{origin}: column {column!r} has null values (rows {bad}).")
    frame = frame.copy()
    for column in ("diaSourceId", "visit", "detector"):
        frame[column] = frame[column].astype(np.int64)
    if "instrument" not in frame.columns:
        if instrument is None:
            raise SourceTableError(
                f"{origin}: no 'instrument' column; add one or pass the instrument name "
                "(--instrument on the command line)."
            )
        frame["instrument"] = instrument
    elif instrument is not None:
        frame["instrument"] = frame["instrument"].fillna(instrument)
    duplicated = frame["diaSourceId"].duplicated()
    if duplicated.any():
        raise SourceTableError(
            f"{origin}: diaSourceId values are not unique "
            f"(e.g. {frame.loc[duplicated, 'diaSourceId'].iloc[:5].tolist()})."
        )
    return frame


def missing_optional_columns(columns: Iterable[str]) -> list[str]:
    """The optional columns a table lacks (they are shown as absent).

    Parameters
    ----------
    columns : iterable of `str`
        Column names of the table.

    Returns
    -------
    missing : `list` [`str`]
        Columns of `OPTIONAL_COLUMNS` not in ``columns``, in that order.

    """
    available = set(columns)
    return [column for column in OPTIONAL_COLUMNS if column not in available]


def group_by_detector(frame: pd.DataFrame) -> Iterator[tuple[tuple[str, int, int], pd.DataFrame]]:
    """Split standardized sources by visit × detector.

    Parameters
    ----------
    frame : `pandas.DataFrame`
        Standardized DiaSources.

    Yields
    ------
    group : `tuple` [`tuple` [`str`, `int`, `int`], `pandas.DataFrame`]
        ``((instrument, visit, detector), sources)``, in sorted order.

    """
    yield from frame.groupby(["instrument", "visit", "detector"], sort=True)


def load_catalog(path: str | Path) -> pd.DataFrame:
    """Read a DiaSource catalog file: parquet, CSV, or a FITS table.

    Parameters
    ----------
    path : `str` or `pathlib.Path`
        The file; its suffix says its format.

    Returns
    -------
    sources : `pandas.DataFrame`
        The table as read.

    Raises
    ------
    SourceTableError
        Raised when the file does not exist or cannot be read as a table;
        the message names the file and the reason.

    """
    path = Path(path)
    if not path.exists():
        raise SourceTableError(f"Catalog file {path} does not exist.")
    suffixes = "".join(path.suffixes).lower()
    try:
        if suffixes.endswith((".parq", ".parquet", ".pq")):
            return pd.read_parquet(path)
        if suffixes.endswith((".csv", ".csv.gz")):
            return pd.read_csv(path)
        if suffixes.endswith((".fits", ".fits.gz", ".fit", ".fz")):
            from astropy.table import Table

            return Table.read(path).to_pandas()
    except Exception as error:
        raise SourceTableError(f"Cannot read catalog {path}: {error}") from error
    raise SourceTableError(
        f"Catalog {path}: unknown file type {suffixes or '(none)'}; use .parquet, .csv or .fits."
    )


def load_butler_sources(
    butler: Any,
    dataset_type: str,
    *,
    where: str = "",
    collections: Sequence[str] | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """Read and concatenate the Butler's DiaSource table datasets.

    Parameters
    ----------
    butler : `lsst.daf.butler.Butler`
        The repository.
    dataset_type : `str`
        DiaSource table dataset type (e.g. ``dia_source_detector``).
    where : `str`, optional
        Butler query constraint.
    collections : sequence of `str`, optional
        Collections to search (default: the Butler's).
    limit : `int`, optional
        Return at most this many sources.

    Returns
    -------
    sources : `pandas.DataFrame`
        The tables, in data ID order, with an ``instrument`` column filled
        from each dataset's data ID.

    Raises
    ------
    SourceTableError
        If no dataset matches.

    """
    refs = butler.query_datasets(
        dataset_type, collections=collections, where=where, limit=None, explain=False, find_first=True
    )
    frames = []
    total = 0
    for ref in sorted(refs, key=lambda r: tuple(str(v) for v in r.dataId.required.values())):
        frame = butler.get(ref)
        if not isinstance(frame, pd.DataFrame):
            frame = frame.to_pandas()
        frame = frame.copy()
        frame["instrument"] = ref.dataId["instrument"]
        frames.append(frame)
        total += len(frame)
        if limit is not None and total >= limit:
            break
    if not frames:
        raise SourceTableError(
            f"No {dataset_type} datasets found in collections {collections} with where={where!r}."
        )
    frame = pd.concat(frames, ignore_index=True)
    return frame.iloc[:limit] if limit is not None else frame
