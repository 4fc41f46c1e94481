"""Text: the bundled fonts, and cached glyph coverage masks for composing
value text in numpy without calling FreeType per source.
"""

from __future__ import annotations

__all__ = ("GlyphCache", "font", "font_path")

import functools
import os

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont


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
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """DejaVu Sans (`font_path`), loaded once per size and face.

    Parameters
    ----------
    size : `int`
        Size in pixels.
    bold : `bool`, optional
        Use the bold face.

    Returns
    -------
    font : `PIL.ImageFont.FreeTypeFont`
        The font (basic layout: no kerning or shaping).

    """
    return ImageFont.truetype(font_path(bold), size, layout_engine=ImageFont.Layout.BASIC)


class GlyphCache:
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
        """Advance width of a text.

        Parameters
        ----------
        text : `str`
            The text.

        Returns
        -------
        width : `float`
            Sum of the glyph advances, in pixels.

        """
        return sum(self._glyph(char)[3] for char in text)

    def fit(self, text: str, width: float) -> str:
        """A text cut to a width.

        Parameters
        ----------
        text : `str`
            The text.
        width : `float`
            Available width in pixels.

        Returns
        -------
        fitted : `str`
            ``text``, or its longest start followed by an ellipsis that fits.

        """
        if self.width(text) <= width:
            return text
        while text and self.width(text + "…") > width:
            text = text[:-1]
        return text + "…"

    def coverage(self, text: str, width: int, height: int, baseline: int) -> np.ndarray:
        """Coverage of a text drawn in a box.

        Parameters
        ----------
        text : `str`
            The text, drawn from x = 0.
        width, height : `int`
            Size of the box in pixels.
        baseline : `int`
            Row of the baseline in the box.

        Returns
        -------
        coverage : `numpy.ndarray`
            ``(height, width)`` uint8 coverage (0-255), clipped to the box.

        """
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
