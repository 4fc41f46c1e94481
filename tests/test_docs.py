"""``make docs``: the Sphinx documentation builds with warnings as errors."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_make_docs_builds_with_warnings_as_errors(tmp_path):
    if shutil.which("make") is None:
        pytest.fail("make is needed to build the documentation")
    output = tmp_path / "html"
    done = subprocess.run(
        ["make", "docs", f"DOCS_OUTPUT={output}"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    task_page = (
        output / "lsst.analysis.ap" / "tasks" / "lsst.analysis.ap.PlotImageSubtractionCutoutsTask.html"
    )
    html = task_page.read_text()
    assert 'id="lsst-task-lsst-analysis-ap-plotimagesubtractioncutoutstask"' in html
    assert "Processing summary" in html
    assert (output / "lsst.analysis.ap" / "outputs.html").exists()


def test_task_topic_directive_names_a_task_that_exists(tmp_path):
    """A topic page for a task that does not exist fails the build."""
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(ROOT / "doc" / "conf.py", source / "conf.py")
    shutil.copytree(ROOT / "doc" / "_ext", source / "_ext")
    (source / "index.rst").write_text(".. lsst-task-topic:: lsst.analysis.ap.NoSuchTask\n\nTitle\n=====\n")
    sphinx = Path(shutil.which("sphinx-build") or ROOT / ".venv" / "bin" / "sphinx-build")
    done = subprocess.run(
        [str(sphinx), "-W", "-q", "-b", "html", str(source), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "cannot import task lsst.analysis.ap.NoSuchTask" in done.stderr


def test_outputs_page_gives_the_exit_status_of_outputs_that_cannot_be_written():
    """The page's "When storage fails" cases exit with the status the
    command returns for them (`EXIT_OUTPUT`), as the README says."""
    from lsst.analysis.ap.cli import EXIT_CODES, EXIT_OUTPUT

    assert EXIT_CODES[EXIT_OUTPUT].startswith("the outputs could not be written")
    page = (ROOT / "doc" / "lsst.analysis.ap" / "outputs.rst").read_text()
    section = page.split("When storage fails\n==================\n", 1)[1]
    statuses = re.findall(r"the command\s+exits\s+(\d+)", section)
    assert statuses == [str(EXIT_OUTPUT)] * 2
    readme = (ROOT / "README.md").read_text()
    assert f"{EXIT_OUTPUT} the outputs could not be written" in " ".join(readme.split())
