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
pixels wide, never stretched in one direction only.

matplotlib is only used for its colormaps (a 256-entry LUT computed once)
and for its bundled DejaVu Sans fonts.
"""

from __future__ import annotations

__all__ = (
    "BACKGROUND_RGB",
    "DEFAULT_COMPRESS_LEVEL",
    "DEFAULT_PANEL_PIXELS",
    "LABEL_RGB",
    "NO_DATA_RGB",
    "PANEL_TITLES",
    "TEXT_RGB",
    "Box",
    "TripletRenderer",
    "colorize",
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
"""Scale bar and its label; outlined in `SCALE_BAR_OUTLINE_RGB` to read on any pixel."""

SCALE_BAR_OUTLINE_RGB: RGB = (0, 0, 0)

PANEL_TITLES: tuple[str, str, str] = ("Template", "Science", "Difference")

DEFAULT_PANEL_PIXELS = 240
"""Default panel box size: an exact 8x zoom of the default 30-px stamps."""

DEFAULT_COMPRESS_LEVEL = 1
"""zlib level of the PNG.  Measured on 30-px triplets with metadata: level 1
costs ~3.5 ms, levels 4-6 ~6 ms for files ~25% smaller, 9 ~30 ms; level 0
writes ~1.2 MB files.  Level 1 is the speed/size knee (see the module's
report)."""

_MARGIN = 8
_GAP = 8
_TITLE_HEIGHT = 22
_LINE_HEIGHT = 20
_BASELINE = 15
_LABEL_GAP = 5
_CELL_GAP = 12
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
# Annotation fields: (key, widest expected value).  Each tuple is a group
# starting on a new line; cells of a group wrap when the canvas is narrow.
_FIELD_GROUPS: tuple[tuple[tuple[str, str], ...], ...] = (
    (
        ("diaSourceId", "9" * 19),
        ("instrument", "LSSTComCamSim"),
        ("detector", "999"),
        ("visit", "9" * 13),
        ("band", "u"),
    ),
    (("ra", "359.999999"), ("dec", "-89.999999"), ("snr", "99999.9"), ("chi2", "99999.99")),
    (("psf", _FLUX_TEMPLATE), ("psf_snr", "-9999.9"), ("ap", _FLUX_TEMPLATE), ("ap_snr", "-9999.9")),
    (("total", _FLUX_TEMPLATE), ("total_snr", "-9999.9"), ("mag", "99.99")),
)
_FLAGGABLE_FIELDS = ("psf", "ap", "total")
_RELIABILITY_TEMPLATE = "0.999"


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


def make_lut(colormap: str = "gray") -> np.ndarray:
    """256-entry RGB lookup table of a matplotlib colormap.

    Parameters
    ----------
    colormap : `str`
        Name of a colormap registered in `matplotlib.colormaps`.

    Returns
    -------
    lut : `numpy.ndarray`
        ``(256, 3)`` uint8 array, read-only; entry ``i`` is the colour of
        display value ``i / 255``.

    Raises
    ------
    ValueError
        If the colormap is unknown.

    """
    try:
        cmap = matplotlib.colormaps[colormap]
    except KeyError as err:
        raise ValueError(f"Unknown matplotlib colormap {colormap!r}.") from err
    rgba = cmap(np.linspace(0.0, 1.0, 256))
    lut = np.round(np.asarray(rgba)[:, :3] * 255.0).astype(np.uint8)
    lut.flags.writeable = False
    return lut


def colorize(scaled: np.ndarray, lut: np.ndarray, no_data_rgb: Sequence[int]) -> np.ndarray:
    """Map display values in [0, 1] to RGB through a LUT.

    Parameters
    ----------
    scaled : `numpy.ndarray`
        2-D display values in [0, 1]; NaN for no data.
    lut : `numpy.ndarray`
        ``(256, 3)`` uint8 lookup table (see `make_lut`).
    no_data_rgb : sequence of 3 `int`
        Colour of NaN pixels.

    Returns
    -------
    rgb : `numpy.ndarray`
        ``scaled.shape + (3,)`` uint8 array, same orientation as ``scaled``.

    """
    nan = np.isnan(scaled)
    index = np.rint(np.where(nan, 0.0, scaled) * 255.0)
    np.clip(index, 0, 255, out=index)
    rgb = lut[index.astype(np.intp)]
    rgb[nan] = no_data_rgb
    return rgb


@functools.lru_cache(maxsize=64)
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


def upsample_nearest(rgb: np.ndarray, out_size: int, *, flip_vertical: bool = True) -> np.ndarray:
    """Resample a square image to ``out_size`` x ``out_size`` by nearest neighbour.

    Parameters
    ----------
    rgb : `numpy.ndarray`
        ``(s, s, ...)`` image in array orientation.
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
    rows = nearest_index(rgb.shape[0], out_size)
    cols = nearest_index(rgb.shape[1], out_size)
    if flip_vertical:
        rows = rgb.shape[0] - 1 - rows
    return rgb[rows[:, np.newaxis], cols[np.newaxis, :]]


def render_panel_rgb(
    array: np.ndarray,
    interval: BaseInterval,
    stretch: BaseStretch,
    lut: np.ndarray,
    no_data_rgb: Sequence[int],
    out_size: int,
) -> np.ndarray:
    """Scale, colour-map and upsample one stamp to a display panel.

    Parameters
    ----------
    array : `numpy.ndarray`
        ``(s, s)`` stamp, NaN for no data, row 0 at the bottom.
    interval : `astropy.visualization.BaseInterval`
        Display interval.
    stretch : `astropy.visualization.BaseStretch`
        Display stretch.
    lut : `numpy.ndarray`
        ``(256, 3)`` uint8 colormap table.
    no_data_rgb : sequence of 3 `int`
        Colour of NaN pixels.
    out_size : `int`
        Panel width and height in canvas pixels.

    Returns
    -------
    panel : `numpy.ndarray`
        ``(out_size, out_size, 3)`` uint8, row 0 at the top (flipped).

    """
    return upsample_nearest(colorize(scale_stamp(array, interval, stretch), lut, no_data_rgb), out_size)


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


@dataclass(frozen=True)
class _Cell:
    key: str
    label_box: Box
    value_box: Box


def _luminance(rgb: RGB) -> float:
    r, g, b = rgb
    return (0.299 * r + 0.587 * g + 0.114 * b) / 255.0


def _as_scaling(value: DisplayScaling | tuple[BaseInterval, BaseStretch]) -> DisplayScaling:
    if isinstance(value, DisplayScaling):
        return value
    interval, stretch = value
    return DisplayScaling(interval, stretch)


class _TextWidth:
    """Fast (kerning-free) text width from cached per-character advances."""

    def __init__(self, font: ImageFont.FreeTypeFont) -> None:
        self._font = font
        self._advance: dict[str, float] = {}

    def __call__(self, text: str) -> float:
        advance = self._advance
        total = 0.0
        for char in text:
            width = advance.get(char)
            if width is None:
                width = advance[char] = self._font.getlength(char)
            total += width
        return total

    def fit(self, text: str, width: float) -> str:
        """``text``, cut and ended with an ellipsis if wider than ``width``."""
        if self(text) <= width:
            return text
        while text and self(text + "…") > width:
            text = text[:-1]
        return text + "…"


class TripletRenderer:
    """Draws template/science/difference cutouts of one configuration.

    Build once and call `render` / `render_png` per source; the instance is
    immutable after construction, safe to share between threads and
    picklable (it is rebuilt from its arguments).

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
    template_scaling, science_scaling, difference_scaling : `~lsst.analysis.ap.scaling.DisplayScaling` \
or (interval, stretch), optional
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
        colormap or an invalid colour.

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

        self._value_font = _font(_VALUE_SIZE)
        self._label_font = _font(_LABEL_SIZE)
        self._value_width = _TextWidth(self._value_font)
        self._label_width = _TextWidth(self._label_font)

        width = 2 * _MARGIN + 3 * self.panel_pixels + 2 * _GAP
        y = _MARGIN
        cells: dict[str, _Cell] = {}
        badge_boxes: dict[str, Box] = {}
        if self.add_metadata:
            y = self._layout_annotation(width, y, cells, badge_boxes)
            y += _GAP // 2
        title_top = y
        y += _TITLE_HEIGHT
        panel_boxes = []
        for _ in sizes:
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
        """Box of each annotation field label by field key."""
        self.value_boxes: Mapping[str, Box] = MappingProxyType({k: c.value_box for k, c in cells.items()})
        """Box of each annotation field value by field key."""
        self._cells = cells

        background = self._draw_background(title_top)
        self._background = np.asarray(background).copy()
        self._background.flags.writeable = False
        self._badge_tiles = {b.name: self._badge_tile(b.name, b.rgb) for b in BADGES}
        self._flagged_tiles = {k: self._label_tile(k, FLAGGED_RGB) for k in _FLAGGABLE_FIELDS}
        self._scale_label_rgb, self._scale_label_alpha = self._scale_label_tile()

    # ------------------------------------------------------------------
    # Construction helpers (run once per configuration).

    def _layout_annotation(
        self, width: int, y: int, cells: dict[str, _Cell], badge_boxes: dict[str, Box]
    ) -> int:
        """Place annotation fields and badges; return the y below them."""
        right = width - _MARGIN
        labels = {k: f.label for k, f in SourceAnnotation().fields().items()}

        def place_cell(x: int, y: int, key: str, template: str) -> tuple[int, int]:
            label_w = math.ceil(self._label_width(labels[key]))
            value_w = math.ceil(max(self._value_width(template), self._value_width(MISSING_TEXT))) + 2
            cell_w = label_w + _LABEL_GAP + value_w
            if x > _MARGIN and x + cell_w > right:
                x, y = _MARGIN, y + _LINE_HEIGHT
            value_w = min(value_w, right - (x + label_w + _LABEL_GAP))
            label_box = Box(x, y, x + label_w, y + _LINE_HEIGHT)
            vx = x + label_w + _LABEL_GAP
            cells[key] = _Cell(key, label_box, Box(vx, y, vx + value_w, y + _LINE_HEIGHT))
            return vx + value_w + _CELL_GAP, y

        for group in _FIELD_GROUPS:
            x = _MARGIN
            for key, template in group:
                x, y = place_cell(x, y, key, template)
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
        x, y = place_cell(x + _CELL_GAP - _BADGE_GAP, y, "reliability", _RELIABILITY_TEMPLATE)
        return y + _LINE_HEIGHT

    def _draw_background(self, title_top: int) -> Image.Image:
        image = Image.new("RGB", self.canvas_size, BACKGROUND_RGB)
        draw = ImageDraw.Draw(image)
        title_font = _font(_TITLE_SIZE, bold=True)
        for column, title in enumerate(PANEL_TITLES):
            box = self.panel_boxes[0][column]
            draw.text(
                ((box.x0 + box.x1) / 2, title_top + _TITLE_HEIGHT - 6),
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
        for badge in BADGES:
            box = self.badge_boxes.get(badge.name)
            if box is None:
                continue
            draw.rounded_rectangle((box.x0, box.y0, box.x1 - 1, box.y1 - 1), radius=4, outline=GHOST_RGB)
            draw.text(
                ((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2),
                badge.name,
                fill=GHOST_RGB,
                font=badge_font,
                anchor="mm",
            )
        return image

    def _draw_label(self, draw: ImageDraw.ImageDraw, key: str, box: Box, rgb: RGB) -> None:
        label = SourceAnnotation().fields()[key].label
        draw.text((box.x0, box.y0 + _BASELINE), label, fill=rgb, font=self._label_font, anchor="ls")

    def _label_tile(self, key: str, rgb: RGB) -> np.ndarray | None:
        box = self.label_boxes.get(key)
        if box is None:
            return None
        tile = Image.new("RGB", self.canvas_size, BACKGROUND_RGB)
        self._draw_label(ImageDraw.Draw(tile), key, box, rgb)
        return np.asarray(tile)[box.slices].copy()

    def _badge_tile(self, name: str, rgb: RGB) -> np.ndarray | None:
        box = self.badge_boxes.get(name)
        if box is None:
            return None
        w, h = box.x1 - box.x0, box.y1 - box.y0
        tile = Image.new("RGB", (w, h), BACKGROUND_RGB)
        draw = ImageDraw.Draw(tile)
        draw.rounded_rectangle((0, 0, w - 1, h - 1), radius=4, fill=rgb)
        text_rgb = (0, 0, 0) if _luminance(rgb) > 0.55 else (255, 255, 255)
        draw.text((w / 2, h / 2), name, fill=text_rgb, font=_font(_BADGE_SIZE, bold=True), anchor="mm")
        return np.asarray(tile).copy()

    def _scale_label_tile(self) -> tuple[np.ndarray, np.ndarray]:
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
        return rgba[..., :3].astype(np.uint16), rgba[..., 3:].astype(np.uint16)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_renderer, (self._init_args,))

    def __repr__(self) -> str:
        return (
            f"TripletRenderer(sizes={list(self.sizes)}, add_metadata={self.add_metadata}, "
            f"panel_pixels={self.panel_pixels}, colormap={self.colormap!r})"
        )

    # ------------------------------------------------------------------
    # Per-source drawing.

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
            normally equals the configured size but any square size is
            drawn into the same panel box.
        annotation : `~lsst.analysis.ap.annotate.SourceAnnotation`, optional
            Catalog values to draw (only with ``add_metadata``; `None`
            leaves the value slots empty).
        pixel_scale_arcsec : `float` or sequence of `float`, optional
            Pixel scale (arcsec/pixel), one for all sizes or one per size,
            for the 1-arcsecond scale bars.  No bar is drawn where it is
            `None`/NaN or where 1 arcsec would not fit in the panel (or is
            shorter than 2 canvas pixels).

        Returns
        -------
        image : `PIL.Image.Image`
            RGB image of size `canvas_size`.

        Raises
        ------
        ValueError
            If the number of triplets or the array shapes do not match.

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
                canvas[box.slices] = render_panel_rgb(
                    array, scaling.interval, scaling.stretch, self.lut, self.no_data_rgb, self.panel_pixels
                )
                self._draw_scale_bar(canvas, box, scale_bar_length(self.panel_pixels, array.shape[0], scale))
        if self.add_metadata and annotation is not None:
            self._draw_flags(canvas, annotation)
        image = Image.fromarray(canvas, "RGB")
        if self.add_metadata and annotation is not None:
            self._draw_values(ImageDraw.Draw(image), annotation)
        return image

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
            The PNG file content (zlib level `compress_level`).

        """
        buffer = io.BytesIO()
        self.render(stamps, annotation, pixel_scale_arcsec).save(
            buffer, format="PNG", compress_level=self.compress_level
        )
        return buffer.getvalue()

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
        canvas[y0 - 1 : y1 + 1, x0 - 1 : x0 + n + 1] = SCALE_BAR_OUTLINE_RGB
        canvas[y0:y1, x0 : x0 + n] = SCALE_BAR_RGB
        rgb, alpha = self._scale_label_rgb, self._scale_label_alpha
        h, w = alpha.shape[:2]
        ly0 = y0 - 2 - h
        if ly0 < box.y0 or x0 + w > box.x1:
            return
        region = canvas[ly0 : ly0 + h, x0 - 1 : x0 - 1 + w]
        region[...] = ((region * (255 - alpha) + rgb * alpha + 127) // 255).astype(np.uint8)

    def _draw_flags(self, canvas: np.ndarray, annotation: SourceAnnotation) -> None:
        for name in annotation.badges:
            tile = self._badge_tiles.get(name)
            if tile is not None:
                canvas[self.badge_boxes[name].slices] = tile
        flagged = {
            "psf": annotation.psf_flux_flag,
            "ap": annotation.ap_flux_flag,
            "total": annotation.forced_flux_flag,
        }
        for key, is_flagged in flagged.items():
            tile = self._flagged_tiles.get(key)
            if is_flagged and tile is not None:
                canvas[self.label_boxes[key].slices] = tile

    def _draw_values(self, draw: ImageDraw.ImageDraw, annotation: SourceAnnotation) -> None:
        font = self._value_font
        for key, field in annotation.fields().items():
            cell = self._cells.get(key)
            if cell is None:
                continue
            box = cell.value_box
            text = self._value_width.fit(field.text, box.x1 - box.x0)
            draw.text((box.x0, box.y0 + _BASELINE), text, fill=TEXT_RGB, font=font, anchor="ls")


def _rebuild_renderer(init_args: dict[str, Any]) -> TripletRenderer:
    """Unpickle a `TripletRenderer` by rebuilding it from its arguments."""
    args = dict(init_args)
    return TripletRenderer(args.pop("sizes"), args.pop("add_metadata"), **args)
