"""The one 256-colour palette of every cutout PNG.

A cutout is an 8-bit *indexed* image: `Palette.panel_levels` colormap levels
(evenly sampled from the 256-entry LUT of the matplotlib colormap) followed by
the interface colours (white, greys, no-data, red, badge colours, and 4-step
anti-aliasing ramps for text).  Panels are written as level indices and
static art is quantized to the palette once, so per source no colour is ever
converted; the PNG is written in palette mode, which encodes 3-4x faster
than RGB and gives files half the size.
"""

from __future__ import annotations

__all__ = (
    "BACKGROUND_RGB",
    "FRAME_RGB",
    "GHOST_RGB",
    "LABEL_RGB",
    "NO_DATA_RGB",
    "RGB",
    "SCALE_BAR_OUTLINE_RGB",
    "SCALE_BAR_RGB",
    "TEXT_RGB",
    "Palette",
    "badge_text_rgb",
    "display_levels",
    "make_lut",
)

from collections.abc import Sequence

import matplotlib
import numpy as np

from .annotation import BADGES, FLAGGED_RGB

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

_AA_STEPS = 4
"""Intermediate anti-aliasing shades per text colour in the palette."""


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
    has_nan = bool(nan.any())
    index = np.rint((np.where(nan, 0.0, scaled) if has_nan else scaled) * (n_levels - 1))
    index.clip(0, n_levels - 1, out=index)
    index = index.astype(np.uint8)
    if has_nan:
        index[nan] = no_data_index
    return index


def _luminance(rgb: RGB) -> float:
    r, g, b = rgb
    return (0.299 * r + 0.587 * g + 0.114 * b) / 255.0


def badge_text_rgb(fill: RGB) -> RGB:
    """The text colour of a badge.

    Parameters
    ----------
    fill : `tuple` [`int`, `int`, `int`]
        Badge colour.

    Returns
    -------
    rgb : `tuple` [`int`, `int`, `int`]
        Black or white, whichever reads on ``fill``.

    """
    return (0, 0, 0) if _luminance(fill) > 0.55 else (255, 255, 255)


def _ramp(fg: RGB, bg: RGB, steps: int) -> list[RGB]:
    """``steps`` colours strictly between ``bg`` and ``fg``."""
    f, b = np.asarray(fg, float), np.asarray(bg, float)
    return [
        tuple(int(v) for v in np.rint(b + (f - b) * (k / (steps + 1))))  # type: ignore[misc]
        for k in range(1, steps + 1)
    ]


class Palette:
    """The palette of one colormap and no-data colour.

    Parameters
    ----------
    colormap : `str`
        Name of a colormap registered in `matplotlib.colormaps`.
    no_data_rgb : sequence of 3 `int`
        Colour of no-data (NaN) pixels.

    Raises
    ------
    ValueError
        If the colormap is unknown.

    """

    def __init__(self, colormap: str, no_data_rgb: Sequence[int]) -> None:
        self.lut: np.ndarray = make_lut(colormap)
        """256-entry colormap LUT, ``(256, 3)`` uint8."""
        no_data: RGB = tuple(int(c) for c in no_data_rgb)  # type: ignore[assignment]
        solids: list[RGB] = [
            BACKGROUND_RGB,
            TEXT_RGB,
            no_data,
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
            ramps.append((badge_text_rgb(badge.rgb), badge.rgb))
        interface: list[RGB] = []
        for colour in solids + [c for fg, bg in dict.fromkeys(ramps) for c in _ramp(fg, bg, _AA_STEPS)]:
            if colour not in interface:
                interface.append(colour)
        n_levels = 256 - len(interface)
        sample = np.rint(np.linspace(0, 255, n_levels)).astype(np.intp)
        self._sample = sample
        self.panel_lut: np.ndarray = self.lut[sample]
        """Colormap levels the panels are drawn with, ``(panel_levels, 3)``
        uint8, sampled evenly from `lut` (the rest of the 256-colour PNG
        palette holds interface colours)."""
        self.panel_lut.flags.writeable = False
        self.panel_levels: int = n_levels
        """Number of colormap levels of the panels."""
        colours = np.concatenate([self.panel_lut, np.asarray(interface, dtype=np.uint8)])
        colours.flags.writeable = False
        self.colours: np.ndarray = colours
        """The 256 colours, ``(256, 3)`` uint8."""
        self.png_bytes: bytes = colours.tobytes()
        """The colours as a PIL palette."""
        self.index: dict[RGB, int] = {colour: n_levels + i for i, colour in enumerate(interface)}
        """Palette index of each interface colour."""
        self.no_data_index: int = self.index[no_data]
        """Palette index of no-data pixels."""
        white = self.index[BACKGROUND_RGB]
        # Coverage (0-255) -> palette index of black value text on white.
        shades = [white] + [self.index[c] for c in _ramp(TEXT_RGB, BACKGROUND_RGB, _AA_STEPS)]
        shades.append(self.index[TEXT_RGB])
        steps = np.rint(np.arange(256) * (_AA_STEPS + 1) / 255.0).astype(np.intp)
        self.coverage_to_index: np.ndarray = np.asarray(shades, dtype=np.uint8)[steps]
        """Palette index of black text on white, by glyph coverage (0-255)."""

    def levels_of(self, colormap: str) -> np.ndarray:
        """The panel levels of another colormap, sampled as `panel_lut`.

        Parameters
        ----------
        colormap : `str`
            matplotlib colormap name.

        Returns
        -------
        levels : `numpy.ndarray`
            ``(panel_levels, 3)`` uint8: level ``k`` of a panel drawn with
            this palette has this colour in ``colormap``.

        """
        levels = make_lut(colormap)[self._sample]
        levels.flags.writeable = False
        return levels

    def colours_of(self, colormap: str | None) -> np.ndarray:
        """The 256 colours with the panel levels of another colormap.

        Parameters
        ----------
        colormap : `str` or `None`
            matplotlib colormap name; `None` gives `colours`.

        Returns
        -------
        colours : `numpy.ndarray`
            ``(256, 3)`` uint8: `levels_of` ``colormap`` followed by the
            interface colours of `colours`.

        """
        if colormap is None:
            return self.colours
        colours = np.concatenate([self.levels_of(colormap), self.colours[self.panel_levels :]])
        colours.flags.writeable = False
        return colours

    def quantize(self, rgb: np.ndarray) -> np.ndarray:
        """Nearest-palette-colour indices of an RGB array (used on static art only).

        Parameters
        ----------
        rgb : `numpy.ndarray`
            ``(height, width, 3 or 4)`` uint8 image.

        Returns
        -------
        index : `numpy.ndarray`
            ``(height, width)`` uint8 palette indices; ties go to interface
            colours.

        """
        flat = rgb[..., :3].reshape(-1, 3)
        packed = (flat[:, 0].astype(np.uint32) << 16) | (flat[:, 1].astype(np.uint32) << 8) | flat[:, 2]
        unique, inverse = np.unique(packed, return_inverse=True)
        colours = np.stack([(unique >> 16) & 255, (unique >> 8) & 255, unique & 255], axis=1).astype(float)
        # Prefer interface colours on ties (the palette's later entries).
        palette = self.colours.astype(float)[::-1]
        distance = ((colours[:, np.newaxis, :] - palette[np.newaxis, :, :]) ** 2).sum(axis=2)
        nearest = (255 - np.argmin(distance, axis=1)).astype(np.uint8)
        return nearest[inverse.reshape(-1)].reshape(rgb.shape[:2])
