"""FITS stamps in the layout of Rubin alert-packet cutouts.

Each Rubin alert carries its science, template and difference cutouts as
FITS files written by `astropy.nddata.CCDData`: the image in the primary HDU
with a TAN WCS local to the stamp (tangent at the source, CD matrix the
image WCS's Jacobian there) and ``BUNIT``, the variance in an ``UNCERT``
extension (``UTYPE = 'VarianceUncertainty'``).  The stamps written here have
that layout plus a ``MASK`` extension holding the mask bits, with the plane
names in ``MP_<NAME> = bit`` cards as afw writes them, so

- ``astropy.nddata.CCDData.read(path)`` gives the pixels, the WCS, the unit,
  the variance (as a `~astropy.nddata.VarianceUncertainty`) and a boolean
  mask (any plane set);
- ``astropy.io.fits.open(path)["MASK"]`` gives the bits and their names.

``CUTMINX`` / ``CUTMINY`` give the stamp's lower-left pixel in the image's
parent pixel coordinates minus one (the alert convention: stamp FITS pixel
``(i, j)`` is parent pixel ``(CUTMINX + i, CUTMINY + j)``).
"""

from __future__ import annotations

__all__ = (
    "MASK_EXTNAME",
    "UNCERTAINTY_EXTNAME",
    "mask_bits",
    "mask_plane_names",
    "stamp_fits_bytes",
    "stamp_hdu_list",
)

import io
import re
from collections.abc import Mapping
from typing import Any

import astropy.io.fits as fits
import astropy.wcs
import numpy as np

MASK_EXTNAME = "MASK"
"""Extension holding the mask bits (the name `~astropy.nddata.CCDData` reads)."""

UNCERTAINTY_EXTNAME = "UNCERT"
"""Extension holding the variance (the name `~astropy.nddata.CCDData` reads)."""

_MAX_PLANES = 31


def mask_bits(planes: Mapping[str, np.ndarray], shape: tuple[int, int]) -> tuple[np.ndarray, dict[str, int]]:
    """Pack boolean mask planes into one integer array.

    Parameters
    ----------
    planes : mapping of `str` to `numpy.ndarray`
        Boolean stamp-shaped array of each plane, in bit order.
    shape : `tuple` [`int`, `int`]
        Stamp shape (used when ``planes`` is empty).

    Returns
    -------
    bits : `numpy.ndarray`
        int32 array: bit ``k`` set where the ``k``-th plane is.
    names : `dict` [`str`, `int`]
        Plane name -> bit number.

    Raises
    ------
    ValueError
        For more than 31 planes, a plane name that is not a valid FITS
        keyword suffix, or arrays of the wrong shape.

    """
    if len(planes) > _MAX_PLANES:
        raise ValueError(f"at most {_MAX_PLANES} mask planes fit a FITS int32 mask, got {len(planes)}.")
    bits = np.zeros(shape, dtype=np.int32)
    names: dict[str, int] = {}
    for bit, (name, array) in enumerate(planes.items()):
        if not re.fullmatch(r"[A-Z0-9_\-]+", name):
            raise ValueError(f"mask plane name {name!r} cannot be written as an MP_<NAME> FITS card.")
        array = np.asarray(array, dtype=bool)
        if array.shape != tuple(shape):
            raise ValueError(f"mask plane {name} has shape {array.shape}, expected {tuple(shape)}.")
        bits[array] |= np.int32(1 << bit)
        names[name] = bit
    return bits, names


def mask_plane_names(header: fits.Header) -> dict[str, int]:
    """Plane name -> bit number from the ``MP_<NAME>`` cards of a header."""
    return {key[3:]: int(value) for key, value in header.items() if key.startswith("MP_")}


def stamp_hdu_list(
    image: np.ndarray,
    wcs: astropy.wcs.WCS | None,
    *,
    variance: np.ndarray | None = None,
    mask: Mapping[str, np.ndarray] | None = None,
    unit: str | None = None,
    x0: int = 0,
    y0: int = 0,
    metadata: Mapping[str, Any] | None = None,
) -> fits.HDUList:
    """The HDUs of one stamp.

    Parameters
    ----------
    image : `numpy.ndarray`
        Stamp pixels, row 0 at the bottom (FITS order); NaN for no data.
    wcs : `astropy.wcs.WCS` or `None`
        Stamp WCS (e.g. `lsst.analysis.ap.stamp_wcs.local_tan_wcs`); `None`
        for images without one (e.g. ZTF alert stamps).
    variance : `numpy.ndarray`, optional
        Variance of the pixels (same shape); no ``UNCERT`` extension
        without it.
    mask : mapping of `str` to `numpy.ndarray`, optional
        Boolean array of each mask plane, in bit order; no ``MASK``
        extension without it.
    unit : `str`, optional
        Pixel unit (``"nJy"`` for calibrated images); the variance gets its
        square.  Without a unit ``BUNIT`` is omitted, and
        `~astropy.nddata.CCDData.read` needs ``unit=`` to read the file.
    x0, y0 : `int`, optional
        Parent pixel coordinates of the stamp's lower-left pixel.
    metadata : mapping, optional
        Extra primary-header cards (keys of at most 8 characters).

    Returns
    -------
    hdu_list : `astropy.io.fits.HDUList`
        Primary (image + WCS), then ``MASK`` and ``UNCERT`` when given.

    Raises
    ------
    ValueError
        If the arrays differ in shape, or from `mask_bits`.

    """
    data = np.asarray(image, dtype=np.float32)
    if data.ndim != 2:
        raise ValueError(f"stamp image must be 2-D, got shape {data.shape}.")
    header = wcs.to_header(relax=True) if wcs is not None else astropy.io.fits.Header()
    if unit:
        header["BUNIT"] = str(unit)
    header["CUTMINX"] = (int(x0) - 1, "parent x of stamp FITS pixel 0")
    header["CUTMINY"] = (int(y0) - 1, "parent y of stamp FITS pixel 0")
    for key, value in (metadata or {}).items():
        header[key] = value
    hdus: list[Any] = [fits.PrimaryHDU(data=data, header=header)]
    if mask is not None:
        bits, names = mask_bits(mask, data.shape)
        mask_header = wcs.to_header(relax=True) if wcs is not None else astropy.io.fits.Header()
        for name, bit in names.items():
            mask_header[f"HIERARCH MP_{name}" if len(name) > 5 else f"MP_{name}"] = bit
        hdus.append(fits.ImageHDU(data=bits, header=mask_header, name=MASK_EXTNAME))
    if variance is not None:
        var = np.asarray(variance, dtype=np.float32)
        if var.shape != data.shape:
            raise ValueError(f"variance has shape {var.shape}, image {data.shape}.")
        var_header = fits.Header()
        if unit:
            var_header["BUNIT"] = f"({unit})2"
        var_header["UTYPE"] = "VarianceUncertainty"
        hdus.append(fits.ImageHDU(data=var, header=var_header, name=UNCERTAINTY_EXTNAME))
    return fits.HDUList(hdus)


def stamp_fits_bytes(image: np.ndarray, wcs: astropy.wcs.WCS | None, **kwargs: Any) -> bytes:
    """One stamp as the bytes of a FITS file (see `stamp_hdu_list`)."""
    buffer = io.BytesIO()
    stamp_hdu_list(image, wcs, **kwargs).writeto(buffer, output_verify="exception")
    return buffer.getvalue()
