"""Outputs on an S3-compatible object store started by the test (moto's
server on localhost), and storage faults: a read-only directory, a full
disk (a small tmpfs), ``records.csv`` a symlink, a kill while the views are
written.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from lsst.analysis.ap.outputs.ledger import read_record_csv
from lsst.analysis.ap.plotImageSubtractionCutouts import (
    PlotImageSubtractionCutoutsConfig,
    PlotImageSubtractionCutoutsTask,
)
from s3_server import s3_bucket, s3_endpoint, s3_get, s3_keys  # noqa: F401 (fixtures)
from test_cli import expected_status

URL_ROOT = "https://example.org/cutouts"


def make_task(output, **overrides) -> PlotImageSubtractionCutoutsTask:
    config = PlotImageSubtractionCutoutsConfig()
    config.whole_read_min_sources = 1
    config.url_root = URL_ROOT
    for name, value in overrides.items():
        setattr(config, name, value)
    return PlotImageSubtractionCutoutsTask(config=config, output_path=output)


def cli_command(demo_repo, output, *args) -> list[str]:
    script = Path(sys.executable).parent / "plotImageSubtractionCutouts"
    return [
        str(script), str(demo_repo.root), str(output), "--collections", demo_repo.collection,
        "-c", "whole_read_min_sources=1", "--no-progress", "--url-root", URL_ROOT, *args,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def butler(demo_repo):
    with demo_repo.butler() as butler:
        yield butler


# S3 ------------------------------------------------------------------------------------------------


def test_s3_output_from_the_command(tmp_path, demo_repo, s3_endpoint, s3_bucket):  # noqa: F811
    catalog = tmp_path / "sources.parquet"
    sources = demo_repo.sources()
    sources[sources["visit"] == 1001].to_parquet(catalog)
    uri = f"s3://{s3_bucket}/runs/run1"
    done = subprocess.run(
        cli_command(demo_repo, uri, "--catalog", str(catalog), "--all", "-j", "2"),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == expected_status(done.stdout), done.stderr
    # Nothing written to a local directory named after the URI.
    assert not (tmp_path / "s3:").exists()
    keys = s3_keys(s3_endpoint, s3_bucket, "runs/run1/")
    pngs = [k for k in keys if k.endswith(".png")]
    assert pngs and all(k.startswith("runs/run1/images/1001") for k in pngs)
    with Image.open(io.BytesIO(s3_get(s3_endpoint, s3_bucket, pngs[0]))) as image:
        image.load()
    manifest = pd.read_csv(io.BytesIO(s3_get(s3_endpoint, s3_bucket, "runs/run1/manifest.csv")))
    assert sorted(f"runs/run1/{u.removeprefix(URL_ROOT + '/')}" for u in manifest["location:1"]) == pngs
    records = read_record_csv(s3_get(s3_endpoint, s3_bucket, "runs/run1/records.csv"), "records.csv")
    assert sorted(records["diaSourceId"]) == sorted(sources.loc[sources["visit"] == 1001, "diaSourceId"])
    assert set(records["output_path"]) == {uri + "/"}
    assert not [k for k in keys if k.endswith(".partial")]
    assert f"Output: {uri}/" in done.stdout


def test_s3_resume_and_second_run(demo_sources, butler, s3_endpoint, s3_bucket):  # noqa: F811
    uri = f"s3://{s3_bucket}/resume"
    first_half = demo_sources[demo_sources["visit"] == 1002]
    first = make_task(uri).run(first_half, butler)
    assert first.written
    again = make_task(uri).run(demo_sources[demo_sources["visit"].isin([1002, 1003])], butler)
    assert sorted(again.skipped) == sorted(first.written)
    keys = s3_keys(s3_endpoint, s3_bucket, "resume/")
    manifest = pd.read_csv(io.BytesIO(s3_get(s3_endpoint, s3_bucket, "resume/manifest.csv")))
    assert set(manifest["external_id"]) == set(again.written) | set(again.skipped)
    assert len([k for k in keys if k.endswith(".png")]) == len(manifest)


# Faults --------------------------------------------------------------------------------------------


@pytest.fixture()
def tmpfs(tmp_path):
    """Mount a small tmpfs (root only); yields a function to mount it."""
    mounted = []

    def mount(size: str, read_only: bool = False) -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_read_only_output_directory_fails_before_drawing(tmp_path, demo_repo, tmpfs):
    read_only = tmpfs("1m", read_only=True)
    done = subprocess.run(
        cli_command(demo_repo, read_only / "out", "--sqlitefile", str(demo_repo.apdb_file), "--all"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 4, done.stderr  # the outputs could not be written
    assert "Traceback" not in done.stderr
    error_lines = [
        line for line in done.stderr.splitlines() if line.startswith("plotImageSubtractionCutouts:")
    ]
    assert len(error_lines) == 1, done.stderr
    assert str(read_only / "out") in error_lines[0] and "not writable" in error_lines[0]
    assert "Drawing" not in done.stderr  # stopped before any source was drawn


def test_full_disk_stops_cleanly_and_a_rerun_completes(tmp_path, demo_repo, tmpfs):
    disk = tmpfs("600k")
    output = disk / "out"
    argv = cli_command(demo_repo, output, "--sqlitefile", str(demo_repo.apdb_file), "--all")
    full = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert full.returncode == 4, full.stdout + full.stderr  # the outputs could not be written
    assert "Traceback" not in full.stderr
    assert "no space left on the device" in full.stderr
    assert "run the same command again" in full.stderr
    # Nothing partial: no temporaries, every PNG and record file whole.
    assert not [p for p in output.rglob("*.partial")]
    drawn = list((output / "images").rglob("*.png"))
    assert drawn
    for path in drawn:
        with Image.open(path) as image:
            image.load()
    for part in (output / "records").rglob("*.csv"):
        read_record_csv(part.read_bytes(), str(part))

    subprocess.run(["mount", "-o", "remount,size=200m", str(disk)], check=True)
    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == expected_status(rerun.stdout), rerun.stderr
    records = read_record_csv((output / "records.csv").read_bytes(), "records.csv")
    assert len(records) == demo_repo.n_sources
    written = {int(p.stem) for p in (output / "images").rglob("*.png")}
    assert set(pd.read_csv(output / "manifest.csv")["external_id"]) == written
    assert set(records.loc[records["status"] != "failed", "diaSourceId"]) == written


def test_records_csv_symlink_is_replaced_not_followed(tmp_path, butler, demo_sources):
    output = tmp_path / "out"
    output.mkdir()
    elsewhere = tmp_path / "precious.csv"
    elsewhere.write_text("something,else\n1,2\n")
    (output / "records.csv").symlink_to(elsewhere)
    sources = demo_sources[demo_sources["visit"] == 1003]
    result = make_task(output).run(sources, butler)
    assert result.written
    assert elsewhere.read_text() == "something,else\n1,2\n"
    assert not (output / "records.csv").is_symlink()
    records = read_record_csv((output / "records.csv").read_bytes(), "records.csv")
    assert sorted(records["diaSourceId"]) == sorted(sources["diaSourceId"])


KILL_DURING_VIEWS = textwrap.dedent(
    """
    import os, signal, sys
    from lsst.analysis.ap.cli import main

    real_replace = os.replace

    def replace(source, destination, *args, **kwargs):
        # Die (as on SIGKILL) half way through the views: after manifest.csv
        # is in place, as the failure list would be.
        if os.path.basename(destination) == "failures.csv":
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(source, destination, *args, **kwargs)

    os.replace = replace
    sys.exit(main(sys.argv[1:]))
    """
)


def test_kill_while_the_views_are_written_then_rerun(tmp_path, demo_repo):
    output = tmp_path / "out"
    argv = cli_command(demo_repo, output, "--sqlitefile", str(demo_repo.apdb_file), "--all")
    killed = subprocess.run(
        [sys.executable, "-c", KILL_DURING_VIEWS, *argv[1:]], capture_output=True, timeout=600
    )
    assert killed.returncode == -9
    assert (output / "manifest.csv").exists() and not (output / "failures.csv").exists()
    pd.read_csv(output / "manifest.csv")  # whole
    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == expected_status(rerun.stdout), rerun.stderr
    assert "0 written" in rerun.stdout
    records = read_record_csv((output / "records.csv").read_bytes(), "records.csv")
    assert len(records) == demo_repo.n_sources
    failures = pd.read_csv(output / "failures.csv")
    assert set(failures["diaSourceId"]) == set(records.loc[records["status"] == "failed", "diaSourceId"])
    assert os.path.exists(output / "summary.json")
    # The killed writer's temporaries are gone after the re-run.
    assert not [p for p in output.rglob("*.partial")]


def test_labels_merged_into_an_unwritable_directory_exit_4(tmp_path, tmpfs, capsys):
    """cutoutVetting gives the exit status of the other commands when its
    output cannot be written (it gave 2, that of bad input)."""
    from lsst.analysis.ap.outputs.ledger import record_csv_bytes
    from lsst.analysis.ap.records import empty_records
    from lsst.analysis.ap.vetting import cli as vetting_cli

    disk = tmpfs("1m")
    (disk / "records.csv").write_bytes(record_csv_bytes(empty_records()))
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True, capture_output=True)
    labels = tmp_path / "labels.csv"
    labels.write_text("diaSourceId,label,time\n")
    assert vetting_cli.main(["merge-labels", str(disk), str(labels)]) == 4
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("cutoutVetting: ") and str(disk) in line, line
    assert not (disk / "records_labelled.csv").exists()
