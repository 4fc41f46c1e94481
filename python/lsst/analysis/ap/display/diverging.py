"""Sign-aware display of difference stamps.

A difference pixel's sign carries the physics: positive where the source
brightened since the template (a new source), negative where it faded.  A
sign-aware panel keeps zero at the middle of the display range and draws it
with a diverging colormap, so the two sides are told apart at a glance:

- `ZeroCentredInterval` (from `lsst.analysis.ap.display.limits`) makes any
  interval symmetric about zero;
- `SignedStretch` applies a stretch to each side of zero separately, so zero
  stays at display value 0.5 and ``-v`` and ``+v`` stay equally far from it
  whatever the stretch;
- `DIVERGING_COLORMAP` is the default colormap: blue below zero, near white
  at zero, red above;
- `negative_flux` tells whether a catalog difference flux is negative (the
  renderer then shows a badge).

`sign_aware` builds the (interval, stretch) pair of such a panel.
"""

from __future__ import annotations

__all__ = (
    "DIVERGING_COLORMAP",
    "SignedStretch",
    "negative_flux",
    "sign_aware",
    "side_of_zero",
)

import math
from typing import Any

import numpy as np
from astropy.visualization import BaseInterval, BaseStretch, LinearStretch

from .limits import SymmetricInterval, ZeroCentredInterval

DIVERGING_COLORMAP = "RdBu_r"
"""Default colormap of a sign-aware panel (matplotlib name): blue for
negative values, near white at zero, red for positive values."""


class SignedStretch(BaseStretch):
    """A stretch applied symmetrically about the middle of the display range.

    Input values in [0, 1] stand for ``t = 2 v - 1`` in [-1, 1] (zero at
    0.5); the output is ``0.5 + 0.5 sign(t) s(|t|)`` with ``s`` the wrapped
    stretch.  With a zero-centred interval, a pixel's sign decides on which
    side of 0.5 it is drawn.

    Parameters
    ----------
    stretch : `astropy.visualization.BaseStretch`, optional
        Stretch of each side (linear by default).

    """

    def __init__(self, stretch: BaseStretch | None = None) -> None:
        super().__init__()
        self.stretch = stretch if stretch is not None else LinearStretch()

    def __call__(self, values: Any, clip: bool = True, out: np.ndarray | None = None) -> np.ndarray:
        """Stretch normalized values, keeping 0.5 fixed."""
        v = np.array(values, dtype=float, copy=True)
        if clip:
            np.clip(v, 0.0, 1.0, out=v)
        t = 2.0 * v - 1.0
        side = np.asarray(self.stretch(np.abs(t), clip=True), dtype=float)
        result = 0.5 + 0.5 * np.sign(t) * side
        if out is not None:
            out[...] = result
            return out
        return result

    @property
    def inverse(self) -> BaseStretch:
        """The inverse (the wrapped stretch's inverse on each side)."""
        return SignedStretch(self.stretch.inverse)

    def __repr__(self) -> str:
        return f"SignedStretch({self.stretch!r})"


def sign_aware(
    interval: BaseInterval | None = None, stretch: BaseStretch | None = None
) -> tuple[BaseInterval, BaseStretch]:
    """The (interval, stretch) of a sign-aware panel.

    Parameters
    ----------
    interval : `astropy.visualization.BaseInterval`, optional
        Interval made symmetric about zero; a `SymmetricInterval` (±5 robust
        σ) by default.
    stretch : `astropy.visualization.BaseStretch`, optional
        Stretch of each side of zero; linear by default.

    Returns
    -------
    interval : `astropy.visualization.BaseInterval`
        Limits ``(-h, +h)``.
    stretch : `SignedStretch`
        Keeps zero at display value 0.5.

    """
    if interval is None:
        interval = SymmetricInterval()
    elif not isinstance(interval, SymmetricInterval | ZeroCentredInterval):
        interval = ZeroCentredInterval(interval)
    if not isinstance(stretch, SignedStretch):
        stretch = SignedStretch(stretch)
    return interval, stretch


def side_of_zero(scaled: np.ndarray) -> np.ndarray:
    """Sign of display values about the middle of the range.

    Parameters
    ----------
    scaled : `numpy.ndarray`
        Display values in [0, 1] (NaN for no data).

    Returns
    -------
    side : `numpy.ndarray`
        -1 below 0.5, +1 above, 0 at 0.5 or for NaN.

    """
    scaled = np.asarray(scaled, dtype=float)
    return np.where(np.isnan(scaled), 0.0, np.sign(scaled - 0.5))


def negative_flux(flux: float | None) -> bool:
    """Whether a difference-image flux is negative (a fading source).

    Parameters
    ----------
    flux : `float` or `None`
        Catalog flux measured on the difference image (e.g. ``psfFlux``).

    Returns
    -------
    negative : `bool`
        `True` for a finite flux below zero; `False` for a missing one.

    """
    if flux is None:
        return False
    try:
        value = float(flux)
    except (TypeError, ValueError):
        return False
    return math.isfinite(value) and value < 0.0
