"""Output paths, atomic writes and the sweep of temporaries."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from lsst.analysis.ap.outputs.atomic import atomic_write_bytes, writer_tag
from lsst.analysis.ap.outputs.paths import OutputLayout
from lsst.analysis.ap.outputs.store import OutputStore


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


def test_failed_atomic_write_leaves_no_temporary_and_keeps_the_old_file(tmp_path):
    images = tmp_path / "images"
    atomic_write_bytes(images / "1.png", b"first")
    # A directory in the way of the rename: the write fails after the data
    # went to the temporary.
    (images / "2.png").mkdir()
    with pytest.raises(IsADirectoryError):
        atomic_write_bytes(images / "2.png", b"second")
    assert sorted(p.name for p in images.iterdir()) == ["1.png", "2.png"]
    assert (images / "1.png").read_bytes() == b"first"
    atomic_write_bytes(images / "1.png", b"replaced" * 10000)
    assert (images / "1.png").read_bytes() == b"replaced" * 10000
    assert sorted(p.name for p in images.iterdir()) == ["1.png", "2.png"]


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


def test_sweep_removes_temporaries_of_dead_local_writers_and_old_ones_only(tmp_path):
    images = tmp_path / "images" / "0"
    images.mkdir(parents=True)
    host, namespace, pid = writer_tag().split(".")
    dead = _dead_pid()
    names = {
        # This host, this PID namespace, writer gone: stale.
        "dead_here": f".1.png.{host}.{namespace}.{dead}.abcd.partial",
        # This process: alive.
        "alive_here": f".2.png.{host}.{namespace}.{pid}.efgh.partial",
        # Another host (same PID number as the dead one): its writer may be alive.
        "other_host": f".3.png.node-b17.{namespace}.{dead}.ijkl.partial",
        # Another PID namespace on this host (a container): the PID means nothing here.
        "other_namespace": f".4.png.{host}.4026531999.{dead}.mnop.partial",
        # A name of unknown form, recent: kept until it is old.
        "unnamed": ".5.png.xyz.partial",
    }
    for name in names.values():
        (images / name).write_bytes(b"partial")
    old = images / f".6.png.node-c2.{namespace}.12.qrst.partial"
    old.write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))

    assert OutputStore(tmp_path).sweep_temporaries(("images",)) == 2
    left = sorted(p.name for p in images.iterdir())
    assert left == sorted(names[k] for k in ("alive_here", "other_host", "other_namespace", "unnamed"))


def test_relative_output_location_is_resolved_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = OutputStore("out/run1")
    assert store.location == str(tmp_path / "out" / "run1")
    monkeypatch.chdir("/")
    store.write("images/1.png", b"x")
    assert (tmp_path / "out" / "run1" / "images" / "1.png").read_bytes() == b"x"


def test_uri_locations_are_kept():
    assert OutputStore("s3://bucket/run1").location == "s3://bucket/run1/"
    assert OutputStore("file:///data/run1").location == "/data/run1"
    assert not OutputStore("s3://bucket/run1").is_local
