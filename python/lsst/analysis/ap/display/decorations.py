"""Drawing the optional panel decorations onto a rendered cutout canvas.

The renderer draws a cutout as 8-bit palette indices (colormap levels first,
then interface colours).  The functions here add, per panel:

- the source marker (`lsst.analysis.ap.display.markers`) and the N/E compass
  (`lsst.analysis.ap.display.compass`), in interface colours of the palette
  (`MARKER_RGB`, `COMPASS_NORTH_RGB`, `COMPASS_EAST_RGB`, each with a black
  outline), so a decorated cutout stays a palette PNG;
- a label tile (e.g. "no data" on an empty panel, "NEGATIVE" on a
  difference panel whose flux is negative), pre-drawn and quantized once;

and, on the RGB image of the canvas (`to_rgb`):

- a per-panel colormap (`recolor_panel`): the panel's colormap levels are
  re-mapped through another colormap's table;
- the mask overlay (`overlay_panel`): plane colours blended over the
  panel's image pixels only, so markers, compass and scale bar stay on top.

All positions come from the panel boxes and the stamp geometry; nothing here
depends on a particular source.
"""

from __future__ import annotations

__all__ = (
    "COMPASS_EAST_RGB",
    "COMPASS_NORTH_RGB",
    "DECORATION_OUTLINE_RGB",
    "MARKER_RGB",
    "LabelTile",
    "draw_compass",
    "draw_marker",
    "make_label_tile",
    "overlay_panel",
    "overlay_table",
    "paste_label",
    "recolor_panel",
    "to_rgb",
)

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .compass import compass_masks
from .markers import marker_masks, panel_position
from .overlays import OverlayPlane, blend_overlay

RGB = tuple[int, int, int]

MARKER_RGB: RGB = (218, 165, 32)
"""Source marker colour (goldenrod, a colour the palette already holds)."""

COMPASS_NORTH_RGB: RGB = (218, 165, 32)
"""North arrow colour."""

COMPASS_EAST_RGB: RGB = (255, 255, 255)
"""East arrow colour."""

DECORATION_OUTLINE_RGB: RGB = (0, 0, 0)
"""One-pixel outline of marker and compass, so they read on any pixel."""


def _paint(canvas: np.ndarray, box: Any, mask: np.ndarray, index: int) -> None:
    region = canvas[box.y0 : box.y1, box.x0 : box.x1]
    region[mask] = index


def draw_marker(
    canvas: np.ndarray,
    box: Any,
    style: str,
    x: float,
    y: float,
    stamp_size: int,
    index: Mapping[RGB, int],
) -> None:
    """Draw the source marker on one panel of a palette-index canvas.

    Parameters
    ----------
    canvas : `numpy.ndarray`
        ``(height, width)`` uint8 palette indices, modified in place.
    box : `lsst.analysis.ap.display.layout.Box`
        The panel's box (``x0, y0, x1, y1``; width = height).
    style : `str`
        Marker style (see `lsst.analysis.ap.display.markers.MARKER_STYLES`).
    x, y : `float`
        Source position in stamp pixel coordinates, as drawn.
    stamp_size : `int`
        Width of the drawn stamp.
    index : mapping of RGB to `int`
        Palette index of `MARKER_RGB` and `DECORATION_OUTLINE_RGB`.

    """
    panel = box.x1 - box.x0
    u, v = panel_position(x, y, stamp_size, panel)
    masks = marker_masks(style, u, v, panel)
    if masks is None:
        return
    lines, halo = masks
    _paint(canvas, box, halo, index[DECORATION_OUTLINE_RGB])
    _paint(canvas, box, lines, index[MARKER_RGB])


def draw_compass(
    canvas: np.ndarray,
    box: Any,
    north: tuple[float, float],
    east: tuple[float, float],
    index: Mapping[RGB, int],
) -> None:
    """Draw the N/E compass on one panel of a palette-index canvas.

    Parameters
    ----------
    canvas : `numpy.ndarray`
        Palette indices, modified in place.
    box : `lsst.analysis.ap.display.layout.Box`
        The panel's box.
    north, east : `tuple` [`float`, `float`]
        Directions in stamp pixel coordinates as drawn (``y`` up).
    index : mapping of RGB to `int`
        Palette index of the compass and outline colours.

    """
    n_mask, e_mask, halo = compass_masks(north, east, box.x1 - box.x0)
    _paint(canvas, box, halo, index[DECORATION_OUTLINE_RGB])
    _paint(canvas, box, e_mask, index[COMPASS_EAST_RGB])
    _paint(canvas, box, n_mask, index[COMPASS_NORTH_RGB])


@dataclasses.dataclass(frozen=True)
class LabelTile:
    """A pre-drawn, palette-quantized text tile."""

    indices: np.ndarray
    """``(height, width)`` palette indices."""


def make_label_tile(
    text: str,
    font: ImageFont.FreeTypeFont,
    fill: RGB,
    text_rgb: RGB,
    quantize: Callable[[np.ndarray], np.ndarray],
    pad: int = 4,
) -> LabelTile:
    """Draw a text tile once and quantize it to the palette.

    Parameters
    ----------
    text : `str`
        The label.
    font : `PIL.ImageFont.FreeTypeFont`
        Its font.
    fill, text_rgb : RGB
        Tile background and text colours.
    quantize : callable
        RGB array -> palette indices (the palette's ``quantize``).
    pad : `int`, optional
        Padding around the text, in pixels.

    Returns
    -------
    tile : `LabelTile`
        The quantized tile.

    """
    left, top, right, bottom = font.getbbox(text)
    w, h = right - left + 2 * pad, bottom - top + 2 * pad
    image = Image.new("RGB", (w, h), fill)
    ImageDraw.Draw(image).text((pad - left, pad - top), text, fill=text_rgb, font=font)
    indices = quantize(np.asarray(image))
    indices.flags.writeable = False
    return LabelTile(indices)


def paste_label(canvas: np.ndarray, box: Any, tile: LabelTile, where: str = "center", inset: int = 4) -> None:
    """Paste a label tile into a panel.

    Parameters
    ----------
    canvas : `numpy.ndarray`
        Palette indices, modified in place.
    box : `lsst.analysis.ap.display.layout.Box`
        The panel's box.
    tile : `LabelTile`
        The label.
    where : `str`, optional
        ``"center"`` or ``"top-left"``.
    inset : `int`, optional
        Distance from the panel edges for ``"top-left"``.

    """
    h, w = tile.indices.shape
    width, height = box.x1 - box.x0, box.y1 - box.y0
    h, w = min(h, height), min(w, width)
    if where == "center":
        y0, x0 = box.y0 + (height - h) // 2, box.x0 + (width - w) // 2
    else:
        y0, x0 = box.y0 + inset, box.x0 + inset
    canvas[y0 : y0 + h, x0 : x0 + w] = tile.indices[:h, :w]


def to_rgb(canvas: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """RGB image of a palette-index canvas (``(h, w, 3)`` uint8, writable)."""
    height, width = canvas.shape
    image = Image.frombuffer("P", (width, height), np.ascontiguousarray(canvas), "raw", "P", 0, 1)
    image.putpalette(np.asarray(colours, dtype=np.uint8).tobytes())
    return np.array(image.convert("RGB"))


def overlay_table(
    colours: np.ndarray, panel_levels: int, planes: Sequence[OverlayPlane], opacity: float
) -> np.ndarray:
    """Every palette colour as drawn under each overlay plane.

    Parameters
    ----------
    colours : `numpy.ndarray`
        ``(256, 3)`` palette; its first ``panel_levels`` entries are
        colormap levels, the others interface colours.
    panel_levels : `int`
        Number of colormap levels.
    planes : sequence of `OverlayPlane`
        Overlay planes.
    opacity : `float`
        Weight of the plane colours.

    Returns
    -------
    table : `numpy.ndarray`
        ``(len(planes) + 1, 256, 3)`` uint8: row 0 is the palette (no
        plane); row ``p + 1`` blends plane ``p`` over the colormap levels
        (`lsst.analysis.ap.display.overlays.blend_overlay`) and keeps the
        interface colours (marker, compass, scale bar stay on top).

    """
    base = np.asarray(colours, dtype=np.uint8)
    table = np.repeat(base[np.newaxis], len(planes) + 1, axis=0)
    levels = base[np.newaxis, :panel_levels]
    for p in range(len(planes)):
        index = np.full((1, panel_levels), p, dtype=np.int16)
        table[p + 1, :panel_levels] = blend_overlay(levels, index, planes, opacity)[0]
    table.flags.writeable = False
    return table


def recolor_panel(
    rgb: np.ndarray, canvas: np.ndarray, box: Any, panel_levels: int, levels_rgb: np.ndarray
) -> None:
    """Redraw a panel's colormap levels with another colormap.

    Parameters
    ----------
    rgb : `numpy.ndarray`
        ``(h, w, 3)`` RGB image of ``canvas``, modified in place.
    canvas : `numpy.ndarray`
        Palette indices; entries below ``panel_levels`` are colormap levels.
    box : `lsst.analysis.ap.display.layout.Box`
        The panel's box.
    panel_levels : `int`
        Number of colormap levels of the palette.
    levels_rgb : `numpy.ndarray`
        ``(panel_levels, 3)`` uint8 colours of the panel's colormap.

    """
    indices = canvas[box.y0 : box.y1, box.x0 : box.x1]
    region = rgb[box.y0 : box.y1, box.x0 : box.x1]
    image = indices < panel_levels
    region[image] = levels_rgb[indices[image]]


def overlay_panel(
    rgb: np.ndarray,
    canvas: np.ndarray,
    box: Any,
    plane_index: np.ndarray,
    table: np.ndarray,
    upsample: Callable[[np.ndarray, int], np.ndarray],
) -> None:
    """Blend mask-plane colours over a panel's image pixels.

    Parameters
    ----------
    rgb : `numpy.ndarray`
        RGB image of the canvas, modified in place.
    canvas : `numpy.ndarray`
        Palette indices (decorations are indices >= ``panel_levels`` and
        are left as they are).
    box : `lsst.analysis.ap.display.layout.Box`
        The panel's box.
    plane_index : `numpy.ndarray`
        Stamp-sized plane index (`lsst.analysis.ap.display.overlays.overlay_index`),
        oriented as the stamp is drawn (row 0 at the bottom).
    table : `numpy.ndarray`
        `overlay_table` of the palette, planes and opacity.
    upsample : callable
        ``(stamp_array, panel_pixels) -> panel array`` (the renderer's
        nearest-neighbour upsampling with the vertical flip).

    """
    if not (plane_index >= 0).any():
        return
    panel = box.x1 - box.x0
    rows = upsample(np.asarray(plane_index, dtype=np.intp) + 1, panel)
    rgb[box.y0 : box.y1, box.x0 : box.x1] = table[rows, canvas[box.y0 : box.y1, box.x0 : box.x1]]
