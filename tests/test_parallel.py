"""Work shared between this process and spawned workers (`map_in_workers`
with ``in_parent``), as ``run(..., njobs=N)`` shares visit × detector groups.
"""

import os
import re
import threading
import time
from pathlib import Path

import pytest

from lsst.analysis.ap.parallel import map_in_workers


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


def _mark(item: tuple[int, str]) -> int:
    """Worker item: write the marker file ``item[1]``, return ``item[0]``."""
    number, marker = item
    Path(marker).write_text("done")
    return number


def test_the_workers_ending_before_this_process_does(tmp_path):
    """The worker draws its item and the pool ends while this process
    still draws its own: the run ends with both results (the feeder's end
    message arriving between this process's items is not lost)."""
    marker = tmp_path / "worker-done"

    def here(item: tuple[int, str]) -> int:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the pool shuts down and the feeder reports its end
        return item[0]

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
