"""Stamp geometry: where a stamp lies on an image and how to cut it.

Pure functions of positions, sizes and arrays.  Pixel coordinates follow the
LSST convention: integer values at pixel centres, the first pixel of an
image at its bounding box's ``start`` (which may be non-zero for sub-images),
arrays indexed ``[y, x]``.
"""

from __future__ import annotations

__all__ = (
    "StampBox",
    "cut_stamp",
    "footprint_stamp_size",
    "pixel_scale_arcsec",
    "sky_to_pixel",
    "stamp_box",
    "union_box",
)

import dataclasses
import math
from collections.abc import Iterable

import numpy as np
from lsst.images import XY, Box, Interval, NoOverlapError, SkyProjection
from lsst.images.utils import round_half_up


@dataclasses.dataclass(frozen=True)
class StampBox:
    """An ``size`` × ``size`` pixel box centred on a position.

    Attributes
    ----------
    x0, y0
        Parent pixel coordinates of the lower-left pixel.
    size
        Width and height in pixels.

    """

    x0: int
    y0: int
    size: int

    @property
    def box(self) -> Box:
        """The box as an `lsst.images.Box` (may extend past an image)."""
        return Box.from_shape((self.size, self.size), start=(self.y0, self.x0))


def stamp_box(x: float, y: float, size: int) -> StampBox:
    """The ``size`` × ``size`` box of whole pixels centred on ``(x, y)``.

    The pixel that contains the position is the centre pixel for odd sizes,
    and the one just above and right of the centre for even sizes, so a
    source is always at ``(size // 2, size // 2)`` in stamp pixels, within
    half a pixel.

    Parameters
    ----------
    x, y
        Position in parent pixel coordinates.
    size
        Width and height of the stamp in pixels (≥ 1).

    """
    if size < 1:
        raise ValueError(f"Stamp size must be at least 1 pixel, not {size}.")
    cx = round_half_up(x)
    cy = round_half_up(y)
    half = size // 2
    return StampBox(x0=cx - half, y0=cy - half, size=size)


def union_box(boxes: Iterable[StampBox], within: Box) -> Box | None:
    """The smallest box holding all ``boxes``, clipped to ``within``.

    Returns `None` when none of the boxes overlaps ``within``.
    """
    boxes = [stamp.box for stamp in boxes]
    if not boxes:
        return None
    hull = Box(Interval.hull(*(b.y for b in boxes)), Interval.hull(*(b.x for b in boxes)))
    try:
        return hull.intersection(within)
    except NoOverlapError:
        return None


def cut_stamp(array: np.ndarray, array_box: Box, stamp: StampBox, fill: float = np.nan) -> np.ndarray:
    """Cut ``stamp`` out of ``array``, padding what lies off it.

    Parameters
    ----------
    array
        Pixels of the image (or of a part of it) indexed ``[y, x]``.
    array_box
        Parent-coordinate box of ``array``.
    stamp
        The stamp to cut.
    fill
        Value of stamp pixels that ``array`` does not cover (NaN marks them
        as "no data" for rendering).

    Returns
    -------
    numpy.ndarray
        A new ``stamp.size`` × ``stamp.size`` float32 array.

    """
    out = np.full((stamp.size, stamp.size), fill, dtype=np.float32)
    try:
        overlap = stamp.box.intersection(array_box)
    except NoOverlapError:
        return out
    out[overlap.slice_within(stamp.box)] = array[overlap.slice_within(array_box)]
    return out


def footprint_stamp_size(bbox_size: float | None, minimum: int = 5) -> int | None:
    """Square stamp size for a footprint of width ``bbox_size`` pixels.

    Returns `None` when the catalog gives no usable footprint size.
    """
    if bbox_size is None or not np.isfinite(bbox_size) or bbox_size <= 0:
        return None
    return max(int(bbox_size), minimum)


def sky_to_pixel(projection: SkyProjection, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parent pixel positions of ICRS sky positions (degrees) through
    ``projection``.
    """
    from astropy.coordinates import SkyCoord

    xy = projection.sky_to_pixel(SkyCoord(ra, dec, unit="deg", frame="icrs"))
    return np.asarray(xy.x, dtype=float), np.asarray(xy.y, dtype=float)


def pixel_scale_arcsec(projection: SkyProjection, bbox: Box) -> float:
    """Pixel scale (arcseconds, geometric mean of x and y) at the centre of
    ``bbox``.
    """
    cx, cy = bbox.x.center, bbox.y.center
    sky = projection.pixel_to_sky(XY(np.array([cx, cx + 1.0, cx]), np.array([cy, cy, cy + 1.0])))
    return float(math.sqrt(sky[0].separation(sky[1]).arcsec * sky[0].separation(sky[2]).arcsec))
