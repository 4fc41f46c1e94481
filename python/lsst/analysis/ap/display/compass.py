"""North / East compass arrows of a panel.

The arrows start from a common point near the panel's upper-right corner and
point toward North and East as the stamp is drawn (from each stamp's own WCS,
see `lsst.analysis.ap.stamp_wcs.sky_directions`, after any orientation
transform).  Each arrow has a letter (``N``, ``E``) beyond its tip.  The
North arrow and the East arrow are returned as separate masks so the
renderer can draw them in different colours.

Everything is computed in canvas pixels of one panel (``u`` right, ``v``
down); masks are cached by the arrows' directions rounded to a degree, so
the stamps of one detector, which share their directions, rasterize them
once.
"""

from __future__ import annotations

__all__ = ("CompassGeometry", "compass_geometry", "compass_masks")

import dataclasses
import functools
import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Vector = tuple[float, float]

_LABEL_SIZE = 11


@dataclasses.dataclass(frozen=True)
class CompassGeometry:
    """Where a compass is drawn on a panel (canvas pixels, ``v`` down).

    Attributes
    ----------
    origin : `tuple` [`float`, `float`]
        Common start of both arrows.
    north_tip, east_tip : `tuple` [`float`, `float`]
        Arrow tips.
    north_label, east_label : `tuple` [`float`, `float`]
        Centres of the letters.

    """

    origin: Vector
    north_tip: Vector
    east_tip: Vector
    north_label: Vector
    east_label: Vector


def compass_geometry(north: Vector, east: Vector, panel_pixels: int) -> CompassGeometry:
    """Arrow positions for North and East directions on a panel.

    Parameters
    ----------
    north, east : `tuple` [`float`, `float`]
        Unit vectors ``(dx, dy)`` in stamp pixel coordinates (``y`` up).
    panel_pixels : `int`
        Panel width in canvas pixels.

    Returns
    -------
    geometry : `CompassGeometry`
        Arrows of length ``panel / 10`` (at least 10 px) starting
        ``2.2 × length`` from the panel's upper-right corner, so any
        direction fits in the panel.

    """
    length = max(10.0, panel_pixels / 10.0)
    inset = 2.2 * length
    origin = (panel_pixels - inset, inset)

    def towards(v: Vector, scale: float) -> Vector:
        norm = math.hypot(*v) or 1.0
        return (origin[0] + scale * v[0] / norm, origin[1] - scale * v[1] / norm)

    label = length + 8.0
    return CompassGeometry(
        origin=origin,
        north_tip=towards(north, length),
        east_tip=towards(east, length),
        north_label=towards(north, label),
        east_label=towards(east, label),
    )


@functools.cache
def _font() -> ImageFont.FreeTypeFont:
    import matplotlib

    path = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans-Bold.ttf")
    return ImageFont.truetype(path, _LABEL_SIZE)


def _arrow(draw: ImageDraw.ImageDraw, start: Vector, tip: Vector, label: Vector, text: str) -> None:
    draw.line([start, tip], fill=255, width=2)
    angle = math.atan2(tip[1] - start[1], tip[0] - start[0])
    head = 5.0
    for side in (-1, 1):
        a = angle + math.pi - side * math.radians(30)
        draw.line([tip, (tip[0] + head * math.cos(a), tip[1] + head * math.sin(a))], fill=255, width=2)
    draw.text(label, text, fill=255, font=_font(), anchor="mm")


def _halo(mask: np.ndarray) -> np.ndarray:
    grown = mask.copy()
    grown[1:, :] |= mask[:-1, :]
    grown[:-1, :] |= mask[1:, :]
    wide = grown.copy()
    wide[:, 1:] |= grown[:, :-1]
    wide[:, :-1] |= grown[:, 1:]
    return wide


@functools.lru_cache(maxsize=1024)
def _cached(north_deg: int, east_deg: int, panel_pixels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    north = (math.cos(math.radians(north_deg)), math.sin(math.radians(north_deg)))
    east = (math.cos(math.radians(east_deg)), math.sin(math.radians(east_deg)))
    geometry = compass_geometry(north, east, panel_pixels)
    masks = []
    for tip, label, text in (
        (geometry.north_tip, geometry.north_label, "N"),
        (geometry.east_tip, geometry.east_label, "E"),
    ):
        image = Image.new("L", (panel_pixels, panel_pixels), 0)
        _arrow(ImageDraw.Draw(image), geometry.origin, tip, label, text)
        masks.append(np.asarray(image) >= 128)
    n_mask, e_mask = masks
    halo = _halo(n_mask | e_mask) & ~(n_mask | e_mask)
    for array in (n_mask, e_mask, halo):
        array.flags.writeable = False
    return n_mask, e_mask, halo


def compass_masks(
    north: Vector, east: Vector, panel_pixels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels of the North arrow, the East arrow and their dark outline.

    Parameters
    ----------
    north, east : `tuple` [`float`, `float`]
        Directions in stamp pixel coordinates (``y`` up), as drawn.
    panel_pixels : `int`
        Panel width in canvas pixels.

    Returns
    -------
    north_mask, east_mask, halo : `numpy.ndarray`
        Read-only ``(panel, panel)`` boolean arrays (arrow, head and
        letter).  Directions are rounded to the nearest degree.

    """

    def degrees(v: Vector) -> int:
        return int(round(math.degrees(math.atan2(v[1], v[0])))) % 360

    return _cached(degrees(north), degrees(east), int(panel_pixels))
