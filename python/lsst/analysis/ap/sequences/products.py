"""What a DiaObject's sequence is written as: a contact sheet, animations and
the multi-frame Zooniverse manifests.  Pure functions from arrays and
records to bytes and tables; the task writes them.
"""

from __future__ import annotations

__all__ = (
    "BAND_RGB",
    "LIGHT_CURVE_HEIGHT",
    "EpochLabel",
    "animation_bytes",
    "contact_sheet",
    "contact_sheet_size",
    "label_frame",
    "light_curve",
    "sequence_manifests",
)

import dataclasses
import io
import math
from collections.abc import Sequence

import pandas as pd
from PIL import Image, ImageDraw

from ..display.glyphs import font
from ..outputs.manifests import join_url
from ..records import id_array

BAND_RGB = {
    "u": (86, 180, 233),
    "g": (0, 158, 115),
    "r": (213, 94, 0),
    "i": (204, 121, 167),
    "z": (240, 228, 66),
    "y": (120, 120, 120),
}
"""Light-curve colours per band (colour-blind safe); other bands are black."""

_TEXT_RGB = (20, 20, 20)
_BACKGROUND = (255, 255, 255)
_MISSING = "—"


@dataclasses.dataclass(frozen=True)
class EpochLabel:
    """What the sheet and the frames say about one epoch.

    Attributes
    ----------
    mjd : `float`
        Time of the epoch (MJD TAI).
    band : `str`
        Band name, or empty.
    flux : `float` or `None`
        Difference-image PSF flux (nJy), `None` when not measured.
    detected : `bool`
        Whether the epoch is a DiaSource (a detection).
    visit, detector : `int`
        Where the epoch's images come from.

    """

    mjd: float
    band: str
    flux: float | None
    detected: bool
    visit: int
    detector: int

    def lines(self) -> tuple[str, ...]:
        """Text lines of the label."""
        flux = _MISSING if self.flux is None or not math.isfinite(self.flux) else f"{self.flux:.4g} nJy"
        return (
            f"MJD {self.mjd:.4f}",
            f"band {self.band or _MISSING}  visit {self.visit}",
            f"flux {flux}",
            "detected" if self.detected else "not detected",
        )


def label_frame(frame: Image.Image, label: EpochLabel) -> Image.Image:
    """An animation frame: a stamp image with its MJD and band below it."""
    text_font = font(12)
    height = 18
    out = Image.new("RGB", (frame.width, frame.height + height), _BACKGROUND)
    out.paste(frame.convert("RGB"), (0, 0))
    text = f"MJD {label.mjd:.3f}  {label.band or _MISSING}" + ("" if label.detected else "  (not detected)")
    ImageDraw.Draw(out).text((4, frame.height + 2), text, fill=_TEXT_RGB, font=text_font)
    return out


def animation_bytes(frames: Sequence[Image.Image], duration_ms: int, fmt: str) -> bytes:
    """Encode frames as an animated GIF or APNG that loops forever.

    Parameters
    ----------
    frames : sequence of `PIL.Image.Image`
        One image per epoch, all the same size.
    duration_ms : `int`
        Display time of each frame.
    fmt : `str`
        ``"GIF"`` or ``"PNG"`` (animated PNG).

    Returns
    -------
    data : `bytes`
        The encoded animation.

    """
    if not frames:
        raise ValueError("an animation needs at least one frame.")
    buffer = io.BytesIO()
    first, rest = frames[0], list(frames[1:])
    options: dict = dict(save_all=True, append_images=rest, duration=int(duration_ms), loop=0)
    if fmt == "GIF":
        options["disposal"] = 1
        options["optimize"] = False
    first.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def light_curve(labels: Sequence[EpochLabel], width: int, height: int) -> Image.Image:
    """A small flux-against-time plot per band (detections filled, others hollow)."""
    image = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    text_font = font(11)
    draw.text((4, 0), "difference flux (nJy) against MJD", fill=_TEXT_RGB, font=text_font)
    points = [
        (lab.mjd, lab.flux, lab)
        for lab in labels
        if lab.flux is not None and math.isfinite(lab.flux) and math.isfinite(lab.mjd)
    ]
    fluxes = [p[1] for p in points]
    f0, f1 = min([*fluxes, 0.0]), max([*fluxes, 0.0])
    f1 = f1 if f1 > f0 else f0 + 1.0
    flux_texts = (_axis_number(f1), _axis_number(f0))
    # The flux labels sit left of the frame, right-aligned to it.
    left = 8 + int(max(text_font.getlength(text) for text in flux_texts)) + 6
    right, top, bottom = width - 10, 16, height - 18
    draw.rectangle((left, top, right, bottom), outline=(150, 150, 150))
    if not points:
        draw.text((left + 6, top + 6), "no flux measurements", fill=_TEXT_RGB, font=text_font)
        return image
    x_legend = width - 12
    bands = {p[2].band for p in points}
    # Wavelength order (ugrizy), then other bands by name; drawn right to left.
    in_order = [band for band in BAND_RGB if band in bands] + sorted(bands - BAND_RGB.keys())
    for band in reversed(in_order):
        x_legend -= 8 * len(band) + 22
        draw.ellipse((x_legend, 4, x_legend + 7, 11), fill=BAND_RGB.get(band, (0, 0, 0)))
        draw.text((x_legend + 10, 0), band or _MISSING, fill=_TEXT_RGB, font=text_font)
    times = [p[0] for p in points]
    t0, t1 = min(times), max(times)
    t1 = t1 if t1 > t0 else t0 + 1.0
    # One time: a day wide (beyond 2**53, t0 + 1 is t0 itself).
    span = t1 - t0 if t1 > t0 else 1.0
    inset = 8  # points (7 px across) stay inside the frame

    def xy(tt: float, ff: float) -> tuple[float, float]:
        return (
            left + inset + (tt - t0) / span * (right - left - 2 * inset),
            bottom - inset - (ff - f0) / (f1 - f0) * (bottom - top - 2 * inset),
        )

    zero = xy(t0, 0.0)[1]
    draw.line((left, zero, right, zero), fill=(200, 200, 200))
    for text, y in zip(flux_texts, (xy(t0, f1)[1], xy(t0, f0)[1]), strict=True):
        draw.text((left - 6, y), text, fill=_TEXT_RGB, font=text_font, anchor="rm")
    draw.text((left, bottom + 3), f"{t0:.2f}", fill=_TEXT_RGB, font=text_font)
    draw.text((right, bottom + 3), f"{t1:.2f}", fill=_TEXT_RGB, font=text_font, anchor="ra")
    for tt, ff, lab in points:
        x, y = xy(tt, ff)
        rgb = BAND_RGB.get(lab.band, (0, 0, 0))
        box = (x - 3, y - 3, x + 3, y + 3)
        draw.ellipse(box, fill=rgb if lab.detected else None, outline=rgb)
    return image


def _axis_number(value: float) -> str:
    """A flux axis label: whole nJy up to a million, else three digits."""
    return f"{value:.0f}" if abs(value) < 1e6 else f"{value:.3g}"


_SHEET_LABEL_WIDTH = 200
"""Width of the label column of a contact sheet (pixels)."""

_SHEET_TITLE_HEIGHT = 22
"""Height of the title line of a contact sheet (pixels)."""

LIGHT_CURVE_HEIGHT = 120
"""Height of the light curve of a contact sheet (pixels)."""


def contact_sheet_size(
    row_size: tuple[int, int], n_rows: int, curve_height: int = LIGHT_CURVE_HEIGHT
) -> tuple[int, int]:
    """Width and height of a contact sheet (`contact_sheet`).

    Parameters
    ----------
    row_size : `tuple` [`int`, `int`]
        Width and height of each epoch's triplet image.
    n_rows : `int`
        Number of epochs.
    curve_height : `int`, optional
        Height of the light curve.

    Returns
    -------
    size : `tuple` [`int`, `int`]
        The sheet's width and height in pixels.

    """
    row_w, row_h = row_size
    return _SHEET_LABEL_WIDTH + row_w, _SHEET_TITLE_HEIGHT + curve_height + row_h * n_rows


def contact_sheet(
    rows: Sequence[Image.Image],
    labels: Sequence[EpochLabel],
    *,
    title: str,
    curve_height: int = LIGHT_CURVE_HEIGHT,
) -> Image.Image:
    """One row per epoch (its triplet image and label), a light curve on top.

    Parameters
    ----------
    rows : sequence of `PIL.Image.Image`
        The triplet image of each epoch, all the same size.
    labels : sequence of `EpochLabel`
        The epochs, in the same order.
    title : `str`
        First line of the sheet (the object).
    curve_height : `int`, optional
        Height of the light curve.

    Returns
    -------
    sheet : `PIL.Image.Image`
        The sheet.

    """
    row_h = rows[0].size[1]
    width, height = contact_sheet_size(rows[0].size, len(rows), curve_height)
    sheet = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((6, 3), title, fill=_TEXT_RGB, font=font(14, bold=True))
    sheet.paste(light_curve(labels, width, curve_height), (0, _SHEET_TITLE_HEIGHT))
    text_font = font(12)
    for i, (row, label) in enumerate(zip(rows, labels, strict=True)):
        y = _SHEET_TITLE_HEIGHT + curve_height + i * row_h
        sheet.paste(row.convert("RGB"), (_SHEET_LABEL_WIDTH, y))
        for j, line in enumerate(label.lines()):
            fill = _TEXT_RGB if label.detected or j != 3 else (170, 40, 40)
            draw.text((8, y + 10 + 18 * j), line, fill=fill, font=text_font)
    return sheet


def sequence_manifests(objects: pd.DataFrame, url_root: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Zooniverse manifests whose subjects are multi-frame sequences.

    Parameters
    ----------
    objects : `pandas.DataFrame`
        One row per written object with ``diaObjectId``, ``frames`` (the
        relative paths of its epoch PNGs, in time order, joined by ``;``) and
        ``ra``/``dec``.
    url_root : `str` or `None`
        Where the output directory is served; without it the subject-set
        form is not made.

    Returns
    -------
    subject_set, panoptes : `pandas.DataFrame`
        The subject-set import form (``location:1 … location:N`` URLs, hidden
        ``#`` metadata) — empty without ``url_root`` — and the panoptes-cli
        form (one file column per frame, paths relative to the output).

    """
    # Frames not given (an edited table's empty or missing cell) are none.
    paths = [f.split(";") if isinstance(f, str) and f else [] for f in objects.get("frames", [])]
    n = max((len(p) for p in paths), default=0)
    meta = pd.DataFrame(
        {
            "#diaObjectId": id_array(objects["diaObjectId"]),
            "#ra": objects["ra"].to_numpy(),
            "#dec": objects["dec"].to_numpy(),
            "#n_epochs": [len(p) for p in paths],
        }
    )
    panoptes = pd.DataFrame({f"file:{i + 1}": [p[i] if i < len(p) else "" for p in paths] for i in range(n)})
    panoptes = pd.concat([panoptes, meta], axis=1)
    if not url_root:
        return pd.DataFrame(), panoptes
    locations = {
        f"location:{i + 1}": [join_url(url_root, p[i]) if i < len(p) else "" for p in paths] for i in range(n)
    }
    subject_set = pd.concat([pd.DataFrame(locations), meta], axis=1)
    return subject_set, panoptes
