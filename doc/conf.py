"""Sphinx configuration for the analysis_ap documentation."""

project = "analysis_ap"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.intersphinx"]
master_doc = "index"
exclude_patterns = ["_build"]
