"""The default rendering and the manifests do not change by accident.

Two fixed runs on the test demo repository (the command line as ``make
demo`` calls it, and a Python call with two sizes, no annotation, saved
arrays and no chunking) must give byte for byte the files whose SHA-256
digests are stored in ``tests/data/reference_outputs.json``.

When a change is *meant* to alter the PNGs or the manifests, look at the new
PNGs first, then regenerate the digests deliberately and commit them with
the change::

    REGENERATE_REFERENCE_OUTPUTS=1 .venv/bin/python -m pytest tests/test_reference_outputs.py
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from lsst.analysis.ap import PlotImageSubtractionCutoutsConfig, PlotImageSubtractionCutoutsTask
from lsst.analysis.ap.cli import exit_status, main
from lsst.analysis.ap.demo import DemoRepo
from lsst.analysis.ap.outputs.ledger import LEDGER_DIR

REFERENCE = Path(__file__).parent / "data" / "reference_outputs.json"
REGENERATE = bool(os.environ.get("REGENERATE_REFERENCE_OUTPUTS"))


def _digests(output: Path) -> dict[str, str]:
    """SHA-256 of every file under ``output``, by relative path.

    ``records.csv`` names the output directory, which differs from run to
    run; it is digested with that directory replaced by ``OUTPUT``.  The
    per-writer record files under ``records/`` carry unique names by design;
    ``records.csv`` is their union.
    """
    digests = {}
    for path in sorted(output.rglob("*")):
        if not path.is_file() or path.relative_to(output).parts[0] == LEDGER_DIR:
            continue
        data = path.read_bytes()
        if path.name == "records.csv":
            data = data.replace(str(output).encode(), b"OUTPUT")
        digests[path.relative_to(output).as_posix()] = hashlib.sha256(data).hexdigest()
    return digests


def _command_line_run(demo_repo: DemoRepo, output: Path) -> None:
    status = main(
        [
            str(demo_repo.root),
            str(output),
            "--collections",
            demo_repo.collection,
            "--sqlitefile",
            str(demo_repo.apdb_file),
            "--all",
            "--url-root",
            "https://example.org/demo-cutouts/",
            "--no-progress",
        ]
    )
    # 1 when some sources failed (the demo has a deliberate no-data source).
    assert status == exit_status(json.loads((output / "summary.json").read_text()))


def _python_run(demo_repo: DemoRepo, output: Path) -> None:
    config = PlotImageSubtractionCutoutsConfig()
    config.sizes = [30, 64]
    config.add_metadata = False
    config.save_as_numpy = True
    config.chunk_size = None
    task = PlotImageSubtractionCutoutsTask(config=config, output_path=output)
    with demo_repo.butler() as butler:
        task.run(demo_repo.sources(), butler)


RUNS = {"command_line": _command_line_run, "python_two_sizes": _python_run}


@pytest.fixture(scope="module")
def reference() -> dict:
    if REGENERATE:
        return {}
    return json.loads(REFERENCE.read_text())


@pytest.fixture(scope="module")
def regenerated():
    """Digests of a regeneration, written to the reference file at the end."""
    found: dict[str, dict[str, str]] = {}
    yield found
    if REGENERATE and found:
        REFERENCE.write_text(
            json.dumps(
                {
                    "how_to_regenerate": "REGENERATE_REFERENCE_OUTPUTS=1 .venv/bin/python -m pytest "
                    "tests/test_reference_outputs.py (only for an intended change of the outputs)",
                    **dict(sorted(found.items())),
                },
                indent=1,
            )
            + "\n"
        )


@pytest.mark.parametrize("run", sorted(RUNS))
def test_outputs_are_byte_identical(
    run: str, demo_repo: DemoRepo, tmp_path: Path, reference: dict, regenerated: dict
) -> None:
    output = tmp_path / "out"
    RUNS[run](demo_repo, output)
    digests = _digests(output)
    if REGENERATE:
        regenerated[run] = digests
        pytest.skip("reference digests regenerated")
    expected = reference[run]
    assert sorted(digests) == sorted(expected), "files written differ from the reference"
    changed = [name for name in expected if digests[name] != expected[name]]
    assert not changed, f"{len(changed)} file(s) differ from the reference, e.g. {changed[:5]}"
    # The run drew PNGs and wrote the manifests (the reference is not empty).
    assert any(name.endswith(".png") for name in digests)
    assert {"failures.csv", "summary.json", "records.csv"} <= set(digests)
