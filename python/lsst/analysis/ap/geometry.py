"""Stamp geometry: where a stamp lies on an image and how to cut it.

Pure functions of positions, sizes and arrays.  Pixel coordinates follow the
LSST convention: integer values at pixel centres, the first pixel of an
image at its bounding box's ``start`` (which may be non-zero for sub-images),
arrays indexed ``[y, x]``.
"""

from __future__ import annotations

__all__ = (
    "MAX_STAMP_SIZE",
    "StampBox",
    "cut_stamp",
    "footprint_stamp_size",
    "mean_sky_position",
    "pixel_scale_arcsec",
    "sky_separation_arcsec",
    "sky_to_pixel",
    "stamp_box",
    "union_box",
)

import dataclasses
import functools
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from lsst.images import XY, Box, Interval, NoOverlapError, SkyProjection
from numpy.typing import ArrayLike

MAX_STAMP_SIZE = 4096
"""Largest stamp width in pixels, of a configured size or of a footprint
(``bboxSize``): a 4096 × 4096 stamp already takes 64 MiB per image."""


@dataclasses.dataclass(frozen=True)
class StampBox:
    """An ``size`` × ``size`` pixel box centred on a position.

    Attributes
    ----------
    x0, y0 : `int`
        Parent pixel coordinates of the lower-left pixel.
    size : `int`
        Width and height in pixels.

    """

    x0: int
    y0: int
    size: int

    @functools.cached_property
    def box(self) -> Box:
        """The box as an `lsst.images.Box` (may extend past an image)."""
        return Box.from_shape((self.size, self.size), start=(self.y0, self.x0))


def stamp_box(x: float, y: float, size: int) -> StampBox:
    """The ``size`` × ``size`` box of whole pixels centred on ``(x, y)``.

    This is afw's ``Box2I.makeCenteredBox`` rule, the one the original
    package (``Exposure.getCutout``) and alert production cut stamps with,
    so a stamp of a packet and a stamp of this package cover the same
    pixels.  The box's centre is always within half a pixel of the
    position: for odd sizes the pixel holding the position is the centre
    pixel; for even sizes the box's centre is the pixel corner nearest to
    the position, ``(floor(x) + 0.5, floor(y) + 0.5)``.

    Parameters
    ----------
    x, y : `float`
        Position in parent pixel coordinates.
    size : `int`
        Width and height of the stamp in pixels (≥ 1).

    Returns
    -------
    stamp : `StampBox`
        The box (it may extend past any image).

    Raises
    ------
    ValueError
        If ``size`` is less than 1.

    """
    if size < 1:
        raise ValueError(f"Stamp size must be at least 1 pixel, not {size}.")
    # The lower-left corner, half a pixel in because integer coordinates are
    # pixel centres, then rounded half up: the same floating-point steps as
    # makeCenteredBox, so positions on a rounding edge land where afw's do.
    return StampBox(
        x0=math.floor(x - 0.5 * size + 0.5 + 0.5), y0=math.floor(y - 0.5 * size + 0.5 + 0.5), size=size
    )


def union_box(boxes: Iterable[StampBox], within: Box) -> Box | None:
    """The smallest box holding all ``boxes``, clipped to ``within``.

    Parameters
    ----------
    boxes : iterable of `StampBox`
        The stamps of one source (one per size).
    within : `lsst.images.Box`
        Bounding box of the image.

    Returns
    -------
    region : `lsst.images.Box` or `None`
        The region to read, or `None` when none of the boxes overlaps
        ``within``.

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
    array : `numpy.ndarray`
        Pixels of the image (or of a part of it) indexed ``[y, x]``.
    array_box : `lsst.images.Box`
        Parent-coordinate box of ``array``.
    stamp : `StampBox`
        The stamp to cut.
    fill : `float`, optional
        Value of stamp pixels that ``array`` does not cover (NaN marks them
        as "no data" for rendering).

    Returns
    -------
    cutout : `numpy.ndarray`
        A new ``stamp.size`` × ``stamp.size`` float32 array.

    """
    out = np.full((stamp.size, stamp.size), fill, dtype=np.float32)
    try:
        overlap = stamp.box.intersection(array_box)
    except NoOverlapError:
        return out
    out[overlap.slice_within(stamp.box)] = array[overlap.slice_within(array_box)]
    return out


def footprint_stamp_size(bbox_size: Any, minimum: int = 5) -> int | None:
    """Square stamp size for a footprint.

    Parameters
    ----------
    bbox_size : `float`, `str` or `None`
        Footprint width in pixels (the catalog's ``bboxSize``); text that
        reads as a number is that number.
    minimum : `int`, optional
        Smallest stamp size returned.

    Returns
    -------
    size : `int` or `None`
        The stamp size, or `None` when the catalog gives no usable
        footprint size (it may exceed `MAX_STAMP_SIZE`, which the caller
        checks).

    """
    try:
        width = float(bbox_size)
    except (TypeError, ValueError):
        return None
    if not np.isfinite(width) or width <= 0:
        return None
    return max(int(width), minimum)


def sky_to_pixel(projection: SkyProjection, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parent pixel positions of ICRS sky positions.

    Parameters
    ----------
    projection : `lsst.images.SkyProjection`
        Sky projection of the image.
    ra, dec : `numpy.ndarray`
        ICRS coordinates in degrees.

    Returns
    -------
    x, y : `numpy.ndarray`
        Parent pixel coordinates (float; may be huge or NaN far off the
        image).

    """
    from astropy.coordinates import SkyCoord

    xy = projection.sky_to_pixel(SkyCoord(ra, dec, unit="deg", frame="icrs"))
    return np.asarray(xy.x, dtype=float), np.asarray(xy.y, dtype=float)


def pixel_scale_arcsec(projection: SkyProjection, bbox: Box) -> float:
    """Pixel scale at the centre of a box.

    Parameters
    ----------
    projection : `lsst.images.SkyProjection`
        Sky projection of the image.
    bbox : `lsst.images.Box`
        Bounding box of the image.

    Returns
    -------
    scale : `float`
        Arcseconds per pixel, geometric mean of x and y.

    """
    cx, cy = bbox.x.center, bbox.y.center
    sky = projection.pixel_to_sky(XY(np.array([cx, cx + 1.0, cx]), np.array([cy, cy, cy + 1.0])))
    return float(math.sqrt(sky[0].separation(sky[1]).arcsec * sky[0].separation(sky[2]).arcsec))


def mean_sky_position(ra: np.ndarray, dec: np.ndarray) -> tuple[float, float]:
    """The mean of sky positions, as the direction of the sum of their unit
    vectors: right for positions on both sides of RA 0/360 or around a pole,
    where the mean of the angles is not (359.9999° and 0.0001° average to
    180°).

    Parameters
    ----------
    ra, dec : `numpy.ndarray`
        Positions in degrees; pairs with a NaN are left out.

    Returns
    -------
    ra, dec : `float`
        Mean position in degrees (``ra`` in [0, 360)); NaN when no pair is
        finite or the vectors cancel.

    """
    ra = np.asarray(ra, dtype=float)
    dec = np.asarray(dec, dtype=float)
    good = np.isfinite(ra) & np.isfinite(dec)
    if not good.any():
        return math.nan, math.nan
    ra, dec = ra[good], dec[good]
    if (ra == ra[0]).all() and (dec == dec[0]).all():
        return float(ra[0]), float(dec[0])  # one position (one epoch): as given, to the last bit
    ra, dec = np.radians(ra), np.radians(dec)
    x, y, z = (float(v.sum()) for v in (np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)))
    if math.sqrt(x * x + y * y + z * z) < 1e-12 * len(ra):
        return math.nan, math.nan
    ra_mean = math.degrees(math.atan2(y, x)) % 360.0  # 360.0 itself for a hair below 0
    return (0.0 if ra_mean >= 360.0 else ra_mean), math.degrees(math.atan2(z, math.hypot(x, y)))


def sky_separation_arcsec(ra: ArrayLike, dec: ArrayLike, ra0: float, dec0: float) -> np.ndarray:
    """Angular distances from one sky position to others, across RA 0/360
    and the poles.

    Parameters
    ----------
    ra, dec : array-like
        Positions in degrees.
    ra0, dec0 : `float`
        The position the distances are measured from, in degrees.

    Returns
    -------
    separation : `numpy.ndarray`
        Distance of each position in arcseconds (NaN where it has a NaN).

    """
    from astropy.coordinates import angular_separation

    separation = angular_separation(
        np.radians(np.asarray(ra, dtype=float)),
        np.radians(np.asarray(dec, dtype=float)),
        math.radians(ra0),
        math.radians(dec0),
    )
    return np.degrees(separation) * 3600.0
