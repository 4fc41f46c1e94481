"""Shared fixtures: one real demo Butler repository (SQLite registry, real
APDB) built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsst.analysis.ap.demo import DemoRepo, DemoSpec, build_demo_repo

TEST_SPEC = DemoSpec(
    n_visits=3, n_detectors=2, image_size=256, objects_per_detector=10, stars_per_detector=60
)
"""Small but complete: edge, no-data, saturated, CR and dipole sources, the
same DiaObjects in several visits."""


@pytest.fixture(scope="session")
def demo_repo(tmp_path_factory: pytest.TempPathFactory) -> DemoRepo:
    """The demo repository; tests must not write into it (use copies)."""
    return build_demo_repo(tmp_path_factory.mktemp("demo") / "repo", TEST_SPEC)


@pytest.fixture(scope="session")
def demo_sources(demo_repo: DemoRepo):
    """All DiaSources of the demo repository, as the Butler tables hold them."""
    return demo_repo.sources()


@pytest.fixture()
def output_dir(tmp_path: Path) -> Path:
    """A fresh output directory."""
    return tmp_path / "cutouts"


@pytest.fixture(autouse=True)
def _lsst_logs_reach_caplog():
    """In-process pipeline runs configure the ``lsst`` logger (no
    propagation); let task warnings reach pytest's log capture again.
    """
    import logging

    logger = logging.getLogger("lsst")
    saved = (logger.propagate, logger.level)
    logger.propagate = True
    logger.setLevel(logging.NOTSET)
    yield
    logger.propagate, level = saved
    logger.setLevel(level)
