"""Where the files of each DiaSource go in the output directory."""

from __future__ import annotations

__all__ = ("CutoutPath", "OutputLayout", "chunk_directory", "is_power_of_ten")

import dataclasses
import math
import os
from pathlib import Path
from typing import Any


def is_power_of_ten(value: int) -> bool:
    """Whether ``value`` is 1, 10, 100, … (the allowed chunk sizes).

    Parameters
    ----------
    value : `int`
        Candidate chunk size.

    Returns
    -------
    result : `bool`
        True for a positive power of ten.

    """
    return value >= 1 and 10 ** round(math.log10(value)) == value


def chunk_directory(dia_source_id: int, chunk_size: int | None) -> str:
    """Name of the chunk directory of a source.

    Parameters
    ----------
    dia_source_id : `int`
        The source.
    chunk_size : `int` or `None`
        At most this many files per directory; `None` for no chunking.

    Returns
    -------
    name : `str`
        ``(dia_source_id // chunk_size) * chunk_size``, or ``''`` when
        ``chunk_size`` is `None`.

    """
    if chunk_size is None:
        return ""
    return str((int(dia_source_id) // chunk_size) * chunk_size)


@dataclasses.dataclass(frozen=True)
class OutputLayout:
    """Paths of the files written for each DiaSource.

    Parameters
    ----------
    root : `str` or `pathlib.Path`
        Output directory (a local path, or a URI: `path` needs a local one).
    chunk_size : `int` or `None`, optional
        Files are grouped in sub-directories named for
        ``(diaSourceId // chunk_size) * chunk_size``; `None` writes all of
        them to one directory.

    """

    root: Any
    chunk_size: int | None = 10000

    def chunk(self, dia_source_id: int) -> str:
        """Name of the chunk directory of a source.

        Parameters
        ----------
        dia_source_id : `int`
            The source.

        Returns
        -------
        chunk : `str`
            ``(dia_source_id // chunk_size) * chunk_size``, or ``""`` when not
            chunked.

        """
        return chunk_directory(dia_source_id, self.chunk_size)

    def image_relpath(self, dia_source_id: int) -> str:
        """Path of the PNG of a source.

        Parameters
        ----------
        dia_source_id : `int`
            The source.

        Returns
        -------
        relpath : `str`
            Path relative to `root`, with '/' separators.

        """
        parts = ["images", self.chunk(dia_source_id), f"{int(dia_source_id)}.png"]
        return "/".join(part for part in parts if part)

    def numpy_relpath(self, dia_source_id: int, role: str, size: int) -> str:
        """Path of one saved stamp array.

        Parameters
        ----------
        dia_source_id : `int`
            The source.
        role : `str`
            Image tag (`lsst.analysis.ap.datasets.ImageRole.tag`: ``temp``,
            ``sci`` or ``diff``).
        size : `int`
            Stamp size.

        Returns
        -------
        relpath : `str`
            Path relative to `root`, with '/' separators.

        """
        parts = ["numpy", self.chunk(dia_source_id), f"{int(dia_source_id)}_{role}_{size}.npy"]
        return "/".join(part for part in parts if part)

    def fits_relpath(self, dia_source_id: int, role: str, size: int) -> str:
        """Path of one FITS stamp (alert cutout layout), relative to `root`.

        ``role`` is ``sci``, ``temp`` or ``diff``.
        """
        parts = ["fits", self.chunk(dia_source_id), f"{int(dia_source_id)}_{role}_{size}.fits"]
        return "/".join(part for part in parts if part)

    def single_stamp_relpath(self, dia_source_id: int, role: str, size: int) -> str:
        """Path of one single-stamp PNG (one panel, undecorated), relative
        to `root`.

        ``role`` is ``sci``, ``temp`` or ``diff``.
        """
        parts = ["stamps", self.chunk(dia_source_id), f"{int(dia_source_id)}_{role}_{size}.png"]
        return "/".join(part for part in parts if part)

    def path(self, relpath: str) -> Path:
        """Absolute path of a relative output path (local directories).

        Parameters
        ----------
        relpath : `str`
            Path relative to `root`.

        Returns
        -------
        path : `pathlib.Path`
            The absolute path.

        """
        return Path(self.root) / relpath


class CutoutPath:
    """Paths of per-source files in id-chunked sub-directories: the
    interface of the original package's class of this name, on the layout
    of `OutputLayout`.

    Parameters
    ----------
    root : `str` or `os.PathLike`
        Root directory (or URL root).
    chunk_size : `int`, optional
        At most this many files per directory, a power of 10; `None` puts
        every file directly in ``subdirectory``.
    subdirectory : `str`, optional
        Sub-directory of ``root`` holding the files (``images`` for the
        PNGs, ``numpy`` for the stamp arrays).

    Raises
    ------
    RuntimeError
        Raised if ``chunk_size`` is not a power of 10.

    """

    def __init__(
        self, root: str | os.PathLike, chunk_size: int | None = None, subdirectory: str = "images"
    ) -> None:
        if chunk_size is not None and not is_power_of_ten(chunk_size):
            raise RuntimeError(f"CutoutPath file chunk_size must be a power of 10, got {chunk_size}.")
        self._root = os.fspath(root)
        self._chunk_size = chunk_size
        self._subdirectory = subdirectory

    def directory(self, id: int) -> str:
        """Directory of the files of a source.

        Parameters
        ----------
        id : `int`
            diaSourceId.

        Returns
        -------
        directory : `str`
            ``root/subdirectory[/chunk]``.

        """
        parts = [self._root, self._subdirectory, chunk_directory(id, self._chunk_size)]
        return os.path.join(*(part for part in parts if part))

    def __call__(self, id: int, filename: str) -> str:
        """Full path of one file of a source.

        Parameters
        ----------
        id : `int`
            diaSourceId.
        filename : `str`
            Name of the file.

        Returns
        -------
        path : `str`
            ``directory(id)/filename``.

        """
        return os.path.join(self.directory(id), filename)

    def exists(self, id: int, filename: str) -> bool:
        """Whether one file of a source exists (local directories).

        Parameters
        ----------
        id : `int`
            diaSourceId.
        filename : `str`
            Name of the file.

        Returns
        -------
        exists : `bool`
            True if the file exists.

        """
        return os.path.exists(self(id, filename))

    def mkdir(self, id: int) -> None:
        """Create the directory of a source and its parents (local
        directories).

        Parameters
        ----------
        id : `int`
            diaSourceId.

        """
        os.makedirs(self.directory(id), exist_ok=True)
