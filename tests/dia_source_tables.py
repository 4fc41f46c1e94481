"""Hypothesis strategies of hostile DiaSource tables, with what each row
should become.

A table is built around "anchors": real DiaSources of the demo repository
(visit, detector, ra, dec), so that well-formed rows are actually drawn.
Each column is then given a representation for the whole table (integers,
unsigned 64-bit integers, floats, strings, bytes, Python objects with
nulls) and each value may be replaced by a hostile one (null, fractional,
non-finite, out of range, non-numeric text, unicode).  The strategy returns
the table and the expected outcome: which rows have an identity problem
(the run must stop before any work, naming that column and row) and, for
the others, the exact id of every row and whether its coordinates are
unusable (it must fail with ``bad_coordinates``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
from hypothesis import strategies as st

UINT64_MAX = 2**64 - 1
INT64_MAX = 2**63 - 1

UNICODE_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=6
)


@dataclasses.dataclass
class Expected:
    """What the run must do with a generated table.

    Attributes
    ----------
    identity_errors
        ``(column, row)`` of every value that cannot identify a source (the
        run must stop, naming one of them); duplicated ids count too.
    ids
        Exact id of each row (when there is no identity error).
    bad_coordinates
        Per row, whether ra/dec cannot be used (the row must fail with
        reason ``bad_coordinates``).
    """

    identity_errors: list[tuple[str, int]]
    ids: list[int | None]
    bad_coordinates: list[bool]


@dataclasses.dataclass
class Cell:
    """One value as stored in the table and the integer it stands for
    (`None` if it stands for none)."""

    value: object
    integer: int | None


def _integer_cells(draw, column: str, truth: list[int], hostile: bool) -> tuple[pd.Series, list[int | None]]:
    """A column of integer ids in a drawn representation."""
    form = draw(st.sampled_from(["int64", "uint64", "float", "object", "text", "bytes"]))
    cells = []
    for value in truth:
        integer: int | None = value
        stored: object = value
        if hostile and draw(st.integers(0, 9)) == 0:
            stored, integer = draw(
                st.sampled_from(
                    [
                        (None, None),
                        (float("nan"), None),
                        (value + 0.5, None),
                        (f"src{value}", None),
                        ("S00", None),
                        (float("inf"), None),
                        (True, None),
                        (2**70, None),
                        (f"{value}", value),
                        (float(value), value) if abs(value) <= 2**53 else (None, None),
                    ]
                )
            )
        cells.append(Cell(stored, integer))
    plain = all(type(c.value) is int for c in cells)
    if form == "int64" and plain and all(-(2**63) <= c.value <= INT64_MAX for c in cells):
        series = pd.Series([c.value for c in cells], dtype="int64")
    elif form == "uint64" and plain and all(0 <= c.value <= UINT64_MAX for c in cells):
        series = pd.Series(np.array([c.value for c in cells], dtype=np.uint64))
    elif form == "float" and plain and all(abs(c.value) <= 2**53 for c in cells):
        series = pd.Series([float(c.value) for c in cells], dtype="float64")
    elif form == "text" and plain:
        series = pd.Series([str(c.value) for c in cells], dtype=object)
    elif form == "bytes" and plain:
        series = pd.Series([str(c.value).encode() for c in cells], dtype=object)
    else:
        series = pd.Series([c.value for c in cells], dtype=object)
    return series, [c.integer for c in cells]


def _coordinate_cells(draw, truth: list[float], low: float, high: float) -> tuple[pd.Series, list[bool]]:
    values: list[object] = []
    bad: list[bool] = []
    for value in truth:
        if draw(st.integers(0, 3)) == 0:
            stored = draw(
                st.one_of(
                    st.sampled_from(
                        [
                            None,
                            float("nan"),
                            float("inf"),
                            -float("inf"),
                            1e308,
                            -1e308,
                            high + 1.0,
                            low - 0.5,
                        ]
                    ),
                    st.floats(allow_nan=True, allow_infinity=True),
                    UNICODE_TEXT,
                    st.just(str(value)),
                )
            )
        else:
            stored = value
        values.append(stored)
        try:
            number = float(stored) if stored is not None else math.nan
        except (TypeError, ValueError):
            number = math.nan
        bad.append(not (math.isfinite(number) and low <= number <= high))
    if all(isinstance(v, float) for v in values):
        return pd.Series(values, dtype="float64"), bad
    return pd.Series(values, dtype=object), bad


@st.composite
def dia_source_tables(draw, anchors: pd.DataFrame, instrument: str, max_rows: int = 6):
    """A hostile DiaSource table and its `Expected` outcome.

    Parameters
    ----------
    anchors
        Real DiaSources (``diaSourceId``, ``visit``, ``detector``, ``ra``,
        ``dec``) the rows start from.
    instrument
        The repository's instrument.
    max_rows
        Most rows in a table.
    """
    n = draw(st.integers(0, max_rows))
    picks = [draw(st.integers(0, len(anchors) - 1)) for _ in range(n)]
    rows = anchors.iloc[picks].reset_index(drop=True)
    # Mostly ids of one kind per table (mixing negative ids with ids beyond
    # 2**63 - 1 is refused, so it is drawn rarely).
    pools = {
        "int64": st.integers(0, INT64_MAX),
        "uint64": st.integers(0, UINT64_MAX),
        "edges": st.sampled_from([UINT64_MAX, INT64_MAX, INT64_MAX + 1, 0, 1, 2**53, 2**53 + 1]),
        "negative": st.integers(-(2**63), INT64_MAX),
        "any": st.integers(-(2**63), UINT64_MAX),
    }
    pool = pools[draw(st.sampled_from(["int64", "int64", "uint64", "edges", "negative", "any"]))]
    ids = [draw(pool) for _ in range(n)]
    if n > 1 and draw(st.integers(0, 4)) == 0:  # a duplicated id
        ids[draw(st.integers(1, n - 1))] = ids[0]
    hostile = draw(st.integers(0, 3)) == 0
    frame = pd.DataFrame(index=range(n))
    errors: list[tuple[str, int]] = []
    parsed: dict[str, list[int | None]] = {}
    for column, truth in (
        ("diaSourceId", ids),
        ("visit", [int(v) for v in rows["visit"]]),
        ("detector", [int(v) for v in rows["detector"]]),
    ):
        frame[column], parsed[column] = _integer_cells(draw, column, truth, hostile)
        errors += [(column, i) for i, value in enumerate(parsed[column]) if value is None]
    known = [i for i in parsed["diaSourceId"] if i is not None]
    negative, big = any(i < 0 for i in known), any(i > INT64_MAX for i in known)
    if negative and big:
        errors += [("diaSourceId", i) for i, v in enumerate(parsed["diaSourceId"]) if v is not None]
    if not errors:
        seen: dict[int, int] = {}
        for row, value in enumerate(parsed["diaSourceId"]):
            if value in seen:
                errors += [("diaSourceId", seen[value]), ("diaSourceId", row)]
            seen.setdefault(value, row)
    frame["ra"], bad_ra = _coordinate_cells(draw, [float(v) for v in rows["ra"]], 0.0, 360.0)
    frame["dec"], bad_dec = _coordinate_cells(draw, [float(v) for v in rows["dec"]], -90.0, 90.0)
    instruments = draw(st.sampled_from(["absent", "text", "bytes", "nulls"]))
    if instruments == "text":
        frame["instrument"] = instrument
    elif instruments == "bytes":
        frame["instrument"] = pd.Series([instrument.encode()] * n, dtype=object)
    elif instruments == "nulls":
        frame["instrument"] = pd.Series(
            [draw(st.sampled_from([None, instrument, float("nan")])) for _ in range(n)], dtype=object
        )
    if draw(st.booleans()):
        frame["band"] = pd.Series(
            [draw(st.one_of(st.sampled_from(["r", b"g", None, "NA", 5]), UNICODE_TEXT)) for _ in range(n)],
            dtype=object,
        )
    for column in draw(st.lists(st.sampled_from(["psfFlux", "snr", "reliability", "bboxSize"]), unique=True)):
        frame[column] = pd.Series(
            [
                draw(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none(), UNICODE_TEXT))
                for _ in range(n)
            ],
            dtype=object,
        )
    expected = Expected(
        identity_errors=errors,
        ids=parsed["diaSourceId"],
        bad_coordinates=[a or b for a, b in zip(bad_ra, bad_dec, strict=True)],
    )
    return frame, expected
