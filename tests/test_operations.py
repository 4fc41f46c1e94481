"""Operations as documented: ``bps submit`` with the shipped submit file
(Parsl plugin, one machine) and a relative ``output_path`` while every job
runs in a working directory of its own; the README's ``pipetask run``
command verbatim; the EUPS table against the package's dependencies.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd

from lsst.analysis.ap.outputs.ledger import read_record_csv

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _environment(cwd: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PWD"] = str(cwd)  # BPS's submitPath and the jobs' shells read $PWD
    return env


def test_bps_submit_with_relative_output_path_writes_one_tree(tmp_path, demo_repo):
    """Each job runs in a new directory of its own (as on a batch system):
    the relative output_path, resolved at submission, still names one
    directory, and the gather job's manifests there list every source.
    """
    repo = tmp_path / "demo_repo"
    shutil.copytree(demo_repo.root, repo)
    submit = tmp_path / "submit.yaml"
    submit.write_text(
        f"includeConfigs:\n  - {ROOT / 'pipelines' / 'bps' / 'parsl-local.yaml'}\n"
        f"pipelineYaml: {ROOT / 'pipelines' / 'PlotImageSubtractionCutouts.yaml'}\n"
        f"payload:\n  butlerConfig: {repo}\n"
        "site:\n  local:\n"
        '    commandPrefix: \'jobdir=$(mktemp -d "$PWD/job.XXXXXX") && cd "$jobdir"\'\n'
    )
    done = subprocess.run(
        ["bps", "submit", str(submit)],
        cwd=tmp_path,
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    output = tmp_path / "demo_bps_output"
    records = read_record_csv((output / "records.csv").read_bytes(), "records.csv")
    assert sorted(records["diaSourceId"]) == sorted(demo_repo.sources()["diaSourceId"])
    assert set(records["output_path"]) == {str(output)}
    written = {int(p.stem) for p in (output / "images").rglob("*.png")}
    assert written == set(records.loc[records["status"] == "written", "diaSourceId"])
    panoptes = pd.read_csv(output / "images" / "manifest.csv")
    assert set(panoptes["#diaSourceId"]) == written
    # The jobs did run in directories of their own, and wrote nothing there.
    job_dirs = [p for p in tmp_path.rglob("job.*") if p.is_dir()]
    assert job_dirs
    assert not [p for d in job_dirs for p in d.rglob("*.png")]
    # Clustering: one job per visit for the cutout quanta (plus the gather
    # and set-up jobs), fewer jobs than quanta.
    n_quanta = len(demo_repo.data_ids) + 1
    assert len(job_dirs) < n_quanta + 1


def _readme_pipetask_command() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^pipetask run .*?(?<!\\)\n", text, flags=re.M | re.S)
    assert match, "no pipetask run command in README.md"
    return match.group(0).replace("\\\n", " ")


def test_readme_pipetask_command_verbatim(tmp_path, demo_repo):
    """The command as printed in the README, from a clone's root with the
    demo repository built by ``make demo`` beside it.
    """
    shutil.copytree(demo_repo.root, tmp_path / "demo_repo")
    (tmp_path / "pipelines").symlink_to(ROOT / "pipelines")
    command = _readme_pipetask_command()
    done = subprocess.run(
        shlex.split(command),
        cwd=tmp_path,
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    output = tmp_path / "out"
    records = read_record_csv((output / "records.csv").read_bytes(), "records.csv")
    assert len(records) == demo_repo.n_sources
    assert (output / "summary.json").exists()


def _eups_names(table: str, verb: str) -> set[str]:
    return set(re.findall(rf"^{verb}\((\w+)\)", table, flags=re.M))


def test_eups_table_requires_every_stack_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    stack = {
        re.split(r"[<>=\[; ]", dep, maxsplit=1)[0].removeprefix("lsst-").replace("-", "_")
        for dep in project["dependencies"]
        if dep.startswith("lsst-")
    }
    table = (ROOT / "ups" / "analysis_ap.table").read_text()
    assert stack <= _eups_names(table, "setupRequired")
    assert "envPrepend(PYTHONPATH, ${PRODUCT_DIR}/python)" in table
    assert "envPrepend(PATH, ${PRODUCT_DIR}/bin)" in table
    # scons builds bin/ from bin.src/ (shebang rewritten) for the PATH entry above.
    assert "BasicSConstruct" in (ROOT / "SConstruct").read_text()
    assert "shebang" in (ROOT / "bin.src" / "SConscript").read_text()
    scripts = {p.name for p in (ROOT / "bin.src").iterdir() if p.name != "SConscript"}
    assert scripts == set(project["scripts"])
    assert "setupOptional(ctrl_bps_parsl)" in table  # the shipped BPS submit file's plugin
