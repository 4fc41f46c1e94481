"""Catalog annotation of one DiaSource: values, flags and their display text.

`SourceAnnotation.from_row` reads one row of APDB ``DiaSource`` columns
(fluxes in nJy) into an immutable record.  Nothing here draws: the record
offers the formatted text of each field (`SourceAnnotation.fields`), the set
badges (`SourceAnnotation.badges`) and plain text lines
(`SourceAnnotation.lines`), and `lsst.analysis.ap.display.renderer` places them at
fixed positions on the cutout.

Missing columns and NULL / NaN / ``pandas.NA`` values never raise: values
are shown as `MISSING_TEXT` and flags count as not set.  The columns that
were absent from the row are listed in `SourceAnnotation.missing_columns`
(and `lsst.analysis.ap.sources.missing_optional_columns` checks a table's
columns once), so the caller can log them once rather than per source.

Annotation schemes
------------------

A row's *scheme* says which survey's fields its cutout shows
(`ANNOTATION_SCHEMES`): ``rubin`` (APDB DiaSource values, fluxes in nJy,
flag badges) for every row, and ``ztf`` for rows of ZTF alert packets
(``instrument`` ``ZTF``), whose annotation shows what ZTF gives rather
than APDB values it lacks: ``objectId`` and ``candid``, ``magpsf ±
sigmapsf`` with the band, the ``isdiffpos`` text and the real-bogus
scores ``drb`` and ``rb`` (`ZTF_COLUMNS`).  `SourceAnnotation.fields`
offers every field of the row's scheme; the layout of each scheme
(`lsst.analysis.ap.display.layout`) decides which are drawn where.

Badges (`BADGES`, fixed order; the colour table of the cutouts)
--------------------------------------------------------------

========  ======================================================  ==========  ====================
badge     set when any of these columns is true                   colour      why that colour
========  ======================================================  ==========  ====================
INTERP    pixelFlags_interpolated, pixelFlags_interpolatedCenter  green       afw INTRP plane
SAT       pixelFlags_saturated, pixelFlags_saturatedCenter        green       afw SAT plane
CR        pixelFlags_cr, pixelFlags_crCenter                      magenta     afw CR plane
SUS       pixelFlags_suspect, pixelFlags_suspectCenter            goldenrod   afw SUSPECT (yellow)
EDGE      pixelFlags_edge                                         goldenrod   afw EDGE (yellow)
BAD       pixelFlags_bad                                          red         afw BAD plane
DIPOLE    isDipole                                                royal blue  not a mask plane
CENTROID  centroid_flag                                           sienna      not a mask plane
SHAPE     shape_flag                                              indigo      not a mask plane
========  ======================================================  ==========  ====================

The SHAPE badge is also set by the sub-flags ``shape_flag_no_pixels``,
``shape_flag_not_contained`` and ``shape_flag_parent_source`` when the
table has them (`BadgeSpec.also`).

afw's yellow is shown as goldenrod so it reads on the white canvas.  (afw's
NO_DATA plane is orange; the renderer draws no-data *pixels* in a separate
blue-grey, and there is no NO_DATA badge.)  Flux labels turn `FLAGGED_RGB`
red when their measurement failed (`FLUX_FLAG_COLUMNS`): PSF <-
``psfFlux_flag`` or its sub-flags ``psfFlux_flag_noGoodPixels`` and
``psfFlux_flag_edge``; ap <- ``apFlux_flag`` or
``apFlux_flag_apertureTruncated``; total <- ``forced_PsfFlux_flag`` or
``forced_PsfFlux_flag_noGoodPixels`` and ``forced_PsfFlux_flag_edge``.
Sub-flags are read when the table has them and are not reported missing
when it does not (older APDB schemas, alert packets).
"""

from __future__ import annotations

__all__ = (
    "AB_ZEROPOINT_NJY",
    "ANNOTATION_SCHEMES",
    "BADGES",
    "BADGE_COLORS",
    "FLAGGED_RGB",
    "FLAG_SUBFLAG_COLUMNS",
    "FLUX_FLAG_COLUMNS",
    "MISSING_TEXT",
    "REQUESTED_COLUMNS",
    "RUBIN_SCHEME",
    "ZTF_COLUMNS",
    "ZTF_SCHEME",
    "AnnotationField",
    "BadgeSpec",
    "SourceAnnotation",
    "ab_magnitude",
    "annotation_scheme",
    "field_labels",
)

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

MISSING_TEXT = "—"
"""Text shown for a missing, NULL or NaN value."""

FLAGGED_RGB: tuple[int, int, int] = (215, 0, 0)
"""Colour of a flux label whose measurement flag is set."""

AB_ZEROPOINT_NJY = 31.4
"""AB magnitude of a 1 nJy source: m = 31.4 - 2.5 log10(flux / nJy).

The exact value is 2.5 log10(3631e9) = 31.40007; the rounded LSST
convention puts 3631 Jy at -0.00007 mag.
"""


RUBIN_SCHEME = "rubin"
"""Scheme of APDB DiaSource rows (the default)."""

ZTF_SCHEME = "ztf"
"""Scheme of rows read from ZTF alert packets."""

ANNOTATION_SCHEMES: tuple[str, ...] = (RUBIN_SCHEME, ZTF_SCHEME)
"""Every annotation scheme, the default first."""

ZTF_COLUMNS: tuple[str, ...] = ("objectId", "magpsf", "sigmapsf", "isdiffpos", "drb", "rb")
"""ZTF candidate fields the ``ztf`` scheme reads (with ``diaSourceId`` =
``candid``, ``band`` from ``fid``, ``ra`` and ``dec``)."""


@dataclass(frozen=True)
class BadgeSpec:
    """One flag badge: its label, the columns that set it, its colour.

    Parameters
    ----------
    name : `str`
        Short label drawn on the cutout.
    columns : `tuple` [`str`, ...]
        APDB DiaSource boolean columns; the badge is set if any is true.
    rgb : `tuple` [`int`, `int`, `int`]
        Badge colour (sRGB, 0-255).
    description : `str`
        What the badge means.
    also : `tuple` [`str`, ...], optional
        Sub-flag columns that set the badge too when the table has them;
        unlike ``columns``, a table without them is not reported as
        lacking them.

    """

    name: str
    columns: tuple[str, ...]
    rgb: tuple[int, int, int]
    description: str
    also: tuple[str, ...] = ()

    @property
    def all_columns(self) -> tuple[str, ...]:
        """``columns`` then ``also``: every column that sets the badge."""
        return (*self.columns, *self.also)


BADGES: tuple[BadgeSpec, ...] = (
    BadgeSpec(
        "INTERP",
        ("pixelFlags_interpolated", "pixelFlags_interpolatedCenter"),
        (0, 128, 0),
        "interpolated pixel in the footprint or the 3x3 centre",
    ),
    BadgeSpec(
        "SAT",
        ("pixelFlags_saturated", "pixelFlags_saturatedCenter"),
        (0, 128, 0),
        "saturated pixel in the footprint or the 3x3 centre",
    ),
    BadgeSpec(
        "CR",
        ("pixelFlags_cr", "pixelFlags_crCenter"),
        (255, 0, 255),
        "cosmic ray in the footprint or the 3x3 centre",
    ),
    BadgeSpec(
        "SUS",
        ("pixelFlags_suspect", "pixelFlags_suspectCenter"),
        (218, 165, 32),
        "suspect pixel in the footprint or the 3x3 centre",
    ),
    BadgeSpec("EDGE", ("pixelFlags_edge",), (218, 165, 32), "footprint reaches the usable image edge"),
    BadgeSpec("BAD", ("pixelFlags_bad",), (255, 0, 0), "bad pixel in the footprint"),
    BadgeSpec("DIPOLE", ("isDipole",), (65, 105, 225), "source is well fit by a dipole"),
    BadgeSpec("CENTROID", ("centroid_flag",), (160, 82, 45), "centroid algorithm failed"),
    BadgeSpec(
        "SHAPE",
        ("shape_flag",),
        (75, 0, 130),
        "shape measurement failed",
        also=("shape_flag_no_pixels", "shape_flag_not_contained", "shape_flag_parent_source"),
    ),
)
"""The flag badges, in display order (the colour table of the module docstring)."""

BADGE_COLORS: Mapping[str, tuple[int, int, int]] = MappingProxyType({b.name: b.rgb for b in BADGES})
"""Badge name -> colour (sRGB 0-255); see the table in the module docstring."""

FLUX_FLAG_COLUMNS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "psf": ("psfFlux_flag", "psfFlux_flag_noGoodPixels", "psfFlux_flag_edge"),
        "ap": ("apFlux_flag", "apFlux_flag_apertureTruncated"),
        "total": ("forced_PsfFlux_flag", "forced_PsfFlux_flag_noGoodPixels", "forced_PsfFlux_flag_edge"),
    }
)
"""Flux label -> the columns that mark its measurement failed: the flag,
then its sub-flags (read when present, as the badges' `BadgeSpec.also`)."""

FLAG_SUBFLAG_COLUMNS: tuple[str, ...] = tuple(
    [column for columns in FLUX_FLAG_COLUMNS.values() for column in columns[1:]]
    + [column for badge in BADGES for column in badge.also]
)
"""Sub-flag columns the annotation reads when a table has them."""

_VALUE_COLUMNS = (
    "diaSourceId",
    "detector",
    "visit",
    "band",
    "ra",
    "dec",
    "snr",
    "psfChi2",
    "psfNdata",
    "psfFlux",
    "psfFluxErr",
    "apFlux",
    "apFluxErr",
    "scienceFlux",
    "scienceFluxErr",
    "reliability",
)

REQUESTED_COLUMNS: tuple[str, ...] = (
    _VALUE_COLUMNS
    + tuple(columns[0] for columns in FLUX_FLAG_COLUMNS.values())
    + tuple(column for badge in BADGES for column in badge.columns)
)
"""Every DiaSource column the annotation reads (``instrument`` aside)."""


def _is_missing(value: Any) -> bool:
    """Whether a cell is absent: None, NaN, NaT, pandas.NA or masked."""
    if value is None or value is np.ma.masked:
        return True
    try:
        return bool(value != value)
    except (TypeError, ValueError):
        # pandas.NA refuses bool(); arrays are not scalar cells.
        return True


_ABSENT = object()


def _lookup(row: Mapping[str, Any], name: str) -> Any:
    """Value of column ``name``, or ``_ABSENT`` if the row has no such column."""
    try:
        return row[name]
    except (KeyError, IndexError, ValueError, TypeError):
        return _ABSENT


def _as_float(value: Any) -> float | None:
    if _is_missing(value):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(result) else result


def _as_int(value: Any) -> int | None:
    number = _as_float(value)
    if number is None or not math.isfinite(number):
        return None
    return int(value) if isinstance(value, int | np.integer) else int(number)


def _as_str(value: Any) -> str | None:
    if _is_missing(value):
        return None
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    text = str(value).strip()
    return text or None


def _as_flag(value: Any) -> bool:
    if _is_missing(value):
        return False
    try:
        return bool(value)
    except (TypeError, ValueError):
        return False


def ab_magnitude(flux_njy: float | None) -> float:
    """AB magnitude of a flux in nJy: ``31.4 - 2.5 log10(flux)``.

    Parameters
    ----------
    flux_njy : `float` or `None`
        Flux in nanojansky.

    Returns
    -------
    magnitude : `float`
        AB magnitude; NaN if the flux is missing, NaN, or not positive.

    """
    if flux_njy is None or not math.isfinite(flux_njy) or flux_njy <= 0:
        return math.nan
    return AB_ZEROPOINT_NJY - 2.5 * math.log10(flux_njy)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    result = numerator / denominator
    return result if math.isfinite(result) else None


def _fmt(value: float | None, spec: str) -> str:
    if value is None or not math.isfinite(value):
        return MISSING_TEXT
    text = format(value, spec)
    if text.startswith("-") and float(text) == 0:
        text = text[1:]  # no "-0.0"
    return text


def _fmt_flux(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return MISSING_TEXT
    return f"{value:.1f}" if abs(value) < 1e6 else f"{value:.4g}"


def _fmt_flux_pair(flux: float | None, error: float | None) -> str:
    if flux is None and error is None:
        return MISSING_TEXT
    return f"{_fmt_flux(flux)} ± {_fmt_flux(error)} nJy"


def _fmt_id(value: Any) -> str:
    return MISSING_TEXT if value is None else str(value)


def _fmt_mag_pair(mag: float | None, error: float | None) -> str:
    if mag is None:
        return MISSING_TEXT
    return f"{_fmt(mag, '.2f')} ± {_fmt(error, '.2f')} mag"


def annotation_scheme(instrument: str | None) -> str:
    """The annotation scheme of a row from its instrument.

    Parameters
    ----------
    instrument : `str` or `None`
        Instrument name of the row.

    Returns
    -------
    scheme : `str`
        `ZTF_SCHEME` for ``ZTF`` (any case), else `RUBIN_SCHEME`.

    """
    return ZTF_SCHEME if (instrument or "").strip().upper() == "ZTF" else RUBIN_SCHEME


@dataclass(frozen=True)
class AnnotationField:
    """Display text of one annotation field.

    Parameters
    ----------
    key : `str`
        Stable identifier the renderer uses to place the field.
    label : `str`
        Field label (drawn in grey, or red when ``flagged``).
    text : `str`
        Formatted value (`MISSING_TEXT` when unknown).
    flagged : `bool`
        Whether the measurement behind the field reported a failure.

    """

    key: str
    label: str
    text: str
    flagged: bool = False


@dataclass(frozen=True)
class SourceAnnotation:
    """Catalog values of one DiaSource shown on its cutout.

    Values are `None` when the column is missing or NULL/NaN; fluxes are in
    nJy, coordinates in degrees.  Build with `from_row`.
    """

    dia_source_id: int | None = None
    instrument: str | None = None
    detector: int | None = None
    visit: int | None = None
    band: str | None = None
    ra: float | None = None
    dec: float | None = None
    snr: float | None = None
    psf_chi2: float | None = None
    psf_ndata: float | None = None
    psf_flux: float | None = None
    psf_flux_err: float | None = None
    ap_flux: float | None = None
    ap_flux_err: float | None = None
    science_flux: float | None = None
    science_flux_err: float | None = None
    reliability: float | None = None
    psf_flux_flag: bool = False
    """``psfFlux_flag`` or a sub-flag: the PSF fit on the difference image failed."""
    ap_flux_flag: bool = False
    """``apFlux_flag`` or a sub-flag: the aperture flux on the difference image failed."""
    forced_flux_flag: bool = False
    """``forced_PsfFlux_flag`` or a sub-flag: forced PSF photometry on the science image failed."""
    object_id: str | None = None
    """ZTF ``objectId`` (``ztf`` scheme only)."""
    magpsf: float | None = None
    """ZTF PSF magnitude of the difference (``ztf`` scheme only)."""
    sigmapsf: float | None = None
    """Its 1-sigma error (``ztf`` scheme only)."""
    isdiffpos: str | None = None
    """ZTF ``isdiffpos`` text, ``t`` (positive difference) or ``f`` (``ztf`` scheme only)."""
    drb: float | None = None
    """ZTF deep-learning real-bogus score (``ztf`` scheme only)."""
    rb: float | None = None
    """ZTF random-forest real-bogus score (``ztf`` scheme only)."""
    scheme: str = RUBIN_SCHEME
    """Annotation scheme (`ANNOTATION_SCHEMES`), from the instrument."""
    badges: frozenset[str] = frozenset()
    """Names of the set `BADGES`."""
    missing_columns: tuple[str, ...] = ()
    """Requested columns absent from the row (not those present but NULL),
    in `REQUESTED_COLUMNS` order (``instrument`` first)."""

    @classmethod
    def from_row(cls, row: Mapping[str, Any], *, instrument: str | None = None) -> SourceAnnotation:
        """Read the annotation of one DiaSource.

        Parameters
        ----------
        row : `~collections.abc.Mapping` [`str`, `~typing.Any`]
            One source with APDB DiaSource column names: a `dict`, a
            `pandas.Series`, an `astropy.table.Row`, ...
        instrument : `str`, optional
            Instrument name; if not given, the row's ``instrument`` column
            is used.

        Returns
        -------
        annotation : `SourceAnnotation`
            The values; never raises for missing columns or NULL values.

        """
        missing: list[str] = []

        def get(name: str) -> Any:
            value = _lookup(row, name)
            if value is _ABSENT:
                missing.append(name)
                return None
            return value

        if instrument is None:
            instrument = _as_str(get("instrument"))

        def flagged(columns: tuple[str, ...], also: tuple[str, ...]) -> bool:
            # Every column is looked up, so that each missing one is listed.
            if any([_as_flag(get(column)) for column in columns]):
                return True
            return any(_as_flag(value) for value in (_lookup(row, c) for c in also) if value is not _ABSENT)

        badges = frozenset(badge.name for badge in BADGES if flagged(badge.columns, badge.also))
        flux_flags = {key: flagged(columns[:1], columns[1:]) for key, columns in FLUX_FLAG_COLUMNS.items()}
        scheme = annotation_scheme(instrument)
        survey: dict[str, Any] = {}
        if scheme == ZTF_SCHEME:
            values = {name: _lookup(row, name) for name in ZTF_COLUMNS}
            values = {name: None if value is _ABSENT else value for name, value in values.items()}
            survey = dict(
                object_id=_as_str(values["objectId"]),
                magpsf=_as_float(values["magpsf"]),
                sigmapsf=_as_float(values["sigmapsf"]),
                isdiffpos=_as_str(values["isdiffpos"]),
                drb=_as_float(values["drb"]),
                rb=_as_float(values["rb"]),
            )
        return cls(
            dia_source_id=_as_int(get("diaSourceId")),
            instrument=instrument,
            detector=_as_int(get("detector")),
            visit=_as_int(get("visit")),
            band=_as_str(get("band")),
            ra=_as_float(get("ra")),
            dec=_as_float(get("dec")),
            snr=_as_float(get("snr")),
            psf_chi2=_as_float(get("psfChi2")),
            psf_ndata=_as_float(get("psfNdata")),
            psf_flux=_as_float(get("psfFlux")),
            psf_flux_err=_as_float(get("psfFluxErr")),
            ap_flux=_as_float(get("apFlux")),
            ap_flux_err=_as_float(get("apFluxErr")),
            science_flux=_as_float(get("scienceFlux")),
            science_flux_err=_as_float(get("scienceFluxErr")),
            reliability=_as_float(get("reliability")),
            psf_flux_flag=flux_flags["psf"],
            ap_flux_flag=flux_flags["ap"],
            forced_flux_flag=flux_flags["total"],
            scheme=scheme,
            badges=badges,
            **survey,
            missing_columns=tuple(c for c in ("instrument", *REQUESTED_COLUMNS) if c in missing),
        )

    @property
    def reduced_psf_chi2(self) -> float | None:
        """``psfChi2 / psfNdata``, or `None` if unknown."""
        return _ratio(self.psf_chi2, self.psf_ndata)

    @property
    def psf_snr(self) -> float | None:
        """PSF flux signal-to-noise ratio, or `None`."""
        return _ratio(self.psf_flux, self.psf_flux_err)

    @property
    def ap_snr(self) -> float | None:
        """Aperture flux signal-to-noise ratio, or `None`."""
        return _ratio(self.ap_flux, self.ap_flux_err)

    @property
    def science_snr(self) -> float | None:
        """Science (forced, "total") flux signal-to-noise ratio, or `None`."""
        return _ratio(self.science_flux, self.science_flux_err)

    @property
    def science_mag(self) -> float:
        """AB magnitude of the science flux (NaN if flux <= 0 or unknown)."""
        return ab_magnitude(self.science_flux)

    def has_badge(self, name: str) -> bool:
        """Whether a badge is set.

        Parameters
        ----------
        name : `str`
            Badge name, one of `BADGES`.

        Returns
        -------
        set : `bool`
            Whether the badge is set.

        """
        return name in self.badges

    def fields(self) -> Mapping[str, AnnotationField]:
        """Display text of every field, keyed by a stable field key.

        Returns
        -------
        fields : `~collections.abc.Mapping` [`str`, `AnnotationField`]
            Keys: ``diaSourceId``, ``instrument``, ``detector``, ``visit``,
            ``band``, ``ra``, ``dec``, ``snr``, ``chi2``, ``psf``,
            ``psf_snr``, ``ap``, ``ap_snr``, ``total``, ``total_snr``,
            ``mag``, ``reliability``; in the ``ztf`` scheme also
            ``objectId``, ``candid``, ``magpsf`` (``magpsf ± sigmapsf
            mag``), ``isdiffpos``, ``drb`` and ``rb``.

        """
        items = (
            AnnotationField("diaSourceId", "diaSourceId", _fmt_id(self.dia_source_id)),
            AnnotationField("instrument", "instrument", self.instrument or MISSING_TEXT),
            AnnotationField("detector", "detector", _fmt_id(self.detector)),
            AnnotationField("visit", "visit", _fmt_id(self.visit)),
            AnnotationField("band", "band", self.band or MISSING_TEXT),
            AnnotationField("ra", "RA", _fmt(self.ra, ".6f")),
            AnnotationField("dec", "Dec", _fmt(self.dec, "+.6f")),
            AnnotationField("snr", "det. S/N", _fmt(self.snr, ".1f")),
            AnnotationField("chi2", "PSF χ²/N", _fmt(self.reduced_psf_chi2, ".2f")),
            AnnotationField(
                "psf", "PSF", _fmt_flux_pair(self.psf_flux, self.psf_flux_err), self.psf_flux_flag
            ),
            AnnotationField("psf_snr", "S/N", _fmt(self.psf_snr, ".1f")),
            AnnotationField("ap", "ap", _fmt_flux_pair(self.ap_flux, self.ap_flux_err), self.ap_flux_flag),
            AnnotationField("ap_snr", "S/N", _fmt(self.ap_snr, ".1f")),
            AnnotationField(
                "total",
                "total",
                _fmt_flux_pair(self.science_flux, self.science_flux_err),
                self.forced_flux_flag,
            ),
            AnnotationField("total_snr", "S/N", _fmt(self.science_snr, ".1f")),
            AnnotationField("mag", "AB mag", _fmt(self.science_mag, ".2f")),
            AnnotationField("reliability", "reliability", _fmt(self.reliability, ".3f")),
        )
        if self.scheme == ZTF_SCHEME:
            items += (
                AnnotationField("objectId", "objectId", self.object_id or MISSING_TEXT),
                AnnotationField("candid", "candid", _fmt_id(self.dia_source_id)),
                AnnotationField("magpsf", "magpsf", _fmt_mag_pair(self.magpsf, self.sigmapsf)),
                AnnotationField("isdiffpos", "isdiffpos", self.isdiffpos or MISSING_TEXT),
                AnnotationField("drb", "drb", _fmt(self.drb, ".3f")),
                AnnotationField("rb", "rb", _fmt(self.rb, ".3f")),
            )
        return MappingProxyType({item.key: item for item in items})

    def lines(self) -> tuple[str, ...]:
        """Plain-text lines of the annotation (for logs, alt text, tests).

        Returns
        -------
        lines : `tuple` [`str`, ...]
            Identity; position and detection; PSF and ap flux; total flux
            and magnitude; set badges (in `BADGES` order) and reliability.
            In the ``ztf`` scheme: identity; position; band, magnitude and
            ``isdiffpos``; the real-bogus scores.

        """
        f = self.fields()

        def join(*keys: str) -> str:
            return "  ".join(f"{f[k].label} {f[k].text}" for k in keys)

        if self.scheme == ZTF_SCHEME:
            return (
                join("objectId", "candid"),
                join("ra", "dec"),
                join("band", "magpsf", "isdiffpos"),
                join("drb", "rb"),
            )

        badges = " ".join(b.name for b in BADGES if b.name in self.badges) or "no flags"
        return (
            join("diaSourceId", "instrument", "detector", "visit", "band"),
            join("ra", "dec", "snr", "chi2"),
            join("psf", "psf_snr") + "    " + join("ap", "ap_snr"),
            join("total", "total_snr", "mag"),
            f"{badges}  {join('reliability')}",
        )


def field_labels(scheme: str = RUBIN_SCHEME) -> Mapping[str, str]:
    """Label of every annotation field of a scheme, by field key.

    Parameters
    ----------
    scheme : `str`, optional
        One of `ANNOTATION_SCHEMES`.

    Returns
    -------
    labels : `~collections.abc.Mapping` [`str`, `str`]
        The labels `SourceAnnotation.fields` gives in that scheme.

    Raises
    ------
    ValueError
        For an unknown scheme.

    """
    if scheme not in ANNOTATION_SCHEMES:
        raise ValueError(f"Unknown annotation scheme {scheme!r}; known: {', '.join(ANNOTATION_SCHEMES)}.")
    return MappingProxyType({k: f.label for k, f in SourceAnnotation(scheme=scheme).fields().items()})
