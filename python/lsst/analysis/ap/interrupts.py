"""Ctrl-C in the commands.

While a command runs (`interruptible`, `answering_ctrl_c`), SIGINT
terminates its worker processes (which ignore the signal) and raises
`KeyboardInterrupt` in the main thread, wherever it is; the command ends
with one line and `EXIT_INTERRUPTED`.  When the exception is raised inside
a garbage-collection callback or a ``__del__`` method (SQLAlchemy's, for
instance), Python reports it as "ignored" and goes on: the request is
therefore also kept, and `stop_if_interrupted` raises it again
(terminating the workers started since) before the next visit × detector
or object, worker pool or worker's result; the command ends as interrupted
whatever error the stopped workers then cause (`interrupt_requested`).

The console scripts (`run_command`) answer Ctrl-C from their first moment,
while they import the stack, and ignore it once the run is over, while the
process ends.  Outside a command's run, nothing here has any effect.
"""

from __future__ import annotations

__all__ = (
    "EXIT_INTERRUPTED",
    "answering_ctrl_c",
    "interrupt_requested",
    "interruptible",
    "report_interrupted",
    "run_command",
    "stop_if_interrupted",
)

import contextlib
import functools
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import NoReturn

EXIT_INTERRUPTED = 130
"""Exit status of a command interrupted by Ctrl-C (128 + SIGINT)."""

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
        stop_workers = _from_parallel("stop_workers")
        if stop_workers is not None:
            stop_workers()
        raise KeyboardInterrupt


def _from_parallel(name: str) -> Callable[[], None] | None:
    """A function of `lsst.analysis.ap.parallel`, or `None` if that module
    is not (yet wholly) imported: then no worker was started.  Nothing is
    imported here: after a Ctrl-C while the command starts, the modules
    being imported are left half done.
    """
    return getattr(sys.modules.get(f"{__package__}.parallel"), name, None)


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
def answering_ctrl_c(*, restore: bool = True) -> Iterator[None]:
    """A command's run: Ctrl-C in the block stops it (see the module's
    description), and the interrupt Python drops inside a garbage-collection
    callback is not reported as an ignored exception.

    The signal handler is set only in the main thread (where Python runs
    handlers), and only over a handler that can be set back (not one
    installed outside Python).  When the block ends, the previous
    unraisable-exception hook is set back and the request forgotten.

    Parameters
    ----------
    restore : `bool`, optional
        Whether the previous SIGINT handler is set back when the block
        ends; if not (a run from the command line: the process ends with
        it), SIGINT is ignored from then on, so that a Ctrl-C while the
        workers' pools and the interpreter end is not answered with a
        traceback and the exit status stays the run's.

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

    try:
        sys.unraisablehook = hook
        if answer:
            signal.signal(signal.SIGINT, _on_sigint)
        yield
    finally:
        if answer:
            signal.signal(signal.SIGINT, previous_handler if restore else signal.SIG_IGN)
        sys.unraisablehook = previous_hook
        _requested.clear()


def interruptible(prog: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Make a command's ``main(argv) -> int`` end on Ctrl-C with one line
    and `EXIT_INTERRUPTED` instead of a traceback (its workers ignore the
    signal and end with it).

    Called without ``argv`` (from the command line), the command leaves
    SIGINT ignored when it returns, as the process ends; called from
    Python, it sets the previous handler back.

    Parameters
    ----------
    prog : `str`
        Name of the command.

    Returns
    -------
    decorator : callable
        Wraps a ``main(argv) -> int``.

    """

    def decorate(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(argv: list[str] | None = None) -> int:
            """``main``, ended by Ctrl-C with one line and `EXIT_INTERRUPTED`."""
            with answering_ctrl_c(restore=argv is not None):
                return _unless_interrupted(prog, lambda: main(argv))

        return run

    return decorate


def _unless_interrupted(prog: str, run: Callable[[], int]) -> int:
    """The status of ``run()``, or `report_interrupted` after a Ctrl-C in
    it, whatever error followed (the stopped workers', or an import's left
    half done).
    """
    try:
        status = run()
        stop_if_interrupted()  # dropped after the run's last check
    except BaseException as error:
        if not isinstance(error, KeyboardInterrupt) and not interrupt_requested():
            raise
        return report_interrupted(prog)
    return status


def report_interrupted(prog: str) -> int:
    """End an interrupted command: wait for its stopped workers' pools,
    then say so in one line on standard error.

    Parameters
    ----------
    prog : `str`
        Name of the command.

    Returns
    -------
    status : `int`
        `EXIT_INTERRUPTED`.

    """
    wait_for_workers_end = _from_parallel("wait_for_workers_end")
    if wait_for_workers_end is not None:
        # The stopped workers' pools end (in a moment) before the last line
        # is written.
        wait_for_workers_end()
    print(
        f"{prog}: interrupted. Every file written is complete; run the same command again to finish the run.",
        file=sys.stderr,
    )
    return EXIT_INTERRUPTED


def run_command(module: str, attribute: str) -> NoReturn:
    """Console script: import a command's ``main`` (about two seconds of
    imports) with Ctrl-C already answered, run it from the command line and
    exit with its status.

    A Ctrl-C while the command starts ends it as one while it runs: one
    line and `EXIT_INTERRUPTED`.

    Parameters
    ----------
    module : `str`
        Module of the command's ``main``, wrapped by `interruptible`.
    attribute : `str`
        Its name in ``module``.

    """

    def start() -> int:
        main = getattr(importlib.import_module(module), attribute)
        stop_if_interrupted()  # dropped while importing
        return main()

    with answering_ctrl_c(restore=False):
        status = _unless_interrupted(os.path.basename(sys.argv[0]), start)
    sys.exit(status)
