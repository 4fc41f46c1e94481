"""A complete DiaSource row for the annotation and rendering tests."""

from __future__ import annotations

from lsst.analysis.ap.display.annotation import BADGES

FLAG_COLUMNS = tuple(c for b in BADGES for c in b.columns) + (
    "psfFlux_flag",
    "apFlux_flag",
    "forced_PsfFlux_flag",
)
"""Every flag column the annotation reads."""


def full_row(**overrides):
    """A DiaSource with every annotation column, no flag set."""
    row = dict(
        diaSourceId=3068394138746667042,
        instrument="LSSTComCam",
        detector=4,
        visit=2024120600049,
        band="r",
        ra=53.1234567,
        dec=-28.1234567,
        snr=12.345,
        psfChi2=250.0,
        psfNdata=200,
        psfFlux=12345.6,
        psfFluxErr=123.4,
        apFlux=11000.0,
        apFluxErr=150.0,
        scienceFlux=1000.0,
        scienceFluxErr=10.0,
        reliability=0.873,
    )
    row.update({c: False for c in FLAG_COLUMNS})
    row.update(overrides)
    return row
