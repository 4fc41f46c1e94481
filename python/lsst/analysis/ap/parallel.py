"""Worker processes and progress of ``PlotImageSubtractionCutoutsTask.run``.

With ``njobs = N`` the task draws in N processes: this one and N − 1
workers.  Workers are started with the ``spawn`` method (they share nothing
with the parent but their arguments): each builds one task, and so one
renderer.  All take visit × detector groups, one at a time, so the load
balances and progress is reported group by group: the workers the largest
groups left, each once it has started, the parent the smallest, from the
start, while the workers are still importing the stack (a few seconds
each).  Crowded groups are first cut into bands of rows
(`split_for_processes`), so that a run of a few crowded visit × detectors,
or of one, keeps every process busy to the end.  Each process draws in as
many threads as its share of the cores allows (`threads_per_worker`): one
when the processes fill the cores.
"""

from __future__ import annotations

__all__ = (
    "MAIN_GUARD_HINT",
    "Progress",
    "available_cores",
    "cleaned_after_interrupt",
    "draw_in_workers",
    "explain_broken_pool",
    "map_in_workers",
    "sigint_ignored",
    "split_for_processes",
    "stop_workers",
    "threads_per_worker",
    "usable_njobs",
    "wait_for_workers_end",
    "worker_pool",
)

import collections
import concurrent.futures
import contextlib
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .interrupts import interrupt_requested, stop_if_interrupted
from .logs import WorkerLogs, start_worker_logging


class Progress:
    """Logs sources done and the rate, at most every ``every`` seconds.

    Parameters
    ----------
    log : `logging.Logger`
        Where to log.
    total : `int`
        Number of sources of the run.
    enabled : `bool`
        Whether to log at all.
    every : `float`, optional
        Least number of seconds between two messages (the last one is
        always logged).

    """

    def __init__(self, log: Any, total: int, *, enabled: bool, every: float = 5.0) -> None:
        self.log = log
        self.total = total
        self.enabled = enabled
        self.every = every
        self.done = 0
        self.start = self.last = time.monotonic()

    def update(self, records: pd.DataFrame) -> None:
        """Count the sources of a finished group.

        Parameters
        ----------
        records : `pandas.DataFrame`
            Record table of the group.

        """
        self.done += len(records)
        now = time.monotonic()
        if self.enabled and (now - self.last >= self.every or self.done == self.total):
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            self.log.info(
                "progress: %d/%d DiaSources (%.0f%%), %.1f/s",
                self.done,
                self.total,
                100.0 * self.done / max(self.total, 1),
                rate,
            )


_WORKER: dict[str, Any] = {}
"""State of a worker process, set by `_start_worker`."""


def _start_logging_worker(
    logs: tuple, initializer: Callable[..., None], initargs: tuple, parent: int
) -> None:
    """Worker-process initializer of `map_in_workers`: watch the parent
    (the worker ends when it is gone, see `exit_with_parent`), log through
    the parent (`WorkerLogs`), then run the caller's initializer.
    """
    exit_with_parent(parent)
    start_worker_logging(*logs)
    initializer(*initargs)


def _start_worker(
    task_class: type, config: Any, output_path: str, token: str, butler: Any, threads: int
) -> None:
    """Worker-process initializer of `draw_in_workers`: one task (and
    renderer) per worker, writing record files under the parent run's token
    and drawing in ``threads`` threads.
    """
    _WORKER["task"] = task_class(config=config, output_path=output_path, writer_token=token)
    _WORKER["butler"] = butler
    _WORKER["threads"] = threads


def available_cores() -> int:
    """Number of CPU cores this process may run on: its CPU affinity
    (``os.sched_getaffinity``), else ``os.process_cpu_count``."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = getattr(os, "process_cpu_count", os.cpu_count)()
        return count or 1


def usable_njobs(njobs: int, log: Any) -> int:
    """``njobs`` capped at the cores this process may run on.

    More processes than cores only take turns on them, each holding a
    task, its images and its renderer in memory.

    Parameters
    ----------
    njobs : `int`
        Number of processes asked for.
    log : `logging.Logger`
        Where the warning goes when ``njobs`` is capped.

    Returns
    -------
    njobs : `int`
        ``min(njobs, available_cores())``.

    """
    cores = available_cores()
    if njobs <= cores:
        return njobs
    log.warning(
        "njobs=%d is more than the %d core(s) this process may run on; using njobs=%d.", njobs, cores, cores
    )
    return cores


def threads_per_worker(threads: int, njobs: int) -> int:
    """Drawing threads of each of ``njobs`` drawing processes: at most
    ``threads``, and one when the processes already fill the cores (more
    threads then only add switching).

    Parameters
    ----------
    threads : `int`
        Threads configured per process (``config.threads``).
    njobs : `int`
        Number of processes drawing at once.

    Returns
    -------
    threads : `int`
        At least 1.

    """
    return max(1, min(threads, available_cores() // max(njobs, 1)))


def exit_with_parent(parent: int, every: float = 0.5) -> None:
    """End this process soon after process ``parent`` ends.

    A killed parent (SIGKILL, SIGTERM, a crash) cannot stop its workers:
    they would draw on with nobody to collect their records, and keep the
    multiprocessing resource tracker (which ends when the last process
    holding its pipe ends) alive.  A worker is re-parented when its parent
    ends; a daemon thread notices within ``every`` seconds and ends the
    worker.  (A worker still importing the stack when the parent dies
    ends as soon as it has started.)

    Parameters
    ----------
    parent : `int`
        Process id of the parent.
    every : `float`, optional
        Seconds between two checks.

    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _draw_group(group: pd.DataFrame) -> pd.DataFrame:
    """Worker-process entry point: draw one visit × detector group (or
    piece of one)."""
    return _WORKER["task"].drawGroups(_WORKER["butler"], [group], threads=_WORKER["threads"])


PIECES_PER_PROCESS = 8
"""`split_for_processes` aims at this many pieces of work per process."""

MIN_PIECE_SOURCES = 200
"""Fewest sources in a piece of a visit × detector cut by
`split_for_processes`: each piece opens the three images again, reads the
record files of its visit × detector and decodes the rows at its edges
twice (about 50 ms in all, a few per cent of the drawing of 200
sources)."""


def split_for_processes(
    groups: Sequence[pd.DataFrame],
    njobs: int,
    *,
    min_piece: int = MIN_PIECE_SOURCES,
    splittable: Callable[[pd.DataFrame], bool] | None = None,
) -> list[pd.DataFrame]:
    """Cut the crowded visit × detector groups of a run into pieces that
    ``njobs`` processes can share.

    Whole groups balance badly when they are few and large: the run ends
    with one process drawing the last one while the others wait, and a run
    of one visit × detector draws in one process.  With ``target`` = ``total
    / (PIECES_PER_PROCESS * njobs)`` sources (at least ``min_piece``), a
    group of at least 1.5 ``target`` sources is cut into pieces of about
    ``target``, never fewer than ``min_piece`` sources.  A piece is a band
    of consecutive image rows (by the sources' ``y`` column when all its
    values are finite numbers, by declination otherwise), so that each
    piece decodes mostly row tiles of its own.  Each piece is drawn as a
    visit × detector of its own: messages about a visit × detector's
    sources as a whole (such as PNGs redrawn because the configuration
    changed) come once per piece.

    Parameters
    ----------
    groups : sequence of `pandas.DataFrame`
        Standardized sources, one frame per visit × detector.
    njobs : `int`
        Number of drawing processes.
    min_piece : `int`, optional
        Fewest sources in a piece.
    splittable : callable, optional
        Whether a group may be cut (all may when not given).

    Returns
    -------
    pieces : `list` [`pandas.DataFrame`]
        The groups, whole or cut; each piece keeps the order its rows had
        in its group.

    """
    groups = list(groups)
    total = sum(len(group) for group in groups)
    target = max(min_piece, -(-total // (PIECES_PER_PROCESS * max(njobs, 1))))
    pieces: list[pd.DataFrame] = []
    for group in groups:
        n_pieces = min(round(len(group) / target), len(group) // min_piece)
        if n_pieces < 2 or (splittable is not None and not splittable(group)):
            pieces.append(group)
            continue
        order = np.argsort(_row_key(group), kind="stable")
        pieces.extend(group.iloc[np.sort(part)] for part in np.array_split(order, n_pieces))
    return pieces


def _row_key(group: pd.DataFrame) -> np.ndarray:
    """Values that order the sources of ``group`` along the image rows:
    ``y`` when all are finite numbers, declination otherwise."""
    if "y" in group.columns:
        try:
            y = pd.to_numeric(group["y"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError):  # values that are not scalars
            y = None
        if y is not None and np.isfinite(y).all():
            return y
    return group["dec"].to_numpy(dtype=float)


def draw_in_workers(
    task: Any,
    butler: Any,
    groups: Sequence[pd.DataFrame],
    njobs: int,
    on_group: Callable[[pd.DataFrame], None],
) -> list[pd.DataFrame]:
    """Draw visit × detector groups (or pieces of them,
    `split_for_processes`) in ``njobs`` processes: this one and ``njobs -
    1`` spawned workers.

    Parameters
    ----------
    task : `~lsst.analysis.ap.plotImageSubtractionCutouts.PlotImageSubtractionCutoutsTask`
        The task; each worker builds one like it (same class, config and
        output directory).
    butler : `lsst.daf.butler.Butler`
        Butler the images are read with (pickled to each worker).
    groups : sequence of `pandas.DataFrame`
        Standardized sources, one frame per visit × detector or piece of
        one.
    njobs : `int`
        Number of drawing processes, this one included.
    on_group : callable
        Called with the record table of each group as it finishes.

    Returns
    -------
    frames : `list` [`pandas.DataFrame`]
        Record tables of the groups, in the order this process received
        them.

    """
    threads = threads_per_worker(task.config.threads, njobs)

    def draw_here(group: pd.DataFrame) -> pd.DataFrame:
        return task.drawGroups(butler, [group], threads=threads)

    # Largest groups first, one group per task: the load balances and
    # progress is reported group by group.
    return map_in_workers(
        _start_worker,
        (type(task), task.config, str(task.output_path), task.writer_token, butler, threads),
        _draw_group,
        sorted(groups, key=len, reverse=True),
        njobs,
        on_group,
        in_parent=draw_here,
    )


MAIN_GUARD_HINT = (
    "hint: worker processes are started with the 'spawn' method, which imports the main script "
    "again; a script that starts a run with workers must do so under "
    "'if __name__ == \"__main__\":', or every worker dies at start"
)
"""Added to the message of a broken worker pool."""


def explain_broken_pool(error: BaseException) -> BaseException:
    """``error`` itself, or, for a
    `concurrent.futures.process.BrokenProcessPool`, one whose message adds
    `MAIN_GUARD_HINT` (the usual reason why every worker dies at start).

    Parameters
    ----------
    error : `BaseException`
        An error of a run with workers.

    Returns
    -------
    error : `BaseException`
        The error to raise (the original one is its ``__cause__``).

    """
    from concurrent.futures.process import BrokenProcessPool

    if not isinstance(error, BrokenProcessPool) or MAIN_GUARD_HINT in str(error):
        return error
    explained = BrokenProcessPool(f"{error} ({MAIN_GUARD_HINT})")
    explained.__cause__ = error
    return explained


def map_in_workers(
    initializer: Callable[..., None],
    initargs: tuple,
    work: Callable[[Any], Any],
    items: Sequence[Any],
    njobs: int,
    on_result: Callable[[Any], None] | None = None,
    *,
    in_parent: Callable[[Any], Any] | None = None,
) -> list[Any]:
    """Apply ``work`` to every item in spawned worker processes.

    Parameters
    ----------
    initializer : callable
        Run once in each worker with ``initargs`` (builds its task).
    initargs : `tuple`
        Picklable arguments of ``initializer``.
    work : callable
        Module-level function applied to one item in a worker.
    items : sequence
        Picklable work items, taken in this order.
    njobs : `int`
        Number of worker processes; with ``in_parent``, of processes,
        this one included.  No more workers are started than items (with
        ``in_parent``, than items less the one this process takes first).
    on_result : callable, optional
        Called in this process (in the calling thread) with each result as
        it arrives.
    in_parent : callable, optional
        The work done in this process: when given, ``njobs - 1`` workers
        are started and this process takes items too, from the start,
        while the workers start.  Workers take the first items left, each
        once it has started, this process the last: with items largest
        first, the workers, which start a few seconds late, get the long
        ones, and this process never waits at the end for an item given to
        a worker that was still starting.

    Returns
    -------
    results : `list`
        The results, in the order this process received them.

    Raises
    ------
    Exception
        The first error of an item, once the items already started have
        ended; with ``in_parent``, no new item is started after it.

    """
    if in_parent is None:
        return _map_in_pool(initializer, initargs, work, list(items), njobs, on_result)
    todo = collections.deque(items)
    lock = threading.Lock()

    def next_item(first: bool = True) -> tuple[bool, Any]:
        """The first item left (for a worker) or the last (for this
        process), if any."""
        with lock:
            if not todo:
                return False, None
            return True, todo.popleft() if first else todo.pop()

    def drop_the_rest() -> None:
        with lock:
            todo.clear()

    def items_left() -> bool:
        with lock:
            return bool(todo)

    arrived: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
    feeder = None
    # This process takes an item at once: one worker fewer than items.
    workers = min(njobs - 1, len(todo) - 1)
    if workers > 0:
        spawned = threading.Event()
        feeder = threading.Thread(
            target=_feed_pool,
            args=(
                initializer,
                initargs,
                work,
                workers,
                next_item,
                drop_the_rest,
                arrived,
                items_left,
                spawned,
            ),
            name="cutout-workers",
            daemon=True,
        )
        with sigint_ignored():
            feeder.start()
            spawned.wait(_SPAWN_WAIT_SECONDS)
    results: list[Any] = []
    error: BaseException | None = None
    feeder_done = feeder is None

    def take(kind: str, value: Any) -> None:
        """Handle one message of the feeder (or this process's result)."""
        nonlocal feeder_done
        if kind == "done":
            feeder_done = True
        elif kind == "result":
            results.append(value)
            if on_result is not None:
                on_result(value)
        else:
            fail(value)

    def fail(own: BaseException) -> None:
        """Keep the first error; start no item after it."""
        nonlocal error
        if error is None:
            error = own
        drop_the_rest()

    try:
        while error is None:
            stop_if_interrupted()
            ok, item = next_item(first=False)
            if not ok:
                break
            take("result", in_parent(item))
            while not arrived.empty():
                take(*arrived.get())
    except BaseException as own:
        fail(own)
    # The workers' last items: their results, errors, and the feeder's end.
    while not feeder_done:
        try:
            take(*arrived.get())
        except BaseException as own:
            if isinstance(own, KeyboardInterrupt) and isinstance(error, KeyboardInterrupt):
                raise  # a second interrupt: do not wait for the workers
            fail(own)
    if feeder is not None:
        feeder.join()
    if error is not None:
        raise explain_broken_pool(error)
    return results


def _feed_pool(
    initializer: Callable[..., None],
    initargs: tuple,
    work: Callable[[Any], Any],
    workers: int,
    next_item: Callable[[], tuple[bool, Any]],
    drop_the_rest: Callable[[], None],
    arrived: queue.SimpleQueue,
    items_left: Callable[[], bool],
    spawned: threading.Event,
) -> None:
    """Thread of `map_in_workers` that keeps ``workers`` spawned workers
    busy, one item each, taking the next item whenever one finishes; puts
    ``("result", value)`` and ``("error", exception)`` on ``arrived``, and
    ``("done", None)`` last.

    A worker is given its first item only once it has started (it has
    answered a `_started` call): until then this process may draw that
    item itself, rather than wait at the end for a worker that was still
    importing the stack.  When no item is left for workers still
    starting, they are not waited for.
    """
    try:
        with worker_pool(initializer, initargs, workers) as pool:
            # The pool starts one process per call while none is idle.
            starting = {pool.submit(_started) for _ in range(workers)}
            spawned.set()
            running = set(starting)
            while running:
                done, running = concurrent.futures.wait(
                    running, timeout=_POLL_SECONDS, return_when=concurrent.futures.FIRST_COMPLETED
                )
                for future in done:
                    try:
                        value = future.result()
                    except BaseException as error:
                        drop_the_rest()
                        arrived.put(("error", error))
                        continue
                    if future in starting:
                        starting.discard(future)
                    else:
                        arrived.put(("result", value))
                    ok, item = next_item()
                    if ok:
                        running.add(pool.submit(work, item))
                if running and running <= starting and not items_left():
                    break
    except BaseException as error:
        drop_the_rest()
        arrived.put(("error", error))
    finally:
        spawned.set()
        arrived.put(("done", None))


_SPAWN_WAIT_SECONDS = 30.0
"""Longest wait of `map_in_workers`, with SIGINT ignored, for its feeder
thread to start the worker processes (it takes milliseconds)."""

_POLL_SECONDS = 0.05
"""How often `_feed_pool` checks, while workers start, whether items are
left for them."""


def _started() -> None:
    """Worker-process call that returns once the worker has started."""


@contextlib.contextmanager
def worker_pool(
    initializer: Callable[..., None], initargs: tuple, workers: int
) -> Iterator[concurrent.futures.ProcessPoolExecutor]:
    """A pool of ``workers`` spawned processes that log through this one
    and end with it.

    When the block ends normally, every item given to a worker has
    returned (or failed), so the pool is shut down, and then the listener
    of the workers' logs stopped, by a thread of its own: a worker's
    interpreter takes about a second to tear the stack down (and one still
    importing it ends once started), which this process spends on the
    run's manifests instead of waiting, and the log records a worker sends
    until it ends are still written.  (Dropping the pool here would wait
    too: its finalizer takes the lock its shutdown holds while the
    processes end.)  When the block raises, the pool's queued items are
    cancelled and its processes and logs waited for here (the logs until
    none has come for `~lsst.analysis.ap.logs.WorkerLogs.STOP_WAIT`
    seconds).
    """
    stop_if_interrupted()
    context = multiprocessing.get_context("spawn")
    with contextlib.ExitStack() as stack:
        logs = stack.enter_context(WorkerLogs(context))
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_start_logging_worker,
            initargs=(logs.initargs, initializer, initargs, os.getpid()),
        )
        stack.callback(pool.shutdown, wait=True, cancel_futures=True)
        yield pool
        # Not a daemon (which a thread started by a daemon thread, as the
        # feeder of `map_in_workers`, would be by default): the interpreter
        # ends the pool and writes the workers' last records before it
        # exits, rather than finalizing while they still run.
        threading.Thread(target=stack.pop_all().close, name=WORKERS_END_THREAD, daemon=False).start()


def stop_workers() -> None:
    """Terminate this process's worker processes at once (on Ctrl-C: they
    ignore it, see `sigint_ignored`); files are written atomically, so
    none is left partial."""
    for child in multiprocessing.active_children():
        child.terminate()


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """SIGINT ignored in the block, which starts worker processes.

    A spawned interpreter keeps a SIGINT it starts with ignored, so Ctrl-C
    in a terminal (sent to the whole process group) reaches this process
    alone, even while a worker is still importing the stack: this process
    answers it, and the work left is cancelled.  A Ctrl-C in the
    milliseconds the processes take to start is not seen.  Only the main
    thread can change a signal's handler: elsewhere nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def cleaned_after_interrupt(remove_partial_files: Callable[[], object]) -> Iterator[None]:
    """A block that draws in workers: when a Ctrl-C ends it, the files the
    stopped workers were writing are left as temporaries (the workers are
    terminated), and ``remove_partial_files`` is called once they have
    ended, before the error goes on.

    Parameters
    ----------
    remove_partial_files : callable
        Removes the temporaries of ended writers (an output store's
        ``sweep_temporaries``).

    Yields
    ------
    None
        The drawing goes in the block.

    """
    try:
        yield
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt) or interrupt_requested():
            wait_for_workers_end()
            remove_partial_files()
        raise


WORKERS_END_THREAD = "cutout-workers-end"
"""Name of the thread that shuts a pool down and writes its workers' last
log records once a run no longer needs its workers."""


def wait_for_workers_end(timeout: float = 60.0) -> None:
    """Wait until the pools that runs no longer need are shut down and
    their workers' last log records written.

    Parameters
    ----------
    timeout : `float`, optional
        Longest wait for each pool, in seconds.

    """
    for thread in threading.enumerate():
        if thread.name == WORKERS_END_THREAD and thread is not threading.current_thread():
            thread.join(timeout)


def _map_in_pool(
    initializer: Callable[..., None],
    initargs: tuple,
    work: Callable[[Any], Any],
    items: list[Any],
    workers: int,
    on_result: Callable[[Any], None] | None,
) -> list[Any]:
    """`map_in_workers` without work in this process: at most one worker
    per item."""
    from concurrent.futures.process import BrokenProcessPool

    workers = min(workers, len(items))
    if workers < 1:
        return []
    try:
        with worker_pool(initializer, initargs, workers) as pool:
            with sigint_ignored():
                futures = [pool.submit(work, item) for item in items]
            results = []
            for future in concurrent.futures.as_completed(futures):
                stop_if_interrupted()
                results.append(future.result())
                if on_result is not None:
                    on_result(results[-1])
    except BrokenProcessPool as error:
        raise explain_broken_pool(error) from error
    return results
