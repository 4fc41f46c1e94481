"""The command's one-line errors for a missing repository or collection, and
its log options: ``--log-level``, ``--log-file``, one format in the main and
the worker processes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

PROG = "plotImageSubtractionCutouts"
LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) (\S+) ([\w.]+): (.*)$"
)


def _command(*args: object) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / PROG
    return subprocess.run([str(script), *map(str, args)], capture_output=True, text=True, timeout=600)


def _one_line_error(process: subprocess.CompletedProcess) -> str:
    assert process.returncode == 2, process.stderr
    assert "Traceback" not in process.stderr
    errors = [line for line in process.stderr.splitlines() if line.startswith(f"{PROG}: ")]
    assert len(errors) == 1, process.stderr
    return errors[0]


def test_missing_repository(tmp_path, demo_repo):
    missing = tmp_path / "no-such-repo"
    process = _command(missing, tmp_path / "out", "--sqlitefile", demo_repo.apdb_file)
    line = _one_line_error(process)
    assert line.startswith(f"{PROG}: cannot open Butler repository {missing}: ")
    assert "does not exist" in line
    assert not (tmp_path / "out").exists()


def test_missing_collection(tmp_path, demo_repo):
    process = _command(
        demo_repo.root,
        tmp_path / "out",
        "--sqlitefile",
        demo_repo.apdb_file,
        "--collections",
        demo_repo.collection,
        "no/such/run",
    )
    assert _one_line_error(process) == (
        f"{PROG}: collection(s) 'no/such/run' not found in Butler repository {demo_repo.root}."
    )
    assert not (tmp_path / "out").exists()


def test_bad_log_level_is_a_usage_error(tmp_path, demo_repo):
    process = _command(
        demo_repo.root, tmp_path / "out", "--sqlitefile", demo_repo.apdb_file, "--log-level", "LOUD"
    )
    assert process.returncode == 2
    assert "--log-level 'LOUD': unknown level 'LOUD'" in process.stderr.splitlines()[-1]


def test_the_stacks_own_levels_are_known():
    """VERBOSE and TRACE, the levels lsst.utils.logging adds, as butler
    and pipetask accept them (in a fresh process, where nothing has
    imported lsst.utils.logging yet)."""
    code = (
        "import logging\n"
        "from lsst.analysis.ap.logs import parse_log_levels\n"
        "print(parse_log_levels(['VERBOSE', 'lsst.analysis.ap=trace']))"
    )
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert process.stdout.strip() == (
        "{'lsst.plotImageSubtractionCutouts': 5, 'lsst.gatherCutoutManifest': 5, "
        "'lsst.plotDiaObjectSequences': 5, '': 15, 'lsst': 15, 'lsst.analysis.ap': 5}"
    )


def test_task_loggers_are_those_of_the_tasks(tmp_path):
    from lsst.analysis.ap.logs import TASK_LOGGERS
    from lsst.analysis.ap.plotImageSubtractionCutouts import (
        GatherCutoutManifestTask,
        PlotImageSubtractionCutoutsTask,
    )
    from lsst.analysis.ap.sequences import PlotDiaObjectSequencesTask

    tasks = [
        PlotImageSubtractionCutoutsTask(output_path=tmp_path),
        GatherCutoutManifestTask(),
        PlotDiaObjectSequencesTask(output_path=tmp_path),
    ]
    assert [task.log.name for task in tasks] == list(TASK_LOGGERS)


def test_package_log_level_applies_to_the_task(tmp_path, demo_repo):
    """``--log-level lsst.analysis.ap=DEBUG`` after ``WARNING``: the task's
    INFO lines show (its logger is not under lsst.analysis.ap)."""
    process = _command(
        demo_repo.root,
        tmp_path / "out",
        "--sqlitefile",
        demo_repo.apdb_file,
        "--collections",
        demo_repo.collection,
        "--limit",
        1,
        "--log-level",
        "WARNING",
        "--log-level",
        "lsst.analysis.ap=DEBUG",
    )
    assert process.returncode == 0, process.stderr
    loggers = {match.group(3) for match in map(LINE.match, process.stderr.splitlines()) if match}
    assert "lsst.plotImageSubtractionCutouts" in loggers, process.stderr
    assert "lsst.analysis.ap.cli" in loggers


WORKLOAD = 30
"""Copies of the demo's sources in `worker_run`: several seconds of drawing
for the command, longer than a worker takes to start."""


@pytest.fixture(scope="module")
def worker_run(demo_repo, demo_sources, tmp_path_factory):
    """Two drawing processes (the command and one worker) over a catalog
    with one visit that has no images, logged to a file at DEBUG for this
    package and WARNING elsewhere.  That visit × detector is the largest
    group, so the worker (which takes the largest group left once it has
    started) logs its failures; the demo's sources are repeated so that
    the command still has groups to draw when the worker starts."""
    root = tmp_path_factory.mktemp("logs")
    catalog = root / "sources.csv"
    repeated = pd.concat(
        [demo_sources.assign(diaSourceId=demo_sources["diaSourceId"] + k * 10**10) for k in range(WORKLOAD)],
        ignore_index=True,
    )
    largest = int(repeated.groupby(["visit", "detector"]).size().max())
    lost = pd.concat([demo_sources.iloc[:1]] * (largest + 1), ignore_index=True)
    lost["visit"] = 999_999
    lost["diaSourceId"] = lost["diaSourceId"] + 10**12 + np.arange(len(lost))
    pd.concat([repeated, lost]).to_csv(catalog, index=False)
    log_file = root / "logs" / "run.log"
    process = _command(
        demo_repo.root,
        root / "out",
        "--catalog",
        catalog,
        "--all",
        "--collections",
        demo_repo.collection,
        "-j",
        2,
        "--no-progress",
        "--log-level",
        "WARNING",
        "--log-level",
        "lsst.analysis.ap.cli=DEBUG",
        "--log-file",
        log_file,
        "-c",
        "whole_read_min_sources=1",
    )
    assert process.returncode == 1, process.stderr  # the sources of the missing visit fail
    return process, log_file.read_text().splitlines()


def test_log_file_has_every_line_of_standard_error(worker_run):
    process, lines = worker_run
    stderr = [line for line in process.stderr.splitlines() if LINE.match(line)]
    assert stderr
    assert lines == stderr


def test_log_levels_apply(worker_run):
    _, lines = worker_run
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), [line for line, match in zip(lines, parsed, strict=True) if not match]
    # WARNING by default: no INFO line from the task; the command's own
    # logger at DEBUG (its INFO line about the selection shows).
    for match in parsed:
        if match.group(1) in ("DEBUG", "INFO"):
            assert match.group(3).startswith("lsst.analysis.ap.cli"), match.group(0)


def test_worker_lines_have_the_same_format(worker_run):
    _, lines = worker_run
    parsed = [LINE.match(line) for line in lines]
    workers = [m for m in parsed if m and m.group(2) != "MainProcess"]
    assert workers, lines
    lost = [m for m in workers if "999999" in m.group(4)]
    assert lost, lines
    # One aggregate WARNING for the visit × detector, and an ERROR naming each failed id.
    assert {m.group(1) for m in lost} == {"WARNING", "ERROR"}
    assert any(m.group(1) == "ERROR" and "processing diaSourceId" in m.group(4) for m in lost)
    assert {m.group(2) for m in workers} <= {f"SpawnProcess-{n}" for n in range(1, 10)}


def test_alert_workers_log_through_the_command(tmp_path):
    """``plotAlertCutouts -j 2``: a packet that fails in a worker is logged
    in the command's format, on standard error and in ``--log-file``."""
    import shutil

    inputs = tmp_path / "in"
    inputs.mkdir()
    for k in range(3):
        shutil.copy(Path(__file__).parent / "data" / "ztf" / "472263571115115000.avro", inputs / f"{k}.avro")
    (inputs / "bad.avro").write_bytes(b"Obj\x01 damaged")
    log_file = tmp_path / "run.log"
    script = Path(sys.executable).parent / "plotAlertCutouts"
    process = subprocess.run(
        [
            str(script),
            str(inputs),
            str(tmp_path / "out"),
            "-j",
            "2",
            "-c",
            "sizes=[21]",
            "--log-file",
            str(log_file),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 1, process.stderr  # the damaged file and the repeated ids fail
    lines = log_file.read_text().splitlines()
    assert lines == [line for line in process.stderr.splitlines() if LINE.match(line)]
    errors = [m for m in map(LINE.match, lines) if m and m.group(1) == "ERROR"]
    assert any("bad.avro" in m.group(4) and m.group(2).startswith("SpawnProcess-") for m in errors), lines
    assert not [line for line in process.stderr.splitlines() if line.startswith("ERROR:")], process.stderr
