"""Writing local files so that no partial file is ever left behind, and
removing the temporaries of interrupted writers.

A file is written to a temporary name in its final directory and renamed
into place.  Temporary names carry the writer's host, PID namespace, PID
and a random token (``.<name>.<host>.<pidns>.<pid>.<random>.partial``), so
that the sweep of temporaries left by killed runs never removes a file that
a writer on another host, or in another container, is still writing.
"""

from __future__ import annotations

__all__ = (
    "STALE_TEMPORARY_SECONDS",
    "TEMP_SUFFIX",
    "atomic_write_bytes",
    "atomic_writer",
    "numpy_bytes",
    "temporary_is_stale",
    "writer_tag",
)

import contextlib
import functools
import io
import os
import random
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

TEMP_SUFFIX = ".partial"
"""Suffix of the temporary files of local writes."""

STALE_TEMPORARY_SECONDS = 3600.0
"""Age after which a temporary file is stale whoever wrote it: one file write
never takes that long, so its writer is gone."""


@functools.cache
def _host() -> str:
    return socket.gethostname().replace(".", "-").replace("/", "-") or "host"


@functools.cache
def _pid_namespace() -> str:
    """Identifier of this process's PID namespace ("0" where unknown)."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "0"


def writer_tag() -> str:
    """``host.pidns.pid`` of this process, as used in temporary names."""
    return f"{_host()}.{_pid_namespace()}.{os.getpid()}"


@functools.cache
def _file_mode() -> int:
    """Permissions of a newly created file under the process umask (the
    temporary files of `tempfile.mkstemp` are always 0600).
    """
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _create_temporary(path: str) -> tuple[int, str]:
    """Create a new temporary file next to ``path``, creating its directory
    only when it is missing; return its descriptor and name.

    The name carries `writer_tag` and a random token; a name already taken
    (a temporary of an earlier process with the same PID) is skipped.  The
    file gets the permissions of any new file under the umask.
    """
    directory, name = os.path.split(path)
    prefix = os.path.join(directory, f".{name}.{writer_tag()}.")
    for attempt in range(100):
        temp_name = f"{prefix}{random.getrandbits(40):010x}{TEMP_SUFFIX}"
        try:
            return os.open(temp_name, _CREATE_FLAGS, 0o666), temp_name
        except FileExistsError:
            continue
        except FileNotFoundError:
            if attempt or not directory:
                raise
            os.makedirs(directory, exist_ok=True)
            try:
                return os.open(temp_name, _CREATE_FLAGS, 0o666), temp_name
            except FileExistsError:
                continue
    raise FileExistsError(f"no free temporary name for {path}")


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same
    directory and a rename; on any error the temporary is removed.

    This is `atomic_writer` for a whole file, with no file object: one
    ``open``, the ``write`` calls, ``close`` and ``rename``, and a ``mkdir``
    only when the directory is missing.
    """
    fd, temp_name = _create_temporary(os.fspath(path))
    with _renamed_into_place(temp_name, path):
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)


@contextlib.contextmanager
def _renamed_into_place(temp_name: str, path: Path | str) -> Iterator[None]:
    """Rename the temporary ``temp_name`` to ``path`` when the block ends
    without an error; on any error remove it and leave ``path`` untouched.
    """
    try:
        yield
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """Write ``path`` piece by piece: the stream writes a temporary file in
    the same directory, renamed into place when the block ends without an
    error; on any error the temporary is removed and ``path`` is untouched.

    Parameters
    ----------
    path : `pathlib.Path`
        The file to write.

    Yields
    ------
    stream : `typing.BinaryIO`
        Binary stream of the temporary file.

    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{writer_tag()}.", suffix=TEMP_SUFFIX
    )
    with _renamed_into_place(temp_name, path), os.fdopen(fd, "wb") as stream:
        os.fchmod(stream.fileno(), _file_mode())
        yield stream


def temporary_is_stale(temp: Path, now: float, stale_after: float) -> bool:
    """Whether a temporary file was left by a writer that is gone.

    It is when it is older than ``stale_after`` seconds, or when its writer
    ran on this host, in this PID namespace, and that process has ended.
    A writer on another host or in another PID namespace is never judged by
    its PID (the number means nothing here).
    """
    try:
        age = now - temp.stat().st_mtime
    except FileNotFoundError:
        return False
    if age > stale_after:
        return True
    fields = temp.name.split(".")
    # .<name>.<host>.<pidns>.<pid>.<random>.partial
    if len(fields) < 6:
        return False
    host, namespace, pid = fields[-5], fields[-4], fields[-3]
    if host != _host() or namespace != _pid_namespace():
        return False
    try:
        pid_number = int(pid)
    except ValueError:
        return False
    if pid_number == os.getpid():
        return False
    try:
        os.kill(pid_number, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def numpy_bytes(array: np.ndarray) -> bytes:
    """``array`` in ``.npy`` format."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
