"""Mask overlay colours and FITS stamps, on the real HSC calexp written by afw
(mask planes in afw spelling, SIP WCS) and on lsst.images masks."""

import math
import warnings
from pathlib import Path

import astropy.units as u
import astropy.wcs
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData, VarianceUncertainty
from lsst.images import Box, Mask, MaskPlane, MaskSchema

from lsst.analysis.ap.display.overlays import (
    DEFAULT_OVERLAY_PLANES,
    afw_default_colors,
    blend_overlay,
    canonical_plane_name,
    overlay_index,
    overlay_planes,
    resolve_planes,
)
from lsst.analysis.ap.outputs.fits_stamps import mask_plane_names, stamp_fits_bytes
from lsst.analysis.ap.stamp_wcs import local_tan_wcs

HSC = Path(__file__).parent / "data" / "afw" / "HSC-0908120-056-small.fits"


def hsc_planes():
    """Image, variance, mask bits, plane bits and WCS of the real HSC calexp."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(HSC) as hdus:
            image = hdus[1].data.astype(float)
            mask = hdus[2].data.astype(np.int64)
            variance = hdus[3].data.astype(float)
            bits = mask_plane_names(hdus[2].header)
            wcs = astropy.wcs.WCS(hdus[1].header)
    return image, variance, mask, bits, wcs


# Plane names and colours ---------------------------------------------------------


@pytest.mark.parametrize(
    ("afw", "images"),
    [
        ("SAT", "SATURATED"),
        ("INTRP", "INTERPOLATED"),
        ("CR", "COSMIC_RAY"),
        ("EDGE", "DETECTION_EDGE"),
        ("UNMASKEDNAN", "UNMASKED_NAN"),
        ("DETECTED", "DETECTED"),
        ("sat", "SATURATED"),
        ("SATURATED", "SATURATED"),
    ],
)
def test_afw_and_lsst_images_plane_names_map_to_one_name(afw, images):
    assert canonical_plane_name(afw) == images


def test_afw_display_default_colours():
    colours = afw_default_colors()
    assert colours["BAD"] == (255, 0, 0)
    assert colours["COSMIC_RAY"] == (255, 0, 255)
    assert colours["DETECTION_EDGE"] == (255, 255, 0)
    assert colours["SATURATED"] == colours["INTERPOLATED"] == (0, 255, 0)
    assert colours["DETECTED"] == (0, 0, 255)
    assert colours["DETECTED_NEGATIVE"] == (0, 255, 255)
    assert colours["NO_DATA"] == (255, 165, 0)
    planes = overlay_planes(["SAT", "SATURATED", "CROSSTALK", "STREAK"], colors={"CR": (1, 2, 3)})
    assert [p.name for p in planes] == ["SATURATED", "CROSSTALK", "STREAK"]
    # Planes without a default colour take the next colours of afw's cycle.
    assert [p.rgb for p in planes] == [(0, 255, 0), (255, 0, 0), (0, 255, 0)]
    assert overlay_planes(["CR"], colors={"COSMIC_RAY": (1, 2, 3)})[0].rgb == (1, 2, 3)
    with pytest.raises(ValueError, match="0-255"):
        overlay_planes(["BAD"], colors={"BAD": (300, 0, 0)})
    with pytest.raises(ValueError, match="at least one"):
        overlay_planes([])


# Overlay on pixels ---------------------------------------------------------------------


def test_overlay_colours_appear_exactly_where_afw_mask_bits_are_set():
    image, _, mask, bits, _ = hsc_planes()
    planes = overlay_planes(list(DEFAULT_OVERLAY_PLANES) + ["CROSSTALK"])
    names = resolve_planes(bits, planes)
    assert names["DETECTED"] == "DETECTED" and names["DETECTION_EDGE"] == "EDGE"
    assert names["SATURATED"] == "SAT" and names["COSMIC_RAY"] == "CR"
    plane_bits = {name: (mask >> bits[own]) & 1 == 1 for name, own in names.items()}
    index = overlay_index(plane_bits, planes)
    grey = np.full(image.shape + (3,), 128, dtype=np.uint8)
    blended = blend_overlay(grey, index, planes, opacity=0.5)

    detected = plane_bits["DETECTED"]
    crosstalk = plane_bits["CROSSTALK"]
    assert detected.sum() == 5390 and crosstalk.sum() == 14
    only_detected = detected & ~crosstalk
    np.testing.assert_array_equal(blended[only_detected], [[64, 64, 192]] * int(only_detected.sum()))
    # CROSSTALK is listed last: drawn on top, in its cycle colour (red).
    np.testing.assert_array_equal(blended[crosstalk], [[192, 64, 64]] * int(crosstalk.sum()))
    untouched = ~(detected | crosstalk)
    np.testing.assert_array_equal(blended[untouched], grey[untouched])


def test_overlay_on_an_lsst_images_mask():
    schema = MaskSchema([MaskPlane("SATURATED", "sat"), MaskPlane("COSMIC_RAY", "cr"), None])
    mask = Mask(0, schema=schema, bbox=Box.from_shape((6, 6)))
    mask.set("SATURATED", np.eye(6, dtype=bool))
    cr = np.zeros((6, 6), dtype=bool)
    cr[0, :] = True
    mask.set("COSMIC_RAY", cr)
    planes = overlay_planes(["SAT", "CR"])  # afw spelling selects lsst.images planes
    names = resolve_planes([n for n in schema.names if n], planes)
    index = overlay_index({name: mask.get(own) for name, own in names.items()}, planes)
    rgb = blend_overlay(np.zeros((6, 6, 3), np.uint8), index, planes, opacity=1.0)
    assert tuple(rgb[0, 0]) == (255, 0, 255)  # both set: CR on top
    assert tuple(rgb[3, 3]) == (0, 255, 0)
    assert tuple(rgb[2, 4]) == (0, 0, 0)
    with pytest.raises(ValueError, match="opacity"):
        blend_overlay(rgb, index, planes, opacity=0.0)


# FITS stamps --------------------------------------------------------------------------------


def _hsc_stamp(x=120.3, y=80.6, size=30, x_origin=100, y_origin=100):
    image, variance, mask, bits, wcs = hsc_planes()
    # Parent coordinates: the file's xy0 is (100, 100).
    x0, y0 = math.floor(x + 0.5) - size // 2, math.floor(y + 0.5) - size // 2
    rows = slice(y0 - y_origin, y0 - y_origin + size)
    cols = slice(x0 - x_origin, x0 - x_origin + size)
    planes = {
        name: (mask[rows, cols] >> bit) & 1 == 1 for name, bit in sorted(bits.items(), key=lambda i: i[1])
    }

    def pixel_to_sky(px, py):
        return wcs.all_pix2world(np.asarray(px) - x_origin, np.asarray(py) - y_origin, 0)

    stamp_wcs = local_tan_wcs(pixel_to_sky, x, y, x0, y0, size)
    ra, dec = (float(v) for v in pixel_to_sky(x, y))
    return image[rows, cols], variance[rows, cols], planes, stamp_wcs, (x0, y0), (ra, dec), wcs


def test_fits_stamp_reads_back_with_ccddata_and_astropy(tmp_path):
    image, variance, planes, stamp_wcs, (x0, y0), (ra, dec), full_wcs = _hsc_stamp()
    path = tmp_path / "stamp.fits"
    path.write_bytes(
        stamp_fits_bytes(
            image,
            stamp_wcs,
            variance=variance,
            mask=planes,
            unit="nJy",
            x0=x0,
            y0=y0,
            metadata={"DIASRCID": 42},
        )
    )
    ccd = CCDData.read(path)
    np.testing.assert_array_equal(ccd.data, image.astype(np.float32))
    assert ccd.unit == u.nJy
    assert isinstance(ccd.uncertainty, VarianceUncertainty)
    np.testing.assert_array_equal(ccd.uncertainty.array, variance.astype(np.float32))
    any_plane = np.any(list(planes.values()), axis=0)
    np.testing.assert_array_equal(ccd.mask, any_plane)
    assert any_plane.any()
    sx, sy = ccd.wcs.world_to_pixel_values(ra, dec)
    assert (float(sx), float(sy)) == pytest.approx((120.3 - x0, 80.6 - y0), abs=0.01)
    assert ccd.header["DIASRCID"] == 42 and ccd.header["CUTMINX"] == x0 - 1

    with fits.open(path) as hdus:
        names = mask_plane_names(hdus["MASK"].header)
        assert names == {name: bit for bit, name in enumerate(planes)}
        assert "DETECTED_NEGATIVE" in names and "SAT" in names
        for name, bit in names.items():
            np.testing.assert_array_equal((hdus["MASK"].data >> bit) & 1 == 1, planes[name])
        assert hdus["UNCERT"].header["BUNIT"] == "(nJy)2"


def test_fits_stamp_without_unit_variance_or_mask(tmp_path):
    image, _, _, stamp_wcs, _, _, _ = _hsc_stamp(size=9)
    path = tmp_path / "bare.fits"
    path.write_bytes(stamp_fits_bytes(image, stamp_wcs))
    with fits.open(path) as hdus:
        assert len(hdus) == 1 and "BUNIT" not in hdus[0].header
    ccd = CCDData.read(path, unit="adu")
    assert ccd.mask is None and ccd.uncertainty is None
    np.testing.assert_array_equal(ccd.data, image.astype(np.float32))


def test_fits_stamp_rejects_bad_planes():
    image, _, _, stamp_wcs, _, _, _ = _hsc_stamp(size=5)
    with pytest.raises(ValueError, match="shape"):
        stamp_fits_bytes(image, stamp_wcs, mask={"BAD": np.zeros((4, 4), bool)})
    with pytest.raises(ValueError, match="MP_"):
        stamp_fits_bytes(image, stamp_wcs, mask={"bad plane": np.zeros((5, 5), bool)})
    with pytest.raises(ValueError, match="variance"):
        stamp_fits_bytes(image, stamp_wcs, variance=np.zeros((3, 3)))
