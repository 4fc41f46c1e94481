"""Plane readers of images held in memory: the stamps of an alert packet,
a FITS image read whole, lsst.images objects (and afw Exposures) given to
``generate_image``.

They give the cutting core the same `~lsst.analysis.ap.images.butler.PlaneReader`
interface as the Butler readers, so alert packets and image files go
through the same core (stamp geometry, failure records, rendering, output
files) as the Butler path.

An image with a celestial FITS WCS becomes an in-memory
`lsst.images.Image` with an `lsst.images.SkyProjection`, read through an
ordinary `PlaneReader`.  A stamp without a WCS (ZTF alert stamps) gets a
`FixedPositionPlaneReader`: every source of it is at a known pixel (the
stamp centre), and the pixel scale is the survey's.
"""

from __future__ import annotations

__all__ = (
    "FixedPositionPlaneReader",
    "array_plane_reader",
    "as_masked_image",
    "masked_image_plane_reader",
)

import dataclasses
from collections.abc import Mapping
from typing import Any

import astropy.wcs
import numpy as np
from lsst.images import Box, Image

from ..records import ReasonCode
from .butler import ImageUnavailableError, PlaneReader
from .legacy_fits import make_sky_projection


class _ImageGetter:
    """``get(component, parameters)`` over in-memory `lsst.images.Image`
    planes: ``image`` and, when given, ``variance``.
    """

    def __init__(self, image: Image, variance: Image | None = None) -> None:
        self._planes = {"image": image}
        if variance is not None:
            self._planes["variance"] = variance

    def __call__(self, component: str, parameters: Mapping[str, Any] | None) -> Any:
        image = self._planes["image"]
        if component == "bbox":
            return image.bbox
        if component == "sky_projection":
            return image.sky_projection
        if component in self._planes:
            box = (parameters or {}).get("bbox")
            plane = self._planes[component]
            return plane if box is None else plane[box]
        raise KeyError(f"the in-memory image has no {component} plane")


def array_plane_reader(
    name: str,
    array: np.ndarray,
    *,
    wcs: astropy.wcs.WCS | None,
    xy0: tuple[int, int] = (0, 0),
    variance: np.ndarray | None = None,
) -> PlaneReader:
    """A reader of a 2-d array with a celestial FITS WCS.

    Parameters
    ----------
    name
        Description for messages (packet or file name and role).
    array
        Pixels, indexed ``[y, x]``.
    wcs
        Celestial FITS WCS of the array's local 0-based pixel grid; `None`
        makes every read fail with "no sky projection".
    xy0
        Parent coordinates of the array's first pixel.
    variance
        Variance plane of the same shape, if known (read as the
        ``variance`` component).

    Raises
    ------
    ImageUnavailableError
        When the array is not 2-d or the WCS cannot be turned into a sky
        projection; the message names ``name``.

    """
    array = np.asarray(array)
    if array.ndim != 2 or 0 in array.shape:
        raise ImageUnavailableError(
            f"{name}: expected a non-empty 2-d image, got shape {array.shape}", code=ReasonCode.CORRUPT_IMAGE
        )
    bbox = Box.from_shape(array.shape, start=(int(xy0[1]), int(xy0[0])))
    projection = None
    if wcs is not None:
        try:
            projection = make_sky_projection(wcs, bbox, name)
        except ValueError as error:
            raise ImageUnavailableError(str(error)) from error
    image = Image(np.asarray(array, dtype=np.float32), bbox=bbox, sky_projection=projection)
    variance_plane = None
    if variance is not None:
        if np.shape(variance) != array.shape:
            raise ImageUnavailableError(
                f"{name}: variance of shape {np.shape(variance)} for an image of shape {array.shape}"
            )
        variance_plane = Image(np.asarray(variance, dtype=np.float32), bbox=bbox)
    return PlaneReader(name=name, getter=_ImageGetter(image, variance_plane))


def as_masked_image(image: Any) -> Any:
    """An `lsst.images.MaskedImage` (or subclass) for ``image``.

    Parameters
    ----------
    image : `lsst.images.MaskedImage` or `lsst.afw.image.Exposure`
        An lsst.images object is returned as it is; an afw Exposure (or
        MaskedImage, when lsst.afw is importable) is converted with the
        lsst.images ``from_legacy`` constructors, sharing its pixels.

    Returns
    -------
    image : `lsst.images.MaskedImage`
        The image, with its sky projection.

    """
    if not type(image).__module__.startswith("lsst.afw"):
        return image
    from lsst.images import GeneralFrame, MaskedImage, SkyProjection, VisitImage

    if not hasattr(image, "getMaskedImage"):
        return MaskedImage.from_legacy(image)
    try:
        return VisitImage.from_legacy(image, exposure_record=None)
    except Exception:
        # Not a visit image (no observation metadata): keep pixels and WCS.
        wcs = image.getWcs()
        projection = SkyProjection.from_legacy(wcs, GeneralFrame(unit="pixel")) if wcs is not None else None
        return MaskedImage.from_legacy(image.getMaskedImage(), sky_projection=projection)


def masked_image_plane_reader(name: str, image: Any) -> PlaneReader:
    """A reader of an image object held in memory.

    Parameters
    ----------
    name : `str`
        Description for messages.
    image : `lsst.images.MaskedImage`
        The image (`~lsst.images.VisitImage`, `~lsst.images.DifferenceImage`
        or another MaskedImage with a sky projection), or an
        `lsst.afw.image.Exposure` (see `as_masked_image`).

    Returns
    -------
    reader : `~lsst.analysis.ap.images.butler.PlaneReader`
        Reads the image and variance planes.

    """
    image = as_masked_image(image)
    plane = image.image
    if plane.sky_projection is None and image.sky_projection is not None:
        plane = Image(plane.array, bbox=plane.bbox, sky_projection=image.sky_projection)
    return PlaneReader(name=name, getter=_ImageGetter(plane, image.variance))


@dataclasses.dataclass
class FixedPositionPlaneReader:
    """A stamp without a sky projection whose sources are all at one known
    pixel position (an alert stamp centred on its candidate).

    Offers the `PlaneReader` methods the cutting core uses.

    Parameters
    ----------
    name
        Description for messages.
    array
        Pixels, indexed ``[y, x]``, first pixel at parent ``(0, 0)``.
    x, y
        Pixel position of the source.
    pixel_scale
        Pixel scale in arcseconds (the survey's nominal scale).

    """

    name: str
    array: np.ndarray
    x: float
    y: float
    pixel_scale: float | None

    @property
    def bbox(self) -> Box:
        """Bounding box of the stamp."""
        return Box.from_shape(self.array.shape)

    @property
    def projection(self) -> None:
        """There is no sky projection."""
        return None

    def sky_to_pixel(self, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The source position, for every sky position given."""
        n = np.shape(np.atleast_1d(ra))[0]
        return np.full(n, float(self.x)), np.full(n, float(self.y))

    def pixel_scale_arcsec(self) -> float | None:
        """The nominal pixel scale."""
        return self.pixel_scale

    def read_whole(self) -> tuple[np.ndarray, Box]:
        """The whole stamp."""
        return np.asarray(self.array, dtype=np.float32), self.bbox

    def read(self, box: Box) -> tuple[np.ndarray, Box]:
        """The whole stamp (it is in memory)."""
        return self.read_whole()

    def release(self) -> None:
        """Nothing to release."""
