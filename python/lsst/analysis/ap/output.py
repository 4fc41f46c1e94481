"""Where cutout files go, and writing them so that no partial file is ever
left behind.
"""

from __future__ import annotations

__all__ = ("OutputLayout", "atomic_write_bytes", "atomic_write_numpy", "remove_stale_temporaries")

import dataclasses
import functools
import io
import os
import tempfile
from pathlib import Path

import numpy as np

_TEMP_SUFFIX = ".partial"


@dataclasses.dataclass(frozen=True)
class OutputLayout:
    """Paths of the files written for each DiaSource.

    Parameters
    ----------
    root
        Output directory.
    chunk_size
        Files are grouped in sub-directories named for
        ``(diaSourceId // chunk_size) * chunk_size``; `None` writes all of
        them to one directory.

    """

    root: Path
    chunk_size: int | None = 10000

    def chunk(self, dia_source_id: int) -> str:
        """Name of the chunk directory of a source ('' when not chunked)."""
        if self.chunk_size is None:
            return ""
        return str((int(dia_source_id) // self.chunk_size) * self.chunk_size)

    def image_relpath(self, dia_source_id: int) -> str:
        """Path of the PNG, relative to `root`, with '/' separators."""
        parts = ["images", self.chunk(dia_source_id), f"{int(dia_source_id)}.png"]
        return "/".join(part for part in parts if part)

    def numpy_relpath(self, dia_source_id: int, role: str, size: int) -> str:
        """Path of one saved stamp array, relative to `root`.

        ``role`` is ``sci``, ``temp`` or ``diff``.
        """
        parts = ["numpy", self.chunk(dia_source_id), f"{int(dia_source_id)}_{role}_{size}.npy"]
        return "/".join(part for part in parts if part)

    def path(self, relpath: str) -> Path:
        """Absolute path of a relative output path."""
        return self.root / relpath


@functools.cache
def _file_mode() -> int:
    """Permissions of a newly created file under the process umask (the
    temporary files of `tempfile.mkstemp` are always 0600).
    """
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same
    directory and an atomic rename, so readers (and re-runs after a crash)
    see either the whole file or none.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=_TEMP_SUFFIX
    )
    try:
        with os.fdopen(fd, "wb") as stream:
            os.fchmod(stream.fileno(), _file_mode())
            stream.write(data)
        os.replace(temp_name, path)
    except BaseException:
        try:
            os.unlink(temp_name)
        except FileNotFoundError:
            pass
        raise


def atomic_write_numpy(path: Path, array: np.ndarray) -> None:
    """Save ``array`` in ``.npy`` format atomically."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())


def _writer_alive(temp: Path) -> bool:
    """Whether the process that created temporary file ``temp`` (its pid is
    the second-to-last dot-separated field before the random part) still runs.
    """
    fields = temp.name.split(".")
    try:
        pid = int(fields[-3])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(root: Path) -> int:
    """Delete temporary files left by interrupted runs (those whose writing
    process is gone, so a concurrent run's files in progress are kept);
    return how many.
    """
    count = 0
    for sub in ("images", "numpy"):
        base = root / sub
        if base.exists():
            for stale in base.rglob(f".*{_TEMP_SUFFIX}"):
                if not _writer_alive(stale):
                    stale.unlink(missing_ok=True)
                    count += 1
    return count
