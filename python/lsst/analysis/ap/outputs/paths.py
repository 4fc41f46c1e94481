"""Where the files of each DiaSource go in the output directory."""

from __future__ import annotations

__all__ = ("OutputLayout",)

import dataclasses
from pathlib import Path
from typing import Any


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
        if self.chunk_size is None:
            return ""
        return str((int(dia_source_id) // self.chunk_size) * self.chunk_size)

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
