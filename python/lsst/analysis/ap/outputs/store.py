"""The output directory of a run, anywhere lsst-resources reaches (a local
path, ``file://``, ``s3://``, ``https://`` WebDAV, ...), and reading and
writing its files.

On a POSIX file system a file is written to a temporary name in its final
directory and renamed into place (`lsst.analysis.ap.outputs.atomic`); an
object store (S3, ...) shows an object only once its upload is complete, so
one ``PUT`` is already atomic.
"""

from __future__ import annotations

__all__ = ("OutputError", "OutputLocationError", "OutputStore", "resolve_output_location")

import contextlib
import errno
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from lsst.resources import ResourcePath, ResourcePathExpression

from .atomic import (
    STALE_TEMPORARY_SECONDS,
    TEMP_SUFFIX,
    atomic_write_bytes,
    atomic_writer,
    temporary_is_stale,
    writer_tag,
)

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_NO_LOCKS = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EBADF})
"""``flock`` errors of a file system that has no locks (or, as NFS, none
through a read-only descriptor): the block then runs unlocked."""

_LOG = logging.getLogger(__name__)


class OutputError(RuntimeError):
    """A file of the output directory cannot be written or read; the
    message names the file and the cause.
    """


class OutputLocationError(ValueError):
    """An output location that names no store lsst-resources reaches (a URI
    of an unknown scheme); the message names the location and the scheme.
    """


def resolve_output_location(location: ResourcePathExpression) -> ResourcePath:
    """The absolute directory URI of an output location.

    A relative local path is resolved against the current directory, once:
    the returned URI names the same directory from any other working
    directory (a BPS job's, a worker's).  ``~`` is expanded.  A local path
    is taken as it is written: ``#``, ``?`` and ``%`` followed by two hex
    digits are characters of its names, not URI syntax.  URIs with a scheme
    (``file://``, ``s3://``, ...) are kept as given.

    Parameters
    ----------
    location : `lsst.resources.ResourcePathExpression`
        Local path or URI of the output directory.

    Returns
    -------
    location : `lsst.resources.ResourcePath`
        Directory URI.

    Raises
    ------
    OutputLocationError
        Raised for a URI of a scheme lsst-resources does not know.

    """
    if isinstance(location, ResourcePath):
        return location if location.isdir() else ResourcePath(location, forceDirectory=True)
    text = os.fspath(location) if isinstance(location, os.PathLike) else str(location)
    if isinstance(location, os.PathLike) or "://" not in text:
        # A file URI of the path, so that no character of it is parsed.
        local = Path(os.path.abspath(os.path.expanduser(text)))
        return ResourcePath(local.as_uri(), forceDirectory=True)
    try:
        return ResourcePath(text, forceDirectory=True, forceAbsolute=True)
    except NotImplementedError:
        scheme = text.partition("://")[0]
        raise OutputLocationError(
            f"unknown URI scheme {scheme!r} in {text!r}: give a local path or a URI lsst-resources "
            "reaches (file://, s3://, gs://, https://, ...)"
        ) from None


class OutputStore:
    """Files of one output directory, addressed by paths relative to it.

    Parameters
    ----------
    location : `lsst.resources.ResourcePathExpression`
        Local path or URI of the directory (see `resolve_output_location`).

    """

    def __init__(self, location: ResourcePathExpression) -> None:
        self.root = resolve_output_location(location)
        self.is_local = self.root.isLocal and self.root.scheme == "file"
        self._local_root = self.root.ospath if self.is_local else None

    def __repr__(self) -> str:
        return f"OutputStore({self.location!r})"

    @property
    def location(self) -> str:
        """The directory as recorded in records and logs: an absolute
        local path (no trailing slash), or the URI.
        """
        if self.is_local:
            return self.root.ospath.rstrip("/") or "/"
        return str(self.root)

    def uri(self, relpath: str) -> ResourcePath:
        """URI of a file of the directory."""
        return self.root.join(relpath)

    def local_path(self, relpath: str = "") -> Path:
        """Local path of a file of a local directory."""
        if not self.is_local:
            raise ValueError(f"{self.location} is not a local directory")
        return Path(self.root.ospath) / relpath

    def display(self, relpath: str) -> Path | ResourcePath:
        """Where a file is, for users: a `~pathlib.Path` when local."""
        return self.local_path(relpath) if self.is_local else self.uri(relpath)

    def _error(self, action: str, relpath: str, error: BaseException) -> OutputError:
        cause = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            cause = "no space left on the device"
        return OutputError(f"cannot {action} {self.display(relpath)}: {cause}")

    def write(self, relpath: str, data: bytes) -> None:
        """Write a whole file, atomically.

        Raises
        ------
        OutputError
            Raised when the file cannot be written (permissions, full disk,
            store unreachable); no partial file is left.

        """
        try:
            if self.is_local:
                atomic_write_bytes(os.path.join(self._local_root, relpath), data)
            else:
                self.uri(relpath).write(data, overwrite=True)
        except OutputError:
            raise
        except Exception as error:
            raise self._error("write", relpath, error) from error

    @contextlib.contextmanager
    def locked(self, relpath: str) -> Iterator[None]:
        """Hold an exclusive lock on the file ``relpath`` of a local
        directory for the block; it is created, empty, when missing.

        Runs that read a table of the directory, merge their rows into it
        and write it back hold the lock meanwhile, so that no run loses
        another's rows.  It is an advisory ``flock`` lock, which the system
        releases when the process ends, even killed; a lock file another
        user created is locked through a read-only descriptor.  A remote
        store runs the block unlocked, and so, with a warning, does a file
        system without ``flock`` (or a platform without ``fcntl``).  The
        lock is not re-entrant: a block must not take it again.

        Raises
        ------
        OutputError
            Raised when the lock file cannot be created or opened.

        """
        if not self.is_local:
            yield
            return
        if fcntl is None:
            _LOG.warning("%s is not locked (no fcntl here): runs into it at once may lose rows", relpath)
            yield
            return
        path = os.path.join(self._local_root, relpath)
        # Not followed: a link would lock (or create) a file elsewhere.
        flags = getattr(os, "O_NOFOLLOW", 0)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                descriptor = os.open(path, os.O_RDWR | os.O_CREAT | flags, 0o666)
            except PermissionError as refused:
                try:  # another user's lock file
                    descriptor = os.open(path, os.O_RDONLY | flags)
                except OSError:
                    raise refused from None
        except OSError as error:
            raise self._error("open the lock file", relpath, error) from error
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX)
            except OSError as error:
                if error.errno not in _NO_LOCKS:
                    raise self._error("lock", relpath, error) from error
                _LOG.warning(
                    "%s is not locked (%s): runs into it at once may lose rows",
                    self.display(relpath),
                    error.strerror or error,
                )
            yield
        finally:
            os.close(descriptor)  # releases the lock

    @contextlib.contextmanager
    def open_write(self, relpath: str) -> Iterator[BinaryIO]:
        """Write a whole file piece by piece, atomically: the file appears,
        complete, when the block ends without an error, and not at all
        otherwise.

        A local file is written to a temporary in its directory and renamed;
        for an object store the pieces go to a local temporary file that is
        uploaded in one transfer at the end.

        Yields
        ------
        stream : `typing.BinaryIO`
            Binary stream to write the file's bytes to.

        Raises
        ------
        OutputError
            Raised when the file cannot be written; no partial file is left.

        """
        if self.is_local:
            try:
                with atomic_writer(self.local_path(relpath)) as stream:
                    yield stream
            except OSError as error:
                raise self._error("write", relpath, error) from error
            return
        with tempfile.TemporaryDirectory(prefix="cutout-upload-") as scratch:
            local = Path(scratch) / Path(relpath).name
            try:
                with open(local, "wb") as stream:
                    yield stream
            except OSError as error:
                raise self._error("write", relpath, error) from error
            try:
                self.uri(relpath).transfer_from(
                    ResourcePath(local, forceAbsolute=True), transfer="copy", overwrite=True
                )
            except Exception as error:
                raise self._error("write", relpath, error) from error

    @contextlib.contextmanager
    def open_read(self, relpath: str) -> Iterator[BinaryIO]:
        """A file open for reading in pieces (a local copy of a remote one).

        Raises
        ------
        FileNotFoundError
            Raised when there is no such file.
        OutputError
            Raised when it cannot be read.

        """
        if self.is_local:
            try:
                stream = open(self.local_path(relpath), "rb")
            except FileNotFoundError:
                raise
            except OSError as error:
                raise self._error("read", relpath, error) from error
            with stream:
                yield stream
            return
        local = self.uri(relpath).as_local()
        try:
            copy = local.__enter__()
        except FileNotFoundError:
            raise
        except Exception as error:
            raise self._error("read", relpath, error) from error
        try:
            with open(copy.ospath, "rb") as stream:
                yield stream
        finally:
            local.__exit__(None, None, None)

    def read(self, relpath: str, size: int = -1) -> bytes:
        """Content of a file (its first ``size`` bytes when positive)."""
        try:
            if self.is_local:
                with open(self.local_path(relpath), "rb") as stream:
                    return stream.read(size)
            return self.uri(relpath).read(size=size)
        except FileNotFoundError:
            raise
        except Exception as error:
            raise self._error("read", relpath, error) from error

    def size(self, relpath: str) -> int | None:
        """Size in bytes of a file, `None` when there is none (a directory
        or other non-file at a local path also counts as none).
        """
        if self.is_local:
            try:
                status = self.local_path(relpath).stat()
            except (FileNotFoundError, NotADirectoryError):
                return None
            return status.st_size if os.path.isfile(self.local_path(relpath)) else None
        try:
            return self.uri(relpath).size()
        except FileNotFoundError:
            return None

    def is_png(self, relpath: str) -> bool:
        """Whether a file starts with the PNG signature."""
        try:
            return self.read(relpath, len(PNG_SIGNATURE)) == PNG_SIGNATURE
        except (FileNotFoundError, OutputError):
            return False

    def remove(self, relpath: str) -> None:
        """Delete a file if present."""
        try:
            if self.is_local:
                self.local_path(relpath).unlink(missing_ok=True)
            else:
                uri = self.uri(relpath)
                if uri.exists():
                    uri.remove()
        except Exception as error:
            raise self._error("remove", relpath, error) from error

    def list_files(self, prefix: str) -> list[str]:
        """Relative paths of the files under directory ``prefix``, sorted
        (temporaries excluded).
        """
        base = self.root.join(prefix.rstrip("/") + "/", forceDirectory=True)
        if self.is_local:
            top = Path(base.ospath)
            if not top.is_dir():
                return []
            found = [
                p.relative_to(self.local_path()).as_posix()
                for p in top.rglob("*")
                if p.is_file() and not p.name.endswith(TEMP_SUFFIX)
            ]
            return sorted(found)
        found = []
        try:
            for directory, _, files in base.walk():
                for name in files:
                    found.append(directory.join(name).relative_to(self.root))
        except FileNotFoundError:
            return []
        return sorted(p for p in found if p is not None)

    def check_writable(self) -> None:
        """Create the directory if needed and write and delete a probe file.

        Raises
        ------
        OutputError
            Raised, before any work, when the directory cannot be written.

        """
        probe = f".write-probe.{writer_tag()}.{secrets.token_hex(4)}"
        try:
            if self.is_local:
                self.local_path().mkdir(parents=True, exist_ok=True)
            self.write(probe, b"")
            self.remove(probe)
        except OutputError as error:
            raise OutputError(f"output directory {self.location} is not writable: {error}") from None
        except OSError as error:
            raise OutputError(
                f"output directory {self.location} is not writable: {error.strerror or error}"
            ) from None

    def sweep_temporaries(
        self,
        subdirs: tuple[str, ...],
        stale_after: float = STALE_TEMPORARY_SECONDS,
        *,
        recursive: bool = True,
    ) -> int:
        """Delete the temporary files left by interrupted local writers
        under ``subdirs`` (``""`` is the directory itself), and with
        ``recursive`` under their sub-directories; return how many.

        A temporary is removed when it is older than ``stale_after``
        seconds, or when its writer ran on this host in this PID namespace
        and has ended; files being written by live writers elsewhere are
        kept.  Object stores have no temporaries.
        """
        if not self.is_local:
            return 0
        count = 0
        now = time.time()
        for sub in subdirs:
            base = self.local_path(sub)
            if base.is_dir():
                found = base.rglob(f".*{TEMP_SUFFIX}") if recursive else base.glob(f".*{TEMP_SUFFIX}")
                for temp in found:
                    if temporary_is_stale(temp, now, stale_after):
                        temp.unlink(missing_ok=True)
                        count += 1
        return count
