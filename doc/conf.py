"""Sphinx configuration for the analysis_ap documentation.

Built with plain Sphinx (``make docs``, warnings as errors).  documenteer's
pipelines preset, which pipelines.lsst.io uses, is no longer published for
current Sphinx versions; the one directive of it these pages use,
``lsst-task-topic``, comes from ``_ext/lsst_task_topic.py``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "analysis_ap"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.intersphinx", "lsst_task_topic"]
master_doc = "index"
exclude_patterns = ["_build", "_ext"]
