"""The optional display choices of a cutout renderer, and what each source
brings to them.

`DisplayOptions` holds the choices fixed for a run (per-panel colormaps,
marker, compass, mask overlay, negative-flux badge, no-data label); its
default draws exactly what the renderer drew before these options existed.
`PanelContext` holds what one panel of one source needs for them (the
source's position and the North/East directions as the stamp is drawn, the
mask-plane index, fixed display limits).
"""

from __future__ import annotations

__all__ = ("EMPTY_PANEL_TEXT", "NEGATIVE_BADGE_TEXT", "DisplayOptions", "PanelContext")

import dataclasses

import numpy as np
from astropy.visualization import BaseInterval

from .markers import MARKER_STYLES
from .overlays import DEFAULT_OVERLAY_OPACITY, OverlayPlane

EMPTY_PANEL_TEXT = "no data"
"""Label of a panel whose stamp has no valid pixel."""

NEGATIVE_BADGE_TEXT = "NEGATIVE"
"""Badge drawn on the difference panel when the difference flux is negative."""


@dataclasses.dataclass(frozen=True)
class DisplayOptions:
    """Optional display choices of a renderer.

    Attributes
    ----------
    colormaps : `tuple` [`str` or `None`, ...]
        Colormap of the template, science and difference panels; `None`
        uses the renderer's ``colormap``.
    marker : `str`
        Source marker style (`lsst.analysis.ap.display.markers.MARKER_STYLES`).
    compass : `bool`
        Draw N/E arrows on every panel.
    overlay_planes : `tuple` [`OverlayPlane`, ...]
        Mask planes drawn over the stamps (empty: no overlay).
    overlay_opacity : `float`
        Weight of the overlay colours.
    negative_badge : `bool`
        Draw a badge on the difference panel of a source whose difference
        flux is negative.

    """

    colormaps: tuple[str | None, str | None, str | None] = (None, None, None)
    marker: str = "off"
    compass: bool = False
    overlay_planes: tuple[OverlayPlane, ...] = ()
    overlay_opacity: float = DEFAULT_OVERLAY_OPACITY
    negative_badge: bool = False

    def __post_init__(self) -> None:
        if len(self.colormaps) != 3:
            raise ValueError(f"colormaps needs one entry per panel (3), got {len(self.colormaps)}.")
        if self.marker not in MARKER_STYLES:
            raise ValueError(
                f"Unknown marker style {self.marker!r}; valid choices are: {', '.join(MARKER_STYLES)}."
            )
        if not 0.0 < self.overlay_opacity <= 1.0:
            raise ValueError(f"overlay opacity must be in (0, 1], got {self.overlay_opacity}.")

    @property
    def overlay(self) -> bool:
        """Whether the mask overlay is on."""
        return bool(self.overlay_planes)

    def needs_rgb(self, colormap: str) -> bool:
        """Whether images must be composed in RGB (overlay or a second colormap)."""
        return self.overlay or any(c is not None and c != colormap for c in self.colormaps)

    @property
    def needs_geometry(self) -> bool:
        """Whether sources must bring positions and directions."""
        return self.marker != "off" or self.compass


@dataclasses.dataclass(frozen=True)
class PanelContext:
    """What one panel of one source brings to the optional decorations.

    Attributes
    ----------
    position : `tuple` [`float`, `float`] or `None`
        Source position in drawn-stamp pixel coordinates.
    north, east : `tuple` [`float`, `float`] or `None`
        Directions as drawn (``y`` up).
    overlay_index : `numpy.ndarray` or `None`
        Stamp-shaped plane index (`lsst.analysis.ap.display.overlays.overlay_index`),
        oriented as the stamp is drawn.
    interval : `astropy.visualization.BaseInterval` or `None`
        Limits that replace the panel's interval for this source (e.g.
        template and science sharing limits).

    """

    position: tuple[float, float] | None = None
    north: tuple[float, float] | None = None
    east: tuple[float, float] | None = None
    overlay_index: np.ndarray | None = None
    interval: BaseInterval | None = None
