"""``make docs``: the Sphinx documentation builds with warnings as errors."""

from __future__ import annotations

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
