"""PNG encoding of 8-bit palette images: Pillow's bytes, with less work per image.

A cutout is one 8-bit palette image whose size and palette are fixed by the
renderer's configuration, so everything of the file but the image data is
the same for every source.  `PalettePng` writes that constant head once and,
per image, compresses the rows with zlib exactly as Pillow's PNG encoder
does for palette images (no row filter, ``deflateInit2(level, Z_DEFLATED,
15, 9, Z_DEFAULT_STRATEGY)``) and splits the stream into IDAT chunks of
Pillow's size (65,536 bytes, or four bytes per pixel of a row when that is
larger).  With the same zlib the bytes are Pillow's byte for byte; what is
saved is Pillow's per-image set-up, its row-by-row deflate calls and the
chunk assembly (about a tenth of the encoding time of a cutout).

zlib deflates the rows as a raw stream (window bits -15: the same
compressed blocks, without the zlib wrapper); the encoder adds the 2-byte
header zlib would write and the Adler-32 of the rows, computed by libdeflate
(`deflate.adler32`, vectorized: 3 µs for a 752 × 384 cutout where zlib's own
checksum takes 80 µs).  The chunk CRCs come from libdeflate too.  Both
checksums are fixed functions of the bytes, so the file does not change.

Levels 1-9 compress the same whatever pieces the rows are handed to zlib
in; level 0 ("stored" blocks) does not, so at level 0 the encoder hands the
image to Pillow.
"""

from __future__ import annotations

__all__ = ("PalettePng", "png_chunk", "zlib_header")

import io
import struct
import zlib

import deflate
import numpy as np
from PIL import Image

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MIN_IDAT = 65536
"""Pillow's smallest encoder buffer (``ImageFile.MAXBLOCK``): the IDAT chunk size."""
_MEM_LEVEL = 9
"""zlib memory level of Pillow's PNG encoder."""


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and CRC.

    Parameters
    ----------
    kind : `bytes`
        Four-letter chunk type, e.g. ``b"IDAT"``.
    data : `bytes`
        Chunk data.

    Returns
    -------
    chunk : `bytes`
        The chunk as it appears in the file.

    """
    crc = deflate.crc32(data, deflate.crc32(kind))
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def zlib_header(level: int) -> bytes:
    """The two bytes zlib writes before a deflate stream of a 32 KiB window.

    Parameters
    ----------
    level : `int`
        Compression level (0-9), recorded in the header as zlib records it.

    Returns
    -------
    header : `bytes`
        ``CMF FLG``, e.g. ``78 01`` at level 1 and ``78 9c`` at level 6.

    """
    flags = 0 if level < 2 else 1 if level < 6 else 2 if level == 6 else 3
    header = 0x7800 | flags << 6
    # As zlib's deflate.c: 31 is added even to a multiple of 31.
    header += 31 - header % 31
    return header.to_bytes(2, "big")


class PalettePng:
    """Encoder of 8-bit palette PNGs of one size and palette.

    Parameters
    ----------
    width, height : `int`
        Image size in pixels.
    palette : `bytes`
        The 256 colours, ``R G B`` bytes each (768 bytes).
    compress_level : `int`
        zlib level, 0-9.

    Raises
    ------
    ValueError
        For a palette that is not 256 RGB colours, a level outside 0-9 or
        an empty image.

    """

    def __init__(self, width: int, height: int, palette: bytes, compress_level: int) -> None:
        if len(palette) != 768:
            raise ValueError(f"palette must hold 256 RGB colours (768 bytes), got {len(palette)} bytes.")
        if not 0 <= compress_level <= 9:
            raise ValueError(f"compress_level must be in 0-9, got {compress_level!r}.")
        if width < 1 or height < 1:
            raise ValueError(f"image size must be positive, got {width}x{height}.")
        self.width = int(width)
        self.height = int(height)
        self.compress_level = int(compress_level)
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 3, 0, 0, 0)
        self._head = _SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"PLTE", bytes(palette))
        self._palette = bytes(palette)
        self._tail = png_chunk(b"IEND", b"")
        self._chunk_size = max(_MIN_IDAT, 4 * self.width)
        self._zlib_header = zlib_header(self.compress_level)

    def encode(self, indices: np.ndarray) -> bytes:
        """The PNG of an image.

        Parameters
        ----------
        indices : `numpy.ndarray`
            ``(height, width)`` uint8 palette indices.

        Returns
        -------
        png : `bytes`
            The file, byte for byte what Pillow writes for this palette
            image at this level (with the same zlib).

        Raises
        ------
        ValueError
            If ``indices`` does not have the encoder's size.

        """
        if np.shape(indices) != (self.height, self.width):
            raise ValueError(f"Expected a {self.height}x{self.width} image, got shape {np.shape(indices)}.")
        if self.compress_level == 0:
            return self._pillow(indices)
        rows = self.new_rows()
        rows[:, 1:] = indices
        return self.encode_rows(rows)

    def new_rows(self) -> np.ndarray:
        """A buffer of PNG rows to draw an image into.

        Returns
        -------
        rows : `numpy.ndarray`
            ``(height, width + 1)`` uint8 zeros: each row starts with its
            filter type, 0 (none), as Pillow writes palette images; the
            image is ``rows[:, 1:]``.

        """
        return np.zeros((self.height, self.width + 1), np.uint8)

    def encode_rows(self, rows: np.ndarray) -> bytes:
        """The PNG of an image drawn in a `new_rows` buffer, without copying
        it.

        Parameters
        ----------
        rows : `numpy.ndarray`
            ``(height, width + 1)`` C-contiguous uint8 array whose first
            column is 0 and the rest the palette indices.

        Returns
        -------
        png : `bytes`
            As `encode` of ``rows[:, 1:]``.

        Raises
        ------
        ValueError
            If ``rows`` does not have the buffer's shape and layout.

        """
        shape = (self.height, self.width + 1)
        if rows.shape != shape or rows.dtype != np.uint8 or not rows.flags.c_contiguous:
            raise ValueError(
                f"Expected C-contiguous uint8 rows of shape {shape}, got {rows.dtype} {rows.shape}."
            )
        if self.compress_level == 0:
            return self._pillow(rows[:, 1:])
        compressor = zlib.compressobj(self.compress_level, zlib.DEFLATED, -15, _MEM_LEVEL)
        stream = b"".join(
            (
                self._zlib_header,
                compressor.compress(rows),
                compressor.flush(),
                struct.pack(">I", deflate.adler32(rows)),
            )
        )
        size = self._chunk_size
        if len(stream) <= size:
            return b"".join((self._head, png_chunk(b"IDAT", stream), self._tail))
        parts = [self._head]
        parts.extend(png_chunk(b"IDAT", stream[i : i + size]) for i in range(0, len(stream), size))
        parts.append(self._tail)
        return b"".join(parts)

    def _pillow(self, indices: np.ndarray) -> bytes:
        """The PNG written by Pillow."""
        image = Image.frombuffer(
            "P", (self.width, self.height), np.ascontiguousarray(indices, dtype=np.uint8), "raw", "P", 0, 1
        )
        image.putpalette(self._palette)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=self.compress_level)
        return buffer.getvalue()
