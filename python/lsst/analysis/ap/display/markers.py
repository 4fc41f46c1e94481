"""Where a stamp position lands on a panel, and the source marker drawn there.

Stamps are drawn with row 0 at the bottom and each stamp pixel upsampled by
nearest neighbour to fill a ``panel`` × ``panel`` box (see
`lsst.analysis.ap.display.renderer`), so stamp pixel coordinates ``(x, y)``
(pixel centres at integers, ``(0, 0)`` the lower-left pixel) land at canvas
coordinates ``u = (x + 0.5) f``, ``v = panel - (y + 0.5) f`` within the
panel, with ``f = panel / size`` and ``(u, v)`` measured from the panel's
upper-left corner in canvas pixels (canvas pixel ``k`` spans ``[k, k+1)``).

Marker styles (`MARKER_STYLES`):

``off``
    Nothing drawn (the default).
``reticle``
    Four short arms around the position, leaving a gap so the source
    itself stays visible.
``crosshair``
    Two lines across the whole panel through the position, with the same
    gap.
``ticks``
    Short ticks on the four panel edges, in the position's row and column;
    nothing covers the stamp's interior.

Each style is returned as two boolean masks: the marker's line pixels and a
one-pixel halo around them (drawn dark so the marker reads on any pixel).
"""

from __future__ import annotations

__all__ = (
    "MARKER_STYLES",
    "marker_masks",
    "panel_position",
)

import functools
import math

import numpy as np

MARKER_STYLES: tuple[str, ...] = ("off", "reticle", "crosshair", "ticks")
"""Accepted marker styles."""

_GAP = 6
"""Half-width (canvas pixels) of the empty square left around the position."""

_ARM = 10
"""Length of a reticle arm and of an edge tick (canvas pixels)."""


def panel_position(x: float, y: float, stamp_size: int, panel_pixels: int) -> tuple[float, float]:
    """Canvas position, within a panel, of a stamp pixel position.

    Parameters
    ----------
    x, y : `float`
        Position in stamp pixel coordinates (``(0, 0)`` the centre of the
        lower-left stamp pixel).
    stamp_size : `int`
        Stamp width in pixels.
    panel_pixels : `int`
        Panel width in canvas pixels.

    Returns
    -------
    u, v : `float`
        Canvas coordinates from the panel's upper-left corner (``u`` right,
        ``v`` down); the canvas pixel holding the position is
        ``(floor(u), floor(v))``.

    """
    f = panel_pixels / stamp_size
    return (x + 0.5) * f, panel_pixels - (y + 0.5) * f


def _halo(lines: np.ndarray) -> np.ndarray:
    """Pixels next to (8-connected) but not on the lines."""
    grown = lines.copy()
    grown[1:, :] |= lines[:-1, :]
    grown[:-1, :] |= lines[1:, :]
    grown2 = grown.copy()
    grown2[:, 1:] |= grown[:, :-1]
    grown2[:, :-1] |= grown[:, 1:]
    return grown2 & ~lines


@functools.lru_cache(maxsize=4096)
def _cached_masks(style: str, col: int, row: int, panel_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    n = panel_pixels
    lines = np.zeros((n, n), dtype=bool)

    def hline(r: int, c0: int, c1: int) -> None:
        if 0 <= r < n:
            lines[r, min(max(c0, 0), n) : max(min(c1, n), 0)] = True

    def vline(c: int, r0: int, r1: int) -> None:
        if 0 <= c < n:
            lines[min(max(r0, 0), n) : max(min(r1, n), 0), c] = True

    if style == "reticle":
        hline(row, col - _GAP - _ARM, col - _GAP)
        hline(row, col + _GAP + 1, col + _GAP + 1 + _ARM)
        vline(col, row - _GAP - _ARM, row - _GAP)
        vline(col, row + _GAP + 1, row + _GAP + 1 + _ARM)
    elif style == "crosshair":
        hline(row, 0, col - _GAP)
        hline(row, col + _GAP + 1, n)
        vline(col, 0, row - _GAP)
        vline(col, row + _GAP + 1, n)
    elif style == "ticks":
        hline(row, 0, _ARM)
        hline(row, n - _ARM, n)
        vline(col, 0, _ARM)
        vline(col, n - _ARM, n)
    halo = _halo(lines)
    lines.flags.writeable = False
    halo.flags.writeable = False
    return lines, halo


def marker_masks(style: str, u: float, v: float, panel_pixels: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Pixels of a source marker on one panel.

    Parameters
    ----------
    style : `str`
        One of `MARKER_STYLES`.
    u, v : `float`
        Position from `panel_position`.
    panel_pixels : `int`
        Panel width in canvas pixels.

    Returns
    -------
    masks : `tuple` [`numpy.ndarray`, `numpy.ndarray`] or `None`
        Read-only ``(panel, panel)`` boolean arrays: the marker's lines and
        their one-pixel halo.  The lines are symmetric about the canvas
        pixel holding the position.  `None` for ``off`` or for a position
        that is not finite.

    Raises
    ------
    ValueError
        For an unknown style.

    """
    if style not in MARKER_STYLES:
        raise ValueError(f"Unknown marker style {style!r}; valid choices are: {', '.join(MARKER_STYLES)}.")
    if style == "off" or not (math.isfinite(u) and math.isfinite(v)):
        return None
    return _cached_masks(style, math.floor(u), math.floor(v), int(panel_pixels))
