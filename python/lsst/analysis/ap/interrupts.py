"""Ctrl-C in the commands.

While a command runs (`answering_ctrl_c`), SIGINT terminates its worker
processes (which ignore the signal) and raises `KeyboardInterrupt` in the
main thread, wherever it is.  When that is inside a garbage-collection
callback or a ``__del__`` method (SQLAlchemy's, for instance), Python
reports the exception as "ignored" and goes on: the request is therefore
also kept, and `stop_if_interrupted` raises it again (terminating the
workers started since) before the next visit × detector or object, worker
pool or worker's result; the command ends as interrupted whatever error
the stopped workers then cause (`interrupt_requested`).  Outside a
command's run, nothing here has any effect.
"""

from __future__ import annotations

__all__ = ("answering_ctrl_c", "interrupt_requested", "stop_if_interrupted")

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

_requested = threading.Event()
"""Set by the SIGINT handler of a command's run, cleared when it ends."""


def interrupt_requested() -> bool:
    """Whether the command running in this process was interrupted
    (Ctrl-C).

    Returns
    -------
    requested : `bool`
        `True` from the first SIGINT of a run in `answering_ctrl_c` to
        its end.

    """
    return _requested.is_set()


def stop_if_interrupted() -> None:
    """Raise `KeyboardInterrupt` if the command running in this process was
    interrupted, after terminating the worker processes started since:
    a check between units of work, for an interrupt Python dropped where
    the signal handler raised it.

    Raises
    ------
    KeyboardInterrupt
        The run was interrupted.

    """
    if _requested.is_set():
        from .parallel import stop_workers

        stop_workers()
        raise KeyboardInterrupt


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    """SIGINT handler of a command's run: keep the request, ignore later
    SIGINTs while the run ends, terminate the workers at once and raise
    `KeyboardInterrupt` here.

    Parameters
    ----------
    signum : `int`
        The signal (SIGINT).
    frame : `types.FrameType` or `None`
        Where the main thread was.

    Raises
    ------
    KeyboardInterrupt
        Always.

    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _requested.set()
    stop_if_interrupted()


@contextlib.contextmanager
def answering_ctrl_c(*, restore_after_interrupt: bool = True) -> Iterator[None]:
    """A command's run: Ctrl-C in the block stops it (see the module's
    description), and the interrupt Python drops inside a garbage-collection
    callback is not reported as an ignored exception.

    The signal handler is set only in the main thread (where Python runs
    handlers), and only over a handler that can be set back (not one
    installed outside Python).  When the block ends, the previous handler
    and unraisable-exception hook are set back and the request is
    forgotten.

    Parameters
    ----------
    restore_after_interrupt : `bool`, optional
        Whether the previous SIGINT handler is set back after an interrupt
        too: a process that ends with the run (a command) keeps SIGINT
        ignored, so that a second Ctrl-C while its workers' pools end is
        not answered with a traceback.

    Yields
    ------
    None
        The run goes in the block.

    """
    answer = threading.current_thread() is threading.main_thread() and (
        signal.getsignal(signal.SIGINT) is not None
    )
    previous_handler = signal.getsignal(signal.SIGINT) if answer else None
    previous_hook = sys.unraisablehook

    def hook(unraisable: sys.UnraisableHookArgs) -> None:
        """Drop the reports of the interrupt (checked again later)."""
        if _requested.is_set() and isinstance(unraisable.exc_value, KeyboardInterrupt):
            return
        previous_hook(unraisable)

    _requested.clear()
    try:
        sys.unraisablehook = hook
        if answer:
            signal.signal(signal.SIGINT, _on_sigint)
        yield
    finally:
        if answer and (restore_after_interrupt or not _requested.is_set()):
            signal.signal(signal.SIGINT, previous_handler)
        sys.unraisablehook = previous_hook
        _requested.clear()
