"""Where everything goes on a cutout canvas.

Layout (top to bottom)::

    [annotation block, if add_metadata: identity / position / fluxes / badges]
    Template      Science       Difference        <- titles
    [  size 0  ]  [  size 0  ]  [  size 0  ]
    [  size 1  ]  [  size 1  ]  [  size 1  ]      <- one row per size

Every position depends only on the configuration (sizes, add_metadata,
panel_pixels) and the annotation scheme
(`lsst.analysis.ap.display.annotation.ANNOTATION_SCHEMES`); the PNG size
depends only on the configuration: the annotation block is as tall as the
tallest scheme's, so a ``ztf`` image is the size of a ``rubin`` one.

The ``rubin`` block holds the APDB identity, position, the three fluxes,
the flag badges and the reliability; the ``ztf`` block holds what a ZTF
alert gives::

    objectId ZTF17aaajnnn    candid 472263571115115000
    RA 179.640201    Dec +52.029720
    band r    magpsf 18.36 ± 0.05 mag    isdiffpos t
    drb 0.988    rb 0.870
"""

from __future__ import annotations

__all__ = (
    "BADGE_SIZE",
    "BASELINE",
    "FLAGGABLE_FIELDS",
    "LABEL_SIZE",
    "SCALE_BAR_INSET",
    "SCALE_BAR_THICKNESS",
    "SCALE_LABEL_SIZE",
    "TITLE_HEIGHT",
    "TITLE_SIZE",
    "VALUE_SIZE",
    "Box",
    "CanvasLayout",
    "Cell",
    "layout_canvas",
    "uncovered_boxes",
)

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from .annotation import ANNOTATION_SCHEMES, BADGES, MISSING_TEXT, RUBIN_SCHEME, ZTF_SCHEME, field_labels
from .glyphs import GlyphCache, font

# Distances in canvas pixels.
_MARGIN = 8
_GAP = 8
TITLE_HEIGHT = 22
_LINE_HEIGHT = 20
BASELINE = 15
_LABEL_GAP = 4
_CELL_GAP = 10
_BADGE_GAP = 6
_BADGE_HEIGHT = 17
_BADGE_PAD = 5
SCALE_BAR_INSET = 6
SCALE_BAR_THICKNESS = 3

# Font sizes in pixels.
VALUE_SIZE = 13
LABEL_SIZE = 12
TITLE_SIZE = 14
BADGE_SIZE = 11
SCALE_LABEL_SIZE = 12

_FLUX_TEMPLATE = "-1.235e+06 ± 1.235e+06 nJy"
# Annotation fields of each scheme: (key, widest expected value).  Each line
# group starts on a new line; it is made of units (tuples of fields) that
# wrap as a whole when the canvas is too narrow for them.
_FieldGroups = tuple[tuple[tuple[tuple[str, str], ...], ...], ...]
_RUBIN_GROUPS: _FieldGroups = (
    (
        (("diaSourceId", "9" * 19),),
        (("instrument", "LSSTComCamSim"),),
        (("detector", "999"),),
        (("visit", "9" * 13),),
        (("band", "y"),),
    ),
    ((("ra", "359.999999"),), (("dec", "+89.999999"),), (("snr", "99999.9"),), (("chi2", "99999.99"),)),
    ((("psf", _FLUX_TEMPLATE), ("psf_snr", "-9999.9")), (("ap", _FLUX_TEMPLATE), ("ap_snr", "-9999.9"))),
    ((("total", _FLUX_TEMPLATE), ("total_snr", "-9999.9")), (("mag", "99.99"),)),
)
_ZTF_GROUPS: _FieldGroups = (
    ((("objectId", "ZTF99aaaaaaa"),), (("candid", "9" * 19),)),
    ((("ra", "359.999999"),), (("dec", "+89.999999"),)),
    ((("band", "y"),), (("magpsf", "99.99 ± 9.99 mag"),), (("isdiffpos", "t"),)),
    ((("drb", "0.999"),), (("rb", "0.999"),)),
)
_FIELD_GROUPS: Mapping[str, _FieldGroups] = MappingProxyType(
    {RUBIN_SCHEME: _RUBIN_GROUPS, ZTF_SCHEME: _ZTF_GROUPS}
)
_BADGE_SCHEMES = (RUBIN_SCHEME,)
"""Schemes whose block ends with the flag badges and the reliability."""
FLAGGABLE_FIELDS = ("psf", "ap", "total")
"""Flux fields whose label turns red when their measurement flag is set."""
_RELIABILITY_TEMPLATE = "0.999"


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


@dataclass(frozen=True)
class Cell:
    """The label and value boxes of one annotation field."""

    key: str
    label_box: Box
    value_box: Box


@dataclass(frozen=True)
class CanvasLayout:
    """The boxes of one renderer configuration."""

    canvas_size: tuple[int, int]
    """``(width, height)`` of every image, in pixels."""
    title_top: int
    """Top of the panel-title row."""
    panel_boxes: tuple[tuple[Box, Box, Box], ...]
    """Panel boxes, ``[size index][0=template, 1=science, 2=difference]``."""
    badge_boxes: Mapping[str, Box]
    """Box of each flag badge by name (empty without metadata)."""
    cells: Mapping[str, Cell]
    """Label and value boxes of each annotation field by key (empty without metadata)."""
    scheme: str = RUBIN_SCHEME
    """Annotation scheme whose fields are placed."""


def uncovered_boxes(canvas_size: tuple[int, int], boxes: Sequence[Box]) -> tuple[Box, ...]:
    """The canvas outside some boxes, as few boxes as rows allow.

    Parameters
    ----------
    canvas_size : `tuple` [`int`, `int`]
        ``(width, height)`` of the canvas.
    boxes : sequence of `Box`
        Boxes inside the canvas.

    Returns
    -------
    uncovered : `tuple` [`Box`, ...]
        Disjoint boxes that, with ``boxes``, cover the canvas: bands of rows
        that meet the same boxes, cut into the runs of columns no box
        covers.

    """
    width, height = canvas_size
    edges = sorted({0, height} | {b.y0 for b in boxes} | {b.y1 for b in boxes})
    uncovered = []
    for y0, y1 in zip(edges[:-1], edges[1:], strict=True):
        if not 0 <= y0 < y1 <= height:
            continue
        x = 0
        for box in sorted((b for b in boxes if b.y0 <= y0 and y1 <= b.y1), key=lambda b: b.x0):
            if box.x0 > x:
                uncovered.append(Box(x, y0, box.x0, y1))
            x = max(x, box.x1)
        if x < width:
            uncovered.append(Box(x, y0, width, y1))
    return tuple(uncovered)


def layout_canvas(
    n_rows: int,
    add_metadata: bool,
    panel_pixels: int,
    value_glyphs: GlyphCache,
    label_glyphs: GlyphCache,
    scheme: str = RUBIN_SCHEME,
) -> CanvasLayout:
    """Place the annotation block, the titles and the panels.

    Parameters
    ----------
    n_rows : `int`
        Number of panel rows (stamp sizes).
    add_metadata : `bool`
        Whether the annotation block is drawn.
    panel_pixels : `int`
        Width and height of each panel box.
    value_glyphs, label_glyphs : `~lsst.analysis.ap.display.glyphs.GlyphCache`
        Glyphs of the value and label fonts (for text widths).
    scheme : `str`, optional
        Annotation scheme whose fields are placed, one of
        `~lsst.analysis.ap.display.annotation.ANNOTATION_SCHEMES`.

    Returns
    -------
    layout : `CanvasLayout`
        The boxes.

    Raises
    ------
    ValueError
        For an unknown scheme.

    """
    width = 2 * _MARGIN + 3 * panel_pixels + 2 * _GAP
    y = _MARGIN
    cells: dict[str, Cell] = {}
    badge_boxes: dict[str, Box] = {}
    labels = field_labels(scheme)
    if add_metadata:
        bottom = _layout_annotation(width, y, scheme, cells, badge_boxes, value_glyphs, label_glyphs, labels)
        for other in ANNOTATION_SCHEMES:
            if other != scheme:
                other_bottom = _layout_annotation(
                    width, y, other, {}, {}, value_glyphs, label_glyphs, field_labels(other)
                )
                bottom = max(bottom, other_bottom)
        y = bottom + _GAP // 2
    title_top = y
    y += TITLE_HEIGHT
    panel_boxes = []
    for _ in range(n_rows):
        row = []
        for column in range(3):
            x0 = _MARGIN + column * (panel_pixels + _GAP)
            row.append(Box(x0, y, x0 + panel_pixels, y + panel_pixels))
        panel_boxes.append(tuple(row))
        y += panel_pixels + _GAP
    height = y - _GAP + _MARGIN
    return CanvasLayout(
        canvas_size=(width, height),
        title_top=title_top,
        panel_boxes=tuple(panel_boxes),
        badge_boxes=MappingProxyType(badge_boxes),
        cells=MappingProxyType(cells),
        scheme=scheme,
    )


def _layout_annotation(
    width: int,
    y: int,
    scheme: str,
    cells: dict[str, Cell],
    badge_boxes: dict[str, Box],
    value_glyphs: GlyphCache,
    label_glyphs: GlyphCache,
    labels: Mapping[str, str],
) -> int:
    """Place annotation fields and badges; return the y below them."""
    right = width - _MARGIN
    missing_width = value_glyphs.width(MISSING_TEXT)

    def cell_widths(key: str, template: str) -> tuple[int, int]:
        label_w = math.ceil(label_glyphs.width(labels[key]))
        value_w = math.ceil(max(value_glyphs.width(template), missing_width)) + 2
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
            cells[key] = Cell(
                key, Box(x, y, x + label_w, y + _LINE_HEIGHT), Box(vx, y, vx + value_w, y + _LINE_HEIGHT)
            )
            x = vx + value_w + _CELL_GAP
        return x, y

    for group in _FIELD_GROUPS[scheme]:
        x = _MARGIN
        for unit in group:
            x, y = place_unit(x, y, unit)
        y += _LINE_HEIGHT
    if scheme in _BADGE_SCHEMES:
        y = _layout_badges(y, right, badge_boxes, place_unit)
    _widen_line_ends(cells, right)
    return y


def _layout_badges(
    y: int,
    right: int,
    badge_boxes: dict[str, Box],
    place_unit: Callable[[int, int, tuple[tuple[str, str], ...]], tuple[int, int]],
) -> int:
    """Place the flag badges below the fields at ``y``, and the
    reliability with ``place_unit``; return the y below them."""
    y += 2
    x = _MARGIN
    badge_font = font(BADGE_SIZE, bold=True)
    top = (_LINE_HEIGHT - _BADGE_HEIGHT) // 2
    for badge in BADGES:
        w = math.ceil(badge_font.getlength(badge.name)) + 2 * _BADGE_PAD
        if x > _MARGIN and x + w > right:
            x, y = _MARGIN, y + _LINE_HEIGHT
        badge_boxes[badge.name] = Box(x, y + top, x + w, y + top + _BADGE_HEIGHT)
        x += w + _BADGE_GAP
    _, y = place_unit(x + _CELL_GAP - _BADGE_GAP, y, (("reliability", _RELIABILITY_TEMPLATE),))
    return y + _LINE_HEIGHT


def _widen_line_ends(cells: dict[str, Cell], right: int) -> None:
    """Give the last value of each line the rest of the line, so that a
    value a little longer than its template (a band such as ``VR``) is
    drawn whole; only ink is drawn, so a value that fits its template is
    drawn as before."""
    last: dict[int, Cell] = {}
    for cell in cells.values():
        if cell.value_box.y0 not in last or cell.value_box.x1 > last[cell.value_box.y0].value_box.x1:
            last[cell.value_box.y0] = cell
    for cell in last.values():
        box = cell.value_box
        if box.x1 < right:
            cells[cell.key] = dataclasses.replace(cell, value_box=dataclasses.replace(box, x1=right))
