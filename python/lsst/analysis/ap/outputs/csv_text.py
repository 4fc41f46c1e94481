"""CSV text of tables, character for character as
`pandas.DataFrame.to_csv` writes them without an index, built a column at a
time.

The record files and the CSV views of an output directory hold up to
millions of rows.  pandas formats them through Python's `csv` writer, one
row at a time; here each column is formatted once, with the same
conversions pandas uses (``str`` of integers and booleans, NumPy's
shortest ``str`` of floats, an empty cell for a missing value) and the
same minimal quoting, and the rows are joined.  Tables this does not know
how to format (dates, categories, sparse columns, objects that are not
strings, fewer than two columns) are written by pandas itself.
"""

from __future__ import annotations

__all__ = ("csv_text",)

import io
import os
import re

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype, is_bool_dtype, is_integer_dtype, is_string_dtype

_NEEDS_QUOTES = re.compile('[,"\r\n]')
"""Characters that make `csv.QUOTE_MINIMAL` quote a cell (the delimiter,
the quote character and line breaks)."""


_CELLS_AT_ONCE = 100_000
"""Cells formatted at a time (as pandas does): the memory a table's text
takes beyond the text itself does not grow with its rows."""


def _quoted(texts: list[str]) -> list[str]:
    """Cells of ``texts`` quoted where `csv.QUOTE_MINIMAL` quotes them (a
    quote inside is doubled)."""
    search = _NEEDS_QUOTES.search
    if search("\x00".join(texts)) is None:
        return texts
    return ['"' + text.replace('"', '""') + '"' if search(text) else text for text in texts]


def _column_cells(column: pd.Series) -> list[str] | None:
    """CSV cells of one column, or `None` when its type is not one this
    module formats."""
    dtype = column.dtype
    if isinstance(dtype, np.dtype):
        values = column.to_numpy()
        if dtype.kind in "iu":
            return list(map(str, values.tolist()))
        if dtype.kind == "b":
            return ["True" if value else "False" for value in values.tolist()]
        if dtype.kind == "f":
            cells = values.astype(str)
            cells[np.isnan(values)] = ""
            return cells.tolist()
        if dtype.kind != "O":
            return None
    elif isinstance(dtype, pd.SparseDtype):
        return None
    elif is_integer_dtype(dtype) or is_bool_dtype(dtype):
        # Nullable integers and booleans: a missing value is an empty cell.
        values = column.to_numpy(dtype=object, na_value=None)
        return ["" if value is None else str(value) for value in values.tolist()]
    elif not is_string_dtype(dtype):
        return None
    values = column.to_numpy(dtype=object)
    missing = pd.isna(values)
    if missing.any():
        values = values.copy()
        values[missing] = ""
    if infer_dtype(values, skipna=False) not in ("string", "empty"):
        return None
    return _quoted(values.tolist())


def _pandas_text(frame: pd.DataFrame, header: bool) -> str:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=header)
    return buffer.getvalue()


def csv_text(frame: pd.DataFrame, *, header: bool = True) -> str:
    """The text ``frame.to_csv(index=False, header=header)`` writes.

    Parameters
    ----------
    frame : `pandas.DataFrame`
        The table.
    header : `bool`, optional
        Whether the first line names the columns; without it the rows
        only, to follow earlier rows of the same columns.

    Returns
    -------
    text : `str`
        The CSV text, lines ending in `os.linesep` as pandas ends them.

    """
    names = list(frame.columns)
    if (
        not isinstance(header, bool)
        or frame.columns.nlevels != 1
        or len(names) < 2
        or not all(isinstance(name, str) for name in names)
    ):
        return _pandas_text(frame, header)
    pieces = [",".join(_quoted(names)) + os.linesep] if header else []
    step = max(1, _CELLS_AT_ONCE // len(names))
    for start in range(0, len(frame), step):
        rows = frame.iloc[start : start + step]
        columns = []
        for position in range(len(names)):
            cells = _column_cells(rows.iloc[:, position])
            if cells is None:
                return _pandas_text(frame, header)
            columns.append(cells)
        pieces.append(os.linesep.join(map(",".join, zip(*columns, strict=True))) + os.linesep)
    return "".join(pieces)
