"""Plane readers of image files given by path, without a Butler.

`file_plane_reader` opens, in this order of preference:

1. lsst.images FITS files (as the Butler writes ``MaskedImage``,
   ``VisitImage`` and ``DifferenceImage`` datasets), with lsst-images' own
   reader, kept open and read by bbox exactly as through the Butler;
2. afw Exposure / MaskedImage FITS files of either layout, with
   `lsst.analysis.ap.images.legacy_fits`;
3. any other FITS image with a celestial WCS: files from the image cutout
   service (an empty primary HDU then the image), lsst.images files the
   lsst.images reader does not open (e.g. without their JSON tree, with
   ``MSKN``/``MSKM`` mask-plane cards rather than afw's ``MP_*``), plain
   survey images.  The image HDU is the one named ``IMAGE`` (``EXTNAME`` or
   ``EXTTYPE``), else the first 2-d image; xy0 comes from the linear "A"
   WCS or ``LTV1/2`` as afw writes them.  Only the image plane is read (the
   stamps show pixels; flags come from the catalog).

`role_files` expands what the user gave for a role (files, directories,
globs) into the list of files to search for each source.
"""

from __future__ import annotations

__all__ = ("file_plane_reader", "image_hdu", "role_files")

import glob
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import astropy.io.fits
import numpy as np

from .arrays import array_plane_reader
from .butler import ImageUnavailableError, OpenArchiveGetter, PlaneReader
from .legacy_fits import celestial_wcs, read_xy0

FITS_SUFFIXES = (".fits", ".fit", ".fits.gz", ".fits.fz", ".fz")
"""File names a directory given for a role is searched for."""

_IMAGE_HDUS = (astropy.io.fits.PrimaryHDU, astropy.io.fits.ImageHDU, astropy.io.fits.CompImageHDU)


def role_files(spec: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], role: str) -> list[Path]:
    """The image files given for ``role``: files, directories (searched for
    FITS files, not recursively) or glob patterns.

    Raises
    ------
    FileNotFoundError
        When a path does not exist or a pattern or directory yields no file.

    """
    items = [spec] if isinstance(spec, str | os.PathLike) else list(spec)
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.name.lower().endswith(FITS_SUFFIXES))
            if not found:
                raise FileNotFoundError(f"{role} directory {path} holds no FITS file")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            matches = sorted(Path(p) for p in glob.glob(os.fspath(item)))
            if not matches:
                raise FileNotFoundError(f"{role} image {item} does not exist")
            files.extend(matches)
    return files


def image_hdu(hdus: astropy.io.fits.HDUList, name: str) -> int:
    """Index of the image HDU: named ``IMAGE``, else the first 2-d image."""
    for key in ("EXTNAME", "EXTTYPE"):
        for index, hdu in enumerate(hdus):
            if str(hdu.header.get(key, "")).strip().upper() == "IMAGE" and isinstance(hdu, _IMAGE_HDUS):
                return index
    for index, hdu in enumerate(hdus):
        if isinstance(hdu, _IMAGE_HDUS) and hdu.header.get("NAXIS") == 2:
            return index
    raise ImageUnavailableError(f"{name}: no 2-d image HDU among its {len(hdus)} HDUs")


def _plain_fits_reader(path: str) -> PlaneReader:
    """A reader of the image plane of any FITS file with a celestial WCS."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with astropy.io.fits.open(path) as hdus:
                index = image_hdu(hdus, path)
                header = hdus[index].header
                array = np.asarray(hdus[index].data, dtype=np.float32)
                wcs = celestial_wcs(header, path)
                xy0 = read_xy0(header, path)
    except ImageUnavailableError:
        raise
    except (OSError, ValueError, TypeError) as error:
        raise ImageUnavailableError(f"{path}: not a readable FITS image ({error})") from error
    if wcs is None:
        raise ImageUnavailableError(f"{path}: the image HDU has no celestial WCS")
    return array_plane_reader(path, array, wcs=wcs, xy0=(xy0.x, xy0.y))


class _PlainFitsGetter:
    """Getter over `_plain_fits_reader`, opened on first use."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._reader: PlaneReader | None = None

    def __call__(self, component: str, parameters: Mapping[str, Any] | None) -> Any:
        if self._reader is None:
            self._reader = _plain_fits_reader(self._path)
        return self._reader.getter(component, parameters)


def file_plane_reader(path: str | os.PathLike[str]) -> PlaneReader:
    """A reader of the image plane of one file (see the module docstring for
    the kinds of files and the order they are tried in).
    """
    from lsst.resources import ResourcePath

    name = os.fspath(path)
    if not Path(name).is_file():
        raise ImageUnavailableError(f"{name} does not exist or is not a file")
    getter = OpenArchiveGetter(ResourcePath(name), _PlainFitsGetter(name))
    return PlaneReader(name=name, getter=getter, closer=getter.close)
