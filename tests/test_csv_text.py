"""The CSV text of record files and views (`csv_text`) is the text pandas'
``to_csv(index=False)`` writes, for any table: hostile strings (quotes,
commas, line breaks, control characters), missing values of every kind,
extreme and non-finite floats, ids up to 2**64 - 1, nullable integers, and
the tables it hands to pandas (dates, categories, mixed objects, one
column, no rows).
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsst.analysis.ap.outputs import csv_text as csv_text_module
from lsst.analysis.ap.outputs.csv_text import csv_text
from lsst.analysis.ap.outputs.ledger import record_csv_bytes
from lsst.analysis.ap.records import RECORD_COLUMNS


def pandas_text(frame: pd.DataFrame, header: bool = True) -> str:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=header)
    return buffer.getvalue()


TEXT = st.one_of(
    st.text(alphabet=st.sampled_from(list("ab ,\"\r\n\t\x00é;'\\\u2028")), max_size=8),
    st.sampled_from(["NA", "nan", "None", "null", " "]),
)
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [0.0, -0.0, 1e-4, 9.999e-5, 1e16, 9999999999999998.0, 5e-324, 1.7976931348623157e308, 0.1]
    ),
)


MISSING = st.sampled_from([None, math.nan, pd.NA, pd.NaT])
"""Missing values an object column may hold."""

STRING_DTYPES = {"str": "str", "string": "string[python]", "arrow string": "string[pyarrow]"}
NULLABLE_DTYPES = {"Int64": "Int64", "UInt8": "UInt8", "boolean": "boolean"}


@st.composite
def columns(draw: st.DrawFn) -> pd.Series:
    n = draw(st.integers(0, 6))
    kind = draw(
        st.sampled_from(
            [
                "text",
                "object",
                *STRING_DTYPES,
                "float",
                "float32",
                "float16",
                "int",
                "uint",
                "bool",
                *NULLABLE_DTYPES,
            ]
        )
    )
    if kind == "text":
        return pd.Series(draw(st.lists(TEXT, min_size=n, max_size=n)), dtype=object)
    if kind == "object" or kind in STRING_DTYPES:
        values = draw(
            st.lists(st.one_of(TEXT, MISSING if kind == "object" else st.none()), min_size=n, max_size=n)
        )
        return pd.Series(values, dtype=STRING_DTYPES.get(kind, object))
    if kind.startswith("float"):
        values = draw(st.lists(FLOATS, min_size=n, max_size=n))
        with np.errstate(over="ignore"):
            return pd.Series(np.array(values, dtype=np.float64 if kind == "float" else kind))
    if kind == "int":
        return pd.Series(
            draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n)), dtype=np.int64
        )
    if kind == "uint":
        return pd.Series(draw(st.lists(st.integers(0, 2**64 - 1), min_size=n, max_size=n)), dtype=np.uint64)
    if kind == "bool":
        return pd.Series(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    present = {"boolean": st.booleans(), "UInt8": st.integers(0, 255)}.get(kind, st.integers(-(2**40), 2**40))
    return pd.Series(
        draw(st.lists(st.one_of(present, st.none()), min_size=n, max_size=n)), dtype=NULLABLE_DTYPES[kind]
    )


@st.composite
def tables(draw: st.DrawFn) -> pd.DataFrame:
    picked = draw(st.lists(columns(), min_size=2, max_size=5))
    n = min(len(column) for column in picked)
    names = draw(st.lists(TEXT, min_size=len(picked), max_size=len(picked), unique=True))
    return pd.DataFrame({name: column.iloc[:n] for name, column in zip(names, picked, strict=True)})


@settings(max_examples=400, derandomize=True, database=None, deadline=None)
@given(tables(), st.booleans(), st.sampled_from([100_000, 1, 3, 7]))
def test_any_table_is_written_as_pandas_writes_it(frame: pd.DataFrame, header: bool, cells: int) -> None:
    """Also a few cells at a time, so that rows are formatted in slices."""
    saved = csv_text_module._CELLS_AT_ONCE
    csv_text_module._CELLS_AT_ONCE = cells
    try:
        assert csv_text(frame, header=header) == pandas_text(frame, header)
    finally:
        csv_text_module._CELLS_AT_ONCE = saved


@pytest.mark.parametrize("cells_at_once", [100_000, 20])
def test_hostile_record_rows_are_written_as_pandas_writes_them(
    cells_at_once: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record table as the task makes it, with a reason holding quotes,
    commas and line breaks, missing values and display limits as JSON;
    formatted at once, or a row at a time (as a table of many rows is)."""
    monkeypatch.setattr(csv_text_module, "_CELLS_AT_ONCE", cells_at_once)
    frame = pd.DataFrame(
        {
            "diaSourceId": np.array([2**64 - 1, 10**12, 7], dtype=np.uint64),
            "instrument": ["LSSTCam", "LSSTComCam", ""],
            "visit": [1, 2, 3],
            "detector": [0, 188, 94],
            "band": ["g", None, "r"],
            "ra": [359.99999999999994, math.nan, 1e-05],
            "dec": [-89.5, 0.0, math.inf],
            "path": ["images/1/2.png", "", "images/a b#c/é.png"],
            "status": ["written", "failed", "skipped"],
            "reason_code": ["", "read_error", ""],
            "reason": ["", 'file "/x,y.fits"\nis corrupt\r', ""],
            "output_path": ["/out", "/out", "/out"],
            "url_root": ["", "", "https://example.org/c?sig=a,b"],
            "display_limits": ['{"template": [[-1.0, 1.0]]}', "", "null"],
            "resampled": [False, True, False],
        }
    )[list(RECORD_COLUMNS)]
    frame["png_size"] = pd.array([18000, None, 0], dtype="Int64")
    wanted = pandas_text(frame)

    def refuse(*args: object) -> str:
        raise AssertionError("a record table was handed to pandas")

    # A record table is formatted here, never handed to pandas.
    monkeypatch.setattr(csv_text_module, "_pandas_text", refuse)
    text = csv_text(frame)
    assert text == wanted
    assert '"file ""/x,y.fits""\nis corrupt\r"' in text
    assert text.splitlines()[1].startswith("18446744073709551615,LSSTCam,1,0,g,359.99999999999994,-89.5,")
    assert record_csv_bytes(frame) == pandas_text(frame).encode()
    assert csv_text(frame.iloc[1:], header=False) == pandas_text(frame.iloc[1:], header=False)


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"a": ["", "x"]}),  # one column: an empty cell is written ""
        pd.DataFrame({"a": pd.to_datetime(["2026-11-22", None]), "b": [1, 2]}),
        pd.DataFrame({"a": pd.Categorical(["x", None]), "b": [1, 2]}),
        pd.DataFrame({"a": [1, "x"], "b": [b"bytes", 2.5]}),
        pd.DataFrame({1: [1, 2], 2: [3, 4]}),
        pd.DataFrame({"a": pd.array([0.5, None], dtype="Float64"), "b": ["x", "y"]}),
        pd.DataFrame({"a": [1.0, None, 2.0], "b": [1, 2, 3]}).astype({"a": pd.SparseDtype("int64", np.nan)}),
        pd.DataFrame(columns=["a", "b"]),
        pd.DataFrame(),
    ],
    ids=[
        "one column",
        "dates",
        "categories",
        "mixed objects",
        "integer names",
        "nullable floats",
        "sparse integers",
        "no rows",
        "nothing",
    ],
)
@pytest.mark.parametrize("header", [True, False])
def test_tables_it_does_not_format_are_written_by_pandas(frame: pd.DataFrame, header: bool) -> None:
    assert csv_text(frame, header=header) == pandas_text(frame, header)


def test_a_table_of_many_rows_is_written_as_pandas_writes_it() -> None:
    rng = np.random.default_rng(5)
    n = 30_000
    frame = pd.DataFrame(
        {
            "diaSourceId": np.arange(n, dtype=np.int64) + 10**12,
            "ra": rng.uniform(0, 360, n),
            "reason": np.where(rng.random(n) < 0.1, 'say "x", then y', ""),
            "png_size": pd.array(np.where(rng.random(n) < 0.5, None, 1), dtype="Int64"),
        }
    )
    assert csv_text(frame) == pandas_text(frame)


def test_header_aliases_are_written_by_pandas() -> None:
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=["x", "y"])
    assert csv_text(frame, header=["x", "y"]) == buffer.getvalue()
