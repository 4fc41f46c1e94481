"""Writing output files so that no partial file is ever left behind, and
removing the temporaries of interrupted runs.
"""

from __future__ import annotations

__all__ = ("atomic_write_bytes", "atomic_write_numpy", "remove_stale_temporaries")

import functools
import io
import os
import tempfile
from pathlib import Path

import numpy as np

_TEMP_SUFFIX = ".partial"


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
