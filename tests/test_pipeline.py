"""pipelines/PlotImageSubtractionCutouts.yaml run with the real pipeline
executor on a copy of the demo repository, compared with the Python API
run on the same sources.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import lsst.daf.butler as dafButler
import pandas as pd
import pytest
from lsst.pipe.base import Pipeline
from lsst.pipe.base.simple_pipeline_executor import SimplePipelineExecutor

from lsst.analysis.ap.plotImageSubtractionCutouts import (
    PlotImageSubtractionCutoutsConfig,
    PlotImageSubtractionCutoutsTask,
)

PIPELINE = Path(__file__).parents[1] / "pipelines" / "PlotImageSubtractionCutouts.yaml"
URL_ROOT = "https://example.org/zooniverse/"
OUTPUT_COLLECTION = "u/test/cutouts"
# Both runs read whole image planes: fast on the small demo detectors.
OVERRIDES = {"url_root": URL_ROOT, "whole_read_min_sources": 1}


def png_files(output: Path) -> dict[str, Path]:
    """PNGs under ``output``, keyed by their path relative to it."""
    return {p.relative_to(output).as_posix(): p for p in (output / "images").rglob("*.png")}


@dataclasses.dataclass
class PipelineRun:
    butler: object
    output: Path
    quanta: list


@pytest.fixture(scope="module")
def pipeline_run(demo_repo, tmp_path_factory) -> PipelineRun:
    base = tmp_path_factory.mktemp("pipeline")
    root = base / "repo"
    shutil.copytree(demo_repo.root, root)
    output = base / "cutouts"
    butler = SimplePipelineExecutor.prep_butler(
        str(root), inputs=[demo_repo.collection], output=OUTPUT_COLLECTION
    )
    pipeline = Pipeline.from_uri(str(PIPELINE))
    pipeline.addConfigOverride("plotImageSubtractionCutouts", "output_path", str(output))
    for field, value in OVERRIDES.items():
        pipeline.addConfigOverride("plotImageSubtractionCutouts", field, value)
    executor = SimplePipelineExecutor.from_pipeline(pipeline, butler=butler)
    quanta = executor.run(register_dataset_types=True)
    yield PipelineRun(butler, output, quanta)
    butler.close()


@pytest.fixture(scope="module")
def python_run(demo_repo, demo_sources, tmp_path_factory):
    output = tmp_path_factory.mktemp("python") / "cutouts"
    config = PlotImageSubtractionCutoutsConfig()
    for field, value in OVERRIDES.items():
        setattr(config, field, value)
    task = PlotImageSubtractionCutoutsTask(config=config, output_path=output)
    with demo_repo.butler() as butler:
        result = task.run(demo_sources, butler)
    return output, result


def test_pipeline_writes_same_pngs_as_python_api(pipeline_run, python_run):
    python_output, result = python_run
    pipeline_files = png_files(pipeline_run.output)
    python_files = png_files(python_output)
    assert pipeline_files, "the pipeline wrote no PNG"
    assert sorted(pipeline_files) == sorted(python_files)
    assert sorted(int(Path(name).stem) for name in python_files) == sorted(result.written)
    for name in sorted(pipeline_files):
        assert pipeline_files[name].read_bytes() == python_files[name].read_bytes(), name


def test_pipeline_manifests_equal_python_api(pipeline_run, python_run):
    python_output, _ = python_run
    for name in ("manifest.csv", "images/manifest.csv", "failures.csv"):
        assert (pipeline_run.output / name).read_bytes() == (python_output / name).read_bytes(), name
    manifest = pd.read_csv(pipeline_run.output / "manifest.csv")
    expected = sorted(int(Path(name).stem) for name in png_files(pipeline_run.output))
    assert sorted(manifest["external_id"]) == expected
    assert not manifest["location:1"].str.contains(r"[^:]//", regex=True).any()


def test_one_records_dataset_per_visit_detector(pipeline_run, demo_repo, demo_sources):
    butler = pipeline_run.butler
    refs = butler.query_datasets("cutout_records", collections=OUTPUT_COLLECTION)
    data_ids = sorted((int(ref.dataId["visit"]), int(ref.dataId["detector"])) for ref in refs)
    assert data_ids == sorted(demo_repo.data_ids)
    for ref in refs:
        records = butler.get(ref)
        expected = demo_sources[
            (demo_sources["visit"] == ref.dataId["visit"])
            & (demo_sources["detector"] == ref.dataId["detector"])
        ]
        assert sorted(records["diaSourceId"]) == sorted(expected["diaSourceId"])
        assert set(records["status"]) <= {"written", "failed"}
        for row in records.itertuples(index=False):
            assert (pipeline_run.output / row.path).is_file() == (row.status == "written")


def test_one_gathered_manifest(pipeline_run, demo_sources):
    butler = pipeline_run.butler
    refs = butler.query_datasets("cutout_manifest", collections=OUTPUT_COLLECTION)
    assert len(refs) == 1
    manifest = butler.get(refs[0])
    assert sorted(manifest["diaSourceId"]) == sorted(demo_sources["diaSourceId"])
    written = manifest.loc[manifest["status"] == "written", "diaSourceId"]
    expected = sorted(int(Path(name).stem) for name in png_files(pipeline_run.output))
    assert sorted(written) == expected
    summary = pd.read_json(pipeline_run.output / "summary.json", typ="series")
    assert summary["written"] == len(written)
    assert summary["total"] == len(demo_sources)


def test_missing_image_under_pipetask_fails_its_sources(demo_repo, demo_sources, tmp_path):
    """A visit × detector without its science image gets no cutout quantum;
    the gather task still records each of its sources as failed, with the
    reason, and the summary counts every source."""
    root = tmp_path / "repo"
    shutil.copytree(demo_repo.root, root)
    visit, detector = demo_repo.data_ids[1]
    with dafButler.Butler.from_config(str(root), writeable=True) as writer:
        ref = writer.find_dataset(
            "preliminary_visit_image",
            instrument="DemoCam",
            visit=visit,
            detector=detector,
            collections=demo_repo.collection,
        )
        writer.pruneDatasets([ref], disassociate=True, unstore=True, purge=True)
    output = tmp_path / "cutouts"
    command = [
        str(Path(sys.executable).parent / "pipetask"),
        "run",
        "-j1",
        "-b",
        str(root),
        "-i",
        demo_repo.collection,
        "-o",
        "u/test/missing",
        "-p",
        str(PIPELINE),
        "-c",
        f"plotImageSubtractionCutouts:output_path={output}",
        "--dataset-query-constraint",
        "dia_source_detector",
        "--register-dataset-types",
    ]
    run = subprocess.run(command, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "recorded as failed" in run.stderr
    lost = demo_sources[(demo_sources["visit"] == visit) & (demo_sources["detector"] == detector)]
    failures = pd.read_csv(output / "failures.csv")
    missing = failures[failures["reason_code"] == "missing_exposure"]
    assert sorted(missing["diaSourceId"]) == sorted(lost["diaSourceId"])
    assert missing["reason"].str.contains(f"visit {visit} detector {detector}").all()
    summary = pd.read_json(output / "summary.json", typ="series")
    assert summary["total"] == len(demo_sources)
    assert not any(str(i) in p.name for i in lost["diaSourceId"] for p in (output / "images").rglob("*.png"))


def test_gather_writes_the_same_vetting_page_as_python_api(pipeline_run, python_run):
    python_output, result = python_run
    assert result.vetting_page == python_output / "index.html"
    # The gather step read the DiaSource columns the page shows from the
    # Butler tables: the page and its records are the Python run's.
    for name in ("index.html", "vetting/records.js", "vetting/vetting.js", "vetting/vetting.css"):
        assert (pipeline_run.output / name).read_bytes() == (python_output / name).read_bytes(), name
    data = (pipeline_run.output / "vetting" / "records.js").read_text()
    assert '"name":"snr"' in data and '"name":"flags"' in data and '"name":"diaObjectId"' in data
