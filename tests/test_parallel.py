"""Work shared between this process and spawned workers (`map_in_workers`
with ``in_parent``), as ``run(..., njobs=N)`` shares visit × detector groups.
"""

import ast
import atexit
import logging
import logging.handlers
import os
import re
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lsst.analysis.ap.parallel import (
    PIECES_PER_PROCESS,
    WORKERS_END_THREAD,
    map_in_workers,
    split_for_processes,
    wait_for_workers_end,
)


def _nothing() -> None:
    """Worker initializer."""


def _slow_square(item: int) -> tuple[int, int, int]:
    """``(item, item², pid)`` after a pause (a group being drawn); a
    negative item raises, naming the time it did."""
    time.sleep(0.2)
    if item < 0:
        raise ValueError(f"item {item} is negative (at {time.time():.6f})")
    return item, item * item, os.getpid()


def test_this_process_draws_the_last_items_while_a_worker_takes_the_first():
    items = list(range(12))
    seen = []
    results = map_in_workers(_nothing, (), _slow_square, items, 2, seen.append, in_parent=_slow_square)
    assert sorted(r[0] for r in results) == items
    assert all(square == item * item for item, square, _ in results)
    assert seen == results
    drawer = {item: pid for item, _, pid in results}
    parent = os.getpid()
    # The worker (started with the spawn method, a second or more) is given
    # the first item at once; this process starts on the last at once and
    # draws several while the worker starts.
    assert drawer[0] != parent
    assert drawer[11] == parent
    assert sum(pid == parent for pid in drawer.values()) >= 3
    assert len(set(drawer.values())) == 2


def test_one_process_draws_everything_here():
    results = map_in_workers(_nothing, (), _slow_square, [1, 2, 3], 1, in_parent=_slow_square)
    assert {pid for _, _, pid in results} == {os.getpid()}


@pytest.mark.parametrize("where", ["worker", "parent"])
def test_an_error_is_raised_and_no_item_starts_after_it(where):
    # Items are taken from the front by the worker and from the back here.
    items = [-1, *range(1, 40)] if where == "worker" else [*range(1, 40), -1]
    started = []

    def here(item):
        started.append(time.time())
        return _slow_square(item)

    with pytest.raises(ValueError, match=r"item -1 is negative") as raised:
        map_in_workers(_nothing, (), _slow_square, items, 2, in_parent=here)
    failed_at = float(re.search(r"at ([0-9.]+)", str(raised.value)).group(1))
    # This process learns of the error when its item in hand ends: at most
    # that one started after it, and none of the items left.
    assert sum(t > failed_at for t in started) <= 1
    if where == "parent":
        assert len(started) == 1


def _slow_start(seconds: float) -> None:
    """Worker initializer: a worker importing the stack for ``seconds``."""
    time.sleep(seconds)


def test_a_worker_still_starting_gets_no_item_and_is_not_waited_for():
    """Items are given to a worker only once it has started: when this
    process has drawn them all first, the run ends without waiting for the
    worker to finish starting."""
    start = time.monotonic()
    results = map_in_workers(_slow_start, (8.0,), _slow_square, [1, 2, 3], 2, in_parent=_slow_square)
    elapsed = time.monotonic() - start
    assert sorted(r[0] for r in results) == [1, 2, 3]
    assert {pid for _, _, pid in results} == {os.getpid()}
    # Three items of 0.2 s here; the worker would be ready after 8 s.
    assert elapsed < 6.0


def _mark(item: tuple[int, str]) -> int:
    """Worker item: write the marker file ``item[1]``, return ``item[0]``."""
    number, marker = item
    Path(marker).write_text("done")
    return number


def _wait_for(marker: Path, then: float = 0.0) -> Callable[[tuple[int, str]], int]:
    """Work of this process: wait until a worker has written ``marker``,
    then ``then`` seconds more."""

    def here(item: tuple[int, str]) -> int:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(then)
        return item[0]

    return here


def test_the_workers_ending_before_this_process_does(tmp_path):
    """The worker draws its item and the pool ends while this process
    still draws its own: the run ends with both results (the feeder's end
    message arriving between this process's items is not lost)."""
    marker = tmp_path / "worker-done"
    # Half a second after the worker's item: the pool shuts down and the
    # feeder reports its end.
    here = _wait_for(marker, then=0.5)
    outcome: list = []
    run = threading.Thread(
        target=lambda: outcome.append(
            map_in_workers(_nothing, (), _mark, [(1, str(marker)), (2, str(marker))], 2, in_parent=here)
        ),
        daemon=True,
    )
    run.start()
    run.join(timeout=90)
    assert not run.is_alive(), "map_in_workers did not return"
    assert sorted(outcome[0]) == [1, 2]


def _slow_exit(seconds: float) -> None:
    """Worker initializer: a worker whose interpreter takes ``seconds`` to
    end (tearing a large stack down)."""
    atexit.register(time.sleep, seconds)


def test_a_run_does_not_wait_for_its_workers_to_exit(tmp_path):
    """Once every item is back, the run returns while the worker is still
    ending its interpreter."""
    marker = tmp_path / "worker-done"
    items = [(1, str(marker)), (2, str(marker))]
    try:
        results = map_in_workers(_slow_exit, (6.0,), _mark, items, 2, in_parent=_wait_for(marker))
        returned = time.time()
        assert sorted(results) == [1, 2]
        assert marker.exists(), "the worker drew no item"
        # The worker's item ended when it wrote the marker; its exit takes 6 s.
        assert returned - marker.stat().st_mtime < 3.0
    finally:
        wait_for_workers_end()


def _note_pid(directory: str) -> None:
    """Worker initializer: leave a file named by the worker's process id."""
    (Path(directory) / str(os.getpid())).touch()


@pytest.mark.parametrize(("in_parent", "most"), [(_slow_square, 2), (None, 3)])
def test_no_more_workers_than_items(tmp_path, in_parent, most):
    """Three items and njobs=6: with work in this process, which takes an
    item at once, at most two workers start; without it, at most three."""
    try:
        results = map_in_workers(_note_pid, (str(tmp_path),), _slow_square, [1, 2, 3], 6, in_parent=in_parent)
    finally:
        wait_for_workers_end()
    assert sorted(r[0] for r in results) == [1, 2, 3]
    assert len(list(tmp_path.iterdir())) <= most


def _mark_and_log_later(item: tuple[int, str]) -> int:
    """Worker item: `_mark`, and log a record a second after returning
    (from a thread the worker's end waits for)."""

    def late() -> None:
        time.sleep(1.0)
        logging.getLogger("lsst.analysis.ap.tests.worker").warning("late record of item %d", item[0])

    threading.Thread(target=late).start()
    return _mark(item)


def test_the_last_records_of_a_worker_left_to_end_are_written(tmp_path, caplog):
    """The run does not wait for its worker to end, but the records the
    worker sends until then still reach this process's loggers."""
    marker = tmp_path / "worker-done"
    items = [(1, str(marker)), (2, str(marker))]
    with caplog.at_level(logging.WARNING, logger="lsst.analysis.ap.tests.worker"):
        results = map_in_workers(_nothing, (), _mark_and_log_later, items, 2, in_parent=_wait_for(marker))
        wait_for_workers_end()
    assert sorted(results) == [1, 2]
    # The worker takes the first item, this process the last.
    assert [r.getMessage() for r in caplog.records if r.name.endswith(".worker")] == ["late record of item 1"]


def test_a_program_that_ends_after_a_run_writes_its_workers_last_records(tmp_path):
    """A script whose run (with work in this process, so workers fed from
    a thread of their own) is its last statement: the interpreter ends the
    pool and writes the worker's last record before it exits, without an
    error from a thread cut off by its end."""
    marker = tmp_path / "worker-done"
    script = f"""
import atexit, logging, sys, threading
sys.path.insert(0, {str(Path(__file__).parent)!r})
from pathlib import Path
from test_parallel import _mark_and_log_later, _nothing, _wait_for
from lsst.analysis.ap.parallel import map_in_workers

logging.basicConfig(level=logging.INFO, format="%(processName)s %(message)s")
# Run once the interpreter has waited for its threads, before it finalizes.
atexit.register(lambda: print("threads at exit:", sorted(t.name for t in threading.enumerate())))
marker = Path({str(marker)!r})
print(map_in_workers(_nothing, (), _mark_and_log_later, [(1, str(marker)), (2, str(marker))], 2,
                     in_parent=_wait_for(marker)))
"""
    ended = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert ended.returncode == 0, ended.stderr
    results, threads = ended.stdout.splitlines()
    assert sorted(ast.literal_eval(results)) == [1, 2]
    assert threads == "threads at exit: ['MainThread']"
    assert ended.stderr.strip().splitlines() == ["SpawnProcess-1 late record of item 1"], ended.stderr


def _group(n: int, detector: int, y=None) -> pd.DataFrame:
    rng = np.random.default_rng(detector)
    return pd.DataFrame(
        {
            "diaSourceId": detector * 100_000 + np.arange(n),
            "detector": detector,
            "dec": rng.uniform(-1.0, 1.0, n),
            "y": rng.uniform(0.0, 4096.0, n) if y is None else y,
        }
    )


def test_crowded_groups_are_cut_in_bands_of_rows():
    groups = [_group(1250, 1), _group(1250, 2), _group(150, 3)]
    pieces = split_for_processes(groups, 2, min_piece=100)
    # About total / (PIECES_PER_PROCESS * 2) = 166 sources a piece; the
    # small group stays whole.
    assert 2650 // (PIECES_PER_PROCESS * 2) == 165
    sizes = sorted(len(piece) for piece in pieces)
    assert len(pieces) == 8 + 8 + 1 and sizes[0] >= 150 - 1 and sizes[-1] <= 157
    for detector, group in enumerate(groups, start=1):
        mine = [piece for piece in pieces if (piece["detector"] == detector).all()]
        # Every source in exactly one piece, rows in their group's order.
        ids = np.concatenate([piece["diaSourceId"].to_numpy() for piece in mine])
        assert sorted(ids) == sorted(group["diaSourceId"])
        for piece in mine:
            assert (np.diff(piece.index.to_numpy()) > 0).all()
        # Pieces are bands of y that do not overlap.
        spans = sorted((piece["y"].min(), piece["y"].max()) for piece in mine)
        assert all(high < low for (_, high), (low, _) in zip(spans, spans[1:], strict=False))


def test_pieces_follow_declination_without_finite_rows_and_small_runs_stay_whole():
    y = np.full(400, np.nan)
    pieces = split_for_processes([_group(400, 1, y=y)], 2, min_piece=100)
    assert [len(piece) for piece in pieces] == [100] * 4
    spans = sorted((piece["dec"].min(), piece["dec"].max()) for piece in pieces)
    assert all(high < low for (_, high), (low, _) in zip(spans, spans[1:], strict=False))
    # Non-numeric y: declination too.
    text = _group(400, 1)
    text["y"] = ["a"] * 400
    assert [len(piece) for piece in split_for_processes([text], 2, min_piece=100)] == [100] * 4
    # Fewer than two pieces' worth: the groups are returned as they are.
    groups = [_group(150, 1), _group(90, 2)]
    assert split_for_processes(groups, 4, min_piece=100) == groups


def test_groups_that_may_not_be_cut_stay_whole():
    groups = [_group(1000, 1), _group(1000, 2)]
    pieces = split_for_processes(
        groups, 2, min_piece=100, splittable=lambda group: group["detector"].iloc[0] == 2
    )
    assert pieces[0] is groups[0]
    assert len(pieces) > 2 and all((piece["detector"] == 2).all() for piece in pieces[1:])


def test_workers_of_a_script_without_a_main_guard_fail_with_a_hint(tmp_path):
    """Spawned workers import the main script again; without the
    ``if __name__ == "__main__":`` guard each dies at start, and the error
    says why (as the sequences' workers, which take every item).
    """
    import subprocess
    import sys

    script = tmp_path / "no_guard.py"
    script.write_text(
        "from lsst.analysis.ap.parallel import map_in_workers\n\n\n"
        "def start():\n    pass\n\n\n"
        "def work(item):\n    return item\n\n\n"
        "print(map_in_workers(start, (), work, list(range(8)), 3))\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    # Python's resource tracker (a process of its own) may warn, after the
    # error, of the semaphores of the workers the broken pool killed.
    lines = done.stderr.strip().splitlines()
    ours = [
        line
        for k, line in enumerate(lines)
        if "resource_tracker" not in line and not (k and "resource_tracker" in lines[k - 1])
    ]
    (last,) = ours[-1:]
    assert last.startswith("concurrent.futures.process.BrokenProcessPool: ")
    assert 'if __name__ == "__main__":' in last and "'spawn'" in last


def _die_in_the_middle_of_a_record(item: int) -> int:
    """Worker item: end as a worker stopped (Ctrl-C, the out-of-memory
    killer) while it sends a log record: the queue's write lock is held
    for good and the pipe may hold part of a record."""
    import signal

    if item == 1:
        (handler,) = [h for h in logging.getLogger().handlers if isinstance(h, logging.handlers.QueueHandler)]
        handler.queue._wlock.acquire()  # what a send holds (a fault no real run can be made to hit on time)
        # The start of a record (its length, then part of it), cut short.
        os.write(handler.queue._writer.fileno(), struct.pack("!i", 1000) + b"x" * 10)
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.5)
    return item


def test_a_worker_killed_while_it_sends_a_record_does_not_hang_the_run(monkeypatch):
    """The run ends with the worker's loss as its error, within seconds;
    waiting for the logs of a worker that will never finish its record
    would hang it, and the interpreter at exit."""
    from concurrent.futures.process import BrokenProcessPool

    from lsst.analysis.ap.logs import WorkerLogs

    monkeypatch.setattr(WorkerLogs, "STOP_WAIT", 1.0)

    outcome: list[BaseException] = []

    def run() -> None:
        try:
            map_in_workers(_nothing, (), _die_in_the_middle_of_a_record, [1, 2, 3, 4], 2)
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the run hung on the logs of the killed worker"
    assert time.monotonic() - started < 20
    assert outcome and isinstance(outcome[0], BrokenProcessPool), outcome
    wait_for_workers_end(30)
    assert not [t for t in threading.enumerate() if t.name == WORKERS_END_THREAD and t.is_alive()]


def _refuse_to_load() -> None:
    """Unpickling step that fails (in the process that reads the record)."""
    raise RuntimeError("cannot be rebuilt here")


class _Unloadable:
    """A value that pickles but cannot be unpickled."""

    def __reduce__(self):
        return (_refuse_to_load, ())


def _log_an_unreadable_record_then_another(item: int) -> int:
    """Worker item: a record this process cannot rebuild, then a plain one."""
    log = logging.getLogger("lsst.analysis.ap.tests.worker")
    log.warning("unreadable record", extra={"payload": _Unloadable()})
    log.warning("record after it of item %d", item)
    return item


def test_a_record_that_cannot_be_read_is_reported_and_later_ones_still_written(caplog):
    """One record the parent cannot rebuild is reported as lost; the
    worker's later records are still written (forwarding ended there)."""
    with caplog.at_level(logging.WARNING):
        results = map_in_workers(_nothing, (), _log_an_unreadable_record_then_another, [1], 1)
        wait_for_workers_end()
    assert results == [1]
    messages = [r.getMessage() for r in caplog.records]
    assert "record after it of item 1" in messages
    assert any(m.startswith("A log record of a worker was lost: cannot be rebuilt here") for m in messages)
    assert "unreadable record" not in messages
