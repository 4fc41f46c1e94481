"""The art drawn once per renderer with PIL and quantized to its palette:
the static background (titles, panel frames, grey field labels, ghosted
badges) and the tiles pasted per source (red flagged labels, set badges,
the scale-bar label).
"""

from __future__ import annotations

__all__ = ("badge_tile", "draw_background", "label_tile", "scale_label_tile")

from collections.abc import Mapping

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..datasets import PANEL_TITLES
from .glyphs import font
from .layout import BADGE_SIZE, BASELINE, SCALE_LABEL_SIZE, TITLE_HEIGHT, TITLE_SIZE, Box, CanvasLayout
from .palette import (
    BACKGROUND_RGB,
    FRAME_RGB,
    GHOST_RGB,
    LABEL_RGB,
    RGB,
    SCALE_BAR_OUTLINE_RGB,
    SCALE_BAR_RGB,
    TEXT_RGB,
    Palette,
    badge_text_rgb,
)


def _draw_label(
    draw: ImageDraw.ImageDraw, text: str, box: Box, rgb: RGB, label_font: ImageFont.FreeTypeFont
) -> None:
    draw.text((box.x0, box.y0 + BASELINE), text, fill=rgb, font=label_font, anchor="ls")


def draw_background(
    layout: CanvasLayout, labels: Mapping[str, str], label_font: ImageFont.FreeTypeFont
) -> Image.Image:
    """The static part of every image of one configuration.

    Parameters
    ----------
    layout : `~lsst.analysis.ap.display.layout.CanvasLayout`
        Where everything goes.
    labels : `~collections.abc.Mapping` [`str`, `str`]
        Label of each annotation field by key.
    label_font : `PIL.ImageFont.FreeTypeFont`
        Font of the field labels.

    Returns
    -------
    image : `PIL.Image.Image`
        RGB image: white canvas, panel titles and frames, grey labels and
        ghosted badges.

    """
    image = Image.new("RGB", layout.canvas_size, BACKGROUND_RGB)
    draw = ImageDraw.Draw(image)
    title_font = font(TITLE_SIZE, bold=True)
    for column, title in enumerate(PANEL_TITLES):
        box = layout.panel_boxes[0][column]
        draw.text(
            ((box.x0 + box.x1) / 2, layout.title_top + TITLE_HEIGHT - 6),
            title,
            fill=TEXT_RGB,
            font=title_font,
            anchor="ms",
        )
    for row in layout.panel_boxes:
        for box in row:
            draw.rectangle((box.x0 - 1, box.y0 - 1, box.x1, box.y1), outline=FRAME_RGB)
    for key, cell in layout.cells.items():
        _draw_label(draw, labels[key], cell.label_box, LABEL_RGB, label_font)
    badge_font = font(BADGE_SIZE, bold=True)
    for name, box in layout.badge_boxes.items():
        draw.rounded_rectangle((box.x0, box.y0, box.x1 - 1, box.y1 - 1), radius=4, outline=GHOST_RGB)
        draw.text(
            ((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2),
            name,
            fill=GHOST_RGB,
            font=badge_font,
            anchor="mm",
        )
    return image


def label_tile(
    layout: CanvasLayout,
    key: str,
    text: str,
    rgb: RGB,
    label_font: ImageFont.FreeTypeFont,
    palette: Palette,
) -> np.ndarray:
    """Palette indices of field label ``key`` drawn in ``rgb``, the size of its box.

    Parameters
    ----------
    layout : `~lsst.analysis.ap.display.layout.CanvasLayout`
        Where the label goes.
    key : `str`
        Field key.
    text : `str`
        Label text.
    rgb : `tuple` [`int`, `int`, `int`]
        Text colour.
    label_font : `PIL.ImageFont.FreeTypeFont`
        Font of the field labels.
    palette : `~lsst.analysis.ap.display.palette.Palette`
        Palette to quantize to.

    Returns
    -------
    tile : `numpy.ndarray`
        uint8 indices of the label box.

    """
    box = layout.cells[key].label_box
    tile = Image.new("RGB", layout.canvas_size, BACKGROUND_RGB)
    _draw_label(ImageDraw.Draw(tile), text, box, rgb, label_font)
    return palette.quantize(np.asarray(tile)[box.slices])


def badge_tile(box: Box, name: str, rgb: RGB, palette: Palette) -> np.ndarray:
    """Palette indices of a set badge: a filled rounded box with its name.

    Parameters
    ----------
    box : `~lsst.analysis.ap.display.layout.Box`
        The badge's box.
    name : `str`
        Badge name.
    rgb : `tuple` [`int`, `int`, `int`]
        Badge colour.
    palette : `~lsst.analysis.ap.display.palette.Palette`
        Palette to quantize to.

    Returns
    -------
    tile : `numpy.ndarray`
        uint8 indices of the box.

    """
    tile = Image.new("RGB", (box.width, box.height), BACKGROUND_RGB)
    draw = ImageDraw.Draw(tile)
    draw.rounded_rectangle((0, 0, box.width - 1, box.height - 1), radius=4, fill=rgb)
    draw.text(
        (box.width / 2, box.height / 2),
        name,
        fill=badge_text_rgb(rgb),
        font=font(BADGE_SIZE, bold=True),
        anchor="mm",
    )
    return palette.quantize(np.asarray(tile))


def scale_label_tile(palette: Palette, arcsec: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The scale bar's length (``1"``, ``5"``) in the scale-bar colour with
    an outline.

    Parameters
    ----------
    palette : `~lsst.analysis.ap.display.palette.Palette`
        Palette of the renderer.
    arcsec : `float`, optional
        The bar's length in arcseconds.

    Returns
    -------
    opaque : `numpy.ndarray`
        Boolean mask of the drawn pixels.
    index : `numpy.ndarray`
        uint8 palette indices of the tile.

    """
    label_font = font(SCALE_LABEL_SIZE, bold=True)
    text = f'{arcsec:g}"'
    left, top, right, bottom = label_font.getbbox(text, stroke_width=1)
    tile = Image.new("RGBA", (right - left + 2, bottom - top + 2), (0, 0, 0, 0))
    ImageDraw.Draw(tile).text(
        (1 - left, 1 - top),
        text,
        fill=SCALE_BAR_RGB + (255,),
        font=label_font,
        stroke_width=1,
        stroke_fill=SCALE_BAR_OUTLINE_RGB + (255,),
    )
    rgba = np.asarray(tile)
    opaque = rgba[..., 3] >= 128
    bright = rgba[..., :3].mean(axis=2) >= 128
    index = np.where(bright, palette.index[SCALE_BAR_RGB], palette.index[SCALE_BAR_OUTLINE_RGB]).astype(
        np.uint8
    )
    return opaque, index
