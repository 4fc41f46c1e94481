"""Access to the pixels and sky projections of the science, template and
difference images of one visit × detector.

Only the image plane is read (stamps show pixels; flags come from the
catalog).  Each stamp's region is read as a bbox sub-image, so a 30 × 30
stamp never pulls a whole detector into memory.  For the lossless
tile-compressed planes lsst-images writes, box reads go through
`lsst.analysis.ap.images.tiles`, which decodes only the tiles a box touches
and shares decoded tiles between the boxes of one visit × detector: a
crowded detector then costs at most one decode of each tile, the cost of a
whole read, with no need to choose between the two
(`PlaneReader.shares_tiles`).  Other files are read through lsst-images, and
when a detector has many sources one whole read of such a plane is cheaper
and is done once.
Any dataset whose storage class is an `lsst.images.MaskedImage` (or one of
its subclasses, `~lsst.images.VisitImage` and `~lsst.images.DifferenceImage`)
can be read this way.

Through a Butler, each dataset is looked up once and its file, when it is an
lsst.images file, is opened once per visit × detector with
`lsst.images.serialization.open_archive` (the reader the Butler formatter
itself uses) and kept open for all reads of that visit × detector, until
`PlaneReader.release`.  A ``butler.get`` per 30 × 30 bbox costs ~40 ms on a
4k × 4k tile-compressed detector (datastore lookup, formatter, file open and
header parsing every time); a read from the open file costs ~6 ms, and a
read through the tile reader ~2.5 ms, most of it zlib.  Files that
lsst.images cannot open are read through ``butler.get``.
"""

from __future__ import annotations

__all__ = (
    "ImageUnavailableError",
    "OpenArchiveGetter",
    "PlaneReader",
    "ImageDataset",
    "butler_plane_reader",
    "find_image_datasets",
    "handle_plane_reader",
    "only_instrument",
)

import contextlib
import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np
from lsst.images import Box, Image, SkyProjection

from ..geometry import pixel_scale_arcsec, sky_to_pixel
from ..records import ReasonCode
from .tiles import TiledPlane, open_plane

_LOG = logging.getLogger(__name__)


class ImageUnavailableError(RuntimeError):
    """An image of a visit × detector could not be found or read.

    Parameters
    ----------
    message : `str`
        What happened, naming the dataset (and its file when known).
    code : `~lsst.analysis.ap.records.ReasonCode`, optional
        Reason code of the sources that fail because of it:
        ``missing_exposure`` (no such dataset or file), ``corrupt_image``
        (the file exists but cannot be read as an image) or ``no_wcs`` (the
        image has no celestial WCS).

    """

    def __init__(self, message: str, code: ReasonCode = ReasonCode.MISSING_IMAGE) -> None:
        super().__init__(message)
        self.code = code


Getter = Callable[[str, Mapping[str, Any] | None], Any]
"""``get(component, parameters)`` for one dataset."""


@dataclasses.dataclass
class PlaneReader:
    """Reads the image plane of one dataset, whole or by bbox.

    Parameters
    ----------
    name : `str`
        Description for messages (dataset type and data ID).
    getter : callable
        Reads a component of the dataset, with optional read parameters.

    """

    name: str
    getter: Getter
    closer: Callable[[], None] | None = None
    """Called by `release` (closes files the getter keeps open)."""
    file: str | None = None
    """Local path of the dataset's file, when known (named when it cannot
    be read)."""
    _projection: SkyProjection | None = None
    _bbox: Box | None = None
    _whole: tuple[np.ndarray, Box] | None = None

    def _unreadable(self, error: Exception, what: str = "") -> ImageUnavailableError:
        """The error of a failed read: a missing file, or a corrupt one (an
        `ImageUnavailableError` of the getter, which says what is wrong, as
        it is).
        """
        if isinstance(error, ImageUnavailableError):
            return error
        detail = " ".join(str(error).split())
        if self.file is not None:
            if not os.path.exists(self.file):
                return ImageUnavailableError(f"file {self.file} of {self.name} is missing: {detail}")
            return ImageUnavailableError(
                f"image file {self.file} ({self.name}) is corrupt or unreadable{what}: "
                f"{type(error).__name__}: {detail}",
                code=ReasonCode.CORRUPT_IMAGE,
            )
        return ImageUnavailableError(f"cannot read{what} {self.name}: {detail}")

    def _describe(self) -> None:
        try:
            self._bbox = self.getter("bbox", None)
            self._projection = self.getter("sky_projection", None)
        except Exception as error:
            raise self._unreadable(error) from error
        if self._projection is None:
            raise ImageUnavailableError(f"{self.name} has no sky projection (WCS)", code=ReasonCode.NO_WCS)

    @property
    def bbox(self) -> Box:
        """Bounding box of the whole image (parent coordinates)."""
        if self._bbox is None:
            self._describe()
        assert self._bbox is not None
        return self._bbox

    @property
    def projection(self) -> SkyProjection:
        """Sky projection of the image."""
        if self._projection is None:
            self._describe()
        assert self._projection is not None
        return self._projection

    def sky_to_pixel(self, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel positions of sky positions.

        Parameters
        ----------
        ra, dec : `numpy.ndarray`
            ICRS coordinates in degrees.

        Returns
        -------
        x, y : `numpy.ndarray`
            Parent pixel coordinates.

        """
        return sky_to_pixel(self.projection, ra, dec)

    def pixel_scale_arcsec(self) -> float:
        """Pixel scale at the centre of the image.

        Returns
        -------
        scale : `float`
            Arcseconds per pixel.

        """
        return pixel_scale_arcsec(self.projection, self.bbox)

    @property
    def shares_tiles(self) -> bool:
        """Whether box reads decode each tile of the plane at most once and
        share it between boxes, so that a whole read never saves time.
        """
        probe = getattr(self.getter, "shares_tiles", None)
        return bool(probe is not None and probe())

    @property
    def reads_in_threads(self) -> bool:
        """Whether `read` may be called from several threads at once: the
        plane was read whole, or box reads go through the (thread-safe)
        tile reader.
        """
        return self._whole is not None or self.shares_tiles

    def read_whole(self) -> tuple[np.ndarray, Box]:
        """Read (once) and keep the whole image plane.

        Returns
        -------
        array : `numpy.ndarray`
            The pixels, indexed ``[y, x]``.
        box : `lsst.images.Box`
            Parent-coordinate box of ``array``.

        Raises
        ------
        ImageUnavailableError
            If the plane cannot be read.

        """
        if self._whole is None:
            try:
                image = self.getter("image", None)
            except Exception as error:
                raise self._unreadable(error) from error
            self._whole = (image.array, image.bbox)
            self._bbox = image.bbox
        return self._whole

    def read(self, box: Box) -> tuple[np.ndarray, Box]:
        """Pixels of a box, from the whole plane when it was read, else by
        a bbox read.

        Parameters
        ----------
        box : `lsst.images.Box`
            Region to read; it must lie within `bbox`.

        Returns
        -------
        array : `numpy.ndarray`
            Pixels of a region holding ``box``, indexed ``[y, x]``.
        array_box : `lsst.images.Box`
            Parent-coordinate box of ``array``.

        Raises
        ------
        ImageUnavailableError
            If the pixels cannot be read.

        """
        if self._whole is not None:
            return self._whole
        try:
            image = self.getter("image", {"bbox": box})
        except Exception as error:
            raise self._unreadable(error, f" (reading {box})") from error
        return image.array, image.bbox

    def read_component(self, box: Box, component: str) -> Any:
        """Another plane of ``box``: ``"mask"`` (an `lsst.images.Mask`),
        ``"variance"`` or ``"image"`` (`lsst.images.Image`), read by bbox.

        Only the display options that need them (mask overlay, FITS stamps)
        read these planes.
        """
        try:
            return self.getter(component, {"bbox": box})
        except Exception as error:
            raise ImageUnavailableError(
                f"cannot read the {component} of {box} of {self.name}: {error}"
            ) from error

    def release(self) -> None:
        """Drop the whole plane, if it was read, and close open files."""
        self._whole = None
        if self.closer is not None:
            self.closer()


_ARCHIVE_TREE_TYPES: set[type] = set()
"""The archive-tree models of the lsst.images files opened so far.

lsst-images builds each file's tree model as a pydantic generic model
parameterized for its reader, and pydantic keeps such models only weakly:
once the last file of a kind is closed and collected, the next open of that
kind builds its model again (about 13 ms, two thirds of an open).  Holding
them here makes that a once-per-process cost.
"""


class OpenArchiveGetter:
    """Reads components of one lsst.images file, opened on first use and
    kept open until `close`.  Files lsst.images cannot open are read with
    `lsst.analysis.ap.images.legacy_fits` when they are afw-written FITS files (so
    afw-era datasets such as ``calexp`` are read without afw), else through
    ``fallback`` (a ``butler.get``).
    """

    _TILED_HDUS = {"image": "IMAGE", "variance": "VARIANCE"}
    """Components read through `TiledPlane` when their HDU is tiled losslessly."""

    def __init__(self, uri: Any, fallback: Getter) -> None:
        self._uri = uri
        self._fallback = fallback
        self._stack: contextlib.ExitStack | None = None
        self._reader: Any = None
        self._use_fallback = False
        self._tiled: dict[str, TiledPlane | None] = {}
        self._units: dict[str, Any] = {}
        self._bbox: Box | None = None
        self._lock = threading.RLock()

    def _open(self) -> Any:
        if self._reader is None:
            from lsst.images.serialization import open_archive

            stack = contextlib.ExitStack()
            try:
                self._reader = stack.enter_context(open_archive(self._uri, partial=True))
            except Exception:
                stack.close()
                raise
            self._stack = stack
            tree = getattr(self._reader, "_tree", None)
            if tree is not None:
                _ARCHIVE_TREE_TYPES.add(type(tree))
        return self._reader

    def _tiled_plane(self, component: str, reader: Any) -> TiledPlane | None:
        """The tile reader of a component's HDU, or `None` when the file is
        not local or the HDU is not a lossless tiled plane of the image's
        shape (then lsst-images reads it).
        """
        if component not in self._tiled:
            plane = None
            path = self._uri.ospath if getattr(self._uri, "isLocal", False) else None
            if path is not None:
                if self._bbox is None:
                    self._bbox = reader.get_component("bbox")
                try:
                    opened = open_plane(path, self._TILED_HDUS[component])
                except Exception:
                    opened = None
                if isinstance(opened, TiledPlane) and opened.shape == (self._bbox.y.size, self._bbox.x.size):
                    plane = opened
                elif opened is not None:
                    opened.close()
            self._tiled[component] = plane
        return self._tiled[component]

    def _unit(self, component: str, reader: Any) -> Any:
        """Pixel unit of a component (read once, from one pixel, by lsst-images)."""
        if component not in self._units:
            assert self._bbox is not None
            corner = Box.from_shape((1, 1), start=(self._bbox.y.start, self._bbox.x.start))
            try:
                self._units[component] = reader.get_component(component, bbox=corner).unit
            except Exception:
                self._units[component] = None
        return self._units[component]

    def shares_tiles(self) -> bool:
        """Whether the image plane is read through a `TiledPlane`."""
        with self._lock:
            if self._use_fallback:
                return False
            try:
                return self._tiled_plane("image", self._open()) is not None
            except Exception:
                return False

    def __call__(self, component: str, parameters: Mapping[str, Any] | None) -> Any:
        with self._lock:
            # Opening, and every read but the tile reader's, one thread at
            # a time; tile reads (thread-safe, mostly outside the GIL) run
            # at once.
            if self._use_fallback:
                return self._fallback(component, parameters)
            try:
                reader = self._open()
            except Exception:
                self._use_fallback = True
                legacy = _LegacyFitsGetter.for_uri(self._uri)
                if legacy is not None:
                    self._fallback = legacy
                return self._fallback(component, parameters)
            plane = self._tiled_plane(component, reader) if component in self._TILED_HDUS else None
            if plane is None:
                return reader.get_component(component, **dict(parameters or {}))
            # The variance (read only for FITS stamps) keeps its unit; the
            # image plane is read without one (a unit costs a read).
            unit = self._unit(component, reader) if component == "variance" else None
            assert self._bbox is not None
            whole = self._bbox
        box = (parameters or {}).get("bbox") or whole
        y0, x0 = whole.y.start, whole.x.start
        array = plane.read(box.y.start - y0, box.y.stop - y0, box.x.start - x0, box.x.stop - x0)
        return Image(array, bbox=box, unit=unit)

    def close(self) -> None:
        with self._lock:
            for plane in self._tiled.values():
                if plane is not None:
                    plane.close()
            self._tiled.clear()
            if self._stack is not None:
                stack, self._stack, self._reader = self._stack, None, None
                stack.close()


class _LegacyFitsGetter:
    """Reads the components the cutouts need from an afw-written FITS file
    (Exposure or MaskedImage, old or new layout) with
    `lsst.analysis.ap.images.legacy_fits`, without afw.
    """

    def __init__(self, path: str) -> None:
        from .legacy_fits import read_legacy_header_info

        self._path = path
        self._bbox = read_legacy_header_info(path).bbox
        self._projection: Any = None

    @classmethod
    def for_uri(cls, uri: Any) -> _LegacyFitsGetter | None:
        """A getter for a local afw FITS file, or `None` if it is not one."""
        try:
            return cls(uri.ospath if hasattr(uri, "ospath") else str(uri))
        except Exception:
            return None

    def __call__(self, component: str, parameters: Mapping[str, Any] | None) -> Any:
        from .legacy_fits import read_legacy_masked_image

        if component == "bbox":
            return self._bbox
        if component == "sky_projection":
            if self._projection is None:
                corner = Box.from_shape((1, 1), start=(self._bbox.y.start, self._bbox.x.start))
                self._projection = read_legacy_masked_image(self._path, bbox=corner).sky_projection
            return self._projection
        if component in ("image", "mask", "variance"):
            masked = read_legacy_masked_image(self._path, bbox=(parameters or {}).get("bbox"))
            return getattr(masked, component)
        raise KeyError(f"component {component!r} is not read from afw FITS files")


class ImageDataset(NamedTuple):
    """A dataset found by `find_image_datasets`."""

    ref: Any
    """The `lsst.daf.butler.DatasetRef`."""
    uri: Any
    """Its file's `lsst.resources.ResourcePath`, `None` when it has no
    single file (a disassembled dataset)."""


def local_files(datasets: Mapping[str, ImageDataset]) -> bool:
    """Whether every dataset of ``datasets`` (a value of
    `find_image_datasets`) is one file on a local file system.
    """
    return bool(datasets) and all(
        dataset.uri is not None and _local_path(dataset.uri) is not None for dataset in datasets.values()
    )


def find_image_datasets(
    butler: Any, dataset_types: Mapping[str, str], data_ids: Iterable[Mapping[str, Any]]
) -> dict[tuple[str, int, int], dict[str, ImageDataset]]:
    """Look up the images of many visit × detectors at once.

    The visit × detectors are uploaded once as data IDs, each dataset type
    is searched for all of them at once, first in collection order as
    ``find_dataset`` does (a lookup per dataset and visit × detector costs
    about 9 ms; the three searches together about as much), and the files
    are found with one ``get_many_uris``.

    Parameters
    ----------
    butler : `lsst.daf.butler.Butler`
        Butler with default collections holding the datasets.
    dataset_types : `~collections.abc.Mapping` [`str`, `str`]
        Dataset type name by role.
    data_ids : iterable of `~collections.abc.Mapping`
        Data IDs with ``instrument``, ``visit`` and ``detector``.

    Returns
    -------
    found : `dict`
        Datasets by role, keyed by ``(instrument, visit, detector)``, for
        the visit × detectors where every dataset type has a dataset (the
        first in collection order).  The others are absent: look them up
        one by one (`butler_plane_reader`), which names what is missing.
        Empty when the query cannot be made (e.g. a dataset type without
        visit and detector dimensions).

    """
    keys = list(dict.fromkeys((str(d["instrument"]), int(d["visit"]), int(d["detector"])) for d in data_ids))
    names = list(dict.fromkeys(dataset_types.values()))
    if not keys:
        return {}
    found: dict[tuple[str, int, int], dict[str, Any]] = {}
    try:
        from lsst.daf.butler import DataCoordinate

        with butler.query() as query:
            query = query.join_data_coordinates(
                DataCoordinate.standardize(
                    instrument=instrument, visit=visit, detector=detector, universe=butler.dimensions
                )
                for instrument, visit, detector in keys
            )
            for name in names:
                for ref in query.datasets(name, find_first=True):
                    data_id = ref.dataId
                    key = (str(data_id["instrument"]), int(data_id["visit"]), int(data_id["detector"]))
                    found.setdefault(key, {})[name] = ref
        complete = {key: refs for key, refs in found.items() if len(refs) == len(names)}
        uris = butler.get_many_uris([ref for refs in complete.values() for ref in refs.values()])
    except Exception as error:
        _LOG.debug("Images not looked up together (one lookup per image instead): %s", error)
        return {}
    return {
        key: {
            role: ImageDataset(refs[name], uris[refs[name]].primaryURI)
            for role, name in dataset_types.items()
        }
        for key, refs in complete.items()
    }


def butler_plane_reader(
    butler: Any, dataset_type: str, data_id: Mapping[str, Any], found: ImageDataset | None = None
) -> PlaneReader:
    """A reader of one dataset through a Butler.

    Parameters
    ----------
    butler : `lsst.daf.butler.Butler`
        Butler with default collections holding the dataset.
    dataset_type : `str`
        Dataset type name.
    data_id : `~collections.abc.Mapping` [`str`, `~typing.Any`]
        Data ID (instrument, visit, detector).
    found : `ImageDataset`, optional
        The dataset and its file, when `find_image_datasets` found them.

    Returns
    -------
    reader : `PlaneReader`
        The reader; the dataset is looked up once, here, unless ``found``.

    Raises
    ------
    ImageUnavailableError
        If the dataset cannot be found; the message names it.

    """
    name = f"{dataset_type}@{dict(data_id)}"
    if found is not None:
        ref = found.ref
    else:
        try:
            ref = butler.find_dataset(dataset_type, data_id)
        except Exception as error:
            raise ImageUnavailableError(f"cannot look up {name}: {error}") from error
    if ref is None:
        from lsst.daf.butler import DatasetNotFoundError

        message = f"{name} not found in collections {list(butler.collections.defaults)}"
        raise ImageUnavailableError(message) from DatasetNotFoundError(message)

    def butler_get(component: str, parameters: Mapping[str, Any] | None) -> Any:
        return butler.get(ref.makeComponentRef(component), parameters=parameters)

    if found is not None:
        uri = found.uri
    else:
        try:
            uri = butler.getURI(ref)
        except Exception:  # e.g. a disassembled (one file per component) dataset
            uri = None
    if uri is None:
        return PlaneReader(name=name, getter=butler_get)
    getter = OpenArchiveGetter(uri, butler_get)
    return PlaneReader(name=name, getter=getter, closer=getter.close, file=_local_path(uri))


def _local_path(uri: Any) -> str | None:
    """Local file path of a resource URI, or `None`."""
    return uri.ospath if getattr(uri, "isLocal", False) else None


def handle_plane_reader(handle: Any) -> PlaneReader:
    """A reader of one dataset through a deferred dataset handle (as a
    PipelineTask receives its inputs).

    Parameters
    ----------
    handle : `lsst.daf.butler.DeferredDatasetHandle`
        The handle.

    Returns
    -------
    reader : `PlaneReader`
        The reader.

    """
    name = f"{handle.ref.datasetType.name}@{dict(handle.ref.dataId.required)}"

    def handle_get(component: str, parameters: Mapping[str, Any] | None) -> Any:
        return handle.get(component=component, parameters=parameters)

    try:
        uri = handle.butler.getURI(handle.ref)
    except Exception:
        return PlaneReader(name=name, getter=handle_get)
    getter = OpenArchiveGetter(uri, handle_get)
    return PlaneReader(name=name, getter=getter, closer=getter.close, file=_local_path(uri))


def only_instrument(butler: Any) -> str | None:
    """The repository's instrument when it has exactly one.

    Parameters
    ----------
    butler : `lsst.daf.butler.Butler`
        The repository.

    Returns
    -------
    instrument : `str` or `None`
        Its only instrument's name, or `None` when it has none, several, or
        cannot be queried.

    """
    try:
        names = [record.name for record in butler.query_dimension_records("instrument")]
    except Exception:
        return None
    return names[0] if len(names) == 1 else None
