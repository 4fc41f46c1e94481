"""Log set-up: the command's ``--log-level`` / ``--log-file``, and worker
processes whose records reach the parent's handlers.

Worker processes (started with ``spawn``) have no logging set-up of their own:
`WorkerLogs` gives each one a `logging.handlers.QueueHandler` and the parent's
logger levels, and a thread in the parent hands every record to the parent's
logger of the same name.  A line from a worker is therefore written
by the same handlers, in the same format, to the same files (``--log-file``,
pytest's capture, ``pipetask``'s log) as one from the parent; the
``processName`` field tells which process wrote it.
"""

from __future__ import annotations

__all__ = (
    "LOG_FORMAT",
    "PACKAGE_LOGGER",
    "TASK_LOGGERS",
    "WorkerLogs",
    "configure_logging",
    "parse_log_levels",
    "start_worker_logging",
)

import logging
import logging.handlers
import queue
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

LOG_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"
"""Format of every log line of the command, in the main and worker processes."""

_DEFAULT_LOGGERS = ("", "lsst")
"""Loggers that a bare ``--log-level LEVEL`` sets (root and ``lsst``)."""


PACKAGE_LOGGER = "lsst.analysis.ap"
"""The logger of this package's modules."""

TASK_LOGGERS = (
    "lsst.plotImageSubtractionCutouts",
    "lsst.gatherCutoutManifest",
    "lsst.plotDiaObjectSequences",
)
"""Loggers of this package's tasks (``lsst.`` and the task's ``_DefaultName``,
as `lsst.pipe.base.Task` names them), outside `PACKAGE_LOGGER`: a level
given to the package's logger (or to ``lsst.analysis``) is given to them
too."""

_STACK_LEVELS = ("VERBOSE", "TRACE")
"""Level names that ``lsst.utils.logging`` adds to `logging`'s."""


def parse_log_levels(values: Sequence[str]) -> dict[str, int]:
    """Logger levels from ``--log-level`` values.

    Each value is ``LEVEL`` (the root and ``lsst`` loggers) or
    ``COMPONENT=LEVEL`` (one logger and its children, e.g.
    ``lsst.analysis.ap=DEBUG``; ``.`` names the root logger), as for
    ``butler`` and ``pipetask``.  The level of `PACKAGE_LOGGER` (or of
    ``lsst.analysis``) is also that of the package's `TASK_LOGGERS`,
    unless they are given one of their own.

    Raises
    ------
    ValueError
        Raised for an unknown level name; the message lists the known ones.

    """
    levels: dict[str, int] = {}
    implied: dict[str, int] = {}
    for value in values:
        component, sep, name = value.rpartition("=")
        key = name.strip().upper()
        if key in _STACK_LEVELS:
            # The stack's own levels, registered when lsst.utils.logging is
            # imported (which this command does not need until it runs).
            import lsst.utils.logging  # noqa: F401
        level = logging.getLevelNamesMapping().get(key)
        if level is None:
            known = ", ".join(n for n in logging.getLevelNamesMapping() if n not in ("WARN", "FATAL"))
            raise ValueError(f"--log-level {value!r}: unknown level {name!r} (known: {known}).")
        names = [component.strip().strip(".")] if sep else list(_DEFAULT_LOGGERS)
        for logger_name in names:
            levels[logger_name] = level
            if sep and logger_name and f"{PACKAGE_LOGGER}.".startswith(f"{logger_name}."):
                implied.update(dict.fromkeys(TASK_LOGGERS, level))
    return {**implied, **levels}


def configure_logging(levels: Sequence[str] = (), log_files: Sequence[str | Path] = ()) -> None:
    """Set up logging for the command: standard error and any log files, in
    `LOG_FORMAT`; INFO unless ``levels`` say otherwise.

    Parameters
    ----------
    levels
        ``--log-level`` values (see `parse_log_levels`).
    log_files
        Files to append the log to, in addition to standard error.

    Raises
    ------
    ValueError
        Raised for an unknown level.
    OSError
        Raised when a log file cannot be opened; the message names it.

    """
    parsed = {name: logging.INFO for name in _DEFAULT_LOGGERS}
    parsed.update(parse_log_levels(levels))
    formatter = logging.Formatter(LOG_FORMAT)
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    for path in log_files:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, encoding="utf-8"))
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    # The stack may have given ``lsst`` handlers of its own; one set only.
    lsst = logging.getLogger("lsst")
    lsst.handlers.clear()
    lsst.propagate = True
    for name, level in parsed.items():
        logging.getLogger(name or None).setLevel(level)
    logging.captureWarnings(True)


def _explicit_levels() -> dict[str, int]:
    """Levels set on named loggers (and the root) of this process."""
    levels = {"": logging.getLogger().level}
    for name, logger in logging.Logger.manager.loggerDict.items():
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            levels[name] = logger.level
    return levels


def start_worker_logging(log_queue: Any, levels: Mapping[str, int]) -> None:
    """Worker-process initializer part: send every record to the parent.

    Parameters
    ----------
    log_queue
        The queue of the parent's `WorkerLogs`.
    levels
        Logger levels of the parent.

    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(logging.handlers.QueueHandler(log_queue))
    lsst = logging.getLogger("lsst")
    lsst.handlers.clear()
    lsst.propagate = True
    for name, level in levels.items():
        logging.getLogger(name or None).setLevel(level)


class _ToParentLoggers(logging.Handler):
    """Hands a worker's record to the parent's logger of the same name."""

    def emit(self, record: logging.LogRecord) -> None:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)


class WorkerLogs:
    """Records of worker processes written by this process's handlers.

    Use as a context manager around a process pool; pass `initargs` to
    `start_worker_logging` in each worker's initializer.  A thread of this
    process hands each record to the logger of its name until the block
    has ended and no record is left.  A worker stopped while it sent a
    record (Ctrl-C, the out-of-memory killer) leaves it cut short: the end
    of the block then stops waiting once no record has come for
    `STOP_WAIT` seconds, rather than wait for ever.

    Parameters
    ----------
    context
        The `multiprocessing` context the workers are started with.

    """

    POLL = 0.1
    """Seconds between checks, while no record comes, that the block has
    ended (when its end marker cannot reach the queue)."""

    STOP_WAIT = 5.0
    """Seconds without a record after which the end of the block stops
    waiting for the last records."""

    def __init__(self, context: Any) -> None:
        self.queue = context.Queue()
        self.levels = _explicit_levels()
        self._ended = threading.Event()
        self._forwarded = 0
        self._marker_read = False
        self._thread = threading.Thread(target=self._forward, name="worker-logs", daemon=True)

    @property
    def initargs(self) -> tuple[Any, dict[str, int]]:
        """Arguments of `start_worker_logging`."""
        return (self.queue, self.levels)

    def _forward(self) -> None:
        """Hand every record to this process's loggers until the block has
        ended and the queue is empty."""
        handler = _ToParentLoggers()
        while True:
            # Read before the wait: a record that comes during it is still
            # taken on the next turn.
            ended = self._ended.is_set()
            try:
                record = self.queue.get(timeout=self.POLL)
            except queue.Empty:
                if ended:
                    return
                continue
            except (EOFError, OSError):  # the queue is closed
                return
            except Exception as error:  # one record this process cannot rebuild
                logging.getLogger(PACKAGE_LOGGER).warning("A log record of a worker was lost: %s", error)
                continue
            if record is None:  # the end marker: every record of the workers is before it
                self._marker_read = True
                return
            self._forwarded += 1
            handler.handle(record)

    def __enter__(self) -> WorkerLogs:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._ended.set()
        # The workers have ended: the end marker follows their last record.
        # A worker stopped while it wrote one keeps the marker out (it holds
        # the queue's write lock): the thread then ends on the event once the
        # queue is empty, or waits on that record if it is cut short.
        self.queue.put_nowait(None)
        seen = -1
        while self._thread.is_alive() and self._forwarded != seen:
            seen = self._forwarded
            self._thread.join(self.STOP_WAIT)
        if self._marker_read:
            # The marker was written: nothing keeps this queue's own writer.
            self.queue.close()
            self.queue.join_thread()
            return
        # Neither this process's writer of the marker nor, if the thread
        # waits on a record cut short, the thread (a daemon) will end: the
        # interpreter is not to wait for them at exit.
        self.queue.cancel_join_thread()
        if not self._thread.is_alive():
            self.queue.close()
