"""Work shared between this process and spawned workers (`map_in_workers`
with ``in_parent``), as ``run(..., njobs=N)`` shares visit × detector groups.
"""

import os
import time

import pytest

from lsst.analysis.ap.parallel import map_in_workers


def _nothing() -> None:
    """Worker initializer."""


def _slow_square(item: int) -> tuple[int, int, int]:
    """``(item, item², pid)`` after a pause (a group being drawn)."""
    time.sleep(0.2)
    if item < 0:
        raise ValueError(f"item {item} is negative")
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
    items = [-1, *range(1, 30)] if where == "worker" else [*range(1, 30), -1]
    done = []

    def here(item):
        result = _slow_square(item)
        done.append(item)
        return result

    with pytest.raises(ValueError, match="item -1 is negative"):
        map_in_workers(_nothing, (), _slow_square, items, 2, in_parent=here)
    # Far fewer than the 29 good items were drawn here: the rest were
    # dropped when the error came.
    assert len(done) < 20
