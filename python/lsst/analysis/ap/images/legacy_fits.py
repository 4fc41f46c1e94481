"""Read FITS files written by ``lsst.afw`` into `lsst.images` types, without
``lsst.afw``.

``lsst.afw.image.Exposure.writeFits`` and ``MaskedImage.writeFits`` write an
IMAGE, a MASK and a VARIANCE HDU (Exposures follow them with binary-table
archive HDUs that this module ignores).  `read_legacy_masked_image` turns such
a file into an `lsst.images.MaskedImage` with the parent bounding box, a mask
schema built from the file's ``MP_<NAME>`` cards (or lsst.images'
``MSKN``/``MSKM`` cards) and, when the IMAGE HDU has a celestial FITS WCS, a
`lsst.images.SkyProjection`.

`lsst.images.MaskedImage.read_legacy` does not read these files: it requires
``EXTNAME`` cards (afw files written before lsst.images have only
``EXTTYPE``), requires a complete "A" WCS (``CTYPE2A`` is missing in some
MaskedImage files), renames mask planes (``SAT`` becomes ``SATURATED``) and
drops or rejects the ones it does not know, and attaches no sky projection
unless asked for one.  Its `lsst.images.SkyProjection.from_fits_wcs` also
takes the celestial coordinates of any FITS WCS to be ICRS, which is about
25 mas off for the ``RADESYS = 'FK5'`` headers of old afw files.
"""

from __future__ import annotations

__all__ = (
    "LegacyHeaderInfo",
    "celestial_wcs",
    "make_sky_projection",
    "read_legacy_header_info",
    "read_legacy_masked_image",
    "read_xy0",
)

import dataclasses
import os
import re
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import astropy.io.fits
import astropy.units as u
import astropy.wcs
import numpy as np
from astropy.coordinates import ICRS, SkyCoord
from astropy.wcs.utils import wcs_to_celestial_frame
from lsst.images import (
    XY,
    Box,
    GeneralFrame,
    Image,
    Mask,
    MaskedImage,
    MaskPlane,
    MaskSchema,
    SkyProjection,
    get_legacy_difference_image_mask_planes,
    get_legacy_optional_mask_planes,
)

PLANE_TYPES = ("IMAGE", "MASK", "VARIANCE")
"""The ``EXTTYPE`` (or ``EXTNAME``) values of the three pixel HDUs, in the
order afw writes them.
"""

SKY_TOLERANCE = 1.0 * u.mas
"""Largest disagreement allowed between the sky projection and astropy's
reading of the same FITS WCS (`astropy.units.Quantity`).
"""

_PIXEL_FRAME = GeneralFrame(unit=u.pix)

_STRUCTURAL_KEYS = frozenset({"SIMPLE", "BITPIX", "EXTEND", "COMMENT", "HISTORY", ""})

_KNOWN_PLANE_DESCRIPTIONS = {
    name: plane.description
    for name, plane in (get_legacy_difference_image_mask_planes() | get_legacy_optional_mask_planes()).items()
}

_IMAGE_HDU_TYPES = (astropy.io.fits.PrimaryHDU, astropy.io.fits.ImageHDU, astropy.io.fits.CompImageHDU)


@dataclasses.dataclass(frozen=True)
class LegacyHeaderInfo:
    """What the headers of an afw-written FITS file say.

    Attributes
    ----------
    path : `str`
        The file the information was read from.
    image_hdu, mask_hdu, variance_hdu : `int`
        Indices of the IMAGE, MASK and VARIANCE HDUs.
    bbox : `lsst.images.Box`
        Bounding box of the pixels in parent coordinates (it starts at xy0).
    mask_planes : `~collections.abc.Mapping` [`str`, `int`]
        afw mask plane name to bit number, from the ``MP_<NAME>`` cards of
        the MASK HDU, sorted by bit.
    has_sky_wcs : `bool`
        Whether the IMAGE HDU has a celestial FITS WCS.
    metadata : `~collections.abc.Mapping` [`str`, `typing.Any`]
        Cards of the primary header (``FILTER``, ``EXPTIME``, ...), without
        the structural ones (``SIMPLE``, ``BITPIX``, ``NAXIS*``, ...).
        Cards without a value map to `None`.

    """

    path: str
    image_hdu: int
    mask_hdu: int
    variance_hdu: int
    bbox: Box
    mask_planes: Mapping[str, int]
    has_sky_wcs: bool
    metadata: Mapping[str, Any]

    @property
    def xy0(self) -> XY[int]:
        """Parent coordinates of the first pixel (`lsst.images.XY`)."""
        return XY(x=self.bbox.x.start, y=self.bbox.y.start)


def read_legacy_header_info(path: str | os.PathLike[str]) -> LegacyHeaderInfo:
    """Read what the headers of an afw-written FITS file say, without reading
    any pixels.

    Parameters
    ----------
    path
        Name of an afw Exposure or MaskedImage FITS file.

    Returns
    -------
    info : `LegacyHeaderInfo`
        HDU indices, bounding box, mask planes, WCS presence and primary
        header metadata.

    Raises
    ------
    ValueError
        Raised if the file is not an afw image; the message names the file
        and what is wrong.

    """
    with _open_fits(path) as hdu_list:
        info, _ = _inspect(hdu_list, os.fspath(path))
    return info


def read_legacy_masked_image(
    path: str | os.PathLike[str],
    *,
    bbox: Box | None = None,
    unit: u.UnitBase | None = None,
) -> MaskedImage:
    """Read an afw Exposure or MaskedImage FITS file into a
    `lsst.images.MaskedImage`.

    Parameters
    ----------
    path
        Name of the FITS file.  Old (``EXTTYPE`` only) and new (``EXTNAME``)
        layouts, uncompressed and tile-compressed HDUs are read.
    bbox
        Section to read, in parent coordinates (those that include xy0).
        Only this section is read from disk.  The default is the whole image.
    unit
        Unit of the image pixels.  afw files have no ``BUNIT`` (the unit
        comes from the PhotoCalib in the archive), so the default is `None`.
        The variance gets the square of this unit.

    Returns
    -------
    masked_image : `lsst.images.MaskedImage`
        Image and variance as float32, the mask re-encoded into a
        `lsst.images.MaskSchema` that keeps afw's plane names and bit
        numbers, and the sky projection (`None` when the IMAGE HDU has no
        celestial WCS).

    Raises
    ------
    ValueError
        Raised if the file is not an afw image (no IMAGE HDU, a plane that is
        not 2-d, planes of different shapes, a mask without ``MP_`` (or
        ``MSKN``/``MSKM``) cards or
        not made of integers, ...), or if ``bbox`` is not contained in the
        image.  The message names the file.

    Notes
    -----
    The HDUs are found by ``EXTTYPE``, then ``EXTNAME``, then by position
    (1, 2 and 3).

    xy0 is read from the IMAGE HDU only, as afw does: from the linear "A" WCS
    (``CRVAL1A/CRVAL2A`` when ``CRPIX1A/CRPIX2A`` are 1), else from
    ``-LTV1/-LTV2``, else ``(0, 0)``.  The MASK and VARIANCE HDUs may
    disagree: in ip_diffim's ``templateMI.fits`` the MASK HDU says
    ``CRVAL1A = 9`` while IMAGE and VARIANCE say 24; all planes get the
    IMAGE HDU's origin.

    Schema position ``n`` of the mask holds the afw plane with bit ``n``
    (unused bits are `None` placeholders), and the mask dtype is the smallest
    unsigned integer holding all bits, so ``mask.array[..., 0]`` has afw's
    bit values.  Bits that no ``MP_`` card names are dropped with a warning.

    The sky projection comes from the primary FITS WCS of the IMAGE HDU (the
    "A" WCS only gives xy0).  afw applies that WCS to the local, 0-based
    pixel grid of the HDU, so the projection maps parent pixel ``(x, y)`` to
    ``astropy.wcs.WCS(header).pixel_to_world(x - x0, y - y0)``.  The
    projection is always in ICRS: a WCS in another frame (old afw files say
    ``RADESYS = 'FK5'``) is rotated to ICRS, as afw does when it reads
    such a header, and the projection is checked against astropy before
    it is attached.  It uses a `lsst.images.GeneralFrame` in pixels because
    the files do not record the instrument and the detector bounding box
    that a `lsst.images.DetectorFrame` would need.

    """
    if bbox is not None and not isinstance(bbox, Box):
        raise TypeError(f"bbox must be an lsst.images.Box or None; got {type(bbox).__name__}.")
    name = os.fspath(path)
    with _open_fits(path) as hdu_list:
        info, wcs = _inspect(hdu_list, name)
        if bbox is None:
            bbox = info.bbox
        elif not info.bbox.contains(bbox):
            raise ValueError(f"{name}: requested bbox {bbox} is not contained in the image bbox {info.bbox}.")
        sky_projection = None if wcs is None else make_sky_projection(wcs, info.bbox, name)
        slices = tuple(bbox.slice_within(info.bbox))
        image = _read_float_plane(hdu_list[info.image_hdu], slices)
        variance = _read_float_plane(hdu_list[info.variance_hdu], slices)
        mask = _read_mask(hdu_list[info.mask_hdu], slices, info.mask_planes, bbox, name)
    return MaskedImage(
        Image(image, bbox=bbox, unit=unit),
        mask=mask,
        variance=Image(variance, bbox=bbox),
        sky_projection=sky_projection,
    )


@contextmanager
def _open_fits(path: str | os.PathLike[str]) -> Iterator[astropy.io.fits.HDUList]:
    """Open a FITS file, turning a corrupt or non-FITS file into a
    `ValueError` that names it.
    """
    try:
        hdu_list = astropy.io.fits.open(path)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except OSError as err:
        raise ValueError(f"{os.fspath(path)}: not a readable FITS file ({err}).") from err
    with hdu_list:
        yield hdu_list


def _inspect(hdu_list: astropy.io.fits.HDUList, path: str) -> tuple[LegacyHeaderInfo, astropy.wcs.WCS | None]:
    """Check the headers of an afw file and collect what they say, plus the
    celestial WCS of the IMAGE HDU.
    """
    indices = _find_plane_hdus(hdu_list, path)
    shapes = {plane: _plane_shape(hdu_list[index], plane, index, path) for plane, index in indices.items()}
    if len(set(shapes.values())) != 1:
        described = ", ".join(f"{plane} {shape}" for plane, shape in shapes.items())
        raise ValueError(f"{path}: the planes have different shapes ({described}).")
    image_header = hdu_list[indices["IMAGE"]].header
    mask_hdu = hdu_list[indices["MASK"]]
    if mask_hdu.header["BITPIX"] < 0:
        raise ValueError(f"{path}: MASK HDU {indices['MASK']} holds floating-point values, not bits.")
    wcs = celestial_wcs(image_header, path)
    info = LegacyHeaderInfo(
        path=path,
        image_hdu=indices["IMAGE"],
        mask_hdu=indices["MASK"],
        variance_hdu=indices["VARIANCE"],
        bbox=Box.from_shape(shapes["IMAGE"], start=read_xy0(image_header, path)),
        mask_planes=_read_mask_planes(mask_hdu.header, abs(mask_hdu.header["BITPIX"]), path),
        has_sky_wcs=wcs is not None,
        metadata=_primary_metadata(hdu_list[0].header),
    )
    return info, wcs


def _find_plane_hdus(hdu_list: astropy.io.fits.HDUList, path: str) -> dict[str, int]:
    """Find the IMAGE, MASK and VARIANCE HDUs by ``EXTTYPE``, then
    ``EXTNAME``, then position.
    """
    found: dict[str, int] = {}
    for key in ("EXTTYPE", "EXTNAME"):
        for index, hdu in enumerate(hdu_list):
            value = str(hdu.header.get(key, "")).strip().upper()
            if value in PLANE_TYPES and value not in found and index not in found.values():
                found[value] = index
    for position, plane in enumerate(PLANE_TYPES, start=1):
        if plane not in found and position < len(hdu_list) and position not in found.values():
            if isinstance(hdu_list[position], _IMAGE_HDU_TYPES):
                found[plane] = position
    for plane in PLANE_TYPES:
        if plane not in found:
            raise ValueError(
                f"{path}: not an afw image: no {plane} HDU found (by EXTTYPE, EXTNAME or position) "
                f"among its {len(hdu_list)} HDUs."
            )
    return {plane: found[plane] for plane in PLANE_TYPES}


def _plane_shape(hdu: Any, plane: str, index: int, path: str) -> tuple[int, int]:
    """Return the ``(ny, nx)`` shape of a pixel HDU, checking that it is a
    2-d image.
    """
    if not isinstance(hdu, _IMAGE_HDU_TYPES):
        raise ValueError(f"{path}: {plane} HDU {index} is a {type(hdu).__name__}, not an image.")
    shape = tuple(hdu.shape)
    if len(shape) != 2 or 0 in shape:
        raise ValueError(f"{path}: {plane} HDU {index} has shape {shape}; expected a non-empty 2-d image.")
    return shape[0], shape[1]


_WCS_NUMBER_CARDS = re.compile(r"(CRVAL|CRPIX|CDELT|CROTA)[12]|(CD|PC)[12]_[12]|PV[12]_\d+|LONPOLE|LATPOLE")
"""The cards of a primary celestial FITS WCS that must hold numbers
(astropy takes any other value as absent, so a damaged one would move
every position)."""


def _require_number(header: astropy.io.fits.Header, key: str, path: str) -> None:
    """Raise a `ValueError` naming ``key`` when the header gives it a value
    that is not a number."""
    value = header.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{path}: header card {key} = {value!r} is not a number.")


def read_xy0(header: astropy.io.fits.Header, path: str) -> XY[int]:
    """Read the parent origin of an HDU the way afw does."""
    if (
        "CRVAL1A" in header
        and "CRVAL2A" in header
        and header.get("CRPIX1A", 1) == 1
        and header.get("CRPIX2A", 1) == 1
        and str(header.get("CTYPE1A", "LINEAR")).strip().upper() == "LINEAR"
    ):
        values = (header["CRVAL1A"], header["CRVAL2A"])
    elif "LTV1" in header or "LTV2" in header:
        for key in ("LTV1", "LTV2"):
            _require_number(header, key, path)
        values = (-header.get("LTV1", 0), -header.get("LTV2", 0))
    else:
        values = (0, 0)
    if not all(
        isinstance(v, int | float) and not isinstance(v, bool) and float(v).is_integer() for v in values
    ):
        raise ValueError(f"{path}: IMAGE HDU gives a non-integer xy0 {values}.")
    return XY(x=int(values[0]), y=int(values[1]))


def _read_mask_planes(header: astropy.io.fits.Header, n_bits: int, path: str) -> dict[str, int]:
    """Read the mask planes of a MASK HDU, sorted by bit: afw's ``MP_<NAME> =
    bit`` cards or, when there are none, the ``MSKNnnnn = name`` and
    ``MSKMnnnn = 1 << bit`` cards lsst.images writes (cell-based coadds,
    files trimmed by an image cutout service).
    """
    planes: dict[str, int] = {}
    for card in header.cards:
        if not card.keyword.startswith("MP_"):
            continue
        name, bit = card.keyword.removeprefix("MP_"), card.value
        if isinstance(bit, bool) or not isinstance(bit, int) or not 0 <= bit < n_bits:
            raise ValueError(
                f"{path}: mask plane card {card.keyword} = {bit!r} is not a bit of a {n_bits}-bit mask."
            )
        planes[name] = bit
    if not planes:
        planes = _read_mskn_planes(header, n_bits, path)
    if not planes:
        raise ValueError(
            f"{path}: the MASK HDU has no MP_<NAME> (afw) or MSKN/MSKM (lsst.images) cards, "
            "so its bits have no meaning."
        )
    if len(set(planes.values())) != len(planes):
        raise ValueError(f"{path}: several mask planes share a bit: {planes}.")
    return dict(sorted(planes.items(), key=lambda item: item[1]))


def _read_mskn_planes(header: astropy.io.fits.Header, n_bits: int, path: str) -> dict[str, int]:
    """Read lsst.images' ``MSKNnnnn`` (plane name) / ``MSKMnnnn`` (bit mask)
    card pairs of a MASK HDU.
    """
    planes: dict[str, int] = {}
    for card in header.cards:
        if not (card.keyword.startswith("MSKN") and card.keyword[4:].isdigit()):
            continue
        mask_key = "MSKM" + card.keyword[4:]
        value = header.get(mask_key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value & (value - 1):
            raise ValueError(
                f"{path}: mask plane {card.value!r} has {mask_key} = {value!r}, not a single bit."
            )
        bit = value.bit_length() - 1
        if bit >= n_bits:
            raise ValueError(f"{path}: mask plane {card.value!r} is bit {bit}, beyond a {n_bits}-bit mask.")
        planes[str(card.value).strip()] = bit
    return planes


def _primary_metadata(header: astropy.io.fits.Header) -> dict[str, Any]:
    """Return the non-structural cards of a primary header."""
    return {
        card.keyword: None if isinstance(card.value, astropy.io.fits.card.Undefined) else card.value
        for card in header.cards
        if card.keyword not in _STRUCTURAL_KEYS and not card.keyword.startswith("NAXIS")
    }


def celestial_wcs(header: astropy.io.fits.Header, path: str) -> astropy.wcs.WCS | None:
    """Return the primary celestial FITS WCS of a header, or `None` if it has
    none.
    """
    for key in header:
        if _WCS_NUMBER_CARDS.fullmatch(key):
            _require_number(header, key, path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", astropy.wcs.FITSFixedWarning)
            wcs = astropy.wcs.WCS(header)
    except KeyError:
        # astropy's way of saying there is only an alternate ("A") WCS.
        return None
    except ValueError as err:
        raise ValueError(f"{path}: the IMAGE HDU has an unreadable FITS WCS ({err}).") from err
    if not wcs.has_celestial:
        return None
    if wcs.naxis != 2:
        raise ValueError(f"{path}: the IMAGE HDU's FITS WCS has {wcs.naxis} axes; expected 2.")
    return wcs


def _icrs_wcs(wcs: astropy.wcs.WCS, path: str) -> astropy.wcs.WCS:
    """Return a FITS WCS whose celestial frame is ICRS and which maps pixels
    to the same points on the sky as ``wcs``.

    Notes
    -----
    `lsst.images.SkyProjection.from_fits_wcs` labels the celestial
    coordinates of any FITS WCS as ICRS, so an FK5 WCS would be off by the
    FK5-ICRS frame bias (about 25 mas).  For frames that differ from ICRS by
    a rotation, the same rotation of the native spherical coordinates is
    written with ICRS values: ``CRVAL`` becomes the ICRS position of the
    reference point, ``LONPOLE`` the native longitude of the ICRS pole and
    ``LATPOLE`` the ICRS latitude of the native pole.  Pixel-side terms
    (``CRPIX``, ``CD``, SIP) are unchanged.

    """
    try:
        frame = wcs_to_celestial_frame(wcs)
    except ValueError as err:
        raise ValueError(f"{path}: unknown celestial frame in the IMAGE HDU's FITS WCS ({err}).") from err
    if isinstance(frame, ICRS):
        return wcs
    result = wcs.deepcopy()
    result.wcs.set()
    lng, lat = result.wcs.lng, result.wcs.lat
    reference = SkyCoord(result.wcs.crval[lng] * u.deg, result.wcs.crval[lat] * u.deg, frame=frame).icrs
    icrs_pole = SkyCoord(0.0 * u.deg, 90.0 * u.deg, frame=ICRS()).transform_to(frame).spherical
    euler = np.array(result.wcs.cel.euler)
    native_pole = SkyCoord(euler[0] * u.deg, (90.0 - euler[1]) * u.deg, frame=frame).icrs
    crval = result.wcs.crval.copy()
    crval[lng], crval[lat] = reference.ra.to_value(u.deg), reference.dec.to_value(u.deg)
    ctype = list(result.wcs.ctype)
    ctype[lng], ctype[lat] = "RA--" + ctype[lng][4:], "DEC-" + ctype[lat][4:]
    result.wcs.lonpole = _native_longitude(
        euler, icrs_pole.lon.to_value(u.deg), icrs_pole.lat.to_value(u.deg)
    )
    result.wcs.latpole = native_pole.dec.to_value(u.deg)
    result.wcs.crval = crval
    result.wcs.ctype = ctype
    result.wcs.radesys = "ICRS"
    result.wcs.equinox = np.nan
    result.wcs.set()
    return result


def _native_longitude(euler: np.ndarray, lon: float, lat: float) -> float:
    """Return the native longitude, in degrees, of the celestial position
    ``(lon, lat)`` (degrees) of a FITS WCS with wcslib Euler angles ``euler``.

    Notes
    -----
    This is wcslib's ``sphs2x``, which unlike ``Wcsprm.s2p`` also works for
    positions the projection cannot show (the celestial pole is usually more
    than 90 degrees from the reference point of a TAN projection).

    """
    longitude_of_pole, _, native_longitude_of_pole, cos_colatitude, sin_colatitude = euler
    delta = np.radians(lon - longitude_of_pole)
    lat_rad = np.radians(lat)
    x = np.sin(lat_rad) * sin_colatitude - np.cos(lat_rad) * cos_colatitude * np.cos(delta)
    y = -np.cos(lat_rad) * np.sin(delta)
    return float(native_longitude_of_pole + np.degrees(np.arctan2(y, x)))


def make_sky_projection(wcs: astropy.wcs.WCS, bbox: Box, path: str) -> SkyProjection:
    """Build the ICRS sky projection of the parent pixel grid ``bbox`` from
    the FITS WCS of its local grid, and check it against astropy.
    """
    x0, y0 = bbox.x.start, bbox.y.start
    projection = SkyProjection.from_fits_wcs(
        _icrs_wcs(wcs, path), _PIXEL_FRAME, pixel_bounds=bbox, x0=x0, y0=y0
    )
    x, y = np.meshgrid(
        [bbox.x.min, bbox.x.center, bbox.x.max], [bbox.y.min, bbox.y.center, bbox.y.max], indexing="xy"
    )
    # Transform to ICRS first: separation() would warn for frames like FK4.
    expected = wcs.pixel_to_world(x - x0, y - y0).icrs
    separation = projection.pixel_to_sky(x=x, y=y).separation(expected)
    if not np.all(separation < SKY_TOLERANCE):
        raise ValueError(
            f"{path}: the sky projection built from the IMAGE HDU's FITS WCS disagrees with astropy by up to "
            f"{np.nanmax(separation.to(u.mas)):.3g}; frame {wcs_to_celestial_frame(wcs).name!r} may not be "
            "convertible to ICRS by a rotation."
        )
    return projection


def _read_float_plane(hdu: Any, slices: tuple[slice, slice]) -> np.ndarray:
    """Read a section of an image or variance HDU as native float32."""
    return np.asarray(hdu.section[slices], dtype=np.float32)


def _mask_dtype(n_bits: int) -> type[np.unsignedinteger]:
    """Return the smallest unsigned integer type with ``n_bits`` bits."""
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if n_bits <= np.iinfo(dtype).bits:
            return dtype
    raise ValueError(f"A mask cannot have {n_bits} bits.")


def _read_mask(
    hdu: Any, slices: tuple[slice, slice], planes: Mapping[str, int], bbox: Box, path: str
) -> Mask:
    """Read a section of a MASK HDU and re-encode it into a schema that keeps
    afw's plane names and bits.
    """
    raw = np.asarray(hdu.section[slices])
    if raw.dtype.kind not in "iu":
        raise ValueError(f"{path}: MASK HDU holds {raw.dtype} values, not integer bits.")
    on_disk_bits = (1 << (8 * raw.dtype.itemsize)) - 1
    # int64 keeps every bit of uint32, and afw's bit 31 of int32 masks stays
    # bit 31 (it is sign-extended, but only bits we were told about are read).
    raw = raw.astype(np.int64)
    slots: list[MaskPlane | None] = [None] * (max(planes.values()) + 1)
    for name, bit in planes.items():
        slots[bit] = MaskPlane(name, _KNOWN_PLANE_DESCRIPTIONS.get(name, f"afw mask plane {name}."))
    mask = Mask(0, schema=MaskSchema(slots, dtype=_mask_dtype(len(slots))), bbox=bbox)
    for name, bit in planes.items():
        mask.set(name, (raw >> bit) & 1)
    declared = sum(1 << bit for bit in planes.values())
    if stray := int(np.bitwise_or.reduce(raw, axis=None)) & ~declared & on_disk_bits:
        bits = [bit for bit in range(64) if stray >> bit & 1]
        warnings.warn(
            f"{path}: mask pixels have bits {bits} set that no MP_<NAME> card names; they are dropped.",
            stacklevel=3,
        )
    return mask
