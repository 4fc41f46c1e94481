"""The ``plotImageSubtractionCutouts`` command, run as a subprocess on the
demo repository: APDB, catalog-file and Butler-table sources, bad input,
and an interrupted (SIGKILL) run resumed to the same result.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

URL_ROOT = "https://example.org/cutouts"
FAST = ["-c", "whole_read_min_sources=1"]
SUMMARY = re.compile(r"(\d+) DiaSource\(s\) in [\d.]+ s: (\d+) written, (\d+) skipped.*, (\d+) failed")


def command() -> list[str]:
    script = Path(sys.executable).parent / "plotImageSubtractionCutouts"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from lsst.analysis.ap.cli import main; sys.exit(main())"]


def cli(demo_repo, output: Path, *args: str) -> list[str]:
    return [*command(), str(demo_repo.root), str(output), "--collections", demo_repo.collection, *args]


def run_cli(argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def ctrl_c_while_drawing(process: subprocess.Popen, output: Path, timeout: float = 120) -> None:
    """Ctrl-C (SIGINT to the process group of a command started in a new
    session) once the run has written a few PNGs into ``output``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None and len(list(output.rglob("*.png"))) < 3:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be interrupted"
    os.killpg(process.pid, signal.SIGINT)


def summary_counts(stdout: str) -> dict[str, int]:
    match = SUMMARY.search(stdout)
    assert match, f"no summary line in:\n{stdout}"
    total, written, skipped, failed = map(int, match.groups())
    return {"total": total, "written": written, "skipped": skipped, "failed": failed}


def expected_status(stdout: str) -> int:
    """The documented exit status for the summary a run printed: 0 nothing
    failed, 1 some sources failed, 3 every source failed.
    """
    counts = summary_counts(stdout)
    if not counts["failed"]:
        return 0
    return 1 if counts["written"] + counts["skipped"] else 3


def png_files(output: Path) -> dict[str, Path]:
    return {p.relative_to(output).as_posix(): p for p in (output / "images").rglob("*.png")}


@dataclasses.dataclass
class CliRun:
    output: Path
    process: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def apdb_run(demo_repo, tmp_path_factory) -> CliRun:
    """An uninterrupted run of every APDB DiaSource."""
    output = tmp_path_factory.mktemp("cli") / "full"
    argv = cli(
        demo_repo, output, "--sqlitefile", str(demo_repo.apdb_file), "--all", "--url-root", URL_ROOT, *FAST
    )
    return CliRun(output, run_cli(argv))


def test_apdb_run_prints_summary(apdb_run, demo_repo):
    process = apdb_run.process
    assert process.returncode == expected_status(process.stdout), process.stderr
    counts = summary_counts(process.stdout)
    assert counts["total"] == demo_repo.n_sources
    assert counts["written"] + counts["failed"] == demo_repo.n_sources
    assert counts["skipped"] == 0
    assert len(png_files(apdb_run.output)) == counts["written"]
    manifest = pd.read_csv(apdb_run.output / "manifest.csv")
    assert len(manifest) == counts["written"]
    assert len(pd.read_csv(apdb_run.output / "failures.csv")) == counts["failed"]
    assert f"Vetting page: {apdb_run.output / 'index.html'}" in process.stdout
    assert (apdb_run.output / "index.html").is_file()


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_catalog_file_run(fmt, tmp_path, demo_repo, demo_sources, apdb_run):
    subset = demo_sources[demo_sources["visit"] == 1002]
    catalog = tmp_path / f"sources.{fmt}"
    if fmt == "parquet":
        subset.to_parquet(catalog)
    else:
        subset.to_csv(catalog, index=False)
    output = tmp_path / "out"
    process = run_cli(cli(demo_repo, output, "--catalog", str(catalog), "--all", *FAST))
    assert process.returncode == expected_status(process.stdout), process.stderr
    counts = summary_counts(process.stdout)
    assert counts["total"] == len(subset)
    files = png_files(output)
    assert counts["written"] == len(files) > 0
    assert {int(Path(name).stem) for name in files} <= set(subset["diaSourceId"])
    # Same cutouts as from the APDB.
    reference = png_files(apdb_run.output)
    assert set(files) <= set(reference)
    if fmt == "parquet":
        for name, path in files.items():
            assert path.read_bytes() == reference[name].read_bytes(), name


def test_dataset_type_run_with_where(tmp_path, demo_repo, demo_sources, apdb_run):
    output = tmp_path / "out"
    process = run_cli(
        cli(
            demo_repo,
            output,
            "--dataset-type",
            "dia_source_detector",
            "--where",
            "visit=1001",
            "--all",
            *FAST,
        )
    )
    assert process.returncode == expected_status(process.stdout), process.stderr
    counts = summary_counts(process.stdout)
    visit = demo_sources[demo_sources["visit"] == 1001]
    assert counts["total"] == len(visit)
    ids = {int(Path(name).stem) for name in png_files(output)}
    assert len(ids) == counts["written"]
    reference = {int(Path(name).stem) for name in png_files(apdb_run.output)}
    assert ids == set(visit["diaSourceId"]) & reference


def test_limit_caps_the_number_of_sources(tmp_path, demo_repo):
    output = tmp_path / "out"
    process = run_cli(cli(demo_repo, output, "--sqlitefile", str(demo_repo.apdb_file), "--limit", "3", *FAST))
    assert process.returncode == expected_status(process.stdout), process.stderr
    assert summary_counts(process.stdout)["total"] == 3


def test_unreadable_catalog_exits_nonzero_naming_file(tmp_path, demo_repo):
    catalog = tmp_path / "broken.parquet"
    catalog.write_bytes(b"this is not a parquet file")
    process = run_cli(cli(demo_repo, tmp_path / "out", "--catalog", str(catalog)))
    assert process.returncode != 0
    assert str(catalog) in process.stderr
    assert "Traceback" not in process.stderr
    assert not list((tmp_path / "out").rglob("*.png"))


def test_catalog_without_required_column_names_file_and_column(tmp_path, demo_repo, demo_sources):
    catalog = tmp_path / "no_ra.csv"
    demo_sources.drop(columns=["ra"]).to_csv(catalog, index=False)
    process = run_cli(cli(demo_repo, tmp_path / "out", "--catalog", str(catalog)))
    assert process.returncode == 2
    assert str(catalog) in process.stderr and "ra" in process.stderr
    assert "Traceback" not in process.stderr
    assert not list((tmp_path / "out").rglob("*.png"))


def test_bad_config_value_exits_with_message(tmp_path, demo_repo):
    process = run_cli(
        cli(
            demo_repo,
            tmp_path / "out",
            "--sqlitefile",
            str(demo_repo.apdb_file),
            "-c",
            "colormap='no_such_map'",
        )
    )
    assert process.returncode == 2
    assert "colormap" in process.stderr and "Traceback" not in process.stderr


def test_killed_run_leaves_no_partial_png_and_resumes(tmp_path, demo_repo, apdb_run):
    """SIGKILL part way through (default bbox reads: slow enough to catch),
    then resume to the output of an uninterrupted run.
    """
    assert apdb_run.process.returncode == expected_status(apdb_run.process.stdout)
    output = tmp_path / "killed"
    argv = cli(
        demo_repo,
        output,
        "--sqlitefile",
        str(demo_repo.apdb_file),
        "--all",
        "--url-root",
        URL_ROOT,
        "-j",
        "0",
    )
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if len(list((output / "images").rglob("*.png"))) >= 2:
                break
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"

    reference = png_files(apdb_run.output)
    with Image.open(next(iter(reference.values()))) as image:
        full_size = image.size
    partial = png_files(output)
    assert 0 < len(partial) < len(reference)
    for path in (output / "images").rglob("*.png"):
        with Image.open(path) as image:
            image.load()
            assert image.size == full_size, path
    assert not (output / "manifest.csv").exists()

    resumed = run_cli(
        cli(
            demo_repo,
            output,
            "--sqlitefile",
            str(demo_repo.apdb_file),
            "--all",
            "--url-root",
            URL_ROOT,
            *FAST,
        )
    )
    assert resumed.returncode == expected_status(resumed.stdout), resumed.stderr
    counts = summary_counts(resumed.stdout)
    # PNGs of visit × detectors finished before the kill are kept; those of
    # the one being drawn have no record of how they were drawn: redrawn.
    assert counts["skipped"] <= len(partial)
    assert counts["written"] + counts["skipped"] == len(reference)
    final = png_files(output)
    assert sorted(final) == sorted(reference)
    for name, path in final.items():
        assert path.read_bytes() == reference[name].read_bytes(), name
    assert not [p for p in output.rglob("*") if p.name.endswith(".partial")]
    for name in ("manifest.csv", "images/manifest.csv", "failures.csv"):
        assert (output / name).read_bytes() == (apdb_run.output / name).read_bytes(), name
    shutil.rmtree(output)


def test_apdb_config_reliability_cut_and_config_file(tmp_path, demo_repo, demo_sources):
    """--apdb-config, --reliabilityMin/Max and a -C override file together."""
    overrides = tmp_path / "overrides.py"
    overrides.write_text(
        "config.sizes = [16, 40]\nconfig.chunk_size = None\nconfig.whole_read_min_sources = 1\n"
    )
    output = tmp_path / "out"
    argv = cli(
        demo_repo,
        output,
        "--apdb-config",
        str(demo_repo.apdb_config),
        "--all",
        "--reliabilityMin",
        "0.5",
        "--reliabilityMax",
        "0.9",
        "-C",
        str(overrides),
    )
    process = run_cli(argv)
    assert process.returncode == expected_status(process.stdout), process.stderr
    kept = demo_sources[(demo_sources["reliability"] >= 0.5) & (demo_sources["reliability"] <= 0.9)]
    assert 0 < len(kept) < len(demo_sources)
    assert summary_counts(process.stdout)["total"] == len(kept)
    pngs = sorted((output / "images").glob("*.png"))  # chunk_size=None: one flat directory
    assert pngs and not [p for p in (output / "images").iterdir() if p.is_dir()]
    assert {int(p.stem) for p in pngs} <= set(kept["diaSourceId"])
    from PIL import Image

    from lsst.analysis.ap.display.renderer import TripletRenderer

    expected = TripletRenderer([16, 40], True, panel_pixels=240).canvas_size
    with Image.open(pngs[0]) as image:
        assert image.size == tuple(expected)


def test_fits_table_catalog(tmp_path, demo_repo, demo_sources):
    from astropy.table import Table

    subset = demo_sources[demo_sources["visit"] == 1003].iloc[:5]
    catalog = tmp_path / "sources.fits"
    Table.from_pandas(subset.drop(columns=["reliabilityVersion", "band"])).write(catalog)
    process = run_cli(cli(demo_repo, tmp_path / "out", "--catalog", str(catalog), "--all", *FAST))
    assert process.returncode == expected_status(process.stdout), process.stderr
    assert summary_counts(process.stdout)["total"] == 5
    assert "band" in process.stderr  # the missing annotation column is reported once


def test_dotted_connection_override_names_the_dataset_read(tmp_path, demo_repo):
    """``-c connections.science=calexp`` goes through pipe_base's override
    machinery: the run looks for ``calexp`` (absent from the demo
    repository), so every source fails naming it."""
    output = tmp_path / "out"
    process = run_cli(
        cli(
            demo_repo,
            output,
            "--sqlitefile",
            str(demo_repo.apdb_file),
            "--limit",
            "4",
            "-c",
            "connections.science=calexp",
        )
    )
    assert process.returncode == expected_status(process.stdout), process.stderr
    assert summary_counts(process.stdout) == {"total": 4, "written": 0, "skipped": 0, "failed": 4}
    failures = pd.read_csv(output / "failures.csv")
    assert set(failures["reason_code"]) == {"missing_exposure"}
    assert failures["reason"].str.contains("calexp@", regex=False).all(), failures["reason"].tolist()


def test_unknown_config_field_exits_with_message(tmp_path, demo_repo):
    process = run_cli(
        cli(demo_repo, tmp_path / "out", "--sqlitefile", str(demo_repo.apdb_file), "-c", "connections.nope=x")
    )
    assert process.returncode == 2
    assert "nope" in process.stderr and "Traceback" not in process.stderr


def _entry_points(output: str = "out") -> dict:
    """Each console script's function, with arguments that parse, writing
    to ``output``."""
    from lsst.analysis.ap import cli as cli_module
    from lsst.analysis.ap.demo import repo as demo_module
    from lsst.analysis.ap.sequences import cli as sequences_cli
    from lsst.analysis.ap.vetting import cli as vetting_cli

    return {
        "plotImageSubtractionCutouts": (cli_module.main, ["repo", output, "--catalog", "c.csv"]),
        "plotAlertCutouts": (cli_module.alerts_main, ["packets/", output]),
        "plotFileCutouts": (
            cli_module.files_main,
            ["c.csv", output, "--science", "s", "--template", "t", "--difference", "d"],
        ),
        "plotDiaObjectSequences": (sequences_cli.main, ["repo", output]),
        "cutoutVetting": (vetting_cli.main, ["page", output]),
        "makeCutoutDemoRepo": (demo_module.main, ["repo"]),
    }


@pytest.mark.parametrize(
    "prog, option, value, expected",
    [
        (
            "plotImageSubtractionCutouts",
            "--limit",
            "2.5",
            "argument --limit: expects an integer of at least 1",
        ),
        ("plotImageSubtractionCutouts", "--limit", "0", "argument --limit: expects an integer of at least 1"),
        ("plotImageSubtractionCutouts", "-j", "1e1", "argument -j/--jobs: expects an integer of at least 0"),
        ("plotImageSubtractionCutouts", "--visit-min", "10.5", "argument --visit-min: expects an integer"),
        ("plotImageSubtractionCutouts", "--detector", "1.0", "argument --detector: expects an integer"),
        (
            "plotImageSubtractionCutouts",
            "--reliabilityMin",
            "nan",
            "argument --reliabilityMin: expects a finite number",
        ),
        (
            "plotImageSubtractionCutouts",
            "--reliabilityMax",
            "inf",
            "argument --reliabilityMax: expects a finite number",
        ),
        (
            "plotImageSubtractionCutouts",
            "--mjd-min",
            "Infinity",
            "argument --mjd-min: expects a finite number",
        ),
        ("plotAlertCutouts", "--jobs", "2.5", "argument -j/--jobs: expects an integer of at least 0"),
        (
            "plotDiaObjectSequences",
            "--most-epochs",
            "2.5",
            "argument --most-epochs: expects an integer of at least 0",
        ),
        (
            "plotDiaObjectSequences",
            "--diaObjectId",
            "7.5",
            "argument --diaObjectId: expects an integer from -9223372036854775808 to 18446744073709551615",
        ),
        ("plotDiaObjectSequences", "-j", "-1", "argument -j/--jobs: expects an integer of at least 0"),
        ("plotDiaObjectSequences", "--ra", "nan", "argument --ra: expects a finite number"),
        ("plotDiaObjectSequences", "--dec", "91", "argument --dec: expects a finite number [-90, 90]"),
        (
            "plotDiaObjectSequences",
            "--radius",
            "inf",
            "argument --radius: expects a finite number (at least 0)",
        ),
        ("plotDiaObjectSequences", "--mjd-max", "nan", "argument --mjd-max: expects a finite number"),
        ("makeCutoutDemoRepo", "--visits", "2.5", "argument --visits: expects an integer of at least 1"),
    ],
)
def test_numeric_options_refuse_fractions_and_non_finite_values(prog, option, value, expected, capsys):
    main, argv = _entry_points()[prog]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, option, value])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"{prog}: error: {expected}, not {value!r}"


@pytest.mark.parametrize(
    "prog, override, expected",
    [
        ("plotImageSubtractionCutouts", "sizes=[0]", "bad configuration: "),
        ("plotAlertCutouts", "sizes=[0]", "bad configuration: "),
        ("plotFileCutouts", "no_such_field=3", "bad configuration: "),
        ("plotDiaObjectSequences", "max_epochs=0", "bad configuration: "),
        ("plotDiaObjectSequences", "size=100000", "bad configuration: "),
        ("plotDiaObjectSequences", "panel_pixels=100000", "bad configuration: "),
        ("plotDiaObjectSequences", "max_epochs=501", "bad configuration: "),
        ("plotDiaObjectSequences", "size", "-c expects field=value, got 'size'"),
        ("plotImageSubtractionCutouts", "=3", "-c expects field=value, got '=3'"),
    ],
)
def test_configuration_errors_are_one_line(prog, override, expected, capsys, tmp_path, monkeypatch):
    """A value the configuration refuses (or cannot parse) ends every
    command with one line and status 2, before any input is read."""
    monkeypatch.chdir(tmp_path)
    main, argv = _entry_points()[prog]
    assert main([*argv, "-c", override]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: {expected}"), lines
    assert "Traceback" not in lines[0] and "For more information" not in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "prog, argument",
    [
        ("plotImageSubtractionCutouts", "outputPath"),
        ("plotAlertCutouts", "output"),
        ("plotFileCutouts", "output"),
        ("plotDiaObjectSequences", "output"),
        ("cutoutVetting", "output"),
    ],
)
def test_output_uri_of_an_unknown_scheme_is_a_usage_error(prog, argument, capsys):
    main, argv = _entry_points("foo://x/y")[prog]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith(
        f"{prog}{' page' if prog == 'cutoutVetting' else ''}: error: argument {argument}: "
        "unknown URI scheme 'foo' in 'foo://x/y'"
    )


def test_local_output_path_is_used_as_written(tmp_path, monkeypatch, capsys):
    """``#``, ``?`` and ``%41`` are characters of the directory's name."""
    from lsst.analysis.ap.cli import alerts_main

    packet = Path(__file__).parent / "data" / "ztf" / "472263571115115000.avro"
    monkeypatch.chdir(tmp_path)
    assert alerts_main([str(packet), "run #1?%41", "--url-root", URL_ROOT]) == 0
    output = tmp_path / "run #1?%41"
    assert [p.relative_to(output).as_posix() for p in output.glob("images/*/*.png")] == [
        "images/472263571115110000/472263571115115000.png"
    ]
    assert (output / "manifest.csv").is_file()
    assert f"Zooniverse manifest: {output / 'manifest.csv'}" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run #1?%41"]
