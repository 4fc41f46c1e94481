"""The bootstrap's choice of interpreter (no installation is run here)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[1]


def fake_old_pythons(bin_dir: Path) -> None:
    """python, python3, python3.12 and python3.13 that all fail the ≥ 3.12 check."""
    bin_dir.mkdir()
    for name in ("python", "python3", "python3.12", "python3.13"):
        script = bin_dir / name
        script.write_text("#!/bin/sh\nexit 1\n")
        script.chmod(0o755)


def copy_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "bootstrap.sh", project / "scripts")
    return project


def test_no_suitable_python_stops_with_instructions(tmp_path):
    project = copy_project(tmp_path)
    fake_old_pythons(tmp_path / "bin")
    result = subprocess.run(
        ["bash", "scripts/bootstrap.sh"],
        cwd=project,
        env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "no Python >= 3.12 was found" in result.stderr
    assert "pyenv install 3.12" in result.stderr and "PYTHON=/path/to/python3.12" in result.stderr
    assert not (project / ".venv").exists()


def test_python_variable_must_be_new_enough(tmp_path):
    project = copy_project(tmp_path)
    fake_old_pythons(tmp_path / "bin")
    result = subprocess.run(
        ["bash", "scripts/bootstrap.sh"],
        cwd=project,
        env={"PATH": "/usr/bin:/bin", "PYTHON": str(tmp_path / "bin" / "python3")},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "is not a Python >= 3.12 interpreter" in result.stderr
