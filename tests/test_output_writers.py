"""Writers that cannot lose each other's records: concurrent runs and gather
steps into one output directory, resume that checks how an existing PNG
was drawn, string values that survive ``records.csv``, manifest URLs.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from lsst.analysis.ap.outputs.ledger import read_record_csv, run_token
from lsst.analysis.ap.outputs.manifests import join_url, write_manifests
from lsst.analysis.ap.outputs.store import OutputStore
from lsst.analysis.ap.plotImageSubtractionCutouts import (
    PlotImageSubtractionCutoutsConfig,
    PlotImageSubtractionCutoutsTask,
)
from test_cli import expected_status

URL_ROOT = "https://example.org/cutouts"


def make_task(output, **overrides) -> PlotImageSubtractionCutoutsTask:
    config = PlotImageSubtractionCutoutsConfig()
    config.whole_read_min_sources = 1
    config.url_root = URL_ROOT
    for name, value in overrides.items():
        setattr(config, name, value)
    return PlotImageSubtractionCutoutsTask(config=config, output_path=output)


def read_records(output: Path) -> pd.DataFrame:
    return read_record_csv((output / "records.csv").read_bytes(), "records.csv")


def cli_command(demo_repo, output, *args) -> list[str]:
    script = Path(sys.executable).parent / "plotImageSubtractionCutouts"
    return [str(script), str(demo_repo.root), str(output), "--collections", demo_repo.collection, *args]


@pytest.fixture(scope="module")
def butler(demo_repo):
    with demo_repo.butler() as butler:
        yield butler


# Concurrent writers --------------------------------------------------------------------------------


def test_concurrent_runs_into_one_directory_keep_every_row(tmp_path, demo_repo, demo_sources):
    """Three commands over disjoint thirds of a catalog, at once, into one
    directory: every source is in records.csv, every PNG in the manifests.
    """
    output = tmp_path / "shared"
    ids = demo_sources["diaSourceId"].to_numpy()
    processes = []
    for part in range(3):
        catalog = tmp_path / f"part{part}.parquet"
        demo_sources[ids % 3 == part].to_parquet(catalog)
        argv = cli_command(
            demo_repo, output, "--catalog", str(catalog), "--all", "--url-root", URL_ROOT, "-c",
            "whole_read_min_sources=1", "--no-progress",
        )  # fmt: skip
        processes.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for process in processes:
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == expected_status(stdout), stderr
    records = read_records(output)
    assert sorted(records["diaSourceId"]) == sorted(ids)
    written = set(records.loc[records["status"] == "written", "diaSourceId"])
    pngs = {int(p.stem) for p in (output / "images").rglob("*.png")}
    assert written == pngs
    manifest = pd.read_csv(output / "manifest.csv")
    assert set(manifest["external_id"]) == pngs
    panoptes = pd.read_csv(output / "images" / "manifest.csv")
    assert set(panoptes["#diaSourceId"]) == pngs
    failures = pd.read_csv(output / "failures.csv")
    assert set(failures["diaSourceId"]) == set(ids) - pngs
    assert not [p for p in output.rglob("*.partial")]


def _gather_like_writer(output: str, rows: list[dict], start: float, rounds: int) -> None:
    """One writer finishing a run: its records, then the views; repeated."""
    while time.time() < start:
        time.sleep(0.001)
    for index in range(rounds):
        frame = pd.DataFrame([{**row, "diaSourceId": row["diaSourceId"] + index} for row in rows])
        write_manifests(frame, output, URL_ROOT, token=run_token())


def _failed_rows(first_id: int, count: int, output: Path) -> list[dict]:
    return [
        {
            "diaSourceId": first_id + 1000 * i,
            "instrument": "DemoCam",
            "visit": 1001,
            "detector": 0,
            "band": "r",
            "ra": 10.0,
            "dec": -5.0,
            "path": "",
            "status": "failed",
            "reason_code": "missing_exposure",
            "reason": "no image",
            "output_path": str(output),
            "url_root": URL_ROOT,
        }
        for i in range(count)
    ]


def test_simultaneous_manifest_writers_lose_no_record(tmp_path):
    """Six processes finishing at the same instant, three times each (as
    concurrent gather steps do): the last views hold every writer's rows.
    """
    output = tmp_path / "out"
    output.mkdir()
    context = multiprocessing.get_context("spawn")
    start = time.time() + 8.0
    writers = [
        context.Process(
            target=_gather_like_writer,
            args=(str(output), _failed_rows(10**6 * (w + 1), 20, output), start, 3),
        )
        for w in range(6)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=300)
        assert writer.exitcode == 0
    expected = {10**6 * (w + 1) + 1000 * i + r for w in range(6) for i in range(20) for r in range(3)}
    assert set(read_records(output)["diaSourceId"]) == expected
    assert set(pd.read_csv(output / "failures.csv")["diaSourceId"]) == expected
    assert pd.read_json(output / "summary.json", typ="series")["failed"] == len(expected)


def test_two_gather_steps_into_one_directory(tmp_path, butler, demo_sources):
    """Two pipelines' gather steps, each recording a visit × detector whose
    quantum did not run, into the directory of one run: both are listed.
    """
    from lsst.analysis.ap.plotImageSubtractionCutouts import GatherCutoutManifestTask

    output = tmp_path / "out"
    visit_1 = demo_sources[demo_sources["visit"] == 1001]
    result = make_task(output).run(visit_1, butler)
    records = [result.records]
    context = multiprocessing.get_context("spawn")
    start = time.time() + 6.0
    gathers = []
    for visit in (1002, 1003):
        sources = demo_sources[(demo_sources["visit"] == visit) & (demo_sources["detector"] == 0)]
        unhandled = [(("DemoCam", visit, 0), sources)]
        gathers.append(context.Process(target=_run_gather, args=(records, unhandled, start)))
    for gather in gathers:
        gather.start()
    for gather in gathers:
        gather.join(timeout=300)
        assert gather.exitcode == 0
    expected = set(visit_1["diaSourceId"]) | set(
        demo_sources.loc[
            demo_sources["visit"].isin([1002, 1003]) & (demo_sources["detector"] == 0), "diaSourceId"
        ]
    )
    assert set(read_records(output)["diaSourceId"]) == expected
    failures = pd.read_csv(output / "failures.csv")
    assert {1002, 1003} <= set(failures["visit"])
    assert GatherCutoutManifestTask  # the class the processes ran


def _run_gather(records, unhandled, start) -> None:
    from lsst.analysis.ap.plotImageSubtractionCutouts import GatherCutoutManifestTask

    while time.time() < start:
        time.sleep(0.001)
    GatherCutoutManifestTask().run(records, unhandled)


# Resume --------------------------------------------------------------------------------------------


def test_resume_redraws_pngs_of_another_display_configuration(tmp_path, butler, demo_sources, caplog):
    output = tmp_path / "out"
    sources = demo_sources[demo_sources["visit"] == 1001]
    first = make_task(output, sizes=[30]).run(sources, butler)
    assert first.written and not first.skipped
    again = make_task(output, sizes=[30]).run(sources, butler)
    assert sorted(again.skipped) == sorted(first.written) and not again.written

    png = next((output / "images").rglob("*.png"))
    with Image.open(png) as image:
        small = image.size
    caplog.set_level(logging.WARNING)
    bigger = make_task(output, sizes=[30, 64]).run(sources, butler)
    assert set(first.written) <= set(bigger.written)
    assert not bigger.skipped
    assert "drawn with another display configuration are redrawn" in caplog.text
    sizes = set()
    for path in (output / "images").rglob("*.png"):
        with Image.open(path) as image:
            sizes.add(image.size)
    assert len(sizes) == 1 and sizes != {small}

    # A colormap is a display change too; where files go is not.
    assert not make_task(output, sizes=[30, 64], chunk_size=10000).run(sources, butler).written
    assert make_task(output, sizes=[30, 64], colormap="viridis").run(sources, butler).written


def test_manifests_mixing_display_configurations_and_a_removed_manifest_are_warned_of(
    tmp_path, butler, demo_sources, caplog
):
    output = tmp_path / "out"
    sources = demo_sources[demo_sources["visit"] == 1001]
    half = len(sources) // 2
    caplog.set_level(logging.WARNING)

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "lsst.analysis.ap.outputs.manifests"]

    make_task(output, sizes=[30]).run(sources.iloc[:half], butler)
    assert not warnings()
    make_task(output, sizes=[64]).run(sources.iloc[half:], butler)
    mixed = warnings()
    assert len(mixed) == 1, caplog.text
    assert mixed[0].startswith(
        f"{output / 'manifest.csv'} and {output / 'images' / 'manifest.csv'} list PNGs drawn with 2 "
        "different display configurations ("
    )
    assert len(pd.read_csv(output / "manifest.csv")) == len(sources)

    caplog.clear()
    make_task(output, sizes=[64], url_root=None).run(sources, butler)  # every PNG one configuration again
    assert warnings() == [
        f"Removed {output / 'manifest.csv'}, written by an earlier run: this run has no url_root, so it "
        "writes no Zooniverse manifest (set url_root, --url-root, to write one)."
    ]
    assert not (output / "manifest.csv").exists()


def test_garbage_at_a_png_path_is_redrawn_not_skipped(tmp_path, butler, demo_sources):
    output = tmp_path / "out"
    sources = demo_sources[demo_sources["visit"] == 1002]
    first = make_task(output).run(sources, butler)
    victim, truncated = sorted(first.written)[:2]
    paths = {int(p.stem): p for p in (output / "images").rglob("*.png")}
    good = paths[victim].read_bytes()
    paths[victim].write_bytes(b"not a png at all")
    paths[truncated].write_bytes(paths[truncated].read_bytes()[:100])
    again = make_task(output).run(sources, butler)
    assert sorted(again.written) == [victim, truncated]
    assert paths[victim].read_bytes() == good
    manifest = pd.read_csv(output / "manifest.csv")
    assert victim in set(manifest["external_id"])
    records = read_records(output).set_index("diaSourceId")
    assert records.loc[victim, "status"] == "written"


def test_png_without_a_record_is_redrawn(tmp_path, butler, demo_sources):
    """A PNG put there by something else (or by a run killed before it
    recorded it) is not trusted.
    """
    output = tmp_path / "out"
    sources = demo_sources[demo_sources["visit"] == 1003]
    first = make_task(output).run(sources, butler)
    target = sorted(first.written)[0]
    other = output / "elsewhere"
    make_task(other, colormap="viridis").run(sources[sources["diaSourceId"] == target], butler)
    foreign = next((other / "images").rglob(f"{target}.png"))
    ours = next((output / "images").rglob(f"{target}.png"))
    original = ours.read_bytes()
    ours.write_bytes(foreign.read_bytes())
    assert make_task(output).run(sources, butler).written == [target]
    assert ours.read_bytes() == original


# String values -------------------------------------------------------------------------------------


def test_na_like_strings_survive_records_round_trips(tmp_path, butler, demo_sources):
    output = tmp_path / "out"
    sources = demo_sources[demo_sources["visit"] == 1001].copy()
    tokens = ["NA", "None", "nan", "null", "N/A", "NaN", ""]
    sources["band"] = [tokens[i % len(tokens)] for i in range(len(sources))]
    expected = dict(zip(sources["diaSourceId"], sources["band"], strict=True))
    make_task(output).run(sources.iloc[: len(sources) // 2], butler)
    make_task(output).run(sources.iloc[len(sources) // 2 :], butler)
    make_task(output).run(sources, butler)  # resume: every row read back from the record files
    records = read_records(output)
    assert dict(zip(records["diaSourceId"], records["band"], strict=True)) == expected
    manifest = pd.read_csv(output / "manifest.csv", dtype=str, keep_default_na=False)
    for dia_source_id, band in zip(manifest["external_id"], manifest["metadata:band"], strict=True):
        assert band == expected[int(dia_source_id)]


# URLs ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("root", "expected"),
    [
        ("https://example.org/cutouts", "https://example.org/cutouts/images/100/123.png"),
        ("https://example.org/cutouts/", "https://example.org/cutouts/images/100/123.png"),
        (
            "https://store.example.org/c?sig=abc&x=1",
            "https://store.example.org/c/images/100/123.png?sig=abc&x=1",
        ),
        ("https://example.org/my cutouts/ü", "https://example.org/my%20cutouts/%C3%BC/images/100/123.png"),
        ("https://example.org/a%20b/", "https://example.org/a%20b/images/100/123.png"),
    ],
)
def test_manifest_urls(root, expected):
    assert join_url(root, "images/100/123.png") == expected


def test_url_path_parts_are_percent_encoded():
    assert join_url("https://h/r", "images/a b/#1?.png") == "https://h/r/images/a%20b/%231%3F.png"


# Where outputs go ----------------------------------------------------------------------------------


def test_relative_output_path_is_absolute_in_the_validated_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = PlotImageSubtractionCutoutsConfig()
    config.output_path = "cutouts/run1"
    config.validate()
    assert config.output_path == str(tmp_path / "cutouts" / "run1")
    config.freeze()
    monkeypatch.chdir("/")
    config.validate()  # a frozen, resolved configuration validates again (in each job)
    assert config.output_path == str(tmp_path / "cutouts" / "run1")


def test_file_uri_output(tmp_path, butler, demo_sources):
    sources = demo_sources[demo_sources["visit"] == 1002]
    result = make_task(f"file://{tmp_path}/viauri").run(sources, butler)
    assert result.written
    assert len(list((tmp_path / "viauri" / "images").rglob("*.png"))) == len(result.written)
    manifest = pd.read_csv(tmp_path / "viauri" / "manifest.csv")
    assert len(manifest) == len(result.written)
    assert set(read_records(tmp_path / "viauri")["output_path"]) == {str(tmp_path / "viauri")}
    assert os.path.exists(tmp_path / "viauri" / "summary.json")


def test_interrupted_detector_keeps_its_checkpointed_pngs(tmp_path, butler, demo_sources, monkeypatch):
    """A run stopped in the middle of a visit × detector (here: the store
    fails on the tenth PNG) keeps, on resume, the PNGs recorded at the last
    checkpoint, and redraws only the rest.
    """
    from lsst.analysis.ap import core
    from lsst.analysis.ap.outputs.store import OutputError

    output = tmp_path / "out"
    sources = demo_sources[(demo_sources["visit"] == 1001) & (demo_sources["detector"] == 0)]
    monkeypatch.setattr(core, "RECORD_CHECKPOINT_SOURCES", 4)
    real_write = OutputStore.write
    pngs_written = []

    def failing_write(self, relpath, data):
        if relpath.endswith(".png"):
            if len(pngs_written) == 9:
                raise OutputError(f"cannot write {relpath}: no space left on the device")
            pngs_written.append(relpath)
        return real_write(self, relpath, data)

    monkeypatch.setattr(OutputStore, "write", failing_write)
    with pytest.raises(OutputError, match="no space left"):
        make_task(output).run(sources, butler)
    monkeypatch.setattr(OutputStore, "write", real_write)
    parts = sorted((output / "records").rglob("*.csv"))
    checkpointed = pd.concat([read_record_csv(part.read_bytes(), part.name) for part in parts])
    assert 4 <= (checkpointed["status"] == "written").sum() <= 9
    # Each checkpoint wrote only the 4 records it added, to a file of its own.
    assert checkpointed["diaSourceId"].is_unique
    assert [len(read_record_csv(part.read_bytes(), part.name)) for part in parts] == [4] * len(parts)
    resumed = make_task(output).run(sources, butler)
    assert len(resumed.skipped) == (checkpointed["status"] == "written").sum()
    assert len(resumed.written) + len(resumed.skipped) + len(resumed.failed) == len(sources)


def test_a_very_long_instrument_name_has_its_records_written(tmp_path, butler, demo_sources):
    """A 300-character instrument name (beyond the file system's 255 bytes
    a name): its sources are recorded (failed: no such instrument in the
    repository), apart from those of another long name sharing its start.
    """
    output = tmp_path / "out"
    sources = demo_sources[demo_sources["visit"] == 1001].iloc[:4].copy()
    names = ["Camera-" + "x" * 292 + "-1", "Camera-" + "x" * 292 + "-2"]
    sources["instrument"] = [names[i % 2] for i in range(len(sources))]
    make_task(output).run(sources, butler)
    records = read_records(output)
    assert dict(zip(records["diaSourceId"], records["instrument"], strict=True)) == dict(
        zip(sources["diaSourceId"], sources["instrument"], strict=True)
    )
    assert set(records["status"]) == {"failed"}
    directories = [p for p in (output / "records").iterdir() if p.name != "_run"]
    assert len(directories) == 2
    assert all(len(p.name.encode()) <= 255 and p.name.startswith("Camera-xxx") for p in directories)


@pytest.mark.parametrize("name", ["..", "."])
def test_an_instrument_named_dot_or_dot_dot_keeps_its_records_under_records(
    tmp_path, butler, demo_sources, name
):
    output = tmp_path / "out"
    sources = demo_sources[demo_sources["visit"] == 1001].iloc[:2].assign(instrument=name)
    make_task(output).run(sources, butler)
    records = read_records(output)
    assert list(records["instrument"]) == [name, name] and set(records["status"]) == {"failed"}
    assert sorted(p.name for p in output.iterdir() if p.is_dir()) == ["records", "vetting"]
    assert (output / "records" / name.replace(".", "%2E")).is_dir()


def test_damaged_record_files_of_an_earlier_run_are_named_when_skipped(
    tmp_path, butler, demo_sources, caplog
):
    output = tmp_path / "out"
    sources = demo_sources[demo_sources["visit"] == 1001]
    make_task(output).run(sources, butler)
    truncated, garbage = sorted((output / "records").rglob("*.csv"))[:2]
    truncated.write_bytes(truncated.read_bytes()[:-40])
    garbage.write_bytes(bytes(range(256)) * 4 + b"\n")  # not truncated: not CSV

    caplog.set_level(logging.WARNING)
    make_task(output).run(sources, butler)
    skipped = [
        r.getMessage() for r in caplog.records if r.getMessage().endswith("the record file is skipped.")
    ]
    assert f"{truncated} is truncated (its last line is incomplete); the record file is skipped." in skipped
    assert any(message.startswith(f"{garbage} is not a readable record table (") for message in skipped), (
        skipped
    )
    assert set(read_records(output)["diaSourceId"]) == set(sources["diaSourceId"])


def test_a_table_lock_waits_for_its_holder_and_ends_with_it_when_killed(tmp_path):
    """`OutputStore.locked`: a second holder waits while a process holds
    the lock, and gets it once that process is killed (SIGKILL: no code of
    its own runs to release it)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from lsst.analysis.ap.outputs.store import OutputStore\n"
            "with OutputStore(sys.argv[1]).locked('sequences/.tables.lock'):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(600)\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        store = OutputStore(tmp_path)
        taken = []

        def take() -> None:
            with store.locked("sequences/.tables.lock"):
                taken.append(time.monotonic())

        waiter = threading.Thread(target=take, daemon=True)
        waiter.start()
        waiter.join(timeout=1.0)
        assert taken == [], "the lock was taken while another process held it"
        killed = time.monotonic()
        holder.send_signal(signal.SIGKILL)
        waiter.join(timeout=30)
        assert taken and taken[0] >= killed
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_file_this_run_may_not_write_is_locked_read_only(tmp_path):
    """The lock file of a shared directory belongs to the user whose run
    created it; another user's run (who may still replace the tables)
    locks it through a read-only descriptor rather than fail.  Here the
    file is made immutable (``chattr +i``), which refuses writing to
    anyone, root too."""
    store = OutputStore(tmp_path)
    with store.locked("sequences/.tables.lock"):
        pass
    lock = tmp_path / "sequences" / ".tables.lock"
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(lock)]).returncode:
        pytest.skip("chattr +i is not available on this file system")
    try:
        with pytest.raises(PermissionError):
            os.open(lock, os.O_RDWR)
        with store.locked("sequences/.tables.lock"):
            held = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import fcntl, os, sys\n"
                    "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
                    "try:\n"
                    "    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
                    "except BlockingIOError:\n"
                    "    print('held by another')\n",
                    str(lock),
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
        assert held.stdout == "held by another\n", held.stderr
    finally:
        subprocess.run(["chattr", "-i", str(lock)], check=True)
