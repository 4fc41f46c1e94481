"""Output paths and atomic writes."""

from __future__ import annotations

import os
import subprocess
import sys

from lsst.analysis.ap.outputs.atomic import atomic_write_bytes, remove_stale_temporaries
from lsst.analysis.ap.outputs.paths import OutputLayout


def test_chunked_and_flat_paths(tmp_path):
    assert OutputLayout(tmp_path, 10000).image_relpath(1001012345) == "images/1001010000/1001012345.png"
    assert OutputLayout(tmp_path, None).image_relpath(1001012345) == "images/1001012345.png"
    assert OutputLayout(tmp_path, 100).numpy_relpath(1234, "diff", 30) == "numpy/1200/1234_diff_30.npy"


def test_atomic_write_leaves_only_the_file(tmp_path):
    target = tmp_path / "images" / "0" / "1.png"
    atomic_write_bytes(target, b"png bytes")
    assert target.read_bytes() == b"png bytes"
    assert [p.name for p in target.parent.iterdir()] == ["1.png"]
    assert target.stat().st_mode & 0o044  # readable by a web server running as another user


def test_stale_temporaries_of_dead_writers_only_are_removed(tmp_path):
    images = tmp_path / "images" / "0"
    images.mkdir(parents=True)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)
    stale = images / f".1.png.{dead_pid}.abcd.partial"
    alive = images / f".2.png.{os.getpid()}.efgh.partial"
    unnamed = images / ".3.png.xyz.partial"
    for path in (stale, alive, unnamed):
        path.write_bytes(b"partial")
    assert remove_stale_temporaries(tmp_path) == 2
    assert sorted(p.name for p in images.iterdir()) == [alive.name]
