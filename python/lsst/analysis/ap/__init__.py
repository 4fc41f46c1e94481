"""Template, science and difference image cutouts of DiaSources.

The package reads top to bottom as the data flow: `sources` / `apdb` (the
DiaSources), `images` (pixel access), `geometry` (stamp boxes), `display`
(scaling, annotation, rendering), `core` (one visit × detector to records),
`records` (the per-source record), `outputs` (files and manifests),
`parallel` (worker processes), and the tasks in
`plotImageSubtractionCutouts`; `cli` is the command line and `demo` the demo
repository.
"""

from . import plotImageSubtractionCutouts
from .plotImageSubtractionCutouts import *  # noqa: F403 - the tasks, configs and connections

__all__ = plotImageSubtractionCutouts.__all__
