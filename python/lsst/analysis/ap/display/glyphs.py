"""Text: the bundled fonts, and cached glyph coverage masks for composing
value text in numpy without calling FreeType per source.
"""

from __future__ import annotations

__all__ = ("GlyphCache", "font", "font_path")

import dataclasses
import functools
import itertools
import os
import threading
from collections.abc import Sequence

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


@dataclasses.dataclass(frozen=True)
class _PackedInk:
    """The inked pixels of every cached glyph, for one row stride.

    Glyph ``g`` owns entries ``start[g]:start[g] + count[g]`` of `offset`
    (flat offset from the pen position on the baseline) and `value`
    (coverage); its ink box, relative to the pen and baseline, is columns
    ``[left[g], right[g])`` and rows ``[top[g], bottom[g])``.
    """

    n_glyphs: int
    code: np.ndarray
    glyph_of_code: np.ndarray
    advance: np.ndarray
    exact_advances: bool
    offset: np.ndarray
    row: np.ndarray
    column: np.ndarray
    value: np.ndarray
    start: np.ndarray
    count: np.ndarray
    left: np.ndarray
    right: np.ndarray
    top: np.ndarray
    bottom: np.ndarray


_FREETYPE_LOCK = threading.Lock()
"""Held while a glyph is drawn with FreeType and added to a cache: fonts are
shared between caches (`font` is cached), and a cache between the threads
drawing with one renderer."""


def _pen_after(advance: np.ndarray, first: np.ndarray, lengths: np.ndarray, exact: bool) -> np.ndarray:
    """Pen position after each glyph of consecutive texts.

    Parameters
    ----------
    advance : `numpy.ndarray`
        Advance of every glyph of the texts, one text after the other.
    first : `numpy.ndarray`
        Index of the first glyph of each text (non-empty texts).
    lengths : `numpy.ndarray`
        Number of glyphs of each text.
    exact : `bool`
        Every advance is a multiple of 1/64 (FreeType's unit).

    Returns
    -------
    after : `numpy.ndarray`
        Sum of the advances of the text up to and including each glyph,
        equal to adding them one by one from 0.0: with exact advances
        every partial sum is exact and one running sum serves all texts.

    """
    if exact and advance.size and float(np.abs(advance).sum()) < 2.0**40:
        after = np.cumsum(advance)
        after -= np.repeat(after[first] - advance[first], lengths)
        return after
    return np.fromiter(
        itertools.chain.from_iterable(
            itertools.accumulate(advance[f : f + n].tolist()) for f, n in zip(first, lengths, strict=True)
        ),
        float,
        advance.size,
    )


class GlyphCache:
    """Coverage masks of single glyphs, to compose text without FreeType per call.

    Glyphs are placed at rounded pen positions without kerning, which is
    invisible for the digits and units of annotation values.  `coverage`
    draws one text; `ink` places many texts at once with a few numpy calls.
    """

    def __init__(self, font: ImageFont.FreeTypeFont, preload: str = "") -> None:
        self._font = font
        self._glyphs: dict[str, tuple[np.ndarray, int, int, float]] = {}
        self._advances: dict[str, float] = {}
        self._order: list[str] = []
        self._packed: dict[int, _PackedInk] = {}
        for char in preload:
            self._glyph(char)

    def _glyph(self, char: str) -> tuple[np.ndarray, int, int, float]:
        glyph = self._glyphs.get(char)
        if glyph is None:
            with _FREETYPE_LOCK:
                glyph = self._glyphs.get(char)
                if glyph is None:
                    glyph = self._render_glyph(char)
                    # In this order, for threads drawing with one renderer: a
                    # character with an advance is listed, and a listed one
                    # has its glyph.
                    self._glyphs[char] = glyph
                    self._order.append(char)
                    self._advances[char] = glyph[3]
        return glyph

    def _render_glyph(self, char: str) -> tuple[np.ndarray, int, int, float]:
        """Coverage mask, left and top offsets (from the pen on the
        baseline) and advance of one character."""
        left, top, right, bottom = self._font.getbbox(char, anchor="ls")
        if right > left and bottom > top:
            image = Image.new("L", (right - left, bottom - top), 0)
            ImageDraw.Draw(image).text((-left, -top), char, fill=255, font=self._font, anchor="ls")
            mask = np.asarray(image).copy()
        else:
            mask = np.zeros((0, 0), np.uint8)
        return mask, left, top, self._font.getlength(char)

    def _pack(self, stride: int) -> _PackedInk:
        """The inked pixels of the cached glyphs, for rows of ``stride`` pixels."""
        packed = self._packed.get(stride)
        n = len(self._order)
        if packed is not None and packed.n_glyphs == n:
            return packed
        rows, columns, values, counts, boxes, advances = [], [], [], [], [], []
        for char in self._order[:n]:
            mask, left, top, advance = self._glyphs[char]
            advances.append(advance)
            r, c = np.nonzero(mask)
            rows.append(r + top)
            columns.append(c + left)
            values.append(mask[r, c])
            counts.append(len(r))
            boxes.append((left, left + mask.shape[1], top, top + mask.shape[0]))
        row = np.concatenate(rows).astype(np.intp)
        column = np.concatenate(columns).astype(np.intp)
        count = np.asarray(counts, dtype=np.intp)
        left, right, top, bottom = (np.asarray(b, dtype=np.intp) for b in zip(*boxes, strict=True))
        codes = np.asarray([ord(char) for char in self._order[:n]], dtype=np.uint32)
        order = np.argsort(codes, kind="stable")
        advance = np.asarray(advances, dtype=float)
        packed = _PackedInk(
            n_glyphs=n,
            code=codes[order],
            glyph_of_code=order.astype(np.intp),
            advance=advance,
            exact_advances=bool(np.all(advance * 64 == np.floor(advance * 64))),
            offset=row * stride + column,
            row=row,
            column=column,
            value=np.concatenate(values).astype(np.uint8),
            start=np.cumsum(count) - count,
            count=count,
            left=left,
            right=right,
            top=top,
            bottom=bottom,
        )
        self._packed[stride] = packed
        return packed

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
        try:
            return sum(map(self._advances.__getitem__, text))
        except KeyError:
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

    def ink(
        self, texts: Sequence[tuple[str, int, int, int, int]], baseline: int, stride: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The inked pixels of several texts, each drawn as `coverage` draws it.

        Parameters
        ----------
        texts : sequence of (`str`, `int`, `int`, `int`, `int`)
            ``(text, x0, y0, width, height)``: each text is drawn from the
            left edge of its box (top-left corner ``(x0, y0)``) and clipped
            to it, exactly as ``coverage(text, width, height, baseline)``.
        baseline : `int`
            Row of the baseline in every box.
        stride : `int`
            Row length of the (C-ordered, 2-D) array the pixels are meant
            for.

        Returns
        -------
        index : `numpy.ndarray`
            Flat indices of the inked pixels (``row * stride + column``).
            An index may repeat where glyphs overlap; every copy then
            carries the same value.
        coverage : `numpy.ndarray`
            uint8 coverage (1-255) of each pixel: the maximum over the
            glyphs that cover it.

        """
        texts = [item for item in texts if item[0]]
        joined = "".join(text for text, *_ in texts)
        for char in set(joined).difference(self._advances):
            self._glyph(char)
        if not joined:
            return np.zeros(0, np.intp), np.zeros(0, np.uint8)
        packed = self._pack(stride)
        codes = np.frombuffer(joined.encode("utf-32-le"), dtype="<u4")
        glyph = packed.glyph_of_code[np.searchsorted(packed.code, codes)]
        lengths = np.fromiter((len(text) for text, *_ in texts), np.intp, len(texts))
        boxes = np.asarray([box for _, *box in texts], dtype=np.intp).reshape(-1, 4)
        first = np.cumsum(lengths) - lengths
        advance = packed.advance[glyph]
        after = _pen_after(advance, first, lengths, packed.exact_advances)
        width = np.repeat(boxes[:, 2], lengths)
        height = np.repeat(boxes[:, 3], lengths)
        origin = np.repeat((boxes[:, 1] + baseline) * stride + boxes[:, 0], lengths)
        pen = np.rint(after - advance).astype(np.intp)
        stop = after >= width
        if stop.any():
            # `coverage` stops after the glyph that reaches the box's right edge.
            stops_before = np.cumsum(stop) - stop
            keep = stops_before == np.repeat(stops_before[first], lengths)
            glyph, pen, width, height, origin = (
                glyph[keep],
                pen[keep],
                width[keep],
                height[keep],
                origin[keep],
            )
        count = packed.count[glyph]
        # Indices of every glyph's run of pixels in the packed arrays.
        take = np.arange(int(count.sum()), dtype=np.intp) + np.repeat(
            packed.start[glyph] - (np.cumsum(count) - count), count
        )
        index = packed.offset[take] + np.repeat(origin + pen, count)
        value = packed.value[take]
        inside = (
            (pen + packed.left[glyph] >= 0)
            & (pen + packed.right[glyph] <= width)
            & (baseline + packed.top[glyph] >= 0)
            & (baseline + packed.bottom[glyph] <= height)
        )
        if not inside.all():
            # Some glyph reaches out of its box: clip pixel by pixel.
            column = packed.column[take] + np.repeat(pen, count)
            row = packed.row[take] + baseline
            keep = (
                (column >= 0)
                & (column < np.repeat(width, count))
                & (row >= 0)
                & (row < np.repeat(height, count))
            )
            index, value = index[keep], value[keep]
        if index.size == 0:
            return index, value
        combined = np.zeros(int(index.max()) + 1, np.uint8)
        np.maximum.at(combined, index, value)
        return index, combined[index]
