"""Mask planes drawn over a stamp, in afw.display's default colours.

Mask plane names differ between lsst.images masks (``SATURATED``,
``COSMIC_RAY``, ``DETECTION_EDGE`` ...) and afw-written files (``SAT``,
``CR``, ``EDGE`` ...).  `canonical_plane_name` maps both to the lsst.images
name (from lsst.images' own table of legacy planes), so one configuration
(`DEFAULT_OVERLAY_PLANES`, in either spelling) selects the same planes in
both kinds of data.

Colours follow ``lsst.afw.display``'s defaults (its ``ds9`` X11 colour
names): BAD red, CR magenta, EDGE yellow, INTERPOLATED and SATURATED green,
DETECTED blue, DETECTED_NEGATIVE cyan, SUSPECT yellow, NO_DATA orange.
Other planes take colours from the same cycle, in the order they are
chosen.  Where several chosen planes are set, the one listed last is drawn
on top (afw draws planes as stacked layers).

Everything here works on stamp-sized arrays; the renderer upsamples the
result with the stamp, so overlay pixels land exactly on the stamp pixels
whose bits are set.
"""

from __future__ import annotations

__all__ = (
    "DEFAULT_OVERLAY_OPACITY",
    "DEFAULT_OVERLAY_PLANES",
    "X11_RGB",
    "OverlayPlane",
    "afw_default_colors",
    "blend_overlay",
    "canonical_plane_name",
    "overlay_index",
    "overlay_legend",
    "overlay_planes",
    "resolve_planes",
)

import dataclasses
import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

RGB = tuple[int, int, int]

X11_RGB: Mapping[str, RGB] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
    "yellow": (255, 255, 0),
    "orange": (255, 165, 0),
}
"""The X11 colours afw.display names (X11 "green" is pure green)."""

_AFW_DEFAULT_COLOR_NAMES = {
    "BAD": "red",
    "CR": "magenta",
    "EDGE": "yellow",
    "INTERPOLATED": "green",
    "SATURATED": "green",
    "DETECTED": "blue",
    "DETECTED_NEGATIVE": "cyan",
    "SUSPECT": "yellow",
    "NO_DATA": "orange",
    "INTRP": "green",
    "SAT": "green",
}

_COLOR_CYCLE = ("red", "green", "blue", "cyan", "magenta", "yellow", "orange")
"""afw.display's cycle for planes without a default colour (black and
white omitted)."""

DEFAULT_OVERLAY_PLANES: tuple[str, ...] = (
    "DETECTED",
    "DETECTED_NEGATIVE",
    "EDGE",
    "SUSPECT",
    "INTERPOLATED",
    "SATURATED",
    "CR",
    "BAD",
    "NO_DATA",
)
"""Planes drawn by default when the overlay is on: those afw.display
colours, bottom layer first."""

DEFAULT_OVERLAY_OPACITY = 0.5
"""Opacity of overlay colours over the image (afw's transparency 50)."""


@functools.cache
def _legacy_names() -> Mapping[str, str]:
    """Afw plane name -> lsst.images plane name, from lsst.images."""
    import lsst.images as images

    names: dict[str, str] = {}
    for getter in (
        images.get_legacy_visit_image_mask_planes,
        images.get_legacy_difference_image_mask_planes,
        images.get_legacy_template_mask_planes,
        images.get_legacy_deep_coadd_mask_planes,
        images.get_legacy_non_cell_coadd_mask_planes,
        images.get_legacy_optional_mask_planes,
    ):
        for legacy, plane in getter().items():
            names.setdefault(legacy, plane.name)
    return names


def canonical_plane_name(name: str) -> str:
    """The lsst.images name of a mask plane given in either spelling.

    Parameters
    ----------
    name : `str`
        Plane name as afw (``SAT``, ``CR`` ...) or lsst.images
        (``SATURATED``, ``COSMIC_RAY`` ...) writes it; case-insensitive.

    Returns
    -------
    canonical : `str`
        The lsst.images name (upper case); unknown names are returned upper
        cased.

    """
    key = str(name).strip().upper()
    legacy = _legacy_names()
    if key in legacy:
        return legacy[key]
    return key


@functools.cache
def afw_default_colors() -> Mapping[str, RGB]:
    """afw.display's default colour of each plane, keyed by lsst.images name.

    Returns
    -------
    colors : mapping of `str` to RGB
        E.g. ``SATURATED`` and ``INTERPOLATED`` green, ``COSMIC_RAY``
        magenta.

    """
    return {canonical_plane_name(k): X11_RGB[v] for k, v in _AFW_DEFAULT_COLOR_NAMES.items()}


@dataclasses.dataclass(frozen=True)
class OverlayPlane:
    """A mask plane to draw: its canonical name and colour."""

    name: str
    rgb: RGB


def overlay_planes(
    names: Sequence[str] = DEFAULT_OVERLAY_PLANES, colors: Mapping[str, Sequence[int]] | None = None
) -> tuple[OverlayPlane, ...]:
    """The planes to draw, with their colours, bottom layer first.

    Parameters
    ----------
    names : sequence of `str`, optional
        Plane names in either spelling; duplicates (after mapping) are
        dropped.
    colors : mapping of `str` to RGB, optional
        Colours overriding afw.display's defaults, keyed by plane name in
        either spelling.

    Returns
    -------
    planes : `tuple` [`OverlayPlane`, ...]
        Canonical names and colours.

    Raises
    ------
    ValueError
        For an empty plane list or a colour that is not three 0-255 values.

    """
    canonical = list(dict.fromkeys(canonical_plane_name(n) for n in names))
    if not canonical:
        raise ValueError("at least one mask plane is needed for the overlay.")
    custom: dict[str, RGB] = {}
    for key, value in (colors or {}).items():
        rgb = tuple(int(c) for c in value)
        if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
            raise ValueError(f"colour of mask plane {key!r} must be three integers in 0-255, got {value!r}.")
        custom[canonical_plane_name(key)] = rgb  # type: ignore[assignment]
    defaults = afw_default_colors()
    cycle = 0
    planes = []
    for name in canonical:
        if name in custom:
            rgb = custom[name]
        elif name in defaults:
            rgb = defaults[name]
        else:
            rgb = X11_RGB[_COLOR_CYCLE[cycle % len(_COLOR_CYCLE)]]
            cycle += 1
        planes.append(OverlayPlane(name, rgb))
    return tuple(planes)


def resolve_planes(available: Iterable[str], planes: Sequence[OverlayPlane]) -> dict[str, str]:
    """Match the chosen planes to the plane names a mask actually has.

    Parameters
    ----------
    available : iterable of `str`
        Plane names of the mask (either spelling).
    planes : sequence of `OverlayPlane`
        Planes to draw.

    Returns
    -------
    names : `dict` [`str`, `str`]
        Canonical name -> the mask's own name, for the chosen planes the
        mask has (others are absent: nothing to draw).

    """
    own = {canonical_plane_name(n): n for n in available if n is not None}
    return {p.name: own[p.name] for p in planes if p.name in own}


def overlay_index(bits: Mapping[str, np.ndarray], planes: Sequence[OverlayPlane]) -> np.ndarray:
    """Which plane to draw at each stamp pixel.

    Parameters
    ----------
    bits : mapping of `str` to `numpy.ndarray`
        Boolean stamp-shaped array of each plane that is set somewhere,
        keyed by canonical name (planes missing from the mapping are not
        drawn).
    planes : sequence of `OverlayPlane`
        Planes in drawing order (last on top).

    Returns
    -------
    index : `numpy.ndarray`
        int16 array: index into ``planes`` of the top plane set at each
        pixel, -1 where none is.

    Raises
    ------
    ValueError
        If ``bits`` is empty or its arrays differ in shape.

    """
    arrays = list(bits.values())
    if not arrays:
        raise ValueError("no mask plane arrays given.")
    shape = np.shape(arrays[0])
    index = np.full(shape, -1, dtype=np.int16)
    for i, plane in enumerate(planes):
        plane_bits = bits.get(plane.name)
        if plane_bits is None:
            continue
        plane_bits = np.asarray(plane_bits, dtype=bool)
        if plane_bits.shape != shape:
            raise ValueError(f"mask plane {plane.name} has shape {plane_bits.shape}, expected {shape}.")
        index[plane_bits] = i
    return index


def blend_overlay(
    rgb: np.ndarray,
    index: np.ndarray,
    planes: Sequence[OverlayPlane],
    opacity: float = DEFAULT_OVERLAY_OPACITY,
) -> np.ndarray:
    """Blend plane colours over an RGB stamp.

    Parameters
    ----------
    rgb : `numpy.ndarray`
        ``(ny, nx, 3)`` uint8 colour-mapped stamp.
    index : `numpy.ndarray`
        ``(ny, nx)`` plane index from `overlay_index` (-1: no overlay).
    planes : sequence of `OverlayPlane`
        The planes ``index`` refers to.
    opacity : `float`, optional
        Weight of the plane colour, in (0, 1].

    Returns
    -------
    blended : `numpy.ndarray`
        New ``(ny, nx, 3)`` uint8 array: ``round((1 - a) rgb + a colour)``
        where a plane is set, ``rgb`` elsewhere.

    Raises
    ------
    ValueError
        If ``opacity`` is out of range.

    """
    if not 0.0 < opacity <= 1.0:
        raise ValueError(f"overlay opacity must be in (0, 1], got {opacity}.")
    out = np.array(rgb, dtype=np.uint8, copy=True)
    colours = np.asarray([p.rgb for p in planes], dtype=float).reshape(-1, 3)
    covered = index >= 0
    if covered.any():
        base = out[covered].astype(float)
        out[covered] = np.rint((1.0 - opacity) * base + opacity * colours[index[covered]]).astype(np.uint8)
    return out


def overlay_legend(
    planes: Sequence[OverlayPlane],
    width: int,
    font: Any,
    opacity: float = DEFAULT_OVERLAY_OPACITY,
    background: RGB = (255, 255, 255),
    text_rgb: RGB = (0, 0, 0),
) -> np.ndarray:
    """A legend strip naming the overlay planes in their colours.

    Parameters
    ----------
    planes : sequence of `OverlayPlane`
        The planes, in drawing order.
    width : `int`
        Strip width in pixels (entries wrap onto more lines).
    font : `PIL.ImageFont.FreeTypeFont`
        Font of the names.
    opacity : `float`, optional
        Opacity of the overlay; each swatch shows its colour blended at
        that opacity over mid-grey, as it appears on a stamp, with a full
        colour border.
    background, text_rgb : RGB, optional
        Strip and text colours.

    Returns
    -------
    legend : `numpy.ndarray`
        ``(height, width, 3)`` uint8 image.

    """
    from PIL import Image, ImageDraw

    margin, line, swatch, gap = 8, 18, 11, 14
    entries = []
    x, y = margin, 4
    for plane in planes:
        w = swatch + 4 + int(np.ceil(font.getlength(plane.name)))
        if x > margin and x + w > width - margin:
            x, y = margin, y + line
        entries.append((x, y, plane))
        x += w + gap
    height = y + line + 2
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    for x, y, plane in entries:
        shown = tuple(int(round((1 - opacity) * 128 + opacity * c)) for c in plane.rgb)
        draw.rectangle((x, y + 2, x + swatch - 1, y + 2 + swatch - 1), fill=shown, outline=plane.rgb)
        draw.text((x + swatch + 4, y + 1), plane.name, fill=text_rgb, font=font)
    return np.asarray(image)
