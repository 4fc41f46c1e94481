"""The installed wheel holds the product only: every module under
``python/`` and no benchmark or baseline module (``benchmarks/`` is not
installed); the commands point at modules that are in it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    process = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stderr
    (path,) = out.glob("lsst_analysis_ap-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


def test_wheel_has_no_benchmark_or_baseline(wheel: zipfile.ZipFile) -> None:
    modules = [name for name in wheel.namelist() if name.endswith(".py")]
    assert not [name for name in modules if "benchmark" in name or "baseline" in name]
    assert not [name for name in wheel.namelist() if name.startswith("benchmarks/")]


def test_wheel_has_every_package_module(wheel: zipfile.ZipFile) -> None:
    source = {p.relative_to(ROOT / "python").as_posix() for p in (ROOT / "python").rglob("*.py")}
    assert source <= set(wheel.namelist())
    assert "lsst/analysis/ap/py.typed" in wheel.namelist()


def test_commands_point_at_packaged_modules(wheel: zipfile.ZipFile) -> None:
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(entry_points).decode()
    names = set(wheel.namelist())
    for line in text.splitlines():
        if "=" in line:
            target = line.split("=", 1)[1].strip().split(":")[0]
            module = target.replace(".", "/")
            assert f"{module}.py" in names or f"{module}/__init__.py" in names, line
    assert "makeCutoutDemoRepo = lsst.analysis.ap.demo:main" in text
    assert "plotImageSubtractionCutouts = lsst.analysis.ap.scripts:cutouts" in text


def test_wheel_has_the_vetting_page_assets(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for asset in ("templates/index.html.j2", "static/vetting.js", "static/vetting.css"):
        assert f"lsst/analysis/ap/vetting/{asset}" in names
