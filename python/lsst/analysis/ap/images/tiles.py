"""Boxes of tile-compressed FITS images, decompressing only the tiles they
touch.

lsst-images (and the Butler formatters that use it) write each image plane as
a tile-compressed HDU, by default lossless ``GZIP_2`` with one image row per
tile.  A 30 × 30 stamp of a 4096-wide plane then needs 30 tiles of 4096
pixels; astropy's ``CompImageHDU.section`` decodes them but re-reads the whole
tile descriptor column and rebuilds its settings on every call, which costs
more than the decompression itself.  `TiledPlane` reads the descriptor column
once, reads the compressed tiles a box needs with one ``preadv`` (into a
buffer each thread keeps) and decodes them with `zlib`, keeping decoded
tiles in a bounded cache so that nearby stamps of the same image share
them.  The tiles are inflated with libdeflate (the ``deflate`` package;
`zlib` when it is missing), which needs about 40% less time than zlib for
the same stream, and kept as inflated bytes: a box then un-shuffles
(``GZIP_2``) and byte-swaps only its own columns, not whole rows.  Both
inflaters release the GIL, so several planes (or sources) can be decoded at
once in threads; a tile asked for by two threads at once is decoded once.

Only the lossless layouts are decoded here (``GZIP_1``, ``GZIP_2``,
``NOCOMPRESS``, no quantization, no ``ZBLANK`` or ``BLANK``, no scaling but
the unsigned-integer offset ``BZERO``); any other HDU (quantized, scaled,
``RICE_1``, ``HCOMPRESS_1``, ``PLIO_1``, uncompressed images, whole-file
gzip) is read through astropy's own ``section``, which gives the same
pixels more slowly.
"""

from __future__ import annotations

__all__ = ("IMAGE_HDUS", "PlaneFile", "TiledPlane", "open_plane", "release_bands", "tile_rows_for_box")

import collections
import math
import mmap
import os
import sys
import threading
import zlib
from collections.abc import Callable
from typing import Protocol

import astropy.io.fits
import numpy as np

try:
    import deflate as _libdeflate
except ImportError:  # pragma: no cover - the pinned dependency is installed
    _libdeflate = None

IMAGE_HDUS = (astropy.io.fits.PrimaryHDU, astropy.io.fits.ImageHDU, astropy.io.fits.CompImageHDU)
"""The astropy HDU types that hold an image (a table HDU is never one)."""

_LOSSLESS = frozenset({"GZIP_1", "GZIP_2", "NOCOMPRESS"})
_FORMAT_ITEMSIZE = {"B": 1, "I": 2, "J": 4, "K": 8, "E": 4, "D": 8}
_BITPIX_DTYPE = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}

DEFAULT_CACHE_BYTES = 256 * 1024**2
"""Decoded tiles kept per plane (bytes); a 4096-pixel float row is 16 KiB."""


class PlaneFile(Protocol):
    """One image plane of a FITS file, read box by box."""

    shape: tuple[int, int]

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Pixels ``[y0:y1, x0:x1]`` of the plane (array indices, native byte order)."""

    def close(self) -> None:
        """Release the file."""


def _inflate_zlib(payload: bytes, size: int) -> bytes:
    """Inflate a gzip or zlib stream with `zlib`."""
    return zlib.decompress(payload, 47)


def _inflate_libdeflate(payload: bytes, size: int) -> bytes:
    """Inflate a gzip or zlib stream of ``size`` bytes with libdeflate."""
    try:
        if payload[:2] == b"\x1f\x8b":
            return _libdeflate.gzip_decompress(payload)
        return _libdeflate.zlib_decompress(payload, size)
    except _libdeflate.DeflateError as error:
        raise zlib.error(f"libdeflate: {error}") from error


_inflate = _inflate_zlib if _libdeflate is None else _inflate_libdeflate
"""Inflates one tile's gzip or zlib stream, given its inflated size; raises
`zlib.error` for a damaged stream.  libdeflate when installed, else zlib."""


def _gzip_members(payload: bytes | memoryview, size: int) -> bytes | None:
    """A tile stored as several gzip members (or one followed by zero
    padding), as astropy reads it, inflating at most ``size + 1`` bytes (a
    damaged tile never inflates beyond); `None` when it is not that.
    """
    data = bytes(payload)
    if data[:2] != b"\x1f\x8b":
        return None
    out = bytearray()
    try:
        while data:
            member = zlib.decompressobj(31)
            out += member.decompress(data, size + 1 - len(out))
            if len(out) > size or not member.eof:
                return None
            data = member.unused_data.lstrip(b"\0")
    except zlib.error:
        return None
    return bytes(out) if len(out) == size else None


def tile_rows_for_box(y0: int, y1: int, tile_height: int) -> range:
    """Indices of the tile rows that rows ``y0:y1`` of an image touch.

    Parameters
    ----------
    y0, y1 : `int`
        First and one-past-last image row.
    tile_height : `int`
        Rows per tile (``ZTILE2``).

    Returns
    -------
    rows : `range`
        Tile-row indices, empty when ``y1 <= y0``.

    """
    if y1 <= y0:
        return range(0)
    return range(y0 // tile_height, (y1 - 1) // tile_height + 1)


class _BandPool:
    """Bands of closed planes, kept for the next planes of the same shape.

    A page of memory that a process touches for the first time costs a
    fault; here that costs more per inflated tile than copying the tile
    into memory already touched.  A plane therefore fills its band from
    the first row on, in the order it inflates tiles, and a band of a
    closed plane is given to the next plane of the same shape, whose
    first tiles land on the rows touched before.  At most ``limit`` bands
    are kept: the three images of one visit × detector.  Bands are
    anonymous memory maps, so that `trim` can give the pages of their
    later rows back to the system and keep the first ones.

    Parameters
    ----------
    limit : `int`, optional
        Most bands kept.

    """

    def __init__(self, limit: int = 3) -> None:
        self._limit = limit
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    def take(self, shape: tuple[int, int]) -> np.ndarray:
        """A band of ``shape`` (``uint8``; contents undefined)."""
        with self._lock:
            for index, band in enumerate(self._free):
                if band.shape == shape:
                    return self._free.pop(index)
        size = shape[0] * shape[1]
        if size == 0:
            return np.empty(shape, dtype=np.uint8)
        # Private memory: pages given back by `trim` are freed (and read as
        # zeros), and a forked process gets its own copy of a kept band.
        private = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
        mapping = mmap.mmap(-1, size, flags=private) if private else mmap.mmap(-1, size)
        return np.frombuffer(mapping, dtype=np.uint8).reshape(shape)

    def give(self, band: np.ndarray) -> None:
        """Return a band no plane uses any more."""
        with self._lock:
            self._free.append(band)
            del self._free[: max(len(self._free) - self._limit, 0)]

    def trim(self, keep_bytes: int) -> None:
        """Give back the memory of every kept band beyond its first
        ``keep_bytes`` (rounded down to whole rows and pages); a band whose
        pages cannot be given back is dropped.
        """
        with self._lock:
            kept = []
            for band in self._free:
                base = band.base
                while isinstance(base, np.ndarray | memoryview):
                    base = base.base if isinstance(base, np.ndarray) else base.obj
                if isinstance(base, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
                    start = min(keep_bytes // band.shape[1] * band.shape[1], len(base))
                    start -= start % mmap.PAGESIZE
                    if start < len(base):
                        base.madvise(mmap.MADV_DONTNEED, start, len(base) - start)
                    kept.append(band)
            self._free = kept


KEPT_BAND_BYTES = 4 * 1024**2
"""Bytes of each band kept in memory between runs (`release_bands`): the
rows of tiles that a run of a few sources per visit × detector inflates,
so that the next run in the same process (a notebook's, or the next quantum
of a clustered pipeline job) does not touch new pages for them."""


def release_bands() -> None:
    """Free the memory of the bands kept for later planes, but for their
    first `KEPT_BAND_BYTES`, and the calling thread's read buffer (at the
    end of a run)."""
    _BANDS.trim(KEPT_BAND_BYTES)
    _READ_BUFFERS.release()


_BANDS = _BandPool()
"""The bands of all planes of the process."""


class _ReadBuffers(threading.local):
    """One buffer per thread for the compressed tiles read from files,
    grown as needed up to `KEPT_BYTES` and used again by each read of that
    thread: a new buffer of a few hundred kilobytes (the tiles of a 30-row
    box of a 4096-wide plane) per read costs a page fault per 4 KiB it
    touches, more than the read itself."""

    KEPT_BYTES = 2 * 1024**2
    """Largest buffer kept; a larger read (a box of hundreds of rows) gets a
    buffer of its own."""

    def __init__(self) -> None:
        self._buffer = memoryview(bytearray())

    def view(self, size: int) -> memoryview:
        """``size`` bytes (contents undefined): the start of this thread's
        buffer, which the thread's next call gives again."""
        if size > self.KEPT_BYTES:
            return memoryview(bytearray(size))
        if len(self._buffer) < size:
            self._buffer = memoryview(bytearray(min(max(size, 2 * len(self._buffer)), self.KEPT_BYTES)))
        return self._buffer[:size]

    def release(self) -> None:
        """Free this thread's buffer."""
        self._buffer = memoryview(bytearray())


_READ_BUFFERS = _ReadBuffers()
"""The read buffers of the threads of the process."""


class TiledPlane:
    """A lossless tile-compressed image HDU decoded tile by tile.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        FITS file.
    header : `astropy.io.fits.Header`
        Header of the compressed binary table (as read with
        ``disable_image_compression=True``).
    data_offset : `int`
        Byte offset of the table's data in the file.
    cache_bytes : `int`, optional
        Most bytes of decoded tiles kept; the least recently used go first.

    Notes
    -----
    Use `open_plane`, which checks that the HDU is one this class decodes.
    Reads are thread-safe: the file is read with ``os.preadv`` into a
    buffer of the reading thread's own (`_READ_BUFFERS`), the cache
    is guarded by a lock and a tile being inflated by one thread is waited
    for by the others, so the planes of one image, or the stamps of several
    sources, can be decoded in parallel threads.  `close` must not be
    called while reads are running (its band goes to the next plane).

    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        header: astropy.io.fits.Header,
        data_offset: int,
        *,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.path = os.fspath(path)
        self.algorithm = header["ZCMPTYPE"].strip()
        self.shape = (int(header["ZNAXIS2"]), int(header["ZNAXIS1"]))
        self.tile_shape = (int(header.get("ZTILE2", 1)), int(header.get("ZTILE1", self.shape[1])))
        if min(self.shape) < 1 or min(self.tile_shape) < 1:
            raise ValueError(
                f"{self.path}: a tiled image of {self.shape[1]}×{self.shape[0]} pixels in tiles of "
                f"{self.tile_shape[1]}×{self.tile_shape[0]} (ZNAXIS, ZTILE) cannot be read"
            )
        self.dtype = np.dtype(_BITPIX_DTYPE[int(header["ZBITPIX"])])
        self._offset_dtype = _offset_dtype(header)
        self._tiles_x = -(-self.shape[1] // self.tile_shape[1])
        tform = header["TFORM1"].strip()
        descriptor_type = tform.lstrip("0123456789")[0]  # P (32-bit) or Q (64-bit) descriptors
        self._element_size = _FORMAT_ITEMSIZE[tform.lstrip("0123456789")[1]]
        n_rows = int(header["NAXIS2"])
        row_bytes = int(header["NAXIS1"])
        self._heap_offset = data_offset + int(header.get("THEAP", row_bytes * n_rows))
        tiles_y = -(-self.shape[0] // self.tile_shape[0])
        if n_rows != tiles_y * self._tiles_x or row_bytes != 2 * (4 if descriptor_type == "P" else 8):
            raise ValueError(
                f"{self.path}: its tile table lists {n_rows} tiles of {row_bytes} bytes, not the "
                f"{tiles_y * self._tiles_x} tiles of a {self.shape[1]}×{self.shape[0]} image in tiles "
                f"of {self.tile_shape[1]}×{self.tile_shape[0]}"
            )
        self._fd = os.open(self.path, os.O_RDONLY)
        try:
            raw = os.pread(self._fd, row_bytes * n_rows, data_offset)
            self._heap_bytes = os.fstat(self._fd).st_size - self._heap_offset
            if len(raw) != row_bytes * n_rows:
                raise ValueError(f"{self.path}: the file ends inside its tile table (truncated)")
        except BaseException:
            os.close(self._fd)
            self._fd = -1
            raise
        self._descriptors = np.frombuffer(raw, dtype=">i4" if descriptor_type == "P" else ">i8").reshape(
            n_rows, 2
        )
        self._outside = self._outside_the_file()
        tile_bytes = self.tile_shape[0] * self.tile_shape[1] * self.dtype.itemsize
        self._cache_tiles = max(1, cache_bytes // max(tile_bytes, 1))
        self._cache: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self._band: np.ndarray | None = None
        self._band_filled: np.ndarray | None = None
        self._band_row: np.ndarray | None = None
        self._band_rows_used = 0
        if self._tiles_x == 1 and self.shape[0] % self.tile_shape[0] == 0 and tiles_y <= self._cache_tiles:
            # Tiles of whole rows (lsst-images' layout) in a plane that fits
            # the cache: tiles are inflated into the rows of one band (see
            # `_BANDS`) in the order they are inflated, and a box is read
            # from its tiles' rows at once.
            self._band_filled = np.zeros(tiles_y, dtype=bool)
            self._band_row = np.full(tiles_y, -1, dtype=np.intp)
        self._pending: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self.tiles_decoded = 0
        """Number of tiles inflated so far (cache misses)."""

    def _tile_extent(self, tile_y: int, tile_x: int) -> tuple[int, int]:
        height = min(self.tile_shape[0], self.shape[0] - tile_y * self.tile_shape[0])
        width = min(self.tile_shape[1], self.shape[1] - tile_x * self.tile_shape[1])
        return height, width

    def inflate_tile(self, tile_y: int, tile_x: int, payload: bytes | memoryview | None = None) -> np.ndarray:
        """Inflate one tile, without the cache.

        Parameters
        ----------
        tile_y, tile_x : `int`
            Tile indices along y (rows) and x (columns).
        payload : `bytes` or `memoryview`, optional
            The tile's compressed bytes; read from the file when not given.

        Returns
        -------
        inflated : `numpy.ndarray`
            The tile's bytes as stored (``uint8``): still shuffled
            (``GZIP_2``) and big-endian.

        Raises
        ------
        ValueError
            If the tile's stream is damaged or of the wrong size; the
            message names the file and the tile.

        """
        height, width = self._tile_extent(tile_y, tile_x)
        size = height * width * self.dtype.itemsize
        if payload is None:
            key = tile_y * self._tiles_x + tile_x
            self._check_spans([key])
            count, offset = (int(value) for value in self._descriptors[key])
            length = count * self._element_size
            payload = os.pread(self._fd, length, self._heap_offset + offset)
            if len(payload) != length:
                raise self._cut_short(key, len(payload), length)
        if self.algorithm == "NOCOMPRESS":
            data = bytes(payload)  # a payload may be a view of a buffer read into again
        else:
            try:
                data = _inflate(payload, size)
            except zlib.error as error:
                data = _gzip_members(payload, size)
                if data is None:
                    raise ValueError(f"{self.path}: tile ({tile_y}, {tile_x}) is damaged: {error}") from error
            if len(data) != size:
                data = _gzip_members(payload, size) or data
        if len(data) != size:
            raise ValueError(
                f"{self.path}: tile ({tile_y}, {tile_x}) holds {len(data)} bytes, expected {size}"
            )
        return np.frombuffer(data, dtype=np.uint8)

    def _outside_the_file(self) -> np.ndarray | None:
        """Which tiles the tile table puts (partly) outside the file's heap,
        `None` when none (checked once, when the plane is opened)."""
        counts = self._descriptors[:, 0].astype(np.int64)
        offsets = self._descriptors[:, 1].astype(np.int64)
        heap = self._heap_bytes
        bad = (counts < 0) | (offsets < 0) | (offsets > heap)
        bad |= counts > (heap - np.clip(offsets, 0, heap)) // self._element_size
        return bad if bad.any() else None

    def _check_spans(self, keys: list[int]) -> None:
        """Raise a `ValueError` naming the first of the tiles ``keys`` whose
        compressed bytes, as the tile table gives them, lie outside the file
        (before any of them is read: a damaged count may ask for gigabytes).
        """
        if self._outside is None or not self._outside[keys].any():
            return
        key = next(key for key in keys if self._outside[key])
        count, offset = (int(value) for value in self._descriptors[key])
        tile_y, tile_x = divmod(key, self._tiles_x)
        raise ValueError(
            f"{self.path}: tile ({tile_y}, {tile_x}) is damaged: the tile table puts its {count} "
            f"compressed elements at heap offset {offset}, outside the file's {self._heap_bytes}-byte heap"
        )

    @property
    def _shuffled(self) -> bool:
        """Whether tiles store their pixels' bytes shuffled (``GZIP_2``)."""
        return self.algorithm == "GZIP_2" and self.dtype.itemsize > 1

    def _part(self, raw: np.ndarray, height: int, width: int, rows: slice, columns: slice) -> np.ndarray:
        """The stored bytes of pixels ``[rows, columns]`` of an inflated tile
        of ``height`` × ``width`` pixels (a view): ``(itemsize, rows,
        columns)`` byte planes for shuffled tiles, else big-endian values.
        """
        if self._shuffled:
            return raw.reshape(self.dtype.itemsize, height, width)[:, rows, columns]
        return raw.view(self.dtype).reshape(height, width)[rows, columns]

    def _pixels(self, part: np.ndarray) -> np.ndarray:
        """Native-endian pixels of a `_part` (or of parts stacked along
        rows); only these pixels are un-shuffled and swapped.
        """
        native = self.dtype.newbyteorder("=")
        if not self._shuffled:
            return part.astype(native)
        # GZIP_2 stores the most significant bytes of every pixel, then the
        # next ones, ...: interleave the byte planes (in native order).
        out = np.empty(part.shape[1:], dtype=native)
        as_bytes = out.view(np.uint8).reshape(*out.shape, self.dtype.itemsize)
        as_bytes[...] = (part if sys.byteorder == "big" else part[::-1]).transpose(1, 2, 0)
        return out

    def tile(self, tile_y: int, tile_x: int) -> np.ndarray:
        """One inflated tile (its stored bytes, see `inflate_tile`), from the
        cache when it was inflated before.
        """
        return self._tiles([tile_y * self._tiles_x + tile_x])[0]

    def _tiles(self, keys: list[int]) -> list[np.ndarray]:
        """Inflated tiles (keys ``tile_y * tiles_x + tile_x``), from the
        cache or read and inflated here."""

        def cached(key: int) -> np.ndarray | None:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
            return found

        got = self._gather(keys, cached, self._inflate_to_cache)
        return [got[key] for key in keys]

    def _gather[T](
        self,
        keys: list[int],
        lookup: Callable[[int], T | None],
        inflate: Callable[[list[int]], dict[int, T]],
    ) -> dict[int, T]:
        """Tiles by key (as ``lookup`` and ``inflate`` give them: inflated
        tiles, or their rows of the band): what ``lookup`` (called under the
        lock) finds, and the rest inflated here by ``inflate``, with one lock
        per call rather than per tile.  Tiles another thread is inflating
        are waited for, not inflated again.
        """
        got: dict[int, T] = {}
        while True:
            with self._lock:
                mine: list[int] = []
                theirs: set[threading.Event] = set()
                for key in keys:
                    if key in got:
                        continue
                    found = lookup(key)
                    if found is not None:
                        got[key] = found
                    elif key in self._pending:
                        theirs.add(self._pending[key])
                    else:
                        mine.append(key)
                if not mine and not theirs:
                    return got
                claimed = threading.Event()
                for key in mine:
                    self._pending[key] = claimed
            try:
                if mine:
                    got.update(inflate(mine))
            finally:
                with self._lock:
                    for key in mine:
                        del self._pending[key]
                claimed.set()
            for event in theirs:
                event.wait()
            # Look again: what another thread inflated is there now, unless
            # evicted or that thread failed (then it is inflated here).

    def _cut_short(self, key: int, have: int, length: int) -> ValueError:
        """The error of tile ``key``, of which only ``have`` of its ``length``
        compressed bytes could be read: the file is shorter than when it
        was opened (its tile table was checked then)."""
        tile_y, tile_x = divmod(key, self._tiles_x)
        return ValueError(
            f"{self.path}: tile ({tile_y}, {tile_x}) is damaged: only {have} of its {length} compressed "
            "bytes are in the file (it was cut short after it was opened)"
        )

    def _read_span(self, keys: list[int], buffer: Callable[[int], memoryview]) -> list[memoryview | None]:
        """The compressed bytes of tiles ``keys``, read with one ``preadv``
        into ``buffer(size)`` when they lie next to each other in the heap
        (as written); all `None` (each then read by `inflate_tile`) when
        they are scattered (a span more than twice their bytes).
        """
        self._check_spans(keys)
        descriptors = self._descriptors[keys].astype(np.int64)
        lengths = descriptors[:, 0] * self._element_size
        offsets = descriptors[:, 1]
        begin, end = int(offsets.min()), int((offsets + lengths).max())
        if end - begin > 2 * int(lengths.sum()):
            return [None] * len(keys)
        data = buffer(end - begin)
        got = os.preadv(self._fd, [data], self._heap_offset + begin)
        parts = list(zip((offsets - begin).tolist(), lengths.tolist(), strict=True))
        if got != end - begin:
            key, (start, length) = next(
                (key, part) for key, part in zip(keys, parts, strict=True) if sum(part) > got
            )
            raise self._cut_short(key, max(got - start, 0), length)
        return [data[start : start + length] for start, length in parts]

    def compressed_tiles(self, keys: list[int]) -> list[memoryview | None]:
        """The compressed bytes of tiles, for `inflate_tile`.

        Parameters
        ----------
        keys : `list` [`int`]
            Tiles, as ``tile_y * tiles_x + tile_x``.

        Returns
        -------
        payloads : `list` [`memoryview` or `None`]
            One per tile, read with one ``preadv`` when the tiles lie next
            to each other in the heap (as written); all `None` (each then
            read by `inflate_tile`) when they are scattered.

        """
        return self._read_span(keys, lambda size: memoryview(bytearray(size)))

    def _read_compressed(self, keys: list[int]) -> list[memoryview | None]:
        """`compressed_tiles` read into this thread's `_READ_BUFFERS`; the
        views are valid until this thread's next read.
        """
        return self._read_span(keys, _READ_BUFFERS.view)

    def _inflate_to_cache(self, keys: list[int]) -> dict[int, np.ndarray]:
        """Inflate tiles and keep them in the cache."""
        done: dict[int, np.ndarray] = {}
        try:
            for key, payload in zip(keys, self._read_compressed(keys), strict=True):
                done[key] = self.inflate_tile(*divmod(key, self._tiles_x), payload)
        finally:
            with self._lock:
                self.tiles_decoded += len(done)
                self._cache.update(done)
                while len(self._cache) > self._cache_tiles:
                    self._cache.popitem(last=False)
        return done

    def _inflate_to_band(self, keys: list[int]) -> dict[int, int]:
        """Inflate tile rows into the band, each into the next unused row of
        the band (a failed attempt's row is used again); returns the band
        row of each tile inflated."""
        assert self._band_filled is not None and self._band_row is not None
        with self._lock:
            if self._band is None:
                tile_bytes = self.tile_shape[0] * self.shape[1] * self.dtype.itemsize
                self._band = _BANDS.take((len(self._band_filled), tile_bytes))
            rows = []
            for key in keys:
                if self._band_row[key] < 0:
                    self._band_row[key] = self._band_rows_used
                    self._band_rows_used += 1
                rows.append(int(self._band_row[key]))
        done: list[int] = []
        try:
            for key, row, payload in zip(keys, rows, self._read_compressed(keys), strict=True):
                self._band[row] = self.inflate_tile(key, 0, payload)
                done.append(key)
        finally:
            with self._lock:
                self._band_filled[done] = True
                self.tiles_decoded += len(done)
        return dict(zip(done, rows, strict=False))

    def _read_band(self, y0: int, y1: int, x0: int, x1: int, out: np.ndarray) -> None:
        """Fill ``out`` with pixels ``[y0:y1, x0:x1]`` (clipped, non-empty)
        from the band of whole-row tiles.
        """
        assert self._band_filled is not None and self._band_row is not None
        th = self.tile_shape[0]
        start, stop = y0 // th, (y1 - 1) // th + 1
        filled, band_row = self._band_filled, self._band_row

        def in_band(key: int) -> int | None:
            return int(band_row[key]) if filled[key] else None

        # Read without the lock: a tile's flag is set (under the lock) only
        # once its row of the band is written, and is cleared only by
        # `close`, which never runs beside a read.
        if not filled[start:stop].all():
            self._gather(list(range(start, stop)), in_band, self._inflate_to_band)
        assert self._band is not None
        n, itemsize, width = stop - start, self.dtype.itemsize, self.shape[1]
        rows = band_row[start:stop]
        if self._shuffled:
            # (tile, byte, row, column) → (tile, row, column, byte)
            part = self._band.reshape(-1, itemsize, th, width)[rows, :, :, x0:x1].transpose(0, 2, 3, 1)
        else:
            part = self._band.reshape(-1, th, width, itemsize)[rows, :, x0:x1]
        part = part.reshape(n * th, x1 - x0, itemsize)[y0 - start * th : y1 - start * th]
        as_bytes = out.view(np.uint8).reshape(*out.shape, itemsize)
        as_bytes[...] = part if sys.byteorder == "big" or itemsize == 1 else part[..., ::-1]

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Pixels ``[y0:y1, x0:x1]`` (array indices, clipped to the image).

        Parameters
        ----------
        y0, y1, x0, x1 : `int`
            Box in array indices of this HDU (0-based, end exclusive).

        Returns
        -------
        pixels : `numpy.ndarray`
            A new native-endian array of shape ``(y1 - y0, x1 - x0)`` after
            clipping to the image, of the type astropy reads the plane as
            (integers stored with an offset, ``BZERO``, become unsigned).

        """
        out = self._read_stored(y0, y1, x0, x1)
        if self._offset_dtype is None:
            return out
        # value = stored + BZERO, with BZERO = ±2**(bits - 1): flip the top bit.
        unsigned = out.view(out.dtype.str.replace("i", "u"))
        unsigned ^= np.array(1 << (8 * out.dtype.itemsize - 1), dtype=unsigned.dtype)
        return out.view(self._offset_dtype)

    def _read_stored(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """`read` of the values as stored (without ``BZERO``)."""
        y0, x0 = max(y0, 0), max(x0, 0)
        y1, x1 = min(y1, self.shape[0]), min(x1, self.shape[1])
        out = np.empty((max(y1 - y0, 0), max(x1 - x0, 0)), dtype=self.dtype.newbyteorder("="))
        if out.size == 0:
            return out
        if self._band_filled is not None:
            self._read_band(y0, y1, x0, x1, out)
            return out
        th, tw = self.tile_shape
        if self._tiles_x == 1:
            # Tiles of whole rows (lsst-images' layout): fetch the box's
            # tiles at once, stack the box's part of each, convert at once.
            rows = tile_rows_for_box(y0, y1, th)
            parts = []
            for ty, raw in zip(rows, self._tiles(list(rows)), strict=True):
                height, width = self._tile_extent(ty, 0)
                ty0 = ty * th
                part_rows = slice(max(y0, ty0) - ty0, min(y1, ty0 + height) - ty0)
                parts.append(self._part(raw, height, width, part_rows, slice(x0, x1)))
            out[...] = self._pixels(np.concatenate(parts, axis=-2) if len(parts) > 1 else parts[0])
            return out
        for ty in tile_rows_for_box(y0, y1, th):
            for tx in tile_rows_for_box(x0, x1, tw):
                raw = self.tile(ty, tx)
                height, width = self._tile_extent(ty, tx)
                ty0, tx0 = ty * th, tx * tw
                sy = slice(max(y0, ty0), min(y1, ty0 + height))
                sx = slice(max(x0, tx0), min(x1, tx0 + width))
                part = self._part(
                    raw,
                    height,
                    width,
                    slice(sy.start - ty0, sy.stop - ty0),
                    slice(sx.start - tx0, sx.stop - tx0),
                )
                out[sy.start - y0 : sy.stop - y0, sx.start - x0 : sx.stop - x0] = self._pixels(part)
        return out

    def close(self) -> None:
        """Close the file and drop the cache."""
        with self._lock:
            self._cache.clear()
            band, self._band = self._band, None
            if self._band_filled is not None and self._band_row is not None:
                self._band_filled[:] = False
                self._band_row[:] = -1
                self._band_rows_used = 0
        if band is not None:
            _BANDS.give(band)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        fd = getattr(self, "_fd", -1)
        if fd >= 0:
            os.close(fd)


class _SectionPlane:
    """Any other image HDU, read with astropy's ``section``."""

    def __init__(self, hdu_list: astropy.io.fits.HDUList, index: int, path: str) -> None:
        self._hdu_list = hdu_list
        self._hdu = hdu_list[index]
        self.path = path
        self.shape = tuple(self._hdu.shape) if isinstance(self._hdu, IMAGE_HDUS) else ()
        if len(self.shape) != 2:
            raise ValueError(f"{path}: HDU {index} is not a 2-d image (shape {self.shape})")
        self._dtype: np.dtype | None = None

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """As `TiledPlane.read`: the box clipped to the image (empty when
        it lies outside), in the type astropy reads the plane as.
        """
        y0, x0 = max(y0, 0), max(x0, 0)
        y1, x1 = max(min(y1, self.shape[0]), y0), max(min(x1, self.shape[1]), x0)
        try:
            if y1 == y0 or x1 == x0:
                if self._dtype is None:
                    self._dtype = np.asarray(self._hdu.section[0:1, 0:1]).dtype
                return np.empty((y1 - y0, x1 - x0), dtype=self._dtype.newbyteorder("="))
            data = np.asarray(self._hdu.section[y0:y1, x0:x1])
        except (OSError, ValueError, TypeError, IndexError, ZeroDivisionError) as error:
            raise ValueError(f"{self.path}: cannot read pixels [{y0}:{y1}, {x0}:{x1}]: {error}") from error
        return data.astype(data.dtype.newbyteorder("="), copy=True)

    def close(self) -> None:
        self._hdu_list.close()


def _offset_dtype(header: astropy.io.fits.Header) -> np.dtype | None:
    """The type astropy reads an integer plane stored with the FITS offset
    convention as (``BSCALE`` 1, ``BZERO`` 2**(bits - 1): unsigned 16-, 32-
    or 64-bit integers; ``BZERO`` -128: signed bytes), else `None`.
    """
    if header.get("BSCALE", 1) != 1 or "BZERO" not in header:
        return None
    bits = int(header.get("ZBITPIX", 0))
    if bits == 8 and header["BZERO"] == -128:
        return np.dtype("i1")
    if bits in (16, 32, 64) and header["BZERO"] == 1 << (bits - 1):
        return np.dtype(f"u{bits // 8}")
    return None


def _is_lossless_tiled(header: astropy.io.fits.Header) -> bool:
    if not header.get("ZIMAGE", False) or header.get("ZNAXIS") != 2:
        return False
    if header.get("ZCMPTYPE", "").strip() not in _LOSSLESS:
        return False
    if header.get("TFIELDS") != 1 or header.get("TTYPE1", "").strip() != "COMPRESSED_DATA":
        return False  # quantized floats carry ZSCALE/ZZERO (and fallback) columns
    if "ZBLANK" in header or "ZQUANTIZ" in header and header["ZQUANTIZ"].strip() != "NO_DITHER":
        return False
    scaled = header.get("BSCALE", 1) != 1 or header.get("BZERO", 0) != 0
    if "BLANK" in header or scaled and _offset_dtype(header) is None:
        return False  # astropy applies BSCALE, BZERO and BLANK, to floats
    if int(header.get("ZBITPIX", 0)) not in _BITPIX_DTYPE:
        return False
    tform = header.get("TFORM1", "").strip().lstrip("0123456789")
    return len(tform) >= 2 and tform[0] in "PQ" and tform[1] in _FORMAT_ITEMSIZE


_BLOCK = 2880
"""FITS block size in bytes."""


def _find_hdu(path: str | os.PathLike[str], hdu: int | str) -> tuple[astropy.io.fits.Header, int]:
    """The raw header of one HDU and the byte offset of its data, found by
    walking the headers (astropy's ``fileinfo`` re-verifies every header
    read so far, which costs more than the walk).

    Parameters
    ----------
    path : `str` or `os.PathLike`
        FITS file.
    hdu : `int` or `str`
        HDU index, or ``EXTNAME`` (case-insensitive, first match).

    Returns
    -------
    header : `astropy.io.fits.Header`
        The header as stored (a tiled image's binary-table header).
    data_offset : `int`
        Offset of the HDU's data in the file.

    Raises
    ------
    KeyError
        No such HDU.
    ValueError
        The file is not a plain FITS file (compressed as a whole, or not
        FITS at all).

    """
    wanted = hdu.strip().upper() if isinstance(hdu, str) else hdu
    with open(path, "rb") as stream:
        if stream.read(2) == b"\x1f\x8b":
            raise ValueError(f"{os.fspath(path)} is gzipped as a whole")
        stream.seek(0)
        index = 0
        while True:
            try:
                header = astropy.io.fits.Header.fromfile(stream)
            except EOFError:
                raise KeyError(f"{os.fspath(path)} has no HDU {hdu!r}") from None
            data_offset = stream.tell()
            unnamed = "PRIMARY" if index == 0 else "COMPRESSED_IMAGE" if header.get("ZIMAGE") else ""
            name = str(header.get("EXTNAME", unnamed)).strip().upper()
            if wanted == index or wanted == name:
                return header, data_offset
            naxis = int(header.get("NAXIS", 0))
            elements = math.prod(int(header[f"NAXIS{i}"]) for i in range(1, naxis + 1)) if naxis else 0
            size = abs(int(header["BITPIX"])) // 8 * int(header.get("GCOUNT", 1))
            size *= int(header.get("PCOUNT", 0)) + elements
            stream.seek(data_offset + -(-size // _BLOCK) * _BLOCK)
            index += 1


def open_plane(
    path: str | os.PathLike[str], hdu: int | str, *, cache_bytes: int = DEFAULT_CACHE_BYTES
) -> PlaneFile:
    """Open one image HDU of a FITS file for box reads.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        FITS file on a local filesystem.
    hdu : `int` or `str`
        HDU index or ``EXTNAME``.
    cache_bytes : `int`, optional
        Bytes of decoded tiles kept for later reads (tiled HDUs only).

    Returns
    -------
    plane : `PlaneFile`
        A `TiledPlane` for lossless tile-compressed HDUs, else a reader
        through astropy's ``section``.

    Raises
    ------
    KeyError
        No such HDU.
    OSError
        The file cannot be read as FITS (the message names it).
    ValueError
        The HDU is not a 2-d image, or its tile table does not describe
        its image (the message names the file).

    """
    try:
        header, data_offset = _find_hdu(path, hdu)
    except ValueError:
        pass  # e.g. a gzipped file: astropy reads it (and names what is wrong)
    else:
        if _is_lossless_tiled(header):
            return TiledPlane(path, header, data_offset, cache_bytes=cache_bytes)
    # astropy's own choice of memory mapping: it maps plain data, and reads
    # what it scales (BSCALE, BZERO, BLANK) or what is gzipped as a whole.
    try:
        hdu_list = astropy.io.fits.open(path, lazy_load_hdus=True)
    except OSError as error:
        raise OSError(f"{os.fspath(path)}: not a readable FITS file: {error}") from error
    try:
        return _SectionPlane(hdu_list, hdu_list.index_of(hdu), os.fspath(path))
    except BaseException:
        hdu_list.close()
        raise
