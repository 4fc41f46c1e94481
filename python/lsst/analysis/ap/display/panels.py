"""From cut stamps to drawn panels: orientation, smoothing, mask overlay and
shared limits of one source.

`prepare_panel` turns one cut stamp (and, when the overlay is on, its mask
planes) into what the renderer draws: the oriented (and optionally smoothed)
pixels and a `~lsst.analysis.ap.display.options.PanelContext` with the
source's drawn position, the North/East directions and the overlay plane
index.  `share_limits` then gives the template and science panels of each
size the same display limits when asked.  Everything is a pure function of
arrays and the image's pixel/sky mappings.
"""

from __future__ import annotations

__all__ = (
    "DisplaySettings",
    "PanelInput",
    "PreparedPanel",
    "RoleStamps",
    "prepare_panel",
    "prepare_source",
    "share_limits",
)

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
from astropy.convolution import Kernel2D
from astropy.visualization import BaseInterval

from ..stamp_wcs import PixelToSky, SkyToPixel, local_tan_wcs, north_up_wcs, resample_north_up, sky_directions
from .limits import shared_limits
from .options import PanelContext
from .orientation import orient_stamp
from .overlays import OverlayPlane, overlay_index
from .smoothing import smooth_stamp


@dataclasses.dataclass(frozen=True)
class PanelInput:
    """One cut stamp and where it came from.

    Attributes
    ----------
    image : `numpy.ndarray`
        Square stamp, NaN for no data, row 0 at the bottom.
    x0, y0 : `int`
        Parent pixel coordinates of the stamp's lower-left pixel.
    x, y : `float`
        Source position in parent pixel coordinates of this image.
    planes : mapping of `str` to `numpy.ndarray`, optional
        Boolean stamp-shaped mask planes by canonical name (overlay only).

    """

    image: np.ndarray
    x0: int
    y0: int
    x: float
    y: float
    planes: Mapping[str, np.ndarray] | None = None


@dataclasses.dataclass(frozen=True)
class PreparedPanel:
    """A stamp ready to draw and its decorations."""

    image: np.ndarray
    context: PanelContext
    resampled: bool


def prepare_panel(
    panel: PanelInput,
    *,
    orientation: str = "detector",
    north: tuple[float, float] = (0.0, 1.0),
    east: tuple[float, float] = (-1.0, 0.0),
    ra: float | None = None,
    dec: float | None = None,
    pixel_to_sky: PixelToSky | None = None,
    pixel_scale_arcsec: float | None = None,
    overlay_planes: Sequence[OverlayPlane] = (),
    kernel: Kernel2D | None = None,
) -> PreparedPanel:
    """Orient, smooth and decorate one stamp for drawing.

    Parameters
    ----------
    panel : `PanelInput`
        The cut stamp.
    orientation : `str`, optional
        ``detector``, ``cardinal`` or ``north_up``.
    north, east : `tuple` [`float`, `float`], optional
        Directions in the image's pixel coordinates at the source
        (`lsst.analysis.ap.stamp_wcs.sky_directions`).
    ra, dec : `float`, optional
        Source position (degrees); needed for ``north_up``.
    pixel_to_sky : callable, optional
        The image's pixel-to-sky mapping; needed for ``north_up``.
    pixel_scale_arcsec : `float`, optional
        Pixel scale of the north-up grid; needed for ``north_up``.
    overlay_planes : sequence of `OverlayPlane`, optional
        Planes of the mask overlay (empty: no overlay).
    kernel : `astropy.convolution.Kernel2D`, optional
        Display smoothing.

    Returns
    -------
    prepared : `PreparedPanel`
        Pixels to draw and their `PanelContext`.

    Raises
    ------
    ValueError
        If ``north_up`` lacks the sky position, mapping or scale.

    """
    size = panel.image.shape[0]
    position = (panel.x - panel.x0, panel.y - panel.y0)
    names = [p.name for p in overlay_planes if panel.planes and p.name in panel.planes]
    extra = tuple(np.asarray(panel.planes[n], dtype=bool) for n in names) if panel.planes else ()
    resample = None
    if orientation == "north_up":
        if ra is None or dec is None or pixel_to_sky is None or not pixel_scale_arcsec:
            raise ValueError("north_up needs the source's sky position, the image WCS and a pixel scale.")
        stamp_wcs = local_tan_wcs(pixel_to_sky, panel.x, panel.y, panel.x0, panel.y0, size)
        target = north_up_wcs(ra, dec, position[0], position[1], pixel_scale_arcsec, size)

        def resample(array: np.ndarray, order: str) -> np.ndarray:
            return resample_north_up(array, stamp_wcs, target, order=order)

    oriented = orient_stamp(orientation, panel.image, position, north, east, extra=extra, resample=resample)
    index = None
    if overlay_planes and names:
        index = overlay_index(dict(zip(names, oriented.extra, strict=True)), overlay_planes)
    elif overlay_planes:
        index = np.full(oriented.image.shape, -1, dtype=np.int16)
    image = smooth_stamp(oriented.image, kernel) if kernel is not None else oriented.image
    context = PanelContext(
        position=oriented.position, north=oriented.north, east=oriented.east, overlay_index=index
    )
    return PreparedPanel(image, context, oriented.resampled)


def share_limits(
    template: PreparedPanel, science: PreparedPanel, interval: BaseInterval
) -> tuple[PreparedPanel, PreparedPanel]:
    """Give a template and a science panel the same display limits.

    Parameters
    ----------
    template, science : `PreparedPanel`
        The two panels of one size.
    interval : `astropy.visualization.BaseInterval`
        Interval computed over both stamps' finite pixels.

    Returns
    -------
    template, science : `PreparedPanel`
        Copies whose contexts carry the shared
        `~astropy.visualization.ManualInterval` (unchanged when neither
        stamp has usable pixels).

    """
    limits = shared_limits([template.image, science.image], interval)
    if limits is None:
        return template, science
    return tuple(  # type: ignore[return-value]
        dataclasses.replace(p, context=dataclasses.replace(p.context, interval=limits))
        for p in (template, science)
    )


@dataclasses.dataclass(frozen=True)
class DisplaySettings:
    """What the cutting core must prepare for the display options.

    Attributes
    ----------
    orientation : `str`
        ``detector``, ``cardinal`` or ``north_up``.
    directions : `bool`
        Sources need positions and North/East directions (marker or
        compass on).
    overlay_planes : `tuple` [`OverlayPlane`, ...]
        Planes of the mask overlay (empty: the mask is not read).
    kernels : `tuple` [`astropy.convolution.Kernel2D` or `None`, ...]
        Display smoothing of the template, science and difference panels.
    shared_interval : `astropy.visualization.BaseInterval` or `None`
        Interval computed over template and science together, or `None`
        for separate limits.

    """

    orientation: str = "detector"
    directions: bool = False
    overlay_planes: tuple[OverlayPlane, ...] = ()
    kernels: tuple[Kernel2D | None, Kernel2D | None, Kernel2D | None] = (None, None, None)
    shared_interval: BaseInterval | None = None

    @property
    def needs_mask(self) -> bool:
        """Whether the mask planes must be read."""
        return bool(self.overlay_planes)

    @property
    def is_default(self) -> bool:
        """Whether the stamps are drawn as cut, without decorations."""
        return (
            self.orientation == "detector"
            and not self.directions
            and not self.overlay_planes
            and all(k is None for k in self.kernels)
            and self.shared_interval is None
        )


@dataclasses.dataclass(frozen=True)
class RoleStamps:
    """The stamps of one image (one per size) and its sky mappings.

    Attributes
    ----------
    panels : `tuple` [`PanelInput`, ...]
        One cut stamp per size.
    sky_to_pixel, pixel_to_sky : callable or `None`
        The image's mappings (needed for directions and ``north_up``).

    """

    panels: tuple[PanelInput, ...]
    sky_to_pixel: SkyToPixel | None = None
    pixel_to_sky: PixelToSky | None = None


def prepare_source(
    settings: DisplaySettings,
    roles: Sequence[RoleStamps],
    ra: float,
    dec: float,
    pixel_scale_arcsec: float | None,
) -> tuple[list[tuple[np.ndarray, ...]], list[tuple[PanelContext, ...]], bool]:
    """Prepare every panel of one source.

    Parameters
    ----------
    settings : `DisplaySettings`
        What to prepare.
    roles : sequence of `RoleStamps`
        Template, science and difference stamps.
    ra, dec : `float`
        Source position (degrees).
    pixel_scale_arcsec : `float` or `None`
        Pixel scale of the north-up grid.

    Returns
    -------
    images : `list` [`tuple` [`numpy.ndarray`, ...]]
        Per size, the (template, science, difference) pixels to draw.
    contexts : `list` [`tuple` [`PanelContext`, ...]]
        Per size, the panels' contexts.
    resampled : `bool`
        Whether any stamp was resampled.

    """
    n_sizes = len(roles[0].panels)
    prepared: list[list[PreparedPanel]] = [[] for _ in range(n_sizes)]
    for role, kernel in zip(roles, settings.kernels, strict=True):
        # An image without a WCS (e.g. a ZTF alert stamp) keeps its pixel
        # grid and gets no compass: its directions on the sky are unknown.
        has_wcs = role.sky_to_pixel is not None
        north, east = (0.0, 1.0), (-1.0, 0.0)
        if (settings.directions or settings.orientation != "detector") and has_wcs:
            north, east = sky_directions(role.sky_to_pixel, ra, dec)
        for i, panel in enumerate(role.panels):
            ready = prepare_panel(
                panel,
                orientation=settings.orientation if has_wcs else "detector",
                north=north,
                east=east,
                ra=ra,
                dec=dec,
                pixel_to_sky=role.pixel_to_sky,
                pixel_scale_arcsec=pixel_scale_arcsec,
                overlay_planes=settings.overlay_planes,
                kernel=kernel,
            )
            if not has_wcs:
                ready = dataclasses.replace(
                    ready, context=dataclasses.replace(ready.context, north=None, east=None)
                )
            prepared[i].append(ready)
    if settings.shared_interval is not None:
        for panels in prepared:
            panels[0], panels[1] = share_limits(panels[0], panels[1], settings.shared_interval)
    images = [tuple(p.image for p in panels) for panels in prepared]
    contexts = [tuple(p.context for p in panels) for panels in prepared]
    resampled = any(p.resampled for panels in prepared for p in panels)
    return images, contexts, resampled
