"""Sky geometry of a stamp: directions of North and East, the stamp's local
TAN WCS, and the north-up grid a stamp is resampled onto.

Every function takes the image's mapping between pixels and sky as plain
callables (``pixel_to_sky(x, y) -> (ra, dec)`` and ``sky_to_pixel(ra, dec)
-> (x, y)``, degrees and parent pixel coordinates, numpy arrays in and out),
so the same code serves `lsst.images.SkyProjection`, afw-file WCSs read with
astropy, and tests.

Pixel coordinates follow the LSST convention (integer values at pixel
centres); a stamp whose lower-left pixel is parent pixel ``(x0, y0)`` has
stamp coordinates ``(x - x0, y - y0)``.  FITS WCSs built here use FITS
pixel coordinates of the stamp array, which are those plus 1.
"""

from __future__ import annotations

__all__ = (
    "PixelToSky",
    "SkyToPixel",
    "local_tan_wcs",
    "north_up_wcs",
    "projection_mappings",
    "resample_north_up",
    "sky_directions",
)

import math
from collections.abc import Callable
from typing import Any

import astropy.wcs
import numpy as np

SkyToPixel = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""``(ra, dec) -> (x, y)``: degrees to parent pixel coordinates."""

PixelToSky = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""``(x, y) -> (ra, dec)``: parent pixel coordinates to degrees."""

_STEP_ARCSEC = 1.0


def sky_directions(
    sky_to_pixel: SkyToPixel, ra: float, dec: float
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Unit vectors, in pixel coordinates, pointing North and East at a sky
    position.

    Parameters
    ----------
    sky_to_pixel : callable
        The image's sky-to-pixel mapping.
    ra, dec : `float`
        Position (degrees).

    Returns
    -------
    north, east : `tuple` [`float`, `float`]
        ``(dx, dy)`` unit vectors (``x`` right, ``y`` up as stamps are
        drawn) toward increasing declination and increasing right
        ascension.

    Raises
    ------
    ValueError
        If the mapping gives no finite pixel offsets at the position.

    """
    step = _STEP_ARCSEC / 3600.0
    cos_dec = max(math.cos(math.radians(dec)), 1e-6)
    x, y = sky_to_pixel(np.array([ra, ra, ra + step / cos_dec]), np.array([dec, min(dec + step, 90.0), dec]))
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    vectors = []
    for k in (1, 2):
        d = np.array([x[k] - x[0], y[k] - y[0]])
        norm = float(np.hypot(*d))
        if not (math.isfinite(norm) and norm > 0):
            raise ValueError(f"no North/East direction at RA {ra}, Dec {dec}: the WCS gives no pixel offset.")
        vectors.append((float(d[0] / norm), float(d[1] / norm)))
    return vectors[0], vectors[1]


def _gnomonic(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    """Standard coordinates (degrees) of sky positions about a tangent point."""
    a, d = np.radians(ra), np.radians(dec)
    a0, d0 = math.radians(ra0), math.radians(dec0)
    cos_c = math.sin(d0) * np.sin(d) + math.cos(d0) * np.cos(d) * np.cos(a - a0)
    xi = np.cos(d) * np.sin(a - a0) / cos_c
    eta = (math.cos(d0) * np.sin(d) - math.sin(d0) * np.cos(d) * np.cos(a - a0)) / cos_c
    return np.degrees(xi), np.degrees(eta)


def _tan_wcs(ra: float, dec: float, crpix: tuple[float, float], cd: np.ndarray, size: int) -> astropy.wcs.WCS:
    wcs = astropy.wcs.WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [crpix[0], crpix[1]]
    wcs.wcs.cd = cd
    wcs.wcs.radesys = "ICRS"
    wcs.array_shape = (size, size)
    return wcs


def local_tan_wcs(
    pixel_to_sky: PixelToSky, x: float, y: float, x0: int, y0: int, size: int
) -> astropy.wcs.WCS:
    """The TAN WCS of a stamp: tangent at the source, linear about it.

    The CD matrix is the image WCS's Jacobian at the source (central
    differences of half a pixel in the gnomonic plane of the source), the
    same local approximation Rubin alert cutouts carry; over a stamp of a
    few tens of pixels it agrees with the image WCS to well below 0.01
    pixel for detector-scale distortions.

    Parameters
    ----------
    pixel_to_sky : callable
        The image's pixel-to-sky mapping.
    x, y : `float`
        Source position (parent pixel coordinates).
    x0, y0 : `int`
        Parent coordinates of the stamp's lower-left pixel.
    size : `int`
        Stamp width and height.

    Returns
    -------
    wcs : `astropy.wcs.WCS`
        Maps FITS pixel ``(x - x0 + 1, y - y0 + 1)`` to the source's sky
        position exactly.

    Raises
    ------
    ValueError
        If the mapping is not finite at the source.

    """
    h = 0.5
    xs = np.array([x, x + h, x - h, x, x])
    ys = np.array([y, y, y, y + h, y - h])
    ra, dec = (np.asarray(v, dtype=float) for v in pixel_to_sky(xs, ys))
    if not (np.isfinite(ra).all() and np.isfinite(dec).all()):
        raise ValueError(f"the WCS is not finite around pixel ({x:.2f}, {y:.2f}).")
    xi, eta = _gnomonic(ra, dec, float(ra[0]), float(dec[0]))
    cd = np.array(
        [
            [(xi[1] - xi[2]) / (2 * h), (xi[3] - xi[4]) / (2 * h)],
            [(eta[1] - eta[2]) / (2 * h), (eta[3] - eta[4]) / (2 * h)],
        ]
    )
    return _tan_wcs(float(ra[0]), float(dec[0]), (x - x0 + 1.0, y - y0 + 1.0), cd, size)


def north_up_wcs(
    ra: float, dec: float, x: float, y: float, scale_arcsec: float, size: int
) -> astropy.wcs.WCS:
    """A north-up, east-left TAN grid with the source at a stamp position.

    Parameters
    ----------
    ra, dec : `float`
        Source position (degrees), the tangent point.
    x, y : `float`
        Stamp pixel coordinates (0-based) the source lands on.
    scale_arcsec : `float`
        Pixel scale (arcseconds per pixel, > 0).
    size : `int`
        Stamp width and height.

    Returns
    -------
    wcs : `astropy.wcs.WCS`
        ``CD = diag(-s, s)`` degrees per pixel.

    Raises
    ------
    ValueError
        For a non-positive scale.

    """
    if not (math.isfinite(scale_arcsec) and scale_arcsec > 0):
        raise ValueError(f"pixel scale must be > 0 arcsec, got {scale_arcsec}.")
    s = scale_arcsec / 3600.0
    return _tan_wcs(ra, dec, (x + 1.0, y + 1.0), np.array([[-s, 0.0], [0.0, s]]), size)


def resample_north_up(
    array: np.ndarray,
    stamp_wcs: astropy.wcs.WCS,
    target_wcs: astropy.wcs.WCS,
    *,
    order: str = "bilinear",
) -> np.ndarray:
    """Resample a stamp onto another grid (e.g. `north_up_wcs`) with reproject.

    Parameters
    ----------
    array : `numpy.ndarray`
        2-D stamp (NaN for no data), row 0 at the bottom (FITS order).
    stamp_wcs : `astropy.wcs.WCS`
        WCS of ``array`` (e.g. `local_tan_wcs`).
    target_wcs : `astropy.wcs.WCS`
        Grid to resample onto; its ``array_shape`` gives the output shape.
    order : `str`, optional
        Interpolation of `reproject.reproject_interp`: ``"bilinear"`` for
        pixel values, ``"nearest-neighbor"`` for mask bits.

    Returns
    -------
    resampled : `numpy.ndarray`
        Float array of ``target_wcs.array_shape``; NaN where the output
        pixel falls outside ``array`` or on its no-data pixels.

    """
    from reproject import reproject_interp

    data = np.asarray(array, dtype=float)
    out = reproject_interp(
        (data, stamp_wcs),
        target_wcs,
        shape_out=tuple(target_wcs.array_shape),
        order=order,
        return_footprint=False,
    )
    return np.asarray(out, dtype=float)


def projection_mappings(projection: Any) -> tuple[SkyToPixel, PixelToSky]:
    """The two mappings of an `lsst.images.SkyProjection` as plain callables.

    Parameters
    ----------
    projection : `lsst.images.SkyProjection`
        Sky projection of an image (parent pixel coordinates).

    Returns
    -------
    sky_to_pixel, pixel_to_sky : callable
        Degrees (ICRS) to pixels and back, on numpy arrays.

    """
    from astropy.coordinates import SkyCoord
    from lsst.images import XY

    def sky_to_pixel(ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xy = projection.sky_to_pixel(
            SkyCoord(np.atleast_1d(ra), np.atleast_1d(dec), unit="deg", frame="icrs")
        )
        return np.asarray(xy.x, dtype=float), np.asarray(xy.y, dtype=float)

    def pixel_to_sky(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sky = projection.pixel_to_sky(
            XY(np.atleast_1d(np.asarray(x, float)), np.atleast_1d(np.asarray(y, float)))
        )
        icrs = sky.icrs
        return np.asarray(icrs.ra.deg, dtype=float), np.asarray(icrs.dec.deg, dtype=float)

    return sky_to_pixel, pixel_to_sky
