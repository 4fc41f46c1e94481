"""Render template / science / difference cutouts to a PNG, without matplotlib figures.

`TripletRenderer` is built once per configuration (sizes, metadata on/off,
panel size, colormap, scalings).  It assembles, once, the palette
(`lsst.analysis.ap.display.palette`), the layout
(`lsst.analysis.ap.display.layout`), the glyph caches
(`lsst.analysis.ap.display.glyphs`) and the pre-drawn art
(`lsst.analysis.ap.display.predrawn`); per source it copies the pre-drawn index
background and draws only what changes: the three colour-mapped panels per
size, the scale bars, the annotation values, the set badges and
the red labels of flagged fluxes, all in numpy.  matplotlib is only used
for its colormaps and its bundled DejaVu Sans fonts.

Stamps are 2-D float arrays with NaN marking no data and row 0 at the
*bottom* (detector orientation, origin lower); they are flipped when drawn.
Each stamp is upsampled by nearest neighbour to fill the ``panel_pixels``
square box; the same index map is used for both axes, so for a factor that
is not an integer (e.g. 64 px into 240) stamp pixels are 3 or 4 canvas
pixels wide, never stretched along one axis only.  The default panel size,
240, is an exact 8x zoom of the default 30-px stamps.
"""

from __future__ import annotations

__all__ = (
    "DEFAULT_COMPRESS_LEVEL",
    "DEFAULT_PANEL_PIXELS",
    "RenderedSource",
    "TripletRenderer",
    "nearest_index",
    "paint_panel",
    "render_panel_rgb",
    "scale_bar",
    "upsample_nearest",
)

import dataclasses
import functools
import io
import math
import threading
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
from astropy.visualization import BaseInterval, BaseStretch
from PIL import Image

from ..datasets import PANEL_TITLES
from .annotation import ANNOTATION_SCHEMES, BADGES, FLAGGED_RGB, RUBIN_SCHEME, SourceAnnotation, field_labels
from .decorations import (
    draw_compass,
    draw_marker,
    make_label_tile,
    overlay_panel,
    overlay_table,
    paste_label,
    recolor_panel,
    to_rgb,
)
from .glyphs import GlyphCache, font
from .layout import (
    BASELINE,
    FLAGGABLE_FIELDS,
    LABEL_SIZE,
    SCALE_BAR_INSET,
    SCALE_BAR_THICKNESS,
    VALUE_SIZE,
    Box,
    CanvasLayout,
    layout_canvas,
    uncovered_boxes,
)
from .options import EMPTY_PANEL_TEXT, NEGATIVE_BADGE_TEXT, DisplayOptions, PanelContext
from .overlays import overlay_legend
from .palette import NO_DATA_RGB, RGB, SCALE_BAR_OUTLINE_RGB, SCALE_BAR_RGB, Palette, display_levels
from .png import PalettePng
from .predrawn import badge_tile, draw_background, label_tile, scale_label_tile
from .scaling import DEFAULT_SCALINGS, DisplayScaling, scale_stamp, stamp_levels

DEFAULT_PANEL_PIXELS = 240
"""Default panel box size: an exact 8x zoom of the default 30-px stamps."""

DEFAULT_COMPRESS_LEVEL = 1
"""zlib level of the PNG.

Measured (CPU time per image, palette PNG, 30-px triplet with metadata,
752x384): level 0 0.3 ms / 283 KiB; 1: 0.84 ms / 18.8 KiB; 2-3: 0.9-1.0 ms /
17-17.6 KiB; 4: 1.4 ms / 14.8 KiB; 6: 2.4 ms / 13.8 KiB; 9: 11 ms /
13.6 KiB.  Level 1 already removes 98% of what level 9 removes, for a
thirteenth of its time; level 4 saves another ~20% of bytes for ~0.6 ms more
per image, worth it only when storage or upload volume matters more than CPU.
"""


_PRELOADED_GLYPHS = "0123456789+-.e ±nJy—…abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"


def nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each output pixel for nearest-neighbour resampling.

    Parameters
    ----------
    n_in : `int`
        Number of input pixels along the axis.
    n_out : `int`
        Number of output pixels along the axis.

    Returns
    -------
    index : `numpy.ndarray`
        Read-only ``(n_out,)`` int array; output pixel ``k`` samples input
        pixel ``floor((k + 0.5) * n_in / n_out)``.  Each input pixel covers
        ``floor`` or ``ceil`` of ``n_out / n_in`` output pixels.

    """
    index = ((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.intp)
    np.clip(index, 0, n_in - 1, out=index)
    index.flags.writeable = False
    return index


@functools.cache
def _repeat_counts(n_in: int, n_out: int) -> np.ndarray | None:
    """How many times `nearest_index` repeats each input pixel (`None` if
    it is not in increasing order, so not a plain repetition)."""
    index = nearest_index(n_in, n_out)
    if np.any(np.diff(index) < 0):
        return None
    counts = np.bincount(index, minlength=n_in)
    counts.flags.writeable = False
    return counts


def paint_panel(canvas: np.ndarray, slices: tuple[slice, slice], levels: np.ndarray) -> None:
    """Write a stamp's levels, upsampled and flipped, into a canvas box.

    Parameters
    ----------
    canvas : `numpy.ndarray`
        2-D array to draw into.
    slices : `tuple` [`slice`, `slice`]
        The square box of the panel in ``canvas``.
    levels : `numpy.ndarray`
        Square 2-D stamp levels, row 0 at the bottom.

    Notes
    -----
    The result is ``canvas[slices] = upsample_nearest(levels, size)``: the
    nearest-neighbour index of a square zoom only repeats pixels, so it is
    drawn with `numpy.repeat` rather than index arrays.

    """
    target = canvas[slices]
    size = target.shape[0]
    n = levels.shape[0]
    counts = _repeat_counts(n, size) if levels.shape == (n, n) and target.shape == (size, size) else None
    if counts is None:
        target[...] = upsample_nearest(levels, size)
        return
    # Flipped: output row k shows stamp row n - 1 - index[k], so flipped row
    # j is repeated as often as index takes the value j.
    # Columns first, on the small stamp; rows are then whole-row copies.
    target[...] = levels[::-1].repeat(counts, axis=1).repeat(counts, axis=0)


def upsample_nearest(image: np.ndarray, out_size: int, *, flip_vertical: bool = True) -> np.ndarray:
    """Resample an image to ``out_size`` x ``out_size`` by nearest neighbour.

    Parameters
    ----------
    image : `numpy.ndarray`
        ``(s, s)`` or ``(s, s, channels)`` image in array orientation.
    out_size : `int`
        Output width and height.
    flip_vertical : `bool`, optional
        Put array row 0 at the *bottom* of the output (origin lower, as
        for detector images); `False` keeps row 0 at the top.

    Returns
    -------
    out : `numpy.ndarray`
        ``(out_size, out_size, ...)`` image in display orientation (row 0
        at the top).

    """
    rows = nearest_index(image.shape[0], out_size)
    cols = nearest_index(image.shape[1], out_size)
    if flip_vertical:
        rows = image.shape[0] - 1 - rows
    return np.take(np.take(image, rows, axis=0), cols, axis=1)


def render_panel_rgb(
    array: np.ndarray,
    interval: BaseInterval,
    stretch: BaseStretch,
    lut: np.ndarray,
    no_data_rgb: Sequence[int],
    out_size: int,
) -> np.ndarray:
    """Scale, colour-map and upsample one stamp to a display panel.

    `TripletRenderer` draws exactly this, with ``lut`` its
    `TripletRenderer.panel_lut`.

    Parameters
    ----------
    array : `numpy.ndarray`
        ``(s, s)`` stamp, NaN for no data, row 0 at the bottom.
    interval : `astropy.visualization.BaseInterval`
        Display interval.
    stretch : `astropy.visualization.BaseStretch`
        Display stretch.
    lut : `numpy.ndarray`
        ``(n, 3)`` uint8 colormap table; value ``v`` takes entry
        ``round(v * (n - 1))``.
    no_data_rgb : sequence of 3 `int`
        Colour of NaN pixels.
    out_size : `int`
        Panel width and height in canvas pixels.

    Returns
    -------
    panel : `numpy.ndarray`
        ``(out_size, out_size, 3)`` uint8, row 0 at the top (flipped).

    """
    lut = np.asarray(lut, dtype=np.uint8)
    extended = np.concatenate([lut, np.asarray([no_data_rgb], dtype=np.uint8)])
    no_data_index = len(lut)
    scaled = scale_stamp(array, interval, stretch)
    index = display_levels(scaled, len(lut), 0).astype(np.intp)
    index[np.isnan(scaled)] = no_data_index
    return extended[upsample_nearest(index, out_size)]


SCALE_BAR_ARCSEC = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0)
"""Scale-bar lengths offered (arcsec), shortest first."""

MIN_SCALE_BAR_PIXELS = 16.0
"""Shortest scale bar drawn with a longer length available (canvas pixels):
a 1-arcsecond bar shorter than this (ZTF's 1″ pixels, wide stamps) gives
way to the first length of `SCALE_BAR_ARCSEC` at least this long."""


def scale_bar(panel_pixels: int, stamp_size: int, pixel_scale_arcsec: float | None) -> tuple[float, float]:
    """Length of a panel's scale bar, on the sky and on the canvas.

    Parameters
    ----------
    panel_pixels : `int`
        Panel width in canvas pixels.
    stamp_size : `int`
        Stamp width in image pixels.
    pixel_scale_arcsec : `float` or `None`
        Image pixel scale (arcsec / pixel).

    Returns
    -------
    arcsec : `float`
        The first length of `SCALE_BAR_ARCSEC` whose bar is at least
        `MIN_SCALE_BAR_PIXELS` long (the longest when none is).
    length : `float`
        Its length in canvas pixels, ``arcsec * panel_pixels / stamp_size
        / pixel_scale_arcsec``.  Both are NaN if the pixel scale is
        missing, not finite or not positive.

    """
    if pixel_scale_arcsec is None or not math.isfinite(pixel_scale_arcsec) or pixel_scale_arcsec <= 0:
        return math.nan, math.nan
    per_arcsec = panel_pixels / stamp_size / pixel_scale_arcsec
    long_enough = (a for a in SCALE_BAR_ARCSEC if a * per_arcsec >= MIN_SCALE_BAR_PIXELS)
    arcsec = next(long_enough, SCALE_BAR_ARCSEC[-1])
    return arcsec, arcsec * per_arcsec


Limits = tuple[float, float] | None


@dataclasses.dataclass(frozen=True)
class RenderedSource:
    """One source's cutout image and the display limits of its panels.

    Attributes
    ----------
    png : `bytes`
        The encoded image.
    limits : `tuple` [`tuple` [limits, limits, limits], ...]
        ``(vmin, vmax)`` of the template, science and difference panels of
        each size (`None` for an empty or constant stamp).

    """

    png: bytes
    limits: tuple[tuple[Limits, Limits, Limits], ...]


_NEGATIVE_RGB: RGB = (65, 105, 225)
"""Fill of the negative-flux badge (a colour the palette already holds)."""


@dataclasses.dataclass(frozen=True)
class _SchemeArt:
    """What one annotation scheme draws: its background (with its labels),
    value boxes, set-badge tiles and red flagged-label tiles.
    """

    background: np.ndarray
    annotated_background: np.ndarray
    """The background with every value box blank: each is redrawn whole
    for a source with an annotation, so only its ink is drawn."""
    value_boxes: Mapping[str, Box]
    label_boxes: Mapping[str, Box]
    badge_tiles: Mapping[str, np.ndarray]
    flagged_tiles: Mapping[str, np.ndarray]


def _as_scaling(value: DisplayScaling | tuple[BaseInterval, BaseStretch]) -> DisplayScaling:
    if isinstance(value, DisplayScaling):
        return value
    interval, stretch = value
    return DisplayScaling(interval, stretch)


class TripletRenderer:
    """Draws template/science/difference cutouts of one configuration.

    Build once and call `render` / `render_png` per source.  The instance
    does not change after construction, apart from one drawing buffer per
    thread that `render_source` reuses (safe to share between threads), and
    is picklable (it is rebuilt from its arguments).

    Parameters
    ----------
    sizes : sequence of `int`
        Stamp widths, one row of panels per size, top to bottom.
    add_metadata : `bool`
        Draw the catalog annotation block above the panels.
    panel_pixels : `int`, optional
        Width and height of each panel box in canvas pixels; every stamp
        size is upsampled to fill it.
    colormap : `str`, optional
        matplotlib colormap name.
    template_scaling, science_scaling, difference_scaling : \
`~lsst.analysis.ap.display.scaling.DisplayScaling` or (interval, stretch), optional
        Display scaling of each panel; default asinh on min/max for the
        template and science, linear on zscale for the difference.
    no_data_rgb : sequence of 3 `int`, optional
        Colour of NaN (no data) pixels.
    compress_level : `int`, optional
        zlib level (0-9) of `render_png`.
    options : `~lsst.analysis.ap.display.options.DisplayOptions`, optional
        Per-panel colormaps, marker, compass, mask overlay and
        negative-flux badge; the default draws none of them.

    Raises
    ------
    ValueError
        For empty or non-positive sizes, a too small panel, an unknown
        colormap, an invalid colour or compression level.

    """

    def __init__(
        self,
        sizes: Sequence[int],
        add_metadata: bool,
        *,
        panel_pixels: int = DEFAULT_PANEL_PIXELS,
        colormap: str = "gray",
        template_scaling: DisplayScaling | tuple[BaseInterval, BaseStretch] = DEFAULT_SCALINGS["template"],
        science_scaling: DisplayScaling | tuple[BaseInterval, BaseStretch] = DEFAULT_SCALINGS["science"],
        difference_scaling: DisplayScaling | tuple[BaseInterval, BaseStretch] = DEFAULT_SCALINGS[
            "difference"
        ],
        no_data_rgb: Sequence[int] = NO_DATA_RGB,
        compress_level: int = DEFAULT_COMPRESS_LEVEL,
        options: DisplayOptions | None = None,
    ) -> None:
        sizes = tuple(int(s) for s in sizes)
        if not sizes or min(sizes) < 1:
            raise ValueError(f"sizes must be a non-empty list of positive stamp widths, got {sizes!r}.")
        if int(panel_pixels) < 32:
            raise ValueError(f"panel_pixels must be at least 32, got {panel_pixels!r}.")
        no_data = tuple(int(c) for c in no_data_rgb)
        if len(no_data) != 3 or not all(0 <= c <= 255 for c in no_data):
            raise ValueError(f"no_data_rgb must be three integers in 0-255, got {no_data_rgb!r}.")
        if not 0 <= int(compress_level) <= 9:
            raise ValueError(f"compress_level must be in 0-9, got {compress_level!r}.")
        self._init_args: dict[str, Any] = dict(
            sizes=sizes,
            add_metadata=bool(add_metadata),
            panel_pixels=int(panel_pixels),
            colormap=colormap,
            template_scaling=_as_scaling(template_scaling),
            science_scaling=_as_scaling(science_scaling),
            difference_scaling=_as_scaling(difference_scaling),
            no_data_rgb=no_data,
            compress_level=int(compress_level),
            options=options if options is not None else DisplayOptions(),
        )
        self.sizes: tuple[int, ...] = sizes
        self.add_metadata: bool = bool(add_metadata)
        self.panel_pixels: int = int(panel_pixels)
        self.colormap: str = colormap
        self.scalings: tuple[DisplayScaling, DisplayScaling, DisplayScaling] = (
            self._init_args["template_scaling"],
            self._init_args["science_scaling"],
            self._init_args["difference_scaling"],
        )
        self.no_data_rgb: RGB = no_data  # type: ignore[assignment]
        self.compress_level: int = int(compress_level)
        self._palette = Palette(colormap, no_data)
        self.lut: np.ndarray = self._palette.lut
        """256-entry colormap LUT, ``(256, 3)`` uint8."""
        self.panel_lut: np.ndarray = self._palette.panel_lut
        """Colormap levels the panels are drawn with, ``(panel_levels, 3)``
        uint8, sampled evenly from `lut` (the rest of the 256-colour PNG
        palette holds interface colours)."""
        self.panel_levels: int = self._palette.panel_levels
        """Number of colormap levels of the panels."""
        self.palette: np.ndarray = self._palette.colours
        """The 256-colour palette of every image, ``(256, 3)`` uint8."""

        label_font = font(LABEL_SIZE)
        self._value_glyphs = GlyphCache(font(VALUE_SIZE), _PRELOADED_GLYPHS)
        label_glyphs = GlyphCache(label_font)
        self.layouts: Mapping[str, CanvasLayout] = MappingProxyType(
            {
                scheme: layout_canvas(
                    len(sizes), self.add_metadata, self.panel_pixels, self._value_glyphs, label_glyphs, scheme
                )
                for scheme in (ANNOTATION_SCHEMES if self.add_metadata else (RUBIN_SCHEME,))
            }
        )
        """Layout of each annotation scheme (only ``rubin`` without metadata);
        every one has the same canvas size and panel boxes."""
        layout = self.layouts[RUBIN_SCHEME]
        self.canvas_size: tuple[int, int] = layout.canvas_size
        """``(width, height)`` of every image of this renderer, in pixels."""
        self.panel_boxes: tuple[tuple[Box, Box, Box], ...] = layout.panel_boxes
        """Panel boxes, ``[size index][0=template, 1=science, 2=difference]``."""
        self.badge_boxes: Mapping[str, Box] = layout.badge_boxes
        """Box of each flag badge by name (empty without metadata)."""
        self._art = MappingProxyType(
            {scheme: self._scheme_art(each, label_font) for scheme, each in self.layouts.items()}
        )
        self.label_boxes: Mapping[str, Box] = self._art[RUBIN_SCHEME].label_boxes
        """Box of each ``rubin`` annotation field label by field key (empty
        without metadata); `layouts` has those of every scheme."""
        self.value_boxes: Mapping[str, Box] = self._art[RUBIN_SCHEME].value_boxes
        """Box of each ``rubin`` annotation field value by field key (empty
        without metadata); `layouts` has those of every scheme."""
        self._scale_labels: dict[float, tuple[np.ndarray, np.ndarray]] = {}
        self._png = PalettePng(*self.canvas_size, self._palette.png_bytes, self.compress_level)
        self._scratch = threading.local()
        self._outside_panels = tuple(
            box.slices
            for box in uncovered_boxes(self.canvas_size, [b for row in self.panel_boxes for b in row])
        )
        """Slices of the canvas outside the panels: what is restored from the
        background before a source is drawn in a reused buffer (every panel
        is painted whole)."""
        self._setup_options(self._init_args["options"], no_data, layout)

    def _scheme_art(self, layout: CanvasLayout, label_font: Any) -> _SchemeArt:
        """Pre-draw the background and tiles of one scheme's layout."""
        labels = field_labels(layout.scheme)
        background = self._palette.quantize(np.asarray(draw_background(layout, labels, label_font)))
        background.flags.writeable = False
        annotated = background.copy()
        for cell in layout.cells.values():
            annotated[cell.value_box.slices] = self._palette.coverage_to_index[0]
        annotated.flags.writeable = False
        return _SchemeArt(
            background=background,
            annotated_background=annotated,
            value_boxes=MappingProxyType({k: c.value_box for k, c in layout.cells.items()}),
            label_boxes=MappingProxyType({k: c.label_box for k, c in layout.cells.items()}),
            badge_tiles=MappingProxyType(
                {
                    b.name: badge_tile(layout.badge_boxes[b.name], b.name, b.rgb, self._palette)
                    for b in BADGES
                    if b.name in layout.badge_boxes
                }
            ),
            flagged_tiles=MappingProxyType(
                {
                    k: label_tile(layout, k, labels[k], FLAGGED_RGB, label_font, self._palette)
                    for k in FLAGGABLE_FIELDS
                    if k in layout.cells
                }
            ),
        )

    def _setup_options(self, options: DisplayOptions, no_data: RGB, layout: Any) -> None:
        """Pre-draw what the display options need."""
        self.options: DisplayOptions = options
        """The optional display choices."""
        self._rgb = options.needs_rgb(self.colormap)
        self._panel_level_rgb = tuple(
            None if cm is None or cm == self.colormap else self._palette.levels_of(cm)
            for cm in options.colormaps
        )
        quantize = self._palette.quantize
        self._empty_tile = make_label_tile(
            EMPTY_PANEL_TEXT, font(LABEL_SIZE, bold=True), no_data, (255, 255, 255), quantize
        )
        self._negative_tile = (
            make_label_tile(
                NEGATIVE_BADGE_TEXT, font(LABEL_SIZE, bold=True), _NEGATIVE_RGB, (255, 255, 255), quantize
            )
            if options.negative_badge
            else None
        )
        self._overlay_tables = self._panel_overlay_tables(options) if options.overlay else None
        self._legend = (
            overlay_legend(
                options.overlay_planes, self.canvas_size[0], font(LABEL_SIZE), options.overlay_opacity
            )
            if options.overlay
            else None
        )
        self.image_size: tuple[int, int] = (
            self.canvas_size
            if self._legend is None
            else (self.canvas_size[0], self.canvas_size[1] + self._legend.shape[0])
        )
        """``(width, height)`` of the images: `canvas_size`, plus the mask
        legend below it when the overlay is on."""

    def _panel_overlay_tables(self, options: DisplayOptions) -> tuple[np.ndarray, ...]:
        """The `overlay_table` of each panel: the mask planes blended over
        that panel's own colormap levels (built once per colormap)."""
        keys = [None if cm == self.colormap else cm for cm in options.colormaps]
        tables = {
            key: overlay_table(
                self._palette.colours_of(key),
                self.panel_levels,
                options.overlay_planes,
                options.overlay_opacity,
            )
            for key in dict.fromkeys(keys)
        }
        return tuple(tables[key] for key in keys)

    # ------------------------------------------------------------------
    # Construction (once per configuration).

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_renderer, (self._init_args,))

    def __repr__(self) -> str:
        return (
            f"TripletRenderer(sizes={list(self.sizes)}, add_metadata={self.add_metadata}, "
            f"panel_pixels={self.panel_pixels}, colormap={self.colormap!r})"
        )

    # ------------------------------------------------------------------
    # Per source.

    def render(
        self,
        stamps: Sequence[Sequence[np.ndarray]],
        annotation: SourceAnnotation | None = None,
        pixel_scale_arcsec: float | Sequence[float | None] | None = None,
        contexts: Sequence[Sequence[PanelContext | None]] | None = None,
        negative: bool = False,
    ) -> Image.Image:
        """Draw one source's cutouts.

        Parameters
        ----------
        stamps : sequence of (template, science, difference)
            One triplet per size, in `sizes` order; each a 2-D square float
            array (NaN = no data, row 0 at the bottom).  The stamp width
            normally equals the configured size, but any square stamp is
            drawn into the same panel box.
        annotation : `~lsst.analysis.ap.display.annotation.SourceAnnotation`, optional
            Catalog values to draw (only with ``add_metadata``; `None`
            leaves the value slots empty).
        pixel_scale_arcsec : `float` or sequence of `float`, optional
            Pixel scale (arcsec/pixel), one for all sizes or one per size,
            for the scale bars (1 arcsecond, or the first of 2, 5, 10, 20,
            30 and 60 at least 16 canvas pixels long; see `scale_bar`).  No
            bar is drawn where it is `None`/NaN, or where the bar would not
            fit in the panel or would be shorter than 2 canvas pixels.
        contexts : sequence of (context, context, context), optional
            Per size, what the template, science and difference panels
            bring to the display options (source position, North/East,
            mask-plane index, fixed limits).
        negative : `bool`, optional
            The source's difference flux is negative (badge drawn when
            ``options.negative_badge`` is set).

        Returns
        -------
        image : `PIL.Image.Image`
            RGB image of size `image_size`.

        Raises
        ------
        ValueError
            If the number of triplets or the array shapes do not match.

        """
        canvas, _ = self._draw(stamps, annotation, pixel_scale_arcsec, contexts, negative)
        return self._image(canvas, contexts).convert("RGB")

    def render_png(
        self,
        stamps: Sequence[Sequence[np.ndarray]],
        annotation: SourceAnnotation | None = None,
        pixel_scale_arcsec: float | Sequence[float | None] | None = None,
    ) -> bytes:
        """Draw one source's cutouts and encode them as PNG.

        Parameters
        ----------
        stamps : sequence of (template, science, difference) `numpy.ndarray`
            One triplet per size, as for `render`.
        annotation : `~lsst.analysis.ap.display.annotation.SourceAnnotation`, optional
            Catalog values to draw, as for `render`.
        pixel_scale_arcsec : `float` or sequence of `float`, optional
            Pixel scale(s) for the scale bars, as for `render`.

        Returns
        -------
        png : `bytes`
            An 8-bit palette PNG (zlib level `compress_level`) that decodes
            to the image `render` returns.

        """
        return self.render_source(stamps, annotation, pixel_scale_arcsec).png

    def render_source(
        self,
        stamps: Sequence[Sequence[np.ndarray]],
        annotation: SourceAnnotation | None = None,
        pixel_scale_arcsec: float | Sequence[float | None] | None = None,
        contexts: Sequence[Sequence[PanelContext | None]] | None = None,
        negative: bool = False,
    ) -> RenderedSource:
        """Draw one source's cutouts, encode them as PNG and report the
        display limits of every panel.

        Parameters are those of `render`.

        Returns
        -------
        rendered : `RenderedSource`
            The PNG (8-bit palette, or RGB when the options need more
            colours) and the limits.

        """
        if not self._rgb:
            # Drawn straight into the PNG rows of this thread's buffer: no
            # new canvas and no copy for the encoder.
            rows = self._rows()
            _, limits = self._draw(stamps, annotation, pixel_scale_arcsec, contexts, negative, rows)
            return RenderedSource(self._png.encode_rows(rows), limits)
        canvas, limits = self._draw(stamps, annotation, pixel_scale_arcsec, contexts, negative)
        buffer = io.BytesIO()
        self._image(canvas, contexts).save(buffer, format="PNG", compress_level=self.compress_level)
        return RenderedSource(buffer.getvalue(), limits)

    def render_indices(
        self,
        stamps: Sequence[Sequence[np.ndarray]],
        annotation: SourceAnnotation | None = None,
        pixel_scale_arcsec: float | Sequence[float | None] | None = None,
    ) -> np.ndarray:
        """Draw one source's cutouts as palette indices.

        Parameters
        ----------
        stamps : sequence of (template, science, difference) `numpy.ndarray`
            One triplet per size, as for `render`.
        annotation : `~lsst.analysis.ap.display.annotation.SourceAnnotation`, optional
            Catalog values to draw, as for `render`.
        pixel_scale_arcsec : `float` or sequence of `float`, optional
            Pixel scale(s) for the scale bars, as for `render`.

        Returns
        -------
        indices : `numpy.ndarray`
            ``(height, width)`` uint8 indices into `palette` (before any
            per-panel colormap or mask overlay, which are composed in RGB).

        """
        return self._draw(stamps, annotation, pixel_scale_arcsec, None, False)[0]

    def _draw(
        self,
        stamps: Sequence[Sequence[np.ndarray]],
        annotation: SourceAnnotation | None,
        pixel_scale_arcsec: float | Sequence[float | None] | None,
        contexts: Sequence[Sequence[PanelContext | None]] | None,
        negative: bool,
        rows: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[tuple[Limits, Limits, Limits], ...]]:
        """Draw one source into a new canvas, or into ``rows`` (a
        `PalettePng.new_rows` buffer, whose image part is overwritten whole);
        return the canvas (a view of ``rows``) and the limits."""
        if len(stamps) != len(self.sizes):
            raise ValueError(
                f"Expected {len(self.sizes)} stamp triplets (sizes={list(self.sizes)}), got {len(stamps)}."
            )
        scales = self._pixel_scales(pixel_scale_arcsec)
        if contexts is not None and len(contexts) != len(self.sizes):
            raise ValueError(f"Expected {len(self.sizes)} panel context triplets, got {len(contexts)}.")
        all_limits = []
        art = self._art[RUBIN_SCHEME]
        annotate = self.add_metadata and annotation is not None
        if annotate:
            art = self._art.get(annotation.scheme, art)  # type: ignore[union-attr]
        background = art.annotated_background if annotate else art.background
        if rows is None:
            canvas = background.copy()
            # Flat index row * stride + column of each canvas pixel.
            flat, stride = canvas.reshape(-1), canvas.shape[1]
        else:
            canvas = rows[:, 1:]
            for region in self._outside_panels:
                canvas[region] = background[region]
            # The same in the PNG rows, past their filter bytes.
            flat, stride = rows.reshape(-1)[1:], rows.shape[1]
        for row, (triplet, scale) in enumerate(zip(stamps, scales, strict=True)):
            if len(triplet) != 3:
                raise ValueError(
                    f"Stamp triplet {row} must be (template, science, difference), got {len(triplet)} arrays."
                )
            row_limits: list[Limits] = []
            for column, (stamp, scaling) in enumerate(zip(triplet, self.scalings, strict=True)):
                array = np.asarray(stamp, dtype=float)
                if array.ndim != 2 or array.shape[0] != array.shape[1] or array.size == 0:
                    raise ValueError(
                        f"{PANEL_TITLES[column]} stamp of row {row} must be a non-empty square 2-D array, "
                        f"got shape {array.shape}."
                    )
                box = self.panel_boxes[row][column]
                context = contexts[row][column] if contexts is not None else None
                interval = scaling.interval
                if context is not None and context.interval is not None:
                    interval = context.interval
                levels, limits = stamp_levels(
                    array, interval, scaling.stretch, self.panel_levels, self._palette.no_data_index
                )
                row_limits.append(limits)
                paint_panel(canvas, box.slices, levels)
                self._draw_scale_bar(canvas, box, *scale_bar(self.panel_pixels, array.shape[0], scale))
                if limits is None and not np.isfinite(array).any():
                    paste_label(canvas, box, self._empty_tile)
                if context is not None:
                    self._decorate(canvas, box, context, array.shape[0])
            all_limits.append(tuple(row_limits))
            if negative and self._negative_tile is not None:
                paste_label(canvas, self.panel_boxes[row][2], self._negative_tile, where="top-left")
        if annotate:
            self._draw_annotation(canvas, flat, stride, annotation, art)  # type: ignore[arg-type]
        return canvas, tuple(all_limits)  # type: ignore[return-value]

    def _rows(self) -> np.ndarray:
        """The PNG rows buffer of the calling thread (see `PalettePng.new_rows`)."""
        rows = getattr(self._scratch, "rows", None)
        if rows is None:
            rows = self._scratch.rows = self._png.new_rows()
        return rows

    def _decorate(self, canvas: np.ndarray, box: Box, context: PanelContext, stamp_size: int) -> None:
        options = self.options
        if options.marker != "off" and context.position is not None:
            x, y = context.position
            draw_marker(canvas, box, options.marker, x, y, stamp_size, self._palette.index)
        if options.compass and context.north is not None and context.east is not None:
            draw_compass(canvas, box, context.north, context.east, self._palette.index)

    def _image(
        self, canvas: np.ndarray, contexts: Sequence[Sequence[PanelContext | None]] | None
    ) -> Image.Image:
        if not self._rgb:
            image = Image.frombuffer("P", self.canvas_size, canvas, "raw", "P", 0, 1)
            image.putpalette(self._palette.png_bytes)
            return image
        rgb = to_rgb(canvas, self.palette)
        options = self.options
        for row, boxes in enumerate(self.panel_boxes):
            for column, box in enumerate(boxes):
                levels_rgb = self._panel_level_rgb[column]
                if levels_rgb is not None:
                    recolor_panel(rgb, canvas, box, self.panel_levels, levels_rgb)
                context = contexts[row][column] if contexts is not None else None
                if options.overlay and context is not None and context.overlay_index is not None:
                    overlay_panel(
                        rgb,
                        canvas,
                        box,
                        context.overlay_index,
                        self._overlay_tables[column],  # type: ignore[index]
                        upsample_nearest,
                    )
        if self._legend is not None:
            rgb = np.concatenate([rgb, self._legend])
        return Image.fromarray(np.ascontiguousarray(rgb), "RGB")

    def _pixel_scales(self, pixel_scale_arcsec: float | Sequence[float | None] | None) -> list[float | None]:
        if pixel_scale_arcsec is None or isinstance(pixel_scale_arcsec, int | float | np.number):
            return [pixel_scale_arcsec] * len(self.sizes)  # type: ignore[list-item]
        scales = [None if s is None else float(s) for s in pixel_scale_arcsec]
        if len(scales) != len(self.sizes):
            raise ValueError(
                f"Expected one pixel scale or {len(self.sizes)} (one per size), got {len(scales)}."
            )
        return scales

    def _draw_scale_bar(self, canvas: np.ndarray, box: Box, arcsec: float, length: float) -> None:
        inset = SCALE_BAR_INSET
        if not (2.0 <= length <= self.panel_pixels - 2 * inset):
            return
        n = int(round(length))
        x0, y1 = box.x0 + inset, box.y1 - inset
        y0 = y1 - SCALE_BAR_THICKNESS
        canvas[y0 - 1 : y1 + 1, x0 - 1 : x0 + n + 1] = self._palette.index[SCALE_BAR_OUTLINE_RGB]
        canvas[y0:y1, x0 : x0 + n] = self._palette.index[SCALE_BAR_RGB]
        label = self._scale_labels.get(arcsec)
        if label is None:
            label = self._scale_labels[arcsec] = scale_label_tile(self._palette, arcsec)
        opaque, index = label
        h, w = opaque.shape
        ly0 = y0 - 2 - h
        if ly0 < box.y0 or x0 - 1 + w > box.x1:
            return
        region = canvas[ly0 : ly0 + h, x0 - 1 : x0 - 1 + w]
        np.copyto(region, index, where=opaque)

    def _draw_annotation(
        self, canvas: np.ndarray, flat: np.ndarray, stride: int, annotation: SourceAnnotation, art: _SchemeArt
    ) -> None:
        for name in annotation.badges:
            tile = art.badge_tiles.get(name)
            if tile is not None:
                canvas[self.badge_boxes[name].slices] = tile
        flags = {
            "psf": annotation.psf_flux_flag,
            "ap": annotation.ap_flux_flag,
            "total": annotation.forced_flux_flag,
        }
        for key, flagged in flags.items():
            tile = art.flagged_tiles.get(key)
            if flagged and tile is not None:
                canvas[art.label_boxes[key].slices] = tile
        glyphs = self._value_glyphs
        texts = []
        for key, field in annotation.fields().items():
            box = art.value_boxes.get(key)
            if box is not None:
                texts.append((glyphs.fit(field.text, box.width), box.x0, box.y0, box.width, box.height))
        # The value boxes are blank in the annotated background; only ink is drawn.
        index, coverage = glyphs.ink(texts, BASELINE, stride)
        flat[index] = self._palette.coverage_to_index[coverage]


def _rebuild_renderer(init_args: dict[str, Any]) -> TripletRenderer:
    """Unpickle a `TripletRenderer` by rebuilding it from its arguments."""
    args = dict(init_args)
    return TripletRenderer(args.pop("sizes"), args.pop("add_metadata"), **args)
