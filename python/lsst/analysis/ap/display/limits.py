"""Display intervals beyond astropy's: the central window, symmetric limits
and limits shared between panels.

Each interval follows the `astropy.visualization.BaseInterval` protocol
(``get_limits(values) -> (vmin, vmax)``), so it composes with any stretch.

- `CentralWindowInterval`: min/max of the central N × N pixels of a stamp
  (the original task's difference-panel limits); the whole stamp when it is
  smaller than N.  It needs the 2-D stamp, so it sets
  `CentralWindowInterval.needs_shape` and callers pass it the stamp array
  rather than its finite pixels.
- `SymmetricInterval`: ``±k`` robust standard deviations about zero (the
  sign of a difference pixel then maps to a side of the display range).
- `ZeroCentredInterval`: any interval made symmetric about zero, by
  ``±max(|vmin|, |vmax|)``.
- `shared_limits`: one (vmin, vmax) for several stamps (template and
  science drawn on the same scale).

Percentile limits with separate low and high percentiles are astropy's
`~astropy.visualization.AsymmetricPercentileInterval`; `percentile_interval`
builds one with Fink's defaults (0.5 and 99.5).
"""

from __future__ import annotations

__all__ = (
    "DEFAULT_PMAX",
    "DEFAULT_PMIN",
    "CentralWindowInterval",
    "SymmetricInterval",
    "ZeroCentredInterval",
    "percentile_interval",
    "shared_limits",
)

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from astropy.stats import mad_std
from astropy.visualization import AsymmetricPercentileInterval, BaseInterval, ManualInterval

DEFAULT_PMIN = 0.5
"""Default low percentile of the percentile interval (Fink's ``pmin``)."""

DEFAULT_PMAX = 99.5
"""Default high percentile of the percentile interval (Fink's ``pmax``)."""


def percentile_interval(
    pmin: float = DEFAULT_PMIN, pmax: float = DEFAULT_PMAX, percentile: float | None = None
) -> BaseInterval:
    """Limits at two percentiles of the finite pixels.

    Parameters
    ----------
    pmin, pmax : `float`, optional
        Low and high percentiles, ``0 <= pmin < pmax <= 100``.
    percentile : `float`, optional
        If given, the central percentage of pixels kept (astropy's
        `~astropy.visualization.PercentileInterval` convention):
        ``pmin = (100 - percentile) / 2`` and ``pmax = 100 - pmin``.

    Returns
    -------
    interval : `astropy.visualization.AsymmetricPercentileInterval`
        ``numpy.percentile`` of the finite pixels at ``pmin`` and ``pmax``
        (linear interpolation).

    Raises
    ------
    ValueError
        If the percentiles are out of range or not increasing.

    """
    if percentile is not None:
        pmin = (100.0 - float(percentile)) / 2.0
        pmax = 100.0 - pmin
    pmin, pmax = float(pmin), float(pmax)
    if not (0.0 <= pmin < pmax <= 100.0):
        raise ValueError(f"percentiles must satisfy 0 <= pmin < pmax <= 100, got pmin={pmin}, pmax={pmax}.")
    return AsymmetricPercentileInterval(pmin, pmax)


def _finite(values: Any) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return array[np.isfinite(array)]


class CentralWindowInterval(BaseInterval):
    """Min/max of the central ``window`` × ``window`` pixels of a stamp.

    The window is centred on the stamp's centre pixel ``(size // 2, size //
    2)`` (where the cutting code puts the source) and clipped to the stamp,
    so a stamp smaller than the window uses all its pixels.  NaN and inf
    pixels are ignored; if the window has no finite pixel, the whole stamp's
    finite pixels are used.

    Parameters
    ----------
    window : `int`, optional
        Width of the window in pixels (>= 1).

    Raises
    ------
    ValueError
        If ``window`` is smaller than 1.

    """

    needs_shape = True
    """The interval looks at pixel positions: pass it the 2-D stamp."""

    def __init__(self, window: int = 10) -> None:
        window = int(window)
        if window < 1:
            raise ValueError(f"central window must be at least 1 pixel wide, got {window}.")
        self.window = window

    def window_slices(self, shape: tuple[int, ...]) -> tuple[slice, slice]:
        """``(rows, columns)`` slices of the window in an array of ``shape``."""
        slices = []
        for n in shape[:2]:
            start = max(0, n // 2 - self.window // 2)
            slices.append(slice(start, min(n, start + self.window)))
        return slices[0], slices[1]

    def get_limits(self, values: Any) -> tuple[float, float]:
        """Return (vmin, vmax) of the window's finite pixels.

        Parameters
        ----------
        values : array-like
            The 2-D stamp (a 1-D array is taken as a whole window).

        Returns
        -------
        vmin, vmax : `float`
            ``(nan, nan)`` when the stamp has no finite pixel.

        """
        array = np.asarray(values, dtype=float)
        central = _finite(array[self.window_slices(array.shape)]) if array.ndim == 2 else _finite(array)
        if central.size == 0:
            central = _finite(array)
        if central.size == 0:
            return math.nan, math.nan
        return float(central.min()), float(central.max())

    def __repr__(self) -> str:
        return f"CentralWindowInterval(window={self.window})"


class SymmetricInterval(BaseInterval):
    """Limits ``±k σ`` about zero, σ a robust standard deviation.

    σ is the median absolute deviation of the finite pixels scaled to a
    Gaussian standard deviation (`astropy.stats.mad_std`), so a bright
    source does not widen the range.  Zero maps to the middle of the display
    range whatever the stamp holds.  If σ is zero (a mostly constant stamp),
    the largest absolute pixel value is used instead.

    Parameters
    ----------
    k : `float`, optional
        Half-width of the range in units of σ (> 0).

    Raises
    ------
    ValueError
        If ``k`` is not positive.

    """

    def __init__(self, k: float = 5.0) -> None:
        k = float(k)
        if not k > 0:
            raise ValueError(f"symmetric interval k must be > 0, got {k}.")
        self.k = k

    def get_limits(self, values: Any) -> tuple[float, float]:
        """Return ``(-k σ, +k σ)``; ``(nan, nan)`` without finite pixels."""
        finite = _finite(values)
        if finite.size == 0:
            return math.nan, math.nan
        half = self.k * float(mad_std(finite))
        if not half > 0:
            half = float(np.abs(finite).max())
        return -half, half

    def __repr__(self) -> str:
        return f"SymmetricInterval(k={self.k})"


class ZeroCentredInterval(BaseInterval):
    """An interval made symmetric about zero.

    Parameters
    ----------
    base : `astropy.visualization.BaseInterval`
        Interval whose limits are widened to ``±max(|vmin|, |vmax|)``.

    """

    def __init__(self, base: BaseInterval) -> None:
        self.base = base
        self.needs_shape = bool(getattr(base, "needs_shape", False))

    def get_limits(self, values: Any) -> tuple[float, float]:
        """Return ``(-h, h)``, ``h = max(|vmin|, |vmax|)`` of the base interval."""
        vmin, vmax = (float(v) for v in self.base.get_limits(values))
        half = max(abs(vmin), abs(vmax))
        if not (math.isfinite(half) and half > 0):
            finite = _finite(values)
            half = float(np.abs(finite).max()) if finite.size else math.nan
        return -half, half

    def __repr__(self) -> str:
        return f"ZeroCentredInterval({self.base!r})"


def shared_limits(stamps: Iterable[np.ndarray], interval: BaseInterval) -> ManualInterval | None:
    """One interval for several stamps, from all their finite pixels.

    Used to draw the template and the science stamp of a source on the same
    scale.  Shape-aware intervals (`CentralWindowInterval`) take the
    min/max of each stamp's window and return the widest range.

    Parameters
    ----------
    stamps : iterable of `numpy.ndarray`
        The stamps; empty (all-NaN) ones are ignored.
    interval : `astropy.visualization.BaseInterval`
        Chooses the limits.

    Returns
    -------
    limits : `astropy.visualization.ManualInterval` or `None`
        Fixed limits for every stamp, or `None` when no stamp has a finite
        pixel or the interval gives no usable range.

    """
    arrays = [np.asarray(s, dtype=float) for s in stamps]
    arrays = [a for a in arrays if np.isfinite(a).any()]
    if not arrays:
        return None
    if getattr(interval, "needs_shape", False):
        pairs = [interval.get_limits(a) for a in arrays]
        vmin, vmax = min(p[0] for p in pairs), max(p[1] for p in pairs)
    else:
        vmin, vmax = interval.get_limits(np.concatenate([_finite(a) for a in arrays]))
    vmin, vmax = float(vmin), float(vmax)
    if not (math.isfinite(vmin) and math.isfinite(vmax) and vmax > vmin):
        return None
    return ManualInterval(vmin, vmax)
