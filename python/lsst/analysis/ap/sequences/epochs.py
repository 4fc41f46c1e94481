"""Which epochs of a DiaObject are shown, and in what order."""

from __future__ import annotations

__all__ = ("EPOCH_CHOICES", "TIME_COLUMN", "choose_epochs")

import numpy as np
import pandas as pd

TIME_COLUMN = "midpointMjdTai"
"""DiaSource column giving the epoch's time (MJD, TAI)."""

EPOCH_CHOICES = {
    "latest": "the most recent epochs",
    "even": "epochs evenly spaced in index over the whole history, first and last included",
}
"""How epochs are chosen when an object has more than the cap."""


def choose_epochs(
    epochs: pd.DataFrame, *, max_epochs: int | None, choice: str = "latest", group_by_band: bool = False
) -> pd.DataFrame:
    """Order a DiaObject's epochs by time and apply the cap.

    Parameters
    ----------
    epochs : `pandas.DataFrame`
        One row per epoch with a `TIME_COLUMN` column (and ``band`` when
        ``group_by_band``).
    max_epochs : `int` or `None`
        Most epochs kept; `None` keeps all.
    choice : `str`, optional
        A key of `EPOCH_CHOICES`.
    group_by_band : `bool`, optional
        Order by band first, then time (the cap still applies in time order).

    Returns
    -------
    chosen : `pandas.DataFrame`
        The kept rows, in display order, with a fresh index.

    Raises
    ------
    ValueError
        For an unknown choice, a cap below 1, or a missing time column.

    """
    if choice not in EPOCH_CHOICES:
        raise ValueError(f"epoch choice must be one of {sorted(EPOCH_CHOICES)}, got {choice!r}.")
    if max_epochs is not None and max_epochs < 1:
        raise ValueError(f"max_epochs must be at least 1, got {max_epochs}.")
    if TIME_COLUMN not in epochs.columns:
        raise ValueError(f"the DiaSource table has no {TIME_COLUMN!r} column to order epochs by.")
    ordered = epochs.sort_values(TIME_COLUMN, kind="stable").reset_index(drop=True)
    if max_epochs is not None and len(ordered) > max_epochs:
        if choice == "latest":
            ordered = ordered.iloc[len(ordered) - max_epochs :]
        else:
            index = np.unique(np.round(np.linspace(0, len(ordered) - 1, max_epochs)).astype(int))
            ordered = ordered.iloc[index]
    if group_by_band and "band" in ordered.columns:
        ordered = ordered.sort_values(["band", TIME_COLUMN], kind="stable")
    return ordered.reset_index(drop=True)
