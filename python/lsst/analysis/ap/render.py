"""Render template / science / difference cutouts to a PNG, without matplotlib figures.

`TripletRenderer` is built once per configuration (sizes, metadata on/off,
panel size, colormap, scalings).  It draws the static parts of the canvas
once (white background, panel frames, panel titles, grey field labels,
ghosted flag badges) and, per source, copies that background and draws only
what changes: the three colour-mapped panels per size, the 1-arcsecond scale
bars, the annotation values, the set badges and the red labels of flagged
fluxes.  Every position depends only on the configuration, so the PNG size
depends only on (sizes, add_metadata, panel_pixels).

Layout (top to bottom)::

    [annotation block, if add_metadata: identity / position / fluxes / badges]
    Template      Science       Difference        <- titles
    [  size 0  ]  [  size 0  ]  [  size 0  ]
    [  size 1  ]  [  size 1  ]  [  size 1  ]      <- one row per size

Stamps are 2-D float arrays with NaN marking no data and row 0 at the
*bottom* (detector orientation, origin lower); they are flipped when drawn.
Each stamp is upsampled by nearest neighbour to fill the ``panel_pixels``
square box; the same index map is used for both axes, so for a factor that
is not an integer (e.g. 64 px into 240) stamp pixels are 3 or 4 canvas
pixels wide, never stretched along one axis only.  The default panel size,
240, is an exact 8x zoom of the default 30-px stamps.

How it stays fast
-----------------
The canvas is an 8-bit *indexed* image with one fixed 256-colour palette:
`TripletRenderer.panel_levels` colormap levels (evenly sampled from the
256-entry LUT of the matplotlib colormap) followed by the interface colours
(white, greys, no-data, red, badge colours, and 4-step anti-aliasing ramps
for text).  Per source the renderer copies the pre-drawn index background,
writes panel indices, pastes pre-drawn badge / label tiles and composes value
text from cached glyph coverage masks, all in numpy; the PNG is written in
palette mode, which encodes 3-4x faster than RGB and gives files half the
size.  matplotlib is only used for its colormaps and its bundled DejaVu Sans
fonts.
"""

from __future__ import annotations

__all__ = (
    "BACKGROUND_RGB",
    "DEFAULT_COMPRESS_LEVEL",
    "DEFAULT_PANEL_PIXELS",
    "FRAME_RGB",
    "GHOST_RGB",
    "LABEL_RGB",
    "NO_DATA_RGB",
    "PANEL_TITLES",
    "SCALE_BAR_OUTLINE_RGB",
    "SCALE_BAR_RGB",
    "TEXT_RGB",
    "Box",
    "TripletRenderer",
    "display_levels",
    "font_path",
    "make_lut",
    "nearest_index",
    "render_panel_rgb",
    "scale_bar_length",
    "upsample_nearest",
)

import functools
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import matplotlib
import numpy as np
from astropy.visualization import BaseInterval, BaseStretch
from PIL import Image, ImageDraw, ImageFont

from .annotate import BADGES, FLAGGED_RGB, MISSING_TEXT, SourceAnnotation
from .scaling import DIFFERENCE_SCALING, SCIENCE_SCALING, TEMPLATE_SCALING, DisplayScaling, scale_stamp

RGB = tuple[int, int, int]

BACKGROUND_RGB: RGB = (255, 255, 255)
"""Canvas background."""

TEXT_RGB: RGB = (0, 0, 0)
"""Annotation values and panel titles."""

LABEL_RGB: RGB = (105, 105, 105)
"""Field labels (grey)."""

NO_DATA_RGB: RGB = (84, 112, 140)
"""Default colour of no-data (NaN) pixels: a muted blue-grey, neither white
nor black and not on the default gray colormap."""

FRAME_RGB: RGB = (170, 170, 170)
"""1-px frame drawn around each panel."""

GHOST_RGB: RGB = (200, 200, 200)
"""Outline and text of a badge whose flag is not set."""

SCALE_BAR_RGB: RGB = (255, 255, 255)
"""Scale bar and its label, outlined in `SCALE_BAR_OUTLINE_RGB` to read on any pixel."""

SCALE_BAR_OUTLINE_RGB: RGB = (0, 0, 0)
"""Outline of the scale bar and of its label."""

PANEL_TITLES: tuple[str, str, str] = ("Template", "Science", "Difference")
"""Panel titles, left to right."""

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

_AA_STEPS = 4
"""Intermediate anti-aliasing shades per text colour in the palette."""

_MARGIN = 8
_GAP = 8
_TITLE_HEIGHT = 22
_LINE_HEIGHT = 20
_BASELINE = 15
_LABEL_GAP = 4
_CELL_GAP = 10
_BADGE_GAP = 6
_BADGE_HEIGHT = 17
_BADGE_PAD = 5
_SCALE_BAR_INSET = 6
_SCALE_BAR_THICKNESS = 3

_VALUE_SIZE = 13
_LABEL_SIZE = 12
_TITLE_SIZE = 14
_BADGE_SIZE = 11
_SCALE_LABEL_SIZE = 12

_FLUX_TEMPLATE = "-1.235e+06 ± 1.235e+06 nJy"
# Annotation fields: (key, widest expected value).  Each line group starts
# on a new line; it is made of units (tuples of fields) that wrap as a whole
# when the canvas is too narrow for them.
_FIELD_GROUPS: tuple[tuple[tuple[tuple[str, str], ...], ...], ...] = (
    (
        (("diaSourceId", "9" * 19),),
        (("instrument", "LSSTComCamSim"),),
        (("detector", "999"),),
        (("visit", "9" * 13),),
        (("band", "y"),),
    ),
    ((("ra", "359.999999"),), (("dec", "-89.999999"),), (("snr", "99999.9"),), (("chi2", "99999.99"),)),
    ((("psf", _FLUX_TEMPLATE), ("psf_snr", "-9999.9")), (("ap", _FLUX_TEMPLATE), ("ap_snr", "-9999.9"))),
    ((("total", _FLUX_TEMPLATE), ("total_snr", "-9999.9")), (("mag", "99.99"),)),
)
_FLAGGABLE_FIELDS = ("psf", "ap", "total")
_RELIABILITY_TEMPLATE = "0.999"
_PRELOADED_GLYPHS = "0123456789+-.e ±nJy—…abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"


def font_path(bold: bool = False) -> str:
    """Path of matplotlib's bundled DejaVu Sans font.

    Parameters
    ----------
    bold : `bool`, optional
        Return the bold face.

    Returns
    -------
    path : `str`
        A TrueType file shipped with matplotlib.

    """
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    path = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", name)
    if not os.path.exists(path):  # pragma: no cover - unusual matplotlib installs
        from matplotlib import font_manager

        path = font_manager.findfont(f"DejaVu Sans:{'bold' if bold else 'normal'}")
    return path


@functools.cache
def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_path(bold), size, layout_engine=ImageFont.Layout.BASIC)


def make_lut(colormap: str = "gray", n: int = 256) -> np.ndarray:
    """RGB lookup table of a matplotlib colormap.

    Parameters
    ----------
    colormap : `str`
        Name of a colormap registered in `matplotlib.colormaps`.
    n : `int`, optional
        Number of entries.

    Returns
    -------
    lut : `numpy.ndarray`
        ``(n, 3)`` uint8 array, read-only; entry ``i`` is the colour of
        display value ``i / (n - 1)``.

    Raises
    ------
    ValueError
        If the colormap is unknown.

    """
    try:
        cmap = matplotlib.colormaps[colormap]
    except KeyError as err:
        raise ValueError(f"Unknown matplotlib colormap {colormap!r}.") from err
    lut = np.round(np.asarray(cmap(np.linspace(0.0, 1.0, n)))[:, :3] * 255.0).astype(np.uint8)
    lut.flags.writeable = False
    return lut


def display_levels(scaled: np.ndarray, n_levels: int, no_data_index: int) -> np.ndarray:
    """Quantize display values to LUT indices.

    Parameters
    ----------
    scaled : `numpy.ndarray`
        Display values in [0, 1]; NaN for no data.
    n_levels : `int`
        Number of LUT entries (at most 256).
    no_data_index : `int`
        Index (0-255) written where ``scaled`` is NaN.

    Returns
    -------
    index : `numpy.ndarray`
        uint8 array of ``scaled``'s shape: ``round(value * (n_levels - 1))``,
        or ``no_data_index`` for NaN.

    """
    nan = np.isnan(scaled)
    index = np.rint(np.where(nan, 0.0, scaled) * (n_levels - 1))
    np.clip(index, 0, n_levels - 1, out=index)
    index = index.astype(np.uint8)
    index[nan] = no_data_index
    return index


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


def scale_bar_length(panel_pixels: int, stamp_size: int, pixel_scale_arcsec: float | None) -> float:
    """Length in canvas pixels of a 1-arcsecond bar on a panel.

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
    length : `float`
        ``panel_pixels / stamp_size / pixel_scale_arcsec``; NaN if the
        pixel scale is missing, not finite or not positive.

    """
    if pixel_scale_arcsec is None or not math.isfinite(pixel_scale_arcsec) or pixel_scale_arcsec <= 0:
        return math.nan
    return panel_pixels / stamp_size / pixel_scale_arcsec


@dataclass(frozen=True)
class Box:
    """A canvas rectangle, half-open: columns ``[x0, x1)``, rows ``[y0, y1)``."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, columns)`` slices of the box in a canvas array."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def width(self) -> int:
        """Width in pixels."""
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        """Height in pixels."""
        return self.y1 - self.y0


def _luminance(rgb: RGB) -> float:
    r, g, b = rgb
    return (0.299 * r + 0.587 * g + 0.114 * b) / 255.0


def _badge_text_rgb(fill: RGB) -> RGB:
    return (0, 0, 0) if _luminance(fill) > 0.55 else (255, 255, 255)


def _ramp(fg: RGB, bg: RGB, steps: int) -> list[RGB]:
    """``steps`` colours strictly between ``bg`` and ``fg``."""
    f, b = np.asarray(fg, float), np.asarray(bg, float)
    return [
        tuple(int(v) for v in np.rint(b + (f - b) * (k / (steps + 1))))  # type: ignore[misc]
        for k in range(1, steps + 1)
    ]


def _as_scaling(value: DisplayScaling | tuple[BaseInterval, BaseStretch]) -> DisplayScaling:
    if isinstance(value, DisplayScaling):
        return value
    interval, stretch = value
    return DisplayScaling(interval, stretch)


class _GlyphCache:
    """Coverage masks of single glyphs, to compose text without FreeType per call.

    Glyphs are placed at rounded pen positions without kerning, which is
    invisible for the digits and units of annotation values.
    """

    def __init__(self, font: ImageFont.FreeTypeFont, preload: str = "") -> None:
        self._font = font
        self._glyphs: dict[str, tuple[np.ndarray, int, int, float]] = {}
        for char in preload:
            self._glyph(char)

    def _glyph(self, char: str) -> tuple[np.ndarray, int, int, float]:
        glyph = self._glyphs.get(char)
        if glyph is None:
            left, top, right, bottom = self._font.getbbox(char, anchor="ls")
            if right > left and bottom > top:
                image = Image.new("L", (right - left, bottom - top), 0)
                ImageDraw.Draw(image).text((-left, -top), char, fill=255, font=self._font, anchor="ls")
                mask = np.asarray(image).copy()
            else:
                mask = np.zeros((0, 0), np.uint8)
            glyph = self._glyphs[char] = (mask, left, top, self._font.getlength(char))
        return glyph

    def width(self, text: str) -> float:
        """Advance width of ``text`` in pixels."""
        return sum(self._glyph(char)[3] for char in text)

    def fit(self, text: str, width: float) -> str:
        """``text``, cut and ended with an ellipsis if wider than ``width``."""
        if self.width(text) <= width:
            return text
        while text and self.width(text + "…") > width:
            text = text[:-1]
        return text + "…"

    def coverage(self, text: str, width: int, height: int, baseline: int) -> np.ndarray:
        """Coverage (0-255) of ``text`` drawn from x=0 on ``baseline``, clipped to the box."""
        strip = np.zeros((height, width), np.uint8)
        pen = 0.0
        for char in text:
            mask, left, top, advance = self._glyph(char)
            x0, y0 = int(round(pen)) + left, baseline + top
            h, w = mask.shape
            cx0, cy0 = max(x0, 0), max(y0, 0)
            cx1, cy1 = min(x0 + w, width), min(y0 + h, height)
            if cx1 > cx0 and cy1 > cy0:
                target = strip[cy0:cy1, cx0:cx1]
                np.maximum(target, mask[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0], out=target)
            pen += advance
            if pen >= width:
                break
        return strip


@dataclass(frozen=True)
class _Cell:
    key: str
    label_box: Box
    value_box: Box


class TripletRenderer:
    """Draws template/science/difference cutouts of one configuration.

    Build once and call `render` / `render_png` per source.  The instance
    does not change after construction (safe to share between threads) and
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
`~lsst.analysis.ap.scaling.DisplayScaling` or (interval, stretch), optional
        Display scaling of each panel; default asinh on min/max for the
        template and science, linear on zscale for the difference.
    no_data_rgb : sequence of 3 `int`, optional
        Colour of NaN (no data) pixels.
    compress_level : `int`, optional
        zlib level (0-9) of `render_png`.

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
        template_scaling: DisplayScaling | tuple[BaseInterval, BaseStretch] = TEMPLATE_SCALING,
        science_scaling: DisplayScaling | tuple[BaseInterval, BaseStretch] = SCIENCE_SCALING,
        difference_scaling: DisplayScaling | tuple[BaseInterval, BaseStretch] = DIFFERENCE_SCALING,
        no_data_rgb: Sequence[int] = NO_DATA_RGB,
        compress_level: int = DEFAULT_COMPRESS_LEVEL,
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
        self.lut: np.ndarray = make_lut(colormap)
        """256-entry colormap LUT, ``(256, 3)`` uint8."""

        self._build_palette()
        self._value_font = _font(_VALUE_SIZE)
        self._label_font = _font(_LABEL_SIZE)
        self._value_glyphs = _GlyphCache(self._value_font, _PRELOADED_GLYPHS)
        self._label_glyphs = _GlyphCache(self._label_font)
        self._labels = {k: f.label for k, f in SourceAnnotation().fields().items()}
        self._layout()

        self._background = self._quantize(np.asarray(self._draw_background()))
        self._background.flags.writeable = False
        self._badge_tiles = {
            b.name: self._badge_tile(b.name, b.rgb) for b in BADGES if b.name in self.badge_boxes
        }
        self._flagged_tiles = {
            k: self._label_tile(k, FLAGGED_RGB) for k in _FLAGGABLE_FIELDS if k in self._cells
        }
        self._scale_label = self._scale_label_tile()

    # ------------------------------------------------------------------
    # Construction (once per configuration).

    def _build_palette(self) -> None:
        """Palette: colormap levels first, then interface colours and ramps."""
        solids: list[RGB] = [
            BACKGROUND_RGB,
            TEXT_RGB,
            self.no_data_rgb,
            LABEL_RGB,
            FRAME_RGB,
            GHOST_RGB,
            FLAGGED_RGB,
            SCALE_BAR_RGB,
            SCALE_BAR_OUTLINE_RGB,
        ]
        ramps: list[tuple[RGB, RGB]] = [
            (TEXT_RGB, BACKGROUND_RGB),
            (LABEL_RGB, BACKGROUND_RGB),
            (GHOST_RGB, BACKGROUND_RGB),
            (FLAGGED_RGB, BACKGROUND_RGB),
        ]
        for badge in BADGES:
            solids.append(badge.rgb)
            ramps.append((_badge_text_rgb(badge.rgb), badge.rgb))
        interface: list[RGB] = []
        for colour in solids + [c for fg, bg in dict.fromkeys(ramps) for c in _ramp(fg, bg, _AA_STEPS)]:
            if colour not in interface:
                interface.append(colour)
        n_levels = 256 - len(interface)
        sample = np.rint(np.linspace(0, 255, n_levels)).astype(np.intp)
        self.panel_lut: np.ndarray = self.lut[sample]
        """Colormap levels the panels are drawn with, ``(panel_levels, 3)``
        uint8, sampled evenly from `lut` (the rest of the 256-colour PNG
        palette holds interface colours)."""
        self.panel_lut.flags.writeable = False
        self.panel_levels: int = n_levels
        """Number of colormap levels of the panels."""
        palette = np.concatenate([self.panel_lut, np.asarray(interface, dtype=np.uint8)])
        palette.flags.writeable = False
        self.palette: np.ndarray = palette
        """The 256-colour palette of every image, ``(256, 3)`` uint8."""
        self._palette_bytes = palette.tobytes()
        self._index = {colour: n_levels + i for i, colour in enumerate(interface)}
        self._no_data_index = self._index[self.no_data_rgb]
        self._white = self._index[BACKGROUND_RGB]
        # Coverage (0-255) -> palette index of black value text on white.
        shades = [self._white] + [self._index[c] for c in _ramp(TEXT_RGB, BACKGROUND_RGB, _AA_STEPS)]
        shades.append(self._index[TEXT_RGB])
        steps = np.rint(np.arange(256) * (_AA_STEPS + 1) / 255.0).astype(np.intp)
        self._coverage_to_index = np.asarray(shades, dtype=np.uint8)[steps]

    def _quantize(self, rgb: np.ndarray) -> np.ndarray:
        """Nearest-palette-colour indices of an RGB array (used on static art only)."""
        flat = rgb[..., :3].reshape(-1, 3)
        packed = (flat[:, 0].astype(np.uint32) << 16) | (flat[:, 1].astype(np.uint32) << 8) | flat[:, 2]
        unique, inverse = np.unique(packed, return_inverse=True)
        colours = np.stack([(unique >> 16) & 255, (unique >> 8) & 255, unique & 255], axis=1).astype(float)
        # Prefer interface colours on ties (the palette's later entries).
        palette = self.palette.astype(float)[::-1]
        distance = ((colours[:, np.newaxis, :] - palette[np.newaxis, :, :]) ** 2).sum(axis=2)
        nearest = (255 - np.argmin(distance, axis=1)).astype(np.uint8)
        return nearest[inverse.reshape(-1)].reshape(rgb.shape[:2])

    def _layout(self) -> None:
        width = 2 * _MARGIN + 3 * self.panel_pixels + 2 * _GAP
        y = _MARGIN
        cells: dict[str, _Cell] = {}
        badge_boxes: dict[str, Box] = {}
        if self.add_metadata:
            y = self._layout_annotation(width, y, cells, badge_boxes) + _GAP // 2
        self._title_top = y
        y += _TITLE_HEIGHT
        panel_boxes = []
        for _ in self.sizes:
            row = []
            for column in range(3):
                x0 = _MARGIN + column * (self.panel_pixels + _GAP)
                row.append(Box(x0, y, x0 + self.panel_pixels, y + self.panel_pixels))
            panel_boxes.append(tuple(row))
            y += self.panel_pixels + _GAP
        height = y - _GAP + _MARGIN

        self.canvas_size: tuple[int, int] = (width, height)
        """``(width, height)`` of every image of this renderer, in pixels."""
        self.panel_boxes: tuple[tuple[Box, Box, Box], ...] = tuple(panel_boxes)
        """Panel boxes, ``[size index][0=template, 1=science, 2=difference]``."""
        self.badge_boxes: Mapping[str, Box] = MappingProxyType(badge_boxes)
        """Box of each flag badge by name (empty without metadata)."""
        self.label_boxes: Mapping[str, Box] = MappingProxyType({k: c.label_box for k, c in cells.items()})
        """Box of each annotation field label by field key (empty without metadata)."""
        self.value_boxes: Mapping[str, Box] = MappingProxyType({k: c.value_box for k, c in cells.items()})
        """Box of each annotation field value by field key (empty without metadata)."""
        self._cells = cells

    def _layout_annotation(
        self, width: int, y: int, cells: dict[str, _Cell], badge_boxes: dict[str, Box]
    ) -> int:
        """Place annotation fields and badges; return the y below them."""
        right = width - _MARGIN
        missing_width = self._value_glyphs.width(MISSING_TEXT)

        def cell_widths(key: str, template: str) -> tuple[int, int]:
            label_w = math.ceil(self._label_glyphs.width(self._labels[key]))
            value_w = math.ceil(max(self._value_glyphs.width(template), missing_width)) + 2
            return label_w, value_w

        def place_unit(x: int, y: int, unit: tuple[tuple[str, str], ...]) -> tuple[int, int]:
            widths = [cell_widths(key, template) for key, template in unit]
            unit_w = sum(lw + _LABEL_GAP + vw for lw, vw in widths) + _CELL_GAP * (len(unit) - 1)
            if x > _MARGIN and x + unit_w > right:
                x, y = _MARGIN, y + _LINE_HEIGHT
            for (key, _), (label_w, value_w) in zip(unit, widths, strict=True):
                if x > _MARGIN and x + label_w + _LABEL_GAP + value_w > right:
                    x, y = _MARGIN, y + _LINE_HEIGHT
                vx = x + label_w + _LABEL_GAP
                value_w = max(1, min(value_w, right - vx))
                cells[key] = _Cell(
                    key, Box(x, y, x + label_w, y + _LINE_HEIGHT), Box(vx, y, vx + value_w, y + _LINE_HEIGHT)
                )
                x = vx + value_w + _CELL_GAP
            return x, y

        for group in _FIELD_GROUPS:
            x = _MARGIN
            for unit in group:
                x, y = place_unit(x, y, unit)
            y += _LINE_HEIGHT
        y += 2
        x = _MARGIN
        badge_font = _font(_BADGE_SIZE, bold=True)
        top = (_LINE_HEIGHT - _BADGE_HEIGHT) // 2
        for badge in BADGES:
            w = math.ceil(badge_font.getlength(badge.name)) + 2 * _BADGE_PAD
            if x > _MARGIN and x + w > right:
                x, y = _MARGIN, y + _LINE_HEIGHT
            badge_boxes[badge.name] = Box(x, y + top, x + w, y + top + _BADGE_HEIGHT)
            x += w + _BADGE_GAP
        x, y = place_unit(x + _CELL_GAP - _BADGE_GAP, y, (("reliability", _RELIABILITY_TEMPLATE),))
        return y + _LINE_HEIGHT

    def _draw_background(self) -> Image.Image:
        image = Image.new("RGB", self.canvas_size, BACKGROUND_RGB)
        draw = ImageDraw.Draw(image)
        title_font = _font(_TITLE_SIZE, bold=True)
        for column, title in enumerate(PANEL_TITLES):
            box = self.panel_boxes[0][column]
            draw.text(
                ((box.x0 + box.x1) / 2, self._title_top + _TITLE_HEIGHT - 6),
                title,
                fill=TEXT_RGB,
                font=title_font,
                anchor="ms",
            )
        for row in self.panel_boxes:
            for box in row:
                draw.rectangle((box.x0 - 1, box.y0 - 1, box.x1, box.y1), outline=FRAME_RGB)
        for key, cell in self._cells.items():
            self._draw_label(draw, key, cell.label_box, LABEL_RGB)
        badge_font = _font(_BADGE_SIZE, bold=True)
        for name, box in self.badge_boxes.items():
            draw.rounded_rectangle((box.x0, box.y0, box.x1 - 1, box.y1 - 1), radius=4, outline=GHOST_RGB)
            draw.text(
                ((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2),
                name,
                fill=GHOST_RGB,
                font=badge_font,
                anchor="mm",
            )
        return image

    def _draw_label(self, draw: ImageDraw.ImageDraw, key: str, box: Box, rgb: RGB) -> None:
        draw.text(
            (box.x0, box.y0 + _BASELINE), self._labels[key], fill=rgb, font=self._label_font, anchor="ls"
        )

    def _label_tile(self, key: str, rgb: RGB) -> np.ndarray:
        box = self.label_boxes[key]
        tile = Image.new("RGB", self.canvas_size, BACKGROUND_RGB)
        self._draw_label(ImageDraw.Draw(tile), key, box, rgb)
        return self._quantize(np.asarray(tile)[box.slices])

    def _badge_tile(self, name: str, rgb: RGB) -> np.ndarray:
        box = self.badge_boxes[name]
        tile = Image.new("RGB", (box.width, box.height), BACKGROUND_RGB)
        draw = ImageDraw.Draw(tile)
        draw.rounded_rectangle((0, 0, box.width - 1, box.height - 1), radius=4, fill=rgb)
        draw.text(
            (box.width / 2, box.height / 2),
            name,
            fill=_badge_text_rgb(rgb),
            font=_font(_BADGE_SIZE, bold=True),
            anchor="mm",
        )
        return self._quantize(np.asarray(tile))

    def _scale_label_tile(self) -> tuple[np.ndarray, np.ndarray]:
        """'1"' in the scale-bar colour with an outline: (opaque mask, palette indices)."""
        font = _font(_SCALE_LABEL_SIZE, bold=True)
        text = '1"'
        left, top, right, bottom = font.getbbox(text, stroke_width=1)
        tile = Image.new("RGBA", (right - left + 2, bottom - top + 2), (0, 0, 0, 0))
        ImageDraw.Draw(tile).text(
            (1 - left, 1 - top),
            text,
            fill=SCALE_BAR_RGB + (255,),
            font=font,
            stroke_width=1,
            stroke_fill=SCALE_BAR_OUTLINE_RGB + (255,),
        )
        rgba = np.asarray(tile)
        opaque = rgba[..., 3] >= 128
        bright = rgba[..., :3].mean(axis=2) >= 128
        index = np.where(bright, self._index[SCALE_BAR_RGB], self._index[SCALE_BAR_OUTLINE_RGB]).astype(
            np.uint8
        )
        return opaque, index

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
    ) -> Image.Image:
        """Draw one source's cutouts.

        Parameters
        ----------
        stamps : sequence of (template, science, difference)
            One triplet per size, in `sizes` order; each a 2-D square float
            array (NaN = no data, row 0 at the bottom).  The stamp width
            normally equals the configured size, but any square stamp is
            drawn into the same panel box.
        annotation : `~lsst.analysis.ap.annotate.SourceAnnotation`, optional
            Catalog values to draw (only with ``add_metadata``; `None`
            leaves the value slots empty).
        pixel_scale_arcsec : `float` or sequence of `float`, optional
            Pixel scale (arcsec/pixel), one for all sizes or one per size,
            for the 1-arcsecond scale bars.  No bar is drawn where it is
            `None`/NaN, or where 1 arcsec would not fit in the panel or
            would be shorter than 2 canvas pixels.

        Returns
        -------
        image : `PIL.Image.Image`
            RGB image of size `canvas_size`.

        Raises
        ------
        ValueError
            If the number of triplets or the array shapes do not match.

        """
        return self._indexed_image(stamps, annotation, pixel_scale_arcsec).convert("RGB")

    def render_png(
        self,
        stamps: Sequence[Sequence[np.ndarray]],
        annotation: SourceAnnotation | None = None,
        pixel_scale_arcsec: float | Sequence[float | None] | None = None,
    ) -> bytes:
        """Draw one source's cutouts and encode them as PNG.

        Parameters are those of `render`.

        Returns
        -------
        png : `bytes`
            An 8-bit palette PNG (zlib level `compress_level`) that decodes
            to the image `render` returns.

        """
        buffer = io.BytesIO()
        self._indexed_image(stamps, annotation, pixel_scale_arcsec).save(
            buffer, format="PNG", compress_level=self.compress_level
        )
        return buffer.getvalue()

    def render_indices(
        self,
        stamps: Sequence[Sequence[np.ndarray]],
        annotation: SourceAnnotation | None = None,
        pixel_scale_arcsec: float | Sequence[float | None] | None = None,
    ) -> np.ndarray:
        """Draw one source's cutouts as palette indices.

        Parameters are those of `render`.

        Returns
        -------
        indices : `numpy.ndarray`
            ``(height, width)`` uint8 indices into `palette`.

        """
        if len(stamps) != len(self.sizes):
            raise ValueError(
                f"Expected {len(self.sizes)} stamp triplets (sizes={list(self.sizes)}), got {len(stamps)}."
            )
        scales = self._pixel_scales(pixel_scale_arcsec)
        canvas = self._background.copy()
        for row, (triplet, scale) in enumerate(zip(stamps, scales, strict=True)):
            if len(triplet) != 3:
                raise ValueError(
                    f"Stamp triplet {row} must be (template, science, difference), got {len(triplet)} arrays."
                )
            for column, (stamp, scaling) in enumerate(zip(triplet, self.scalings, strict=True)):
                array = np.asarray(stamp, dtype=float)
                if array.ndim != 2 or array.shape[0] != array.shape[1] or array.size == 0:
                    raise ValueError(
                        f"{PANEL_TITLES[column]} stamp of row {row} must be a non-empty square 2-D array, "
                        f"got shape {array.shape}."
                    )
                box = self.panel_boxes[row][column]
                scaled = scale_stamp(array, scaling.interval, scaling.stretch)
                levels = display_levels(scaled, self.panel_levels, self._no_data_index)
                canvas[box.slices] = upsample_nearest(levels, self.panel_pixels)
                self._draw_scale_bar(canvas, box, scale_bar_length(self.panel_pixels, array.shape[0], scale))
        if self.add_metadata and annotation is not None:
            self._draw_annotation(canvas, annotation)
        return canvas

    def _indexed_image(
        self,
        stamps: Sequence[Sequence[np.ndarray]],
        annotation: SourceAnnotation | None,
        pixel_scale_arcsec: float | Sequence[float | None] | None,
    ) -> Image.Image:
        canvas = self.render_indices(stamps, annotation, pixel_scale_arcsec)
        image = Image.frombuffer("P", self.canvas_size, canvas, "raw", "P", 0, 1)
        image.putpalette(self._palette_bytes)
        return image

    def _pixel_scales(self, pixel_scale_arcsec: float | Sequence[float | None] | None) -> list[float | None]:
        if pixel_scale_arcsec is None or isinstance(pixel_scale_arcsec, int | float | np.number):
            return [pixel_scale_arcsec] * len(self.sizes)  # type: ignore[list-item]
        scales = [None if s is None else float(s) for s in pixel_scale_arcsec]
        if len(scales) != len(self.sizes):
            raise ValueError(
                f"Expected one pixel scale or {len(self.sizes)} (one per size), got {len(scales)}."
            )
        return scales

    def _draw_scale_bar(self, canvas: np.ndarray, box: Box, length: float) -> None:
        inset = _SCALE_BAR_INSET
        if not (2.0 <= length <= self.panel_pixels - 2 * inset):
            return
        n = int(round(length))
        x0, y1 = box.x0 + inset, box.y1 - inset
        y0 = y1 - _SCALE_BAR_THICKNESS
        canvas[y0 - 1 : y1 + 1, x0 - 1 : x0 + n + 1] = self._index[SCALE_BAR_OUTLINE_RGB]
        canvas[y0:y1, x0 : x0 + n] = self._index[SCALE_BAR_RGB]
        opaque, index = self._scale_label
        h, w = opaque.shape
        ly0 = y0 - 2 - h
        if ly0 < box.y0 or x0 - 1 + w > box.x1:
            return
        region = canvas[ly0 : ly0 + h, x0 - 1 : x0 - 1 + w]
        np.copyto(region, index, where=opaque)

    def _draw_annotation(self, canvas: np.ndarray, annotation: SourceAnnotation) -> None:
        for name in annotation.badges:
            tile = self._badge_tiles.get(name)
            if tile is not None:
                canvas[self.badge_boxes[name].slices] = tile
        flags = {
            "psf": annotation.psf_flux_flag,
            "ap": annotation.ap_flux_flag,
            "total": annotation.forced_flux_flag,
        }
        for key, flagged in flags.items():
            tile = self._flagged_tiles.get(key)
            if flagged and tile is not None:
                canvas[self.label_boxes[key].slices] = tile
        glyphs = self._value_glyphs
        for key, field in annotation.fields().items():
            cell = self._cells.get(key)
            if cell is None:
                continue
            box = cell.value_box
            coverage = glyphs.coverage(glyphs.fit(field.text, box.width), box.width, box.height, _BASELINE)
            canvas[box.slices] = self._coverage_to_index[coverage]


def _rebuild_renderer(init_args: dict[str, Any]) -> TripletRenderer:
    """Unpickle a `TripletRenderer` by rebuilding it from its arguments."""
    args = dict(init_args)
    return TripletRenderer(args.pop("sizes"), args.pop("add_metadata"), **args)
