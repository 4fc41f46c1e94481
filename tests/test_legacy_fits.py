"""Tests for lsst.analysis.ap.legacy_fits against real afw-written files and
files written here with astropy in layouts the real files do not show.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import astropy.io.fits as fits
import astropy.units as u
import astropy.wcs
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from lsst.images import XY, Box

from lsst.analysis.ap.images.legacy_fits import read_legacy_header_info, read_legacy_masked_image

DATA_DIR = Path(__file__).parent / "data" / "afw"
HSC = DATA_DIR / "HSC-0908120-056-small.fits"
EXPOSURE_V2 = DATA_DIR / "exposure-version-2.fits"
SCIENCE_MI = DATA_DIR / "ip_diffim_scienceMI.fits"
TEMPLATE_MI = DATA_DIR / "ip_diffim_templateMI.fits"

# file, xy0 (x, y), shape (ny, nx), has a celestial WCS; values from the data README.
FILES = [
    (HSC, (100, 100), (200, 200), True),
    (EXPOSURE_V2, (0, 0), (10, 10), True),
    (SCIENCE_MI, (9, 9), (193, 193), False),
    (TEMPLATE_MI, (24, 24), (193, 193), False),
]
FILE_IDS = [f[0].name for f in FILES]
WCS_FILES = [f for f in FILES if f[3]]


def raw_planes(path: Path, indices: tuple[int, int, int] = (1, 2, 3)) -> list[np.ndarray]:
    """Read the IMAGE, MASK and VARIANCE arrays with astropy alone."""
    with fits.open(path) as hdu_list:
        return [np.array(hdu_list[i].data) for i in indices]


def raw_wcs(path: Path, index: int = 1) -> astropy.wcs.WCS:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", astropy.wcs.FITSFixedWarning)
        return astropy.wcs.WCS(fits.getheader(path, index))


def corner_and_interior_points(xy0: tuple[int, int], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Parent-coordinate test points: the four corner pixel centres, the
    centre and two off-integer interior points.
    """
    x0, y0 = xy0
    ny, nx = shape
    x = np.array([x0, x0 + nx - 1, x0, x0 + nx - 1, x0 + (nx - 1) / 2, x0 + 0.37 * nx, x0 + 0.81 * nx])
    y = np.array([y0, y0, y0 + ny - 1, y0 + ny - 1, y0 + (ny - 1) / 2, y0 + 0.73 * ny, y0 + 0.12 * ny])
    return x, y


# --- real afw files ---------------------------------------------------------


@pytest.mark.parametrize(("path", "xy0", "shape", "has_wcs"), FILES, ids=FILE_IDS)
def test_bbox_and_xy0(path: Path, xy0: tuple[int, int], shape: tuple[int, int], has_wcs: bool) -> None:
    expected = Box.factory[xy0[1] : xy0[1] + shape[0], xy0[0] : xy0[0] + shape[1]]
    info = read_legacy_header_info(path)
    assert (info.image_hdu, info.mask_hdu, info.variance_hdu) == (1, 2, 3)
    assert info.xy0 == XY(x=xy0[0], y=xy0[1])
    assert info.bbox == expected
    assert info.has_sky_wcs is has_wcs
    mi = read_legacy_masked_image(path)
    assert mi.bbox == expected
    assert mi.image.bbox == mi.mask.bbox == mi.variance.bbox == expected


def test_template_xy0_comes_from_image_hdu() -> None:
    # The MASK HDU of templateMI says 9, IMAGE and VARIANCE say 24.
    assert fits.getheader(TEMPLATE_MI, 2)["CRVAL1A"] == 9
    assert fits.getheader(TEMPLATE_MI, 1)["CRVAL1A"] == 24
    mi = read_legacy_masked_image(TEMPLATE_MI)
    assert mi.mask.bbox.start == XY(x=24, y=24).yx


@pytest.mark.parametrize(("path", "xy0", "shape", "has_wcs"), FILES, ids=FILE_IDS)
def test_pixels_equal_raw_reads(
    path: Path, xy0: tuple[int, int], shape: tuple[int, int], has_wcs: bool
) -> None:
    image, _, variance = raw_planes(path)
    mi = read_legacy_masked_image(path)
    assert mi.image.array.dtype == np.float32 and mi.variance.array.dtype == np.float32
    np.testing.assert_array_equal(mi.image.array, image)
    np.testing.assert_array_equal(mi.variance.array, variance)
    # Look a few pixels up by parent coordinates.
    x0, y0 = xy0
    ny, nx = shape
    for x, y in [
        (x0, y0),
        (x0 + nx - 1, y0),
        (x0, y0 + ny - 1),
        (x0 + nx - 1, y0 + ny - 1),
        (x0 + 3, y0 + 7),
    ]:
        pixel = Box.factory[y : y + 1, x : x + 1]
        assert mi.image[pixel].array[0, 0] == image[y - y0, x - x0]
        assert mi.variance[pixel].array[0, 0] == variance[y - y0, x - x0]


def test_exposure_v2_known_values() -> None:
    # Synthetic pixels: value = 10 * y + x, variance 1.
    mi = read_legacy_masked_image(EXPOSURE_V2)
    assert mi.image[Box.factory[7:8, 3:4]].array[0, 0] == 73.0
    assert mi.image[Box.factory[9:10, 9:10]].array[0, 0] == 99.0
    assert np.all(mi.variance.array == 1.0)


def test_hsc_mask_planes_and_bits() -> None:
    info = read_legacy_header_info(HSC)
    expected = {
        "BAD": 0,
        "SAT": 1,
        "INTRP": 2,
        "CR": 3,
        "EDGE": 4,
        "DETECTED": 5,
        "DETECTED_NEGATIVE": 6,
        "SUSPECT": 7,
        "CROSSTALK": 8,
        "NO_DATA": 9,
        "UNMASKEDNAN": 10,
    }
    assert dict(info.mask_planes) == expected
    mi = read_legacy_masked_image(HSC)
    assert list(mi.mask.schema.names) == list(expected)
    _, mask, _ = raw_planes(HSC)
    for name in ("SAT", "DETECTED", "CROSSTALK", "NO_DATA"):
        bit = expected[name]
        np.testing.assert_array_equal(mi.mask.get(name), ((mask.astype(np.int64) >> bit) & 1).astype(bool))
    # Counts from the raw file, so the comparison above is not vacuous.
    assert mi.mask.get("DETECTED").sum() == 5390
    assert mi.mask.get("CROSSTALK").sum() == 14
    assert not mi.mask.get("SAT").any()
    # The schema keeps afw's bit numbers, so the packed values are afw's.
    np.testing.assert_array_equal(mi.mask.array[..., 0], mask)


def test_exposure_v2_mask_planes_differ_from_hsc() -> None:
    info = read_legacy_header_info(EXPOSURE_V2)
    assert info.mask_planes["NO_DATA"] == 8
    assert "CROSSTALK" not in info.mask_planes
    mi = read_legacy_masked_image(EXPOSURE_V2)
    _, mask, _ = raw_planes(EXPOSURE_V2)
    (y,), (x,) = np.nonzero(mask)
    assert sorted(mi.mask.schema.interpret(mi.mask.array[y, x])) == ["BAD", "INTRP"]
    assert mask[y, x] == (1 << info.mask_planes["BAD"]) | (1 << info.mask_planes["INTRP"])


@pytest.mark.parametrize(("path", "xy0", "shape", "has_wcs"), FILES, ids=FILE_IDS)
def test_every_plane_matches_raw_bits(
    path: Path, xy0: tuple[int, int], shape: tuple[int, int], has_wcs: bool
) -> None:
    with fits.open(path) as hdu_list:
        header = hdu_list[2].header
        mask = np.array(hdu_list[2].data).astype(np.int64)
    bits = {
        card.keyword.removeprefix("MP_"): card.value
        for card in header.cards
        if card.keyword.startswith("MP_")
    }
    mi = read_legacy_masked_image(path)
    assert set(mi.mask.schema.names) == set(bits)
    for name, bit in bits.items():
        np.testing.assert_array_equal(mi.mask.get(name), ((mask >> bit) & 1).astype(bool), err_msg=name)


@pytest.mark.parametrize(("path", "xy0", "shape", "has_wcs"), WCS_FILES, ids=[f[0].name for f in WCS_FILES])
def test_sky_matches_astropy(path: Path, xy0: tuple[int, int], shape: tuple[int, int], has_wcs: bool) -> None:
    mi = read_legacy_masked_image(path)
    projection = mi.sky_projection
    assert projection is not None
    wcs = raw_wcs(path)
    x, y = corner_and_interior_points(xy0, shape)
    expected = wcs.pixel_to_world(x - xy0[0], y - xy0[1])
    actual = projection.pixel_to_sky(x=x, y=y)
    assert np.all(actual.separation(expected) < 1 * u.mas)
    # The same one point at a time, through XY.
    for xi, yi, expected_i in zip(x, y, expected, strict=True):
        assert projection.pixel_to_sky(XY(xi, yi)).separation(expected_i) < 1 * u.mas
    # And back: astropy's sky positions land on the same parent pixels.
    back = projection.sky_to_pixel(expected)
    np.testing.assert_allclose(back.x, x, atol=2e-3)
    np.testing.assert_allclose(back.y, y, atol=2e-3)


@pytest.mark.parametrize(
    ("path", "xy0", "shape", "atol"),
    # The HSC file has TAN-SIP: the inverse uses the file's approximate AP/BP
    # polynomials (round trip ~7e-4 pixel), as afw does.
    [(HSC, (100, 100), (200, 200), 2e-3), (EXPOSURE_V2, (0, 0), (10, 10), 1e-6)],
    ids=["HSC-0908120-056-small.fits", "exposure-version-2.fits"],
)
def test_sky_round_trip(path: Path, xy0: tuple[int, int], shape: tuple[int, int], atol: float) -> None:
    projection = read_legacy_masked_image(path).sky_projection
    assert projection is not None
    x, y = corner_and_interior_points(xy0, shape)
    back = projection.sky_to_pixel(projection.pixel_to_sky(x=x, y=y))
    np.testing.assert_allclose(back.x, x, atol=atol)
    np.testing.assert_allclose(back.y, y, atol=atol)


def test_hsc_fk5_wcs_is_converted_to_icrs() -> None:
    # The HSC header says RADESYS='FK5'.  Reading its numbers as ICRS would put
    # every position ~28 mas off; the projection must be in true ICRS.
    assert fits.getheader(HSC, 1)["RADESYS"].strip() == "FK5"
    projection = read_legacy_masked_image(HSC).sky_projection
    assert projection is not None
    x, y = corner_and_interior_points((100, 100), (200, 200))
    fk5 = raw_wcs(HSC).pixel_to_world(x - 100, y - 100)
    actual = projection.pixel_to_sky(x=x, y=y)
    assert actual.frame.name == "icrs"
    relabelled = SkyCoord(fk5.ra, fk5.dec, frame="icrs")
    assert np.all(actual.separation(relabelled) > 10 * u.mas)
    assert np.all(actual.separation(fk5.icrs) < 1 * u.mas)
    # Centre from the data README: RA 151.4067, Dec 1.6504.
    centre = projection.pixel_to_sky(XY(199.5, 199.5))
    assert centre.separation(SkyCoord(151.4067 * u.deg, 1.6504 * u.deg)) < 1 * u.arcsec


@pytest.mark.parametrize("path", [SCIENCE_MI, TEMPLATE_MI], ids=["science", "template"])
def test_no_celestial_wcs_gives_no_projection(path: Path) -> None:
    mi = read_legacy_masked_image(path)
    assert mi.sky_projection is None
    assert mi.image.sky_projection is None and mi.mask.sky_projection is None
    assert read_legacy_header_info(path).has_sky_wcs is False


def test_primary_metadata() -> None:
    hsc = read_legacy_header_info(HSC).metadata
    assert hsc["FILTER"] == "_unknown_"
    assert hsc["EXPTIME"] == 0.0
    assert "SIMPLE" not in hsc and "NAXIS" not in hsc
    assert read_legacy_header_info(EXPOSURE_V2).metadata["EXPTIME"] == 30.0
    assert read_legacy_header_info(SCIENCE_MI).metadata == {}


def test_unit_argument() -> None:
    mi = read_legacy_masked_image(EXPOSURE_V2, unit=u.nJy)
    assert mi.unit == u.nJy
    assert mi.variance.unit == u.nJy**2
    assert read_legacy_masked_image(EXPOSURE_V2).unit is None


@pytest.mark.parametrize(
    ("path", "section"),
    [
        (HSC, Box.factory[150:170, 120:185]),
        (HSC, Box.factory[299:300, 100:101]),
        (HSC, Box.factory[100:300, 100:300]),
        (SCIENCE_MI, Box.factory[9:50, 100:202]),
        (EXPOSURE_V2, Box.factory[2:5, 6:10]),
    ],
)
def test_bbox_section_equals_full_read_sliced(path: Path, section: Box) -> None:
    full = read_legacy_masked_image(path)
    part = read_legacy_masked_image(path, bbox=section)
    assert part.bbox == section
    assert part.image == full.image[section]
    assert part.variance == full.variance[section]
    assert part.mask == full.mask[section]
    if full.sky_projection is not None:
        assert part.sky_projection is not None
        x, y = section.meshgrid(3)
        assert np.all(
            part.sky_projection.pixel_to_sky(x=x, y=y).separation(full.sky_projection.pixel_to_sky(x=x, y=y))
            < 1e-3 * u.mas
        )


@pytest.mark.parametrize(
    "section",
    [Box.factory[250:310, 90:120], Box.factory[0:10, 0:10], Box.factory[100:301, 100:300]],
    ids=["overlapping", "local-coordinates", "one-row-too-many"],
)
def test_bbox_outside_image_is_a_clear_error(section: Box) -> None:
    with pytest.raises(ValueError) as caught:
        read_legacy_masked_image(HSC, bbox=section)
    message = str(caught.value)
    assert HSC.name in message
    assert str(section) in message
    assert str(Box.factory[100:300, 100:300]) in message


def test_bbox_must_be_a_box() -> None:
    with pytest.raises(TypeError, match="lsst.images.Box"):
        read_legacy_masked_image(HSC, bbox=(0, 0, 10, 10))  # type: ignore[arg-type]


# --- files written here -----------------------------------------------------


def image_hdu(data: np.ndarray, cls: type = fits.ImageHDU, **cards: object) -> fits.ImageHDU:
    hdu = cls(data)
    for key, value in cards.items():
        hdu.header[key] = value
    return hdu


def write(path: Path, *hdus: fits.hdu.base.ExtensionHDU, primary: fits.PrimaryHDU | None = None) -> Path:
    fits.HDUList([primary or fits.PrimaryHDU(), *hdus]).writeto(path)
    return path


def tan_cards(
    radesys: str = "ICRS", ctype: tuple[str, str] = ("RA---TAN", "DEC--TAN"), **extra: object
) -> dict:
    return {
        "CTYPE1": ctype[0],
        "CTYPE2": ctype[1],
        "CRPIX1": 20.5,
        "CRPIX2": 11.0,
        "CRVAL1": 359.99,
        "CRVAL2": -30.0,
        "CD1_1": -5.0e-5,
        "CD1_2": 1.0e-5,
        "CD2_1": 1.2e-5,
        "CD2_2": 5.0e-5,
        "RADESYS": radesys,
        **extra,
    }


def test_tile_compressed_extname_layout(tmp_path: Path) -> None:
    """A layout none of the real files shows: tile-compressed planes named
    only by EXTNAME, in the order VARIANCE, MASK, IMAGE (so positions are
    wrong), an int32 mask with afw's bit 31 in use and MP_ cards out of bit
    order with gaps, xy0 from LTV alone with a negative x0, and an ICRS TAN
    WCS straddling RA = 0.
    """
    rng = np.random.default_rng(42)
    ny, nx, x0, y0 = 37, 53, -7, 1200
    image = (rng.normal(size=(ny, nx)) * 50).astype(np.float32)
    variance = rng.uniform(10, 20, size=(ny, nx)).astype(np.float32)
    bits = {"STREAK": 31, "SAT": 5, "DETECTED": 0, "NO_DATA": 12}
    mask = np.zeros((ny, nx), dtype=np.int64)
    for bit in bits.values():
        mask |= (rng.uniform(size=(ny, nx)) < 0.2).astype(np.int64) << bit
    mask32 = mask.astype(np.uint32).view(np.int32)
    assert (mask32 < 0).any()  # bit 31 makes afw's int32 pixels negative
    position = {"LTV1": -x0, "LTV2": -y0}
    mp_cards = {f"HIERARCH MP_{name}": bit for name, bit in bits.items()}
    hdus = [
        fits.CompImageHDU(
            variance, name="VARIANCE", compression_type="GZIP_2", quantize_level=0.0, tile_shape=(8, 16)
        ),
        fits.CompImageHDU(mask32, name="MASK", compression_type="RICE_1", tile_shape=(8, 16)),
        fits.CompImageHDU(
            image, name="IMAGE", compression_type="GZIP_2", quantize_level=0.0, tile_shape=(8, 16)
        ),
    ]
    for hdu in hdus:
        hdu.header.update(position)
        hdu.header.update(tan_cards())
    hdus[1].header.update(mp_cards)
    archive = fits.BinTableHDU.from_columns(
        [fits.Column(name="id", format="J", array=[1])], name="ARCHIVE_INDEX"
    )
    primary = fits.PrimaryHDU()
    primary.header["FILTER"] = "r"
    path = write(tmp_path / "compressed.fits", *hdus, archive, primary=primary)

    info = read_legacy_header_info(path)
    assert (info.image_hdu, info.mask_hdu, info.variance_hdu) == (3, 2, 1)
    assert info.xy0 == XY(x=x0, y=y0)
    assert list(info.mask_planes.items()) == [("DETECTED", 0), ("SAT", 5), ("NO_DATA", 12), ("STREAK", 31)]
    assert info.metadata["FILTER"] == "r"

    mi = read_legacy_masked_image(path)
    assert mi.bbox == Box.factory[y0 : y0 + ny, x0 : x0 + nx]
    np.testing.assert_array_equal(mi.image.array, image)
    np.testing.assert_array_equal(mi.variance.array, variance)
    for name, bit in bits.items():
        np.testing.assert_array_equal(mi.mask.get(name), ((mask >> bit) & 1).astype(bool), err_msg=name)
    np.testing.assert_array_equal(mi.mask.array[..., 0], mask.astype(np.uint32))

    section = Box.factory[y0 + 5 : y0 + 30, x0 + 10 : x0 + 11]
    part = read_legacy_masked_image(path, bbox=section)
    assert part.image == mi.image[section] and part.mask == mi.mask[section]

    wcs = astropy.wcs.WCS(hdus[2].header)
    x, y = corner_and_interior_points((x0, y0), (ny, nx))
    assert mi.sky_projection is not None
    assert np.all(
        mi.sky_projection.pixel_to_sky(x=x, y=y).separation(wcs.pixel_to_world(x - x0, y - y0)) < 1 * u.mas
    )


@pytest.mark.parametrize(
    "cards",
    [
        tan_cards("FK5", EQUINOX=2000.0),
        tan_cards("FK5", EQUINOX=1975.0),
        tan_cards(ctype=("GLON-TAN", "GLAT-TAN"), RADESYS=None),
        tan_cards("FK4", EQUINOX=1950.0),
    ],
    ids=["fk5-j2000", "fk5-j1975", "galactic", "fk4-small"],
)
def test_non_icrs_wcs_is_rotated_to_icrs(tmp_path: Path, cards: dict) -> None:
    cards = {key: value for key, value in cards.items() if value is not None}
    data = np.zeros((20, 40), dtype=np.float32)
    path = write(
        tmp_path / "frame.fits",
        image_hdu(data, EXTTYPE="IMAGE", **cards),
        image_hdu(np.zeros((20, 40), dtype=np.int32), EXTTYPE="MASK", MP_BAD=0),
        image_hdu(data, EXTTYPE="VARIANCE"),
    )
    projection = read_legacy_masked_image(path).sky_projection
    assert projection is not None
    x, y = corner_and_interior_points((0, 0), (20, 40))
    expected = astropy.wcs.WCS(fits.getheader(path, 1)).pixel_to_world(x, y).icrs
    actual = projection.pixel_to_sky(x=x, y=y)
    assert actual.frame.name == "icrs"
    assert np.all(actual.separation(expected) < 1 * u.mas)
    back = projection.sky_to_pixel(expected)
    np.testing.assert_allclose(back.x, x, atol=1e-4)  # 1e-4 pixel = 0.02 mas here
    np.testing.assert_allclose(back.y, y, atol=1e-4)  # 1e-4 pixel = 0.02 mas here


def test_wcs_that_is_not_a_rotation_of_icrs_is_refused(tmp_path: Path) -> None:
    # FK4 differs from ICRS by more than a rotation (E-terms of aberration).  On
    # a small image the difference stays far below a milliarcsecond (see the
    # "fk4-small" case above), but on this 4 x 2 degree image it does not.
    cards = tan_cards("FK4", EQUINOX=1950.0, CD1_1=-0.1, CD1_2=0.0, CD2_1=0.0, CD2_2=0.1)
    data = np.zeros((20, 40), dtype=np.float32)
    path = write(
        tmp_path / "fk4.fits",
        image_hdu(data, EXTTYPE="IMAGE", **cards),
        image_hdu(np.zeros((20, 40), dtype=np.int32), EXTTYPE="MASK", MP_BAD=0),
        image_hdu(data, EXTTYPE="VARIANCE"),
    )
    with pytest.raises(ValueError, match="fk4.fits.*disagrees with astropy.*'fk4'"):
        read_legacy_masked_image(path)


def test_positional_fallback_and_no_xy0_cards(tmp_path: Path) -> None:
    # No EXTTYPE, no EXTNAME, no LTV and no "A" WCS: planes by position, xy0 = (0, 0).
    image = np.arange(12, dtype=">f8").reshape(3, 4)
    mask = np.array([[0, 2, 0, 0], [0, 0, 0, 2], [0, 0, 0, 0]], dtype=np.uint8)
    path = write(tmp_path / "plain.fits", image_hdu(image), image_hdu(mask, MP_CR=1), image_hdu(image * 2))
    mi = read_legacy_masked_image(path)
    assert mi.bbox == Box.factory[0:3, 0:4]
    assert mi.image.array.dtype == np.float32
    np.testing.assert_array_equal(mi.image.array, image)
    np.testing.assert_array_equal(mi.variance.array, image * 2)
    np.testing.assert_array_equal(mi.mask.get("CR"), mask == 2)
    assert mi.sky_projection is None


@pytest.mark.parametrize(
    ("cards", "xy0"),
    [
        ({"CTYPE1A": "LINEAR", "CRPIX1A": 1, "CRPIX2A": 1, "CRVAL1A": 12, "CRVAL2A": 34}, (12, 34)),
        ({"CRPIX1A": 1, "CRPIX2A": 1, "CRVAL1A": 12, "CRVAL2A": 34, "LTV1": -12, "LTV2": -34}, (12, 34)),
        ({"LTV1": -5.0, "LTV2": 6}, (5, -6)),
        # An "A" WCS that is not afw's xy0 WCS (CRPIX1A != 1) is ignored, as afw does.
        ({"CRPIX1A": 2, "CRPIX2A": 1, "CRVAL1A": 12, "CRVAL2A": 34, "LTV1": -5, "LTV2": -6}, (5, 6)),
        ({}, (0, 0)),
    ],
    ids=["a-wcs", "a-wcs-and-ltv", "ltv", "other-a-wcs", "none"],
)
def test_xy0_header_variants(tmp_path: Path, cards: dict, xy0: tuple[int, int]) -> None:
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = write(
        tmp_path / "xy0.fits",
        image_hdu(data, EXTTYPE="IMAGE", **cards),
        image_hdu(np.zeros((2, 3), dtype=np.int32), EXTTYPE="MASK", MP_BAD=0),
        image_hdu(data, EXTTYPE="VARIANCE"),
    )
    mi = read_legacy_masked_image(path)
    assert mi.bbox == Box.factory[xy0[1] : xy0[1] + 2, xy0[0] : xy0[0] + 3]
    assert mi.image[Box.factory[xy0[1] + 1 : xy0[1] + 2, xy0[0] + 2 : xy0[0] + 3]].array[0, 0] == 5.0


def test_non_integer_xy0_is_an_error(tmp_path: Path) -> None:
    data = np.zeros((2, 3), dtype=np.float32)
    path = write(
        tmp_path / "half.fits",
        image_hdu(data, EXTTYPE="IMAGE", LTV1=-0.5, LTV2=0),
        image_hdu(np.zeros((2, 3), dtype=np.int32), EXTTYPE="MASK", MP_BAD=0),
        image_hdu(data, EXTTYPE="VARIANCE"),
    )
    with pytest.raises(ValueError, match=r"half.fits: IMAGE HDU gives a non-integer xy0"):
        read_legacy_masked_image(path)


def test_undeclared_mask_bits_warn(tmp_path: Path) -> None:
    mask = np.array([[0, 8], [1, 9]], dtype=np.int32)  # bit 3 has no MP_ card
    data = np.zeros((2, 2), dtype=np.float32)
    path = write(
        tmp_path / "stray.fits",
        image_hdu(data, EXTTYPE="IMAGE"),
        image_hdu(mask, EXTTYPE="MASK", MP_BAD=0),
        image_hdu(data, EXTTYPE="VARIANCE"),
    )
    with pytest.warns(UserWarning, match=r"stray.fits.*bits \[3\]"):
        mi = read_legacy_masked_image(path)
    np.testing.assert_array_equal(mi.mask.get("BAD"), [[False, False], [True, True]])


def _plane(shape: tuple[int, ...] = (4, 5), dtype: type = np.float32, **cards: object) -> fits.ImageHDU:
    return image_hdu(np.zeros(shape, dtype=dtype), **cards)


def _table() -> fits.BinTableHDU:
    return fits.BinTableHDU.from_columns([fits.Column(name="a", format="J", array=[1])])


# case -> (extension HDUs, primary HDU data, expected message); built lazily.
BROKEN_FILES = {
    "plain-image": lambda: ([], np.zeros((4, 5), dtype=np.float32), "no IMAGE HDU"),
    "table-only": lambda: ([_table()], None, "no IMAGE HDU"),
    "image-only": lambda: ([_plane(EXTTYPE="IMAGE")], None, "no MASK HDU"),
    "cube": lambda: (
        [_plane((2, 4, 5), EXTTYPE="IMAGE"), _plane(dtype=np.int32, MP_BAD=0), _plane()],
        None,
        r"IMAGE HDU 1 has shape \(2, 4, 5\)",
    ),
    "shapes-differ": lambda: (
        [
            _plane(EXTTYPE="IMAGE"),
            _plane((4, 6), np.int32, EXTTYPE="MASK", MP_BAD=0),
            _plane(EXTTYPE="VARIANCE"),
        ],
        None,
        r"different shapes \(IMAGE \(4, 5\), MASK \(4, 6\), VARIANCE \(4, 5\)\)",
    ),
    "no-mp-cards": lambda: (
        [_plane(EXTTYPE="IMAGE"), _plane(dtype=np.int32, EXTTYPE="MASK"), _plane()],
        None,
        "no MP_",
    ),
    "float-mask": lambda: (
        [_plane(EXTTYPE="IMAGE"), _plane(dtype=np.float64, MP_BAD=0), _plane()],
        None,
        "floating-point",
    ),
    "bit-too-big": lambda: (
        [_plane(), _plane(dtype=np.uint8, MP_BAD=8), _plane()],
        None,
        "not a bit of a 8-bit mask",
    ),
    "shared-bit": lambda: (
        [_plane(), _plane(dtype=np.int16, MP_BAD=1, MP_SAT=1), _plane()],
        None,
        "share a bit",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN_FILES))
def test_not_an_afw_image_is_a_clear_error(tmp_path: Path, case: str) -> None:
    hdus, primary_data, expected = BROKEN_FILES[case]()
    path = tmp_path / f"{case}.fits"
    fits.HDUList([fits.PrimaryHDU(primary_data), *hdus]).writeto(path)
    for reader in (read_legacy_masked_image, read_legacy_header_info):
        with pytest.raises(ValueError, match=expected) as caught:
            reader(path)
        assert str(path) in str(caught.value)


def test_not_fits_at_all(tmp_path: Path) -> None:
    path = tmp_path / "notes.fits"
    path.write_text("this is not FITS\n" * 200)
    with pytest.raises(ValueError, match=r"notes.fits: not a readable FITS file"):
        read_legacy_masked_image(path)
    with pytest.raises(FileNotFoundError):
        read_legacy_masked_image(tmp_path / "missing.fits")
