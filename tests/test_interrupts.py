"""Ctrl-C that Python drops: the SIGINT handler raises KeyboardInterrupt
wherever the main thread is, and inside a garbage-collection callback or a
``__del__`` method (SQLAlchemy has some) Python reports it as "Exception
ignored" and goes on.  The commands still stop at the next visit × detector
(or object), say so in one line and end with 130.

Where the signal lands is a matter of timing (it happened in CI, once in
some hundred runs): the tests raise it from a finalizer, where Python drops
it the same way.  The rest is the real commands on the demo repository.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from lsst.analysis.ap.core import DetectorCutouter
from lsst.analysis.ap.interrupts import EXIT_INTERRUPTED, interrupt_requested, interruptible
from lsst.analysis.ap.outputs.atomic import writer_tag
from lsst.analysis.ap.parallel import available_cores, wait_for_workers_end
from test_cli import FAST, cli, command, ctrl_c_while_drawing

INTERRUPTED = "interrupted. Every file written is complete; run the same command again to finish the run."


class _Finalizer:
    """An object whose finalizer receives the Ctrl-C."""

    def __del__(self) -> None:
        signal.raise_signal(signal.SIGINT)  # the handler runs here, before it returns


def drop_an_interrupt() -> None:
    """Ctrl-C while Python finalizes an object: the handler's
    KeyboardInterrupt is reported as ignored, and this returns."""
    _Finalizer()


@pytest.fixture(autouse=True)
def python_reports(monkeypatch):
    """Python's own report of an ignored exception (to standard error),
    rather than pytest's warning: what a command's user would see; and
    the SIGINT handler of the tests after each."""
    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)
    handler = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, handler)


def assert_ended_as_interrupted(prog: str, status: int, stderr: str) -> None:
    assert status == EXIT_INTERRUPTED, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert "Exception ignored" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == f"{prog}: {INTERRUPTED}"


def test_a_dropped_interrupt_ends_the_command_as_interrupted(capsys):
    """The run goes on after the dropped KeyboardInterrupt (here to its
    end): the command still ends with 130 and its one line, and Python's
    report of the ignored exception is not printed.  Afterwards the
    unraisable hook is the one from before and nothing is left
    interrupted; the SIGINT handler too, when called from Python (a
    notebook), while from the command line (no argv: the process ends)
    SIGINT stays ignored."""
    handler, hook = signal.getsignal(signal.SIGINT), sys.unraisablehook
    went_on = []

    @interruptible("someCommand")
    def main(argv: list[str] | None = None) -> int:
        drop_an_interrupt()
        went_on.append(argv)
        return 0

    for argv, handler_after in (([], handler), (None, signal.SIG_IGN)):
        status = main(argv)
        assert_ended_as_interrupted("someCommand", status, capsys.readouterr().err)
        assert signal.getsignal(signal.SIGINT) is handler_after
        assert sys.unraisablehook is hook
        assert not interrupt_requested()
        signal.signal(signal.SIGINT, handler)
    assert went_on == [[], None]  # the interrupt was dropped, as in the failure seen


def test_a_finished_run_leaves_sigint_to_the_caller_or_ignored():
    """Without Ctrl-C: the status is the run's; afterwards a call from
    Python has its SIGINT handler back, and one from the command line (no
    argv) ignores SIGINT while the process ends."""
    handler = signal.getsignal(signal.SIGINT)

    @interruptible("someCommand")
    def main(argv: list[str] | None = None) -> int:
        assert signal.getsignal(signal.SIGINT) is not handler  # the command's own
        return 1

    assert main([]) == 1
    assert signal.getsignal(signal.SIGINT) is handler
    assert main() == 1
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_other_errors_are_not_taken_for_interrupts():
    """Without a Ctrl-C, an error of the run is raised as it is, and other
    unraisable exceptions are reported as before."""
    reported = []

    @interruptible("someCommand")
    def main(argv: list[str] | None = None) -> int:
        sys.unraisablehook(_Unraisable(ValueError("in a finalizer")))
        raise RuntimeError("a bug")

    previous = sys.unraisablehook
    sys.unraisablehook = reported.append
    try:
        with pytest.raises(RuntimeError, match="a bug"):
            main()
    finally:
        sys.unraisablehook = previous
    assert [str(item.exc_value) for item in reported] == ["in a finalizer"]


class _Unraisable:
    """What Python gives ``sys.unraisablehook``."""

    def __init__(self, error: BaseException) -> None:
        self.exc_type, self.exc_value, self.exc_traceback = type(error), error, None
        self.err_msg, self.object = None, None


def _dead_writers_temporary(directory: Path) -> Path:
    """A temporary file as a writer stopped mid-write leaves it (named for a
    process of this host that has ended)."""
    ended = subprocess.Popen(["true"])
    ended.wait()
    tag = writer_tag().rsplit(".", 1)[0] + f".{ended.pid}"
    temporary = directory / f".1234.png.{tag}.0a1b2c3d.partial"
    temporary.write_bytes(b"\x89PNG half")
    return temporary


def _drop_an_interrupt_after_the_first_group(monkeypatch, leftover: Path | None = None) -> list[int]:
    """Ctrl-C dropped in this process once its first visit × detector is
    drawn (with, in ``leftover``, the temporary file of a worker the
    interrupt stopped mid-write); returns the number of sources of that
    group (filled in then).  Workers (spawned) draw as usual."""
    process = DetectorCutouter.process
    first: list[int] = []

    def process_then_interrupt(self, sources, readers):
        records = process(self, sources, readers)
        if not first:
            first.append(len(sources))
            if leftover is not None:
                _dead_writers_temporary(leftover)
            drop_an_interrupt()
        return records

    monkeypatch.setattr(DetectorCutouter, "process", process_then_interrupt)
    return first


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_dropped_interrupt_stops_the_run_at_the_next_visit_detector(
    demo_repo, tmp_path, monkeypatch, capsys, jobs
):
    """plotImageSubtractionCutouts: with one process, the run stops before
    the next visit × detector instead of drawing the others; with a worker
    (stopped by the interrupt), it ends as interrupted instead of failing
    with the broken pool (exit 1 and its traceback, as CI once saw), and
    the file a stopped worker was writing is not left behind.  The same
    command then finishes the run."""
    if jobs > available_cores():
        pytest.skip("njobs is capped at the cores: no worker on one core")
    from lsst.analysis.ap.cli import main

    output = tmp_path / "out"
    argv = [str(demo_repo.root), str(output), "--collections", demo_repo.collection]
    argv += ["--sqlitefile", str(demo_repo.apdb_file), "--all", "-j", str(jobs), *FAST]
    # With workers, one of them stopped mid-write: its temporary is removed.
    leftover = output / "images" if jobs > 1 else None
    first = _drop_an_interrupt_after_the_first_group(monkeypatch, leftover)
    status = main(argv)
    wait_for_workers_end()
    assert_ended_as_interrupted("plotImageSubtractionCutouts", status, capsys.readouterr().err)
    drawn = list(output.rglob("images/*/*.png"))
    assert len(first) == 1
    if jobs == 1:
        assert len(drawn) == first[0] < demo_repo.n_sources
    assert not [path for path in output.rglob("*") if ".partial" in path.name or path.name.startswith(".")]
    monkeypatch.undo()
    assert main(argv) == 0
    records = pd.read_csv(output / "records.csv")
    assert len(records) == demo_repo.n_sources
    assert set(records["status"]) <= {"written", "skipped"}
    assert len(list(output.rglob("images/*/*.png"))) == demo_repo.n_sources


def test_a_dropped_interrupt_stops_a_sequences_run_at_the_next_object(
    demo_repo, tmp_path, monkeypatch, capsys
):
    """plotDiaObjectSequences (no worker): the first object is drawn, the
    next ones are not; the same command then draws them."""
    from lsst.analysis.ap.sequences.cli import main
    from lsst.analysis.ap.sequences.task import PlotDiaObjectSequencesTask

    run_object = PlotDiaObjectSequencesTask._run_object
    calls: list[int] = []

    def run_then_interrupt(self, work, butler):
        result = run_object(self, work, butler)
        calls.append(work.object_id)
        if len(calls) == 1:
            drop_an_interrupt()
        return result

    monkeypatch.setattr(PlotDiaObjectSequencesTask, "_run_object", run_then_interrupt)
    output = tmp_path / "out"
    argv = [str(demo_repo.root), str(output), "--collections", demo_repo.collection]
    argv += ["--sqlitefile", str(demo_repo.apdb_file), "--most-epochs", "3", "-j", "0"]
    status = main(argv)
    assert_ended_as_interrupted("plotDiaObjectSequences", status, capsys.readouterr().err)
    assert len(calls) == 1
    assert not (output / "sequences" / "objects.csv").exists()
    monkeypatch.undo()
    assert main(argv) == 0
    objects = pd.read_csv(output / "sequences" / "objects.csv")
    assert len(objects) == 3 and calls[0] in set(objects["diaObjectId"])
    assert set(objects["status"]) == {"written"}


@pytest.mark.parametrize("prog", ["plotDiaObjectSequences", "plotAlertCutouts"])
def test_an_interrupt_dropped_before_the_workers_start_stops_the_run(
    demo_repo, tmp_path, monkeypatch, capsys, prog
):
    """Commands that draw in workers only: an interrupt dropped while this
    process prepares the run (the APDB query, the packets' ids) stops it
    before the workers draw anything, and Ctrl-C is answered again after."""
    if available_cores() < 1:
        pytest.skip("no core for a worker")
    output = tmp_path / "out"
    if prog == "plotAlertCutouts":
        from lsst.analysis.ap import standalone as module
        from lsst.analysis.ap.cli import alerts_main as main

        packets = tmp_path / "packets"
        packets.mkdir()
        avro = Path(__file__).parent / "data" / "ztf" / "472263571115115000.avro"
        for k in range(4):
            (packets / f"p{k}.avro").write_bytes(avro.read_bytes())
        argv = [str(packets), str(output), "-j", "1"]
    else:
        from lsst.analysis.ap.sequences import task as module
        from lsst.analysis.ap.sequences.cli import main

        argv = [str(demo_repo.root), str(output), "--collections", demo_repo.collection]
        argv += ["--sqlitefile", str(demo_repo.apdb_file), "--most-epochs", "3", "-j", "1"]
    usable_njobs = module.usable_njobs

    def interrupted_before_the_pool(njobs, log):
        drop_an_interrupt()
        return usable_njobs(njobs, log)

    monkeypatch.setattr(module, "usable_njobs", interrupted_before_the_pool)
    handler = signal.getsignal(signal.SIGINT)
    status = main(argv)
    wait_for_workers_end()
    assert_ended_as_interrupted(prog, status, capsys.readouterr().err)
    assert not list(output.rglob("*.png"))
    assert signal.getsignal(signal.SIGINT) is handler


@pytest.mark.skipif(available_cores() < 2, reason="njobs is capped at the cores: no worker on one core")
def test_a_second_ctrl_c_while_the_command_ends_is_ignored(demo_repo, tmp_path):
    """Ctrl-C, and Ctrl-C again as soon as the command says it was
    interrupted (its stopped workers' pools and the interpreter still
    ending): still one line, no traceback, status 130."""
    output = tmp_path / "out"
    argv = cli(demo_repo, output, "--sqlitefile", str(demo_repo.apdb_file), "--all", "-j", "2", *FAST)
    process = subprocess.Popen(
        argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True
    )
    stderr = b""
    try:
        ctrl_c_while_drawing(process, output)
        deadline = time.monotonic() + 120
        seen = False
        while time.monotonic() < deadline:
            if not select.select([process.stderr], [], [], 0.01)[0]:
                continue
            chunk = os.read(process.stderr.fileno(), 65536)
            if not chunk:
                break
            stderr += chunk
            if not seen and b"interrupted." in stderr:
                seen = True
                os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    text = stderr.decode()
    assert_ended_as_interrupted("plotImageSubtractionCutouts", process.returncode, text)


_AT_PANDAS_IMPORT = {
    # The KeyboardInterrupt goes up through the imports.
    "raised": "os.kill(os.getpid(), signal.SIGINT)",
    # Dropped in a finalizer; the import then fails, as one left half done
    # by an interrupt does.
    "dropped, then the import fails": (
        "type('F', (), {'__del__': lambda self: signal.raise_signal(signal.SIGINT)})()\n"
        "            raise ImportError('pandas half imported')"
    ),
    # Dropped in a finalizer; the imports go on.
    "dropped": "type('F', (), {'__del__': lambda self: signal.raise_signal(signal.SIGINT)})()",
}


@pytest.mark.parametrize("how", list(_AT_PANDAS_IMPORT))
def test_ctrl_c_while_the_command_starts_ends_it_as_interrupted(demo_repo, tmp_path, how):
    """Ctrl-C while the console script imports the command (here as it
    starts importing pandas): one line and 130, as during the run, nothing
    drawn, and no report of a dropped exception or of an import it broke."""
    if not Path(command()[0]).is_file():
        pytest.skip("the console script is not installed")
    output = tmp_path / "out"
    argv = cli(demo_repo, output, "--sqlitefile", str(demo_repo.apdb_file), "--all", *FAST)
    script = (
        "import os, signal, sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'pandas':\n"
        "            sys.meta_path.remove(self)\n"
        f"            {_AT_PANDAS_IMPORT[how]}\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "import runpy\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=300)
    assert_ended_as_interrupted("plotImageSubtractionCutouts", done.returncode, done.stderr)
    assert "ImportError" not in done.stderr
    assert not output.exists()


def test_ctrl_c_once_the_run_is_over_is_ignored(demo_repo, tmp_path):
    """Ctrl-C while the process ends after a finished run (here sent from
    an exit handler, while its workers' pools end): the exit status is the
    run's, and nothing is printed after its summary."""
    if not Path(command()[0]).is_file():
        pytest.skip("the console script is not installed")
    output = tmp_path / "out"
    argv = cli(demo_repo, output, "--sqlitefile", str(demo_repo.apdb_file), "--all", "-j", "2", *FAST)
    script = (
        "import atexit, os, runpy, signal, sys\n"
        "atexit.register(os.kill, os.getpid(), signal.SIGINT)\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr, done.stderr
    assert "Exception ignored" not in done.stderr, done.stderr
    assert "Cutouts: 82 written" in done.stderr.strip().splitlines()[-1]
