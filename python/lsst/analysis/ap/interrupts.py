"""Ctrl-C in the commands.

While a command runs (`answering_ctrl_c`), SIGINT terminates its worker
processes (which ignore the signal) and raises `KeyboardInterrupt` in the
main thread, wherever it is.  When that is inside a garbage-collection
callback or a ``__del__`` method (SQLAlchemy's, for instance), Python
reports the exception as "ignored" and goes on: the request is therefore
also kept, `stop_if_interrupted` raises it again before the next visit ×
detector or object, and the command ends as interrupted whatever error the
stopped workers then cause (`interrupt_requested`).  Outside a command's
run, nothing here has any effect.
"""

from __future__ import annotations

__all__ = ("answering_ctrl_c", "interrupt_requested", "stop_if_interrupted")

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

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
    interrupted: a check between units of work, for an interrupt Python
    dropped where the signal handler raised it.

    Raises
    ------
    KeyboardInterrupt
        The run was interrupted.

    """
    if _requested.is_set():
        raise KeyboardInterrupt


def _on_sigint(signum: int, frame: Any) -> None:
    """SIGINT handler of a command's run: keep the request, terminate the
    workers at once, ignore later SIGINTs while the run ends, and raise
    `KeyboardInterrupt` here.
    """
    from .parallel import stop_workers

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _requested.set()
    stop_workers()
    raise KeyboardInterrupt


@contextlib.contextmanager
def answering_ctrl_c() -> Iterator[None]:
    """A command's run: Ctrl-C in the block stops it (see the module's
    description), and the interrupt Python drops inside a garbage-collection
    callback is not reported as an ignored exception.

    The signal handler is set only in the main thread (where Python runs
    handlers); the previous handler and unraisable-exception hook are set
    back when the block ends, and the request is forgotten.
    """
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_handler = signal.getsignal(signal.SIGINT) if in_main_thread else None
    previous_hook = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        """Drop the reports of the interrupt (checked again later)."""
        if _requested.is_set() and isinstance(unraisable.exc_value, KeyboardInterrupt):
            return
        previous_hook(unraisable)

    _requested.clear()
    sys.unraisablehook = hook
    if in_main_thread:
        signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        if in_main_thread and previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
        sys.unraisablehook = previous_hook
        _requested.clear()
