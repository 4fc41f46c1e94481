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
searched recursively, globs) into the list of files to search for each
source.

When a role has several files, or a file that says which visit and
detector it is, `choose_file` picks the file of each source:

1. files that say which visit and detector they are (`file_identity`: the
   Butler data ID in an lsst.images file's tree, or the ``LSST BUTLER
   DATAID VISIT`` / ``DETECTOR`` cards Butler-written afw files carry) are
   matched to the source's ``visit`` and ``detector``; a source whose
   visit × detector no such file is, while every file of the role says
   which it is, fails with a reason listing the files;
2. otherwise (files without ids: plain FITS, trimmed cutouts, coadd
   templates) the file whose image holds the source's centre pixel,
   preferring one on which the whole stamp lies, then the one whose centre
   is nearest the source.  When several files hold the source the choice
   is ambiguous, and the chosen file and the others are reported.
"""

from __future__ import annotations

__all__ = (
    "BUTLER_DATAID_CARDS",
    "FileChoice",
    "FileIdentity",
    "Placement",
    "choose_file",
    "file_identity",
    "file_plane_reader",
    "image_hdu",
    "placement",
    "role_files",
    "unique_files",
)

import glob
import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import astropy.io.fits
import numpy as np

from ..records import ReasonCode
from .arrays import array_plane_reader
from .butler import ImageUnavailableError, OpenArchiveGetter, PlaneReader
from .legacy_fits import celestial_wcs, read_xy0
from .tiles import IMAGE_HDUS

FITS_SUFFIXES = (".fits", ".fit", ".fits.gz", ".fits.fz", ".fz")
"""File names a directory given for a role is searched for."""


def unique_files[T](items: Iterable[T]) -> list[T]:
    """``items`` in order, without a second spelling of a file already
    listed (``dir/a.fits``, ``./dir/a.fits``, an absolute path or a link to
    it): the first spelling given is kept.  Items that are not paths are
    kept as they are.
    """
    seen: set[str] = set()
    unique = []
    for item in items:
        if isinstance(item, str | os.PathLike):
            key = os.path.realpath(item)
            if key in seen:
                continue
            seen.add(key)
        unique.append(item)
    return unique


def role_files(spec: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], role: str) -> list[Path]:
    """The image files given for ``role``: files, directories (searched
    recursively for FITS files, `FITS_SUFFIXES`) or glob patterns, each
    file once (`unique_files`).

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
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(FITS_SUFFIXES)
            )
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
    return unique_files(files)


def image_hdu(hdus: astropy.io.fits.HDUList, name: str) -> int:
    """Index of the image HDU: the HDU named ``IMAGE`` (``EXTNAME``), else
    the first with pixels of ``EXTTYPE`` ``IMAGE``, else the first 2-d image
    that is not a mask or variance plane."""
    for key in ("EXTNAME", "EXTTYPE"):
        for index, hdu in enumerate(hdus):
            if (
                str(hdu.header.get(key, "")).strip().upper() == "IMAGE"
                and isinstance(hdu, IMAGE_HDUS)
                and (key == "EXTNAME" or hdu.header.get("NAXIS"))
            ):
                return index
    for index, hdu in enumerate(hdus):
        names = {str(hdu.header.get(key, "")).strip().upper() for key in ("EXTNAME", "EXTTYPE")}
        if isinstance(hdu, IMAGE_HDUS) and hdu.header.get("NAXIS") == 2 and not names & {"MASK", "VARIANCE"}:
            return index
    raise ImageUnavailableError(
        f"{name}: no 2-d image HDU among its {len(hdus)} HDUs", code=ReasonCode.CORRUPT_IMAGE
    )


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
        raise ImageUnavailableError(
            f"image file {path} is corrupt or not a readable FITS image ({' '.join(str(error).split())})",
            code=ReasonCode.CORRUPT_IMAGE,
        ) from error
    if wcs is None:
        raise ImageUnavailableError(f"{path}: the image HDU has no celestial WCS", code=ReasonCode.NO_WCS)
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
    return PlaneReader(name=name, getter=getter, closer=getter.close, file=name)


# Which file holds a source ----------------------------------------------------------

BUTLER_DATAID_CARDS = ("LSST BUTLER DATAID VISIT", "LSST BUTLER DATAID DETECTOR")
"""Header cards (``HIERARCH``) in which the Butler records the visit and
detector of an afw-written file."""


@dataclass(frozen=True)
class FileIdentity:
    """The visit and detector an image file says it is.

    Parameters
    ----------
    visit, detector : `int` or `None`
        As the file gives them; `None` when it does not say.
    origin : `str`
        Where they were read (``""`` when the file says nothing).

    """

    visit: int | None = None
    detector: int | None = None
    origin: str = ""

    @property
    def known(self) -> bool:
        """Whether the file says which visit it is."""
        return self.visit is not None

    def matches(self, visit: int, detector: int) -> bool:
        """Whether the file is of a source's visit (and detector, when the
        file gives it)."""
        return self.visit == visit and (self.detector is None or self.detector == detector)

    def describe(self) -> str:
        """``visit V, detector D`` or ``no visit/detector id``."""
        if not self.known:
            return "no visit/detector id"
        return f"visit {self.visit}" + ("" if self.detector is None else f", detector {self.detector}")


def _as_id(value: Any) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None


def _lsst_images_identity(name: str) -> FileIdentity | None:
    """The Butler data ID an lsst.images file's tree records, or `None`."""
    from lsst.images.serialization import open_archive
    from lsst.resources import ResourcePath

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with open_archive(ResourcePath(name), partial=True) as reader:
                info = reader.butler_info
    except Exception:
        return None
    data_id = getattr(getattr(info, "dataset", None), "dataId", None)
    data_id = getattr(data_id, "dataId", data_id)
    if not isinstance(data_id, Mapping):
        return None
    visit = _as_id(data_id.get("visit"))
    if visit is None:
        return None
    return FileIdentity(visit, _as_id(data_id.get("detector")), "the lsst.images Butler data ID")


def file_identity(path: str | os.PathLike[str]) -> FileIdentity:
    """The visit and detector an image file says it is.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        The image file.

    Returns
    -------
    identity : `FileIdentity`
        From the Butler data ID of an lsst.images file, else from the
        `BUTLER_DATAID_CARDS` of the primary or image header (afw files
        written by a Butler, cutouts that keep those cards); without either
        the identity is unknown (plain FITS, coadd templates, unreadable
        files: their reader reports those).

    """
    name = os.fspath(path)
    identity = _lsst_images_identity(name)
    if identity is not None:
        return identity
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with astropy.io.fits.open(name) as hdus:
                headers = [hdus[0].header]
                try:
                    headers.append(hdus[image_hdu(hdus, name)].header)
                except ImageUnavailableError:
                    pass
                for header in headers:
                    visit = _as_id(header.get(BUTLER_DATAID_CARDS[0]))
                    if visit is not None:
                        detector = _as_id(header.get(BUTLER_DATAID_CARDS[1]))
                        return FileIdentity(visit, detector, "the LSST BUTLER DATAID header cards")
    except (OSError, ValueError, TypeError):
        pass
    return FileIdentity()


@dataclass(frozen=True)
class Placement:
    """Where a source falls on one candidate file.

    Parameters
    ----------
    path : `pathlib.Path`
        The file.
    holds : `bool`
        Whether the source's centre pixel is on the image.
    whole : `bool`
        Whether the whole (largest) stamp lies on the image.
    distance : `float`
        Distance from the source to the image centre, in pixels.

    """

    path: Path
    holds: bool
    whole: bool
    distance: float


@dataclass(frozen=True)
class FileChoice:
    """The file a source is cut from, and how it was chosen.

    Parameters
    ----------
    path : `pathlib.Path` or `None`
        The file; `None` when no file fits (``reason`` says why).
    rule : `str`
        How it was chosen.
    others : `tuple` [`pathlib.Path`, ...]
        Other files that hold the source too (the choice was ambiguous).
    reason : `str`
        Why no file fits.

    """

    path: Path | None
    rule: str = ""
    others: tuple[Path, ...] = ()
    reason: str = ""

    @property
    def ambiguous(self) -> bool:
        """Whether other files hold the source too."""
        return bool(self.others)


def _listing(paths: Sequence[Path], identities: Mapping[Path, FileIdentity], limit: int = 4) -> str:
    items = [f"{path} ({identities[path].describe()})" for path in paths[:limit]]
    if len(paths) > limit:
        items.append(f"and {len(paths) - limit} more")
    return "; ".join(items)


def choose_file(
    role: str,
    visit: int,
    detector: int,
    files: Sequence[Path],
    identities: Mapping[Path, FileIdentity],
    place: Any,
) -> FileChoice:
    """The file of a role a source is cut from.

    Parameters
    ----------
    role : `str`
        ``science``, ``template`` or ``difference`` (for messages).
    visit, detector : `int`
        The source's visit and detector.
    files : `~collections.abc.Sequence` [`pathlib.Path`]
        The role's files, in the order given.
    identities : `~collections.abc.Mapping` [`pathlib.Path`, `FileIdentity`]
        What each file says it is (`file_identity`).
    place : callable
        ``place(paths)`` -> (list of `Placement`, list of problem texts):
        where the source falls on each file (called only when the ids do
        not decide).

    Returns
    -------
    choice : `FileChoice`
        See the module docstring for the rule.

    """
    identified = [path for path in files if identities[path].known]
    matching = [path for path in identified if identities[path].matches(visit, detector)]
    if matching:
        candidates, by_id = matching, True
    elif len(identified) == len(files):
        return FileChoice(
            None,
            reason=(
                f"no {role} file is of visit {visit}, detector {detector}: the {len(files)} given "
                f"{'is' if len(files) == 1 else 'are'} {_listing(identified, identities)}"
            ),
        )
    else:
        candidates, by_id = [path for path in files if not identities[path].known], False
    if len(candidates) == 1:
        if by_id:
            rule = f"visit and detector ({identities[candidates[0]].origin})"
        else:
            rule = "the only file" if len(files) == 1 else "the only file without visit/detector ids"
        return FileChoice(candidates[0], rule)
    placements, problems = place(candidates)
    holders = sorted((p for p in placements if p.holds), key=lambda p: (not p.whole, p.distance))
    if not holders:
        detail = f" ({'; '.join(problems[:2])})" if problems else ""
        return FileChoice(
            None, reason=f"none of the {len(candidates)} {role} file(s) holds the source{detail}"
        )
    chosen, others = holders[0], tuple(p.path for p in holders[1:])
    if len(holders) == 1:
        rule = "the only file holding the source"
    elif chosen.whole and not holders[1].whole:
        rule = "the whole stamp on the image"
    else:
        rule = "the image centre nearest the source"
    if by_id:
        rule = f"visit and detector, then {rule}"
    return FileChoice(chosen.path, rule, others)


def placement(path: Path, reader: PlaneReader, ra: float, dec: float, size: int) -> Placement:
    """Where a source falls on a file's image (see `Placement`).

    Raises
    ------
    ImageUnavailableError
        When the file's WCS cannot place the source.

    """
    from lsst.images.utils import round_half_up

    from ..geometry import stamp_box

    x, y = reader.sky_to_pixel(np.array([ra]), np.array([dec]))
    fx, fy = float(x[0]), float(y[0])
    box = reader.bbox
    if not (math.isfinite(fx) and math.isfinite(fy)):
        return Placement(path, False, False, math.inf)
    stamp = stamp_box(fx, fy, size)
    cx, cy = round_half_up(fx), round_half_up(fy)
    holds = box.x.start <= cx < box.x.stop and box.y.start <= cy < box.y.stop
    whole = (
        box.x.start <= stamp.x0
        and stamp.x0 + size <= box.x.stop
        and box.y.start <= stamp.y0
        and stamp.y0 + size <= box.y.stop
    )
    centre_x = (box.x.start + box.x.stop - 1) / 2
    centre_y = (box.y.start + box.y.stop - 1) / 2
    return Placement(path, holds, whole, math.hypot(fx - centre_x, fy - centre_y))
