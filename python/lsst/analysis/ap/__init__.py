"""Template, science and difference image cutouts of DiaSources.

The package reads top to bottom as the data flow: `sources` / `apdb` (the
DiaSources), `images` (pixel access), `geometry` (stamp boxes), `display`
(scaling, annotation, rendering), `core` (one visit × detector to records),
`records` (the per-source record), `outputs` (files and manifests),
`parallel` (worker processes), and the tasks in
`plotImageSubtractionCutouts`; `cli` is the command line (`scripts` its
console scripts, `interrupts` its Ctrl-C) and `demo` the demo repository.

The tasks, configs and connections of `plotImageSubtractionCutouts` are
names of this package, imported on first use: a process that uses only the
modules below them (readers, outputs, the vetting page) does not import the
pipeline machinery (``lsst.pipe.base``).
"""

import importlib
from typing import Any

_TASKS = "plotImageSubtractionCutouts"


def __getattr__(name: str) -> Any:
    tasks = importlib.import_module(f"{__name__}.{_TASKS}")
    if name == "__all__" or name in tasks.__all__:
        return getattr(tasks, name)
    if name in globals():
        # A submodule: the tasks' module (or one it imported) is now set.
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), _TASKS, *importlib.import_module(f"{__name__}.{_TASKS}").__all__})
