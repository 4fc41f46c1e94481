"""Stamps of every epoch on one common pixel grid.

Visits differ in rotation and dither, so the same sky position falls on
differently oriented pixel grids.  Each epoch's stamp is resampled (with
`reproject`, through `lsst.analysis.ap.stamp_wcs`) onto one north-up TAN grid
centred on the object, so the object keeps its canvas position in every
frame.  When all epochs share one pixel orientation (same local CD matrix),
no resampling is done: each stamp is cut directly around the object.
"""

from __future__ import annotations

__all__ = ("AlignedStamp", "common_grid", "cut_aligned", "grids_agree", "local_grid")

import dataclasses
import math

import astropy.wcs
import numpy as np

from ..geometry import cut_stamp, stamp_box, union_box
from ..images.butler import PlaneReader
from ..stamp_wcs import PixelToSky, local_tan_wcs, north_up_wcs, projection_mappings, resample_north_up

_CD_TOLERANCE = 1e-4
"""Relative difference of two local CD matrices below which two epochs share a grid."""


@dataclasses.dataclass(frozen=True)
class AlignedStamp:
    """One epoch's stamp of one image on the common grid.

    Attributes
    ----------
    array : `numpy.ndarray`
        Pixels (NaN where the image has no data), row 0 at the bottom.
    resampled : `bool`
        Whether the pixels were interpolated onto the common grid.

    """

    array: np.ndarray
    resampled: bool


def _pixel_to_sky(reader: PlaneReader) -> PixelToSky:
    return projection_mappings(reader.projection)[1]


def _position(reader: PlaneReader, ra: float, dec: float) -> tuple[float, float]:
    xs, ys = reader.sky_to_pixel(np.array([ra]), np.array([dec]))
    x, y = float(xs[0]), float(ys[0])
    bbox = reader.bbox
    if not (math.isfinite(x) and math.isfinite(y)) or not bbox.contains(x=round(x), y=round(y)):
        raise LookupError(f"the position is off {reader.name} (x {bbox.x}, y {bbox.y})")
    return x, y


def local_grid(reader: PlaneReader, ra: float, dec: float) -> np.ndarray:
    """The image's local CD matrix (degrees per pixel) at a sky position.

    Raises
    ------
    LookupError
        When the position is off the image.

    """
    x, y = _position(reader, ra, dec)
    wcs = local_tan_wcs(_pixel_to_sky(reader), x, y, 0, 0, 1)
    return np.asarray(wcs.wcs.cd, dtype=float)


def grids_agree(cds: list[np.ndarray]) -> bool:
    """Whether local CD matrices all describe the same pixel grid."""
    if not cds:
        return True
    ref = cds[0]
    scale = float(np.abs(ref).max())
    return all(float(np.abs(cd - ref).max()) <= _CD_TOLERANCE * scale for cd in cds[1:])


def common_grid(ra: float, dec: float, scale_arcsec: float, size: int) -> astropy.wcs.WCS:
    """The north-up, east-left grid of ``size`` pixels centred on the object."""
    centre = (size - 1) / 2.0
    return north_up_wcs(ra, dec, centre, centre, scale_arcsec, size)


def cut_aligned(
    reader: PlaneReader, ra: float, dec: float, size: int, grid: astropy.wcs.WCS | None
) -> AlignedStamp:
    """One image's stamp of the object, on ``grid`` or cut directly.

    Parameters
    ----------
    reader : `~lsst.analysis.ap.images.butler.PlaneReader`
        The image.
    ra, dec : `float`
        Object position (degrees).
    size : `int`
        Stamp width and height.
    grid : `astropy.wcs.WCS` or `None`
        Common grid to resample onto; `None` cuts the image's own pixels
        centred on the object's nearest pixel.

    Returns
    -------
    stamp : `AlignedStamp`
        The stamp.

    Raises
    ------
    LookupError
        When the position is off the image.

    """
    x, y = _position(reader, ra, dec)
    if grid is None:
        box = stamp_box(x, y, size)
        region = union_box([box], reader.bbox)
        array, array_box = reader.read(region)
        return AlignedStamp(cut_stamp(array, array_box, box), resampled=False)
    margin = int(math.ceil(size * math.sqrt(2) / 2)) + 3
    big = stamp_box(x, y, 2 * margin + 1)
    region = union_box([big], reader.bbox)
    array, array_box = reader.read(region)
    pixels = cut_stamp(array, array_box, big)
    x0, y0 = big.x0, big.y0
    wcs = local_tan_wcs(_pixel_to_sky(reader), x, y, x0, y0, pixels.shape[0])
    return AlignedStamp(resample_north_up(pixels, wcs, grid).astype(np.float32), resampled=True)
