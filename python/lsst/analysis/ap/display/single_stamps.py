"""Single stamps: one undecorated PNG per panel at native resolution.

For machine learning and broker-style use, each stamp is written as its own
image: one PNG pixel per stamp pixel, row 0 of the stamp at the bottom (as
the panels are drawn), colour-mapped with the panel's own scaling and
colormap, no-data pixels in the no-data colour, and nothing else (no frame,
title, marker or annotation).  The PNG is 8-bit palette: the colormap's 255
levels and the no-data colour.
"""

from __future__ import annotations

__all__ = ("stamp_png", "stamp_png_indices")

import io
from collections.abc import Sequence

import numpy as np
from astropy.visualization import BaseInterval, BaseStretch
from PIL import Image

from .palette import display_levels, make_lut
from .scaling import scale_stamp

_LEVELS = 255


def stamp_png_indices(array: np.ndarray, interval: BaseInterval, stretch: BaseStretch) -> np.ndarray:
    """Palette indices of a single stamp, flipped for display.

    Parameters
    ----------
    array : `numpy.ndarray`
        2-D stamp, NaN for no data, row 0 at the bottom.
    interval : `astropy.visualization.BaseInterval`
        Display limits.
    stretch : `astropy.visualization.BaseStretch`
        Display stretch.

    Returns
    -------
    indices : `numpy.ndarray`
        uint8 array of the stamp's shape, row 0 at the top: colormap level
        ``round(value * 254)`` or 255 for no data.

    """
    scaled = scale_stamp(np.asarray(array, dtype=float), interval, stretch)
    return np.ascontiguousarray(display_levels(scaled, _LEVELS, _LEVELS)[::-1])


def stamp_png(
    array: np.ndarray,
    interval: BaseInterval,
    stretch: BaseStretch,
    colormap: str,
    no_data_rgb: Sequence[int],
    compress_level: int = 1,
) -> bytes:
    """One stamp as an undecorated, native-resolution PNG.

    Parameters
    ----------
    array : `numpy.ndarray`
        2-D stamp, NaN for no data, row 0 at the bottom.
    interval : `astropy.visualization.BaseInterval`
        Display limits.
    stretch : `astropy.visualization.BaseStretch`
        Display stretch.
    colormap : `str`
        matplotlib colormap name.
    no_data_rgb : sequence of 3 `int`
        Colour of no-data pixels.
    compress_level : `int`, optional
        zlib level.

    Returns
    -------
    png : `bytes`
        A palette PNG as wide and high as the stamp.

    """
    indices = stamp_png_indices(array, interval, stretch)
    lut = make_lut(colormap)[np.rint(np.linspace(0, 255, _LEVELS)).astype(np.intp)]
    palette = np.concatenate([lut, np.asarray([no_data_rgb], dtype=np.uint8)])
    height, width = indices.shape
    image = Image.frombuffer("P", (width, height), indices, "raw", "P", 0, 1)
    image.putpalette(palette.tobytes())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()
