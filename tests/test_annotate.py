"""Tests of the pure DiaSource annotation (lsst.analysis.ap.display.annotation)."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from lsst.analysis.ap.display.annotation import (
    BADGE_COLORS,
    BADGES,
    FLAG_SUBFLAG_COLUMNS,
    FLUX_FLAG_COLUMNS,
    MISSING_TEXT,
    REQUESTED_COLUMNS,
    RUBIN_SCHEME,
    ZTF_SCHEME,
    SourceAnnotation,
    ab_magnitude,
    field_labels,
)
from lsst.analysis.ap.sources import missing_optional_columns
from source_rows import full_row


def test_ab_magnitude_formula():
    # 3631 Jy = 3.631e12 nJy is AB magnitude 0 (31.4 is rounded: exact 31.40007).
    assert ab_magnitude(3.631e12) == pytest.approx(0.0, abs=1e-4)
    assert ab_magnitude(1000.0) == pytest.approx(31.4 - 2.5 * 3)
    assert ab_magnitude(1000.0) == pytest.approx(23.9)
    assert ab_magnitude(1.0) == pytest.approx(31.4)
    for bad in (0.0, -5.0, math.nan, None, math.inf):
        assert math.isnan(ab_magnitude(bad))


def test_full_row_values_and_text():
    a = SourceAnnotation.from_row(full_row())
    assert a.missing_columns == ()
    assert a.dia_source_id == 3068394138746667042
    assert a.reduced_psf_chi2 == pytest.approx(1.25)
    assert a.science_mag == pytest.approx(23.9)
    f = a.fields()
    assert f["diaSourceId"].text == "3068394138746667042"
    assert f["instrument"].text == "LSSTComCam"
    assert f["detector"].text == "4"
    assert f["visit"].text == "2024120600049"
    assert f["band"].text == "r"
    assert f["ra"].text == "53.123457"
    assert f["dec"].text == "-28.123457"
    assert f["snr"].text == "12.3"
    assert f["chi2"].text == "1.25"
    assert f["psf"].text == "12345.6 ± 123.4 nJy"
    assert f["psf_snr"].text == "100.0"
    assert f["ap"].text == "11000.0 ± 150.0 nJy"
    assert f["total"].text == "1000.0 ± 10.0 nJy"
    assert f["total_snr"].text == "100.0"
    assert f["mag"].text == "23.90"
    assert f["reliability"].text == "0.873"
    assert a.badges == frozenset()
    assert not any(f[k].flagged for k in ("psf", "ap", "total"))
    assert "no flags" in a.lines()[-1]


@pytest.mark.parametrize("flux", [0.0, -12.0, math.nan, None])
def test_magnitude_shown_as_missing_for_non_positive_flux(flux):
    a = SourceAnnotation.from_row(full_row(scienceFlux=flux))
    assert a.fields()["mag"].text == MISSING_TEXT


def test_empty_row_never_raises_and_reports_missing_columns():
    a = SourceAnnotation.from_row({})
    assert set(a.missing_columns) == {"instrument", *REQUESTED_COLUMNS}
    assert all(field.text == MISSING_TEXT for field in a.fields().values())
    assert a.badges == frozenset()
    assert not (a.psf_flux_flag or a.ap_flux_flag or a.forced_flux_flag)
    assert all(isinstance(line, str) for line in a.lines())


def test_some_missing_columns_listed_once_in_order():
    row = full_row()
    for name in ("psfFluxErr", "pixelFlags_crCenter", "reliability"):
        del row[name]
    a = SourceAnnotation.from_row(row)
    assert a.missing_columns == ("psfFluxErr", "reliability", "pixelFlags_crCenter")
    f = a.fields()
    assert f["psf"].text == f"12345.6 ± {MISSING_TEXT} nJy"
    assert f["psf_snr"].text == MISSING_TEXT
    assert f["reliability"].text == MISSING_TEXT


def test_instrument_keyword_overrides_and_is_not_missing():
    row = full_row()
    del row["instrument"]
    a = SourceAnnotation.from_row(row, instrument="LSSTCam")
    assert a.instrument == "LSSTCam"
    assert "instrument" not in a.missing_columns
    assert SourceAnnotation.from_row(row).missing_columns == ("instrument",)


@pytest.mark.parametrize("null", [None, math.nan, pd.NA, np.ma.masked, pd.NaT])
def test_null_values_give_dash_and_unset_flags(null):
    row = {k: null for k in full_row()}
    a = SourceAnnotation.from_row(row)
    assert a.missing_columns == ()
    assert all(field.text == MISSING_TEXT for field in a.fields().values())
    assert a.badges == frozenset()
    assert not (a.psf_flux_flag or a.ap_flux_flag or a.forced_flux_flag)


def test_pandas_series_with_nullable_dtypes():
    df = pd.DataFrame([full_row(), full_row(psfFlux=None, pixelFlags_cr=None, detector=None)])
    df = df.convert_dtypes()
    assert str(df["pixelFlags_cr"].dtype) == "boolean"
    df.loc[0, "pixelFlags_cr"] = True
    first, second = (SourceAnnotation.from_row(df.iloc[i]) for i in range(2))
    assert first.badges == {"CR"}
    assert first.detector == 4
    assert second.badges == frozenset()
    assert second.fields()["psf"].text == f"{MISSING_TEXT} ± 123.4 nJy"
    assert second.fields()["detector"].text == MISSING_TEXT
    # diaSourceId keeps full int64 precision through pandas.
    assert first.dia_source_id == 3068394138746667042


def test_astropy_row_is_accepted():
    from astropy.table import Table

    table = Table(rows=[full_row(pixelFlags_bad=True)])
    a = SourceAnnotation.from_row(table[0])
    assert a.badges == {"BAD"}
    assert a.missing_columns == ()


@pytest.mark.parametrize(
    ("badge", "column"), [(b.name, c) for b in BADGES for c in b.all_columns], ids=lambda v: str(v)
)
def test_each_badge_column_sets_exactly_its_badge(badge, column):
    a = SourceAnnotation.from_row(full_row(**{column: True}))
    assert a.badges == {badge}
    assert a.has_badge(badge)
    assert badge in a.lines()[-1]


@pytest.mark.parametrize(
    ("column", "key"), [(c, key) for key, columns in FLUX_FLAG_COLUMNS.items() for c in columns], ids=str
)
def test_flux_flags_mark_only_their_field(column, key):
    f = SourceAnnotation.from_row(full_row(**{column: True})).fields()
    assert {k for k in ("psf", "ap", "total") if f[k].flagged} == {key}


def test_sub_flags_are_read_when_present_and_never_reported_missing():
    """The original's sub-flags (``shape_flag_not_contained``,
    ``psfFlux_flag_edge``, ...) mark the annotation as their flag does; a
    table without them (older schemas, alert packets) is not told it lacks
    them.
    """
    row = full_row()
    assert not set(FLAG_SUBFLAG_COLUMNS) & set(row)
    assert SourceAnnotation.from_row(row).missing_columns == ()
    assert not set(FLAG_SUBFLAG_COLUMNS) & set(missing_optional_columns(row))
    a = SourceAnnotation.from_row(
        {**row, "shape_flag_parent_source": 1, "apFlux_flag_apertureTruncated": True}
    )
    assert a.badges == {"SHAPE"} and a.ap_flux_flag and not a.psf_flux_flag
    assert a.missing_columns == ()
    cleared = {column: False for column in FLAG_SUBFLAG_COLUMNS}
    assert SourceAnnotation.from_row({**row, **cleared}) == SourceAnnotation.from_row(row)


def test_badge_colour_table():
    assert [b.name for b in BADGES] == [
        "INTERP",
        "SAT",
        "CR",
        "SUS",
        "EDGE",
        "BAD",
        "DIPOLE",
        "CENTROID",
        "SHAPE",
    ]
    assert BADGE_COLORS["INTERP"] == BADGE_COLORS["SAT"] == (0, 128, 0)
    assert BADGE_COLORS["CR"] == (255, 0, 255)
    assert BADGE_COLORS["SUS"] == BADGE_COLORS["EDGE"] == (218, 165, 32)  # goldenrod
    assert BADGE_COLORS["BAD"] == (255, 0, 0)
    extra = [BADGE_COLORS[n] for n in ("DIPOLE", "CENTROID", "SHAPE")]
    assert len(set(extra)) == 3
    assert not set(extra) & {BADGE_COLORS[n] for n in ("INTERP", "CR", "SUS", "BAD")}


def test_annotation_is_frozen():
    a = SourceAnnotation.from_row(full_row())
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.ra = 0.0  # type: ignore[misc]


def test_missing_optional_columns_of_a_table():
    row = {**full_row(), "bboxSize": 12.0}
    columns = [c for c in row if c not in ("snr", "isDipole")]
    assert missing_optional_columns(columns) == ["snr", "isDipole"]
    assert missing_optional_columns(row) == []
    # The columns without which no cutout is made are not optional.
    assert missing_optional_columns(["snr"])[:2] == ["band", "psfChi2"]


def test_huge_flux_is_formatted_compactly():
    a = SourceAnnotation.from_row(full_row(psfFlux=-12345678.0, psfFluxErr=2.5e6))
    assert a.fields()["psf"].text == "-1.235e+07 ± 2.5e+06 nJy"


def test_no_negative_zero():
    a = SourceAnnotation.from_row(full_row(scienceFlux=-5.0, scienceFluxErr=300.0))
    assert a.fields()["total_snr"].text == "0.0"


def ztf_row(**overrides):
    """A row as the ZTF packet reader makes it (values of a real packet)."""
    row = {
        "diaSourceId": 472263571115115000,
        "instrument": "ZTF",
        "band": "r",
        "ra": 179.6402013,
        "dec": 52.0297203,
        "psfFlux": 164156.2,
        "psfFluxErr": 14218.3,
        "reliability": 0.988,
        "objectId": "ZTF17aaajnnn",
        "magpsf": 18.36185646057129,
        "sigmapsf": 0.09404050558805466,
        "isdiffpos": "t",
        "rb": 0.8433333039283752,
        "drb": 0.9876449704170227,
    }
    row.update(overrides)
    return row


def test_ztf_rows_get_the_ztf_fields():
    a = SourceAnnotation.from_row(ztf_row())
    assert a.scheme == ZTF_SCHEME
    f = a.fields()
    assert f["objectId"].text == "ZTF17aaajnnn"
    assert f["candid"].text == "472263571115115000"
    assert f["magpsf"].text == "18.36 ± 0.09 mag"
    assert f["isdiffpos"].text == "t"
    assert (f["drb"].text, f["rb"].text) == ("0.988", "0.843")
    assert a.lines() == (
        "objectId ZTF17aaajnnn  candid 472263571115115000",
        "RA 179.640201  Dec +52.029720",
        "band r  magpsf 18.36 ± 0.09 mag  isdiffpos t",
        "drb 0.988  rb 0.843",
    )
    # The ZTF fields are not APDB columns: never reported missing.
    assert not set(a.missing_columns) & {"objectId", "magpsf", "drb"}
    assert {k: f[k].label for k in f} == dict(field_labels(ZTF_SCHEME))


def test_ztf_fields_missing_show_a_dash_and_rubin_rows_have_none():
    a = SourceAnnotation.from_row(ztf_row(drb=None, sigmapsf=float("nan"), isdiffpos=None, objectId=None))
    f = a.fields()
    assert f["drb"].text == f["isdiffpos"].text == f["objectId"].text == MISSING_TEXT
    assert f["magpsf"].text == f"18.36 ± {MISSING_TEXT} mag"
    assert SourceAnnotation.from_row(ztf_row(instrument="ztf")).scheme == ZTF_SCHEME
    rubin = SourceAnnotation.from_row(full_row())
    assert rubin.scheme == RUBIN_SCHEME
    assert not {"objectId", "candid", "magpsf", "isdiffpos", "drb", "rb"} & set(rubin.fields())
    # A Rubin row carrying ZTF-named columns stays a Rubin annotation.
    assert SourceAnnotation.from_row(full_row(magpsf=18.0, objectId="x")).scheme == RUBIN_SCHEME
    with pytest.raises(ValueError, match="Unknown annotation scheme 'hsc'"):
        field_labels("hsc")
