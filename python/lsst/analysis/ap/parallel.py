"""Worker processes and progress of ``PlotImageSubtractionCutoutsTask.run``.

Workers are started with the ``spawn`` method (they share nothing with the
parent but their arguments): each builds one task, and so one renderer, and
takes whole visit × detector groups, the largest first, one per call, so
the load balances and progress is reported group by group.  Each worker
draws in as many threads as its share of the cores allows
(`threads_per_worker`): one when the workers fill the cores.
"""

from __future__ import annotations

__all__ = ("Progress", "available_cores", "draw_in_workers", "map_in_workers", "threads_per_worker")

import concurrent.futures
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

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
    """Number of CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def threads_per_worker(threads: int, njobs: int) -> int:
    """Drawing threads of each of ``njobs`` worker processes: at most
    ``threads``, and one when the workers already fill the cores (more
    threads then only add switching).

    Parameters
    ----------
    threads : `int`
        Threads configured per process (``config.threads``).
    njobs : `int`
        Number of worker processes.

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
    """Worker-process entry point: draw one visit × detector group."""
    return _WORKER["task"].drawGroups(_WORKER["butler"], [group], threads=_WORKER["threads"])


def draw_in_workers(
    task: Any,
    butler: Any,
    groups: Sequence[pd.DataFrame],
    njobs: int,
    on_group: Callable[[pd.DataFrame], None],
) -> list[pd.DataFrame]:
    """Draw visit × detector groups in ``njobs`` spawned worker processes.

    Parameters
    ----------
    task : `~lsst.analysis.ap.plotImageSubtractionCutouts.PlotImageSubtractionCutoutsTask`
        The task; each worker builds one like it (same class, config and
        output directory).
    butler : `lsst.daf.butler.Butler`
        Butler the workers read the images with (pickled to each worker).
    groups : sequence of `pandas.DataFrame`
        Standardized sources, one frame per visit × detector.
    njobs : `int`
        Number of worker processes.
    on_group : callable
        Called with the record table of each group as it finishes.

    Returns
    -------
    frames : `list` [`pandas.DataFrame`]
        Record tables of the groups, in the order they finished.

    """
    # Largest groups first, one visit × detector per task: the load balances
    # and progress is reported group by group.
    return map_in_workers(
        _start_worker,
        (
            type(task),
            task.config,
            str(task.output_path),
            task.writer_token,
            butler,
            threads_per_worker(task.config.threads, njobs),
        ),
        _draw_group,
        sorted(groups, key=len, reverse=True),
        njobs,
        on_group,
    )


def map_in_workers(
    initializer: Callable[..., None],
    initargs: tuple,
    work: Callable[[Any], Any],
    items: Sequence[Any],
    njobs: int,
    on_result: Callable[[Any], None] | None = None,
) -> list[Any]:
    """Apply ``work`` to every item in ``njobs`` spawned worker processes.

    Parameters
    ----------
    initializer : callable
        Run once in each worker with ``initargs`` (builds its task).
    initargs : `tuple`
        Picklable arguments of ``initializer``.
    work : callable
        Module-level function applied to one item in a worker.
    items : sequence
        Picklable work items, submitted in this order.
    njobs : `int`
        Number of worker processes.
    on_result : callable, optional
        Called in the parent with each result as it arrives.

    Returns
    -------
    results : `list`
        The results, in the order they finished.

    """
    context = multiprocessing.get_context("spawn")
    with (
        WorkerLogs(context) as logs,
        concurrent.futures.ProcessPoolExecutor(
            max_workers=njobs,
            mp_context=context,
            initializer=_start_logging_worker,
            initargs=(logs.initargs, initializer, initargs, os.getpid()),
        ) as pool,
    ):
        futures = [pool.submit(work, item) for item in items]
        results = []
        for future in concurrent.futures.as_completed(futures):
            results.append(future.result())
            if on_result is not None:
                on_result(results[-1])
    return results
