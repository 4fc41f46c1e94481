"""Every epoch of a DiaObject: stamps of all its DiaSources (and optionally
of the other visits covering it) aligned on one grid with one display
normalisation, assembled into a contact sheet, animations and multi-frame
Zooniverse subjects.

Modules: `epochs` (which epochs, in what order), `align` (the common grid and
the stamps on it), `products` (contact sheet, GIF/APNG, manifests), `task`
(`PlotDiaObjectSequencesTask`).
"""

from .task import PlotDiaObjectSequencesConfig, PlotDiaObjectSequencesTask

__all__ = ("PlotDiaObjectSequencesConfig", "PlotDiaObjectSequencesTask")
