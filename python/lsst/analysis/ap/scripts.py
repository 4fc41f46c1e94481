"""Console scripts of the commands that draw: each answers Ctrl-C from its
first moment (`~lsst.analysis.ap.interrupts.run_command`), imports its
command's ``main`` and runs it.
"""

from __future__ import annotations

__all__ = ("alerts", "cutouts", "files", "sequences")

from typing import NoReturn

from .interrupts import run_command


def cutouts() -> NoReturn:
    """``plotImageSubtractionCutouts``: `lsst.analysis.ap.cli.main`."""
    run_command("lsst.analysis.ap.cli", "main")


def alerts() -> NoReturn:
    """``plotAlertCutouts``: `lsst.analysis.ap.cli.alerts_main`."""
    run_command("lsst.analysis.ap.cli", "alerts_main")


def files() -> NoReturn:
    """``plotFileCutouts``: `lsst.analysis.ap.cli.files_main`."""
    run_command("lsst.analysis.ap.cli", "files_main")


def sequences() -> NoReturn:
    """``plotDiaObjectSequences``: `lsst.analysis.ap.sequences.cli.main`."""
    run_command("lsst.analysis.ap.sequences.cli", "main")
