"""Marker, compass and orientation geometry, and the stamp WCS, checked on
pixels: rotated TAN WCSs built as the demo builds them, and the real HSC
SIP WCS of an afw calexp."""

import math
import warnings
from pathlib import Path

import astropy.wcs
import numpy as np
import pytest
from astropy.io import fits

from lsst.analysis.ap.display.compass import compass_geometry, compass_masks
from lsst.analysis.ap.display.markers import MARKER_STYLES, marker_masks, panel_position
from lsst.analysis.ap.display.orientation import DihedralTransform, cardinal_transform, orient_stamp
from lsst.analysis.ap.stamp_wcs import (
    local_tan_wcs,
    north_up_wcs,
    resample_north_up,
    sky_directions,
)

HSC = Path(__file__).parent / "data" / "afw" / "HSC-0908120-056-small.fits"
SCALE = 0.2 / 3600.0


def rotated_wcs(rotation_deg: float, flip: bool = False, ra: float = 150.0, dec: float = 2.0):
    """TAN WCS with East left and North up before a rotation (the demo's
    convention); ``flip`` mirrors x (a parity flip)."""
    theta = math.radians(rotation_deg)
    wcs = astropy.wcs.WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [1000.5, 1000.5]
    cd = np.array(
        [
            [-SCALE * math.cos(theta), SCALE * math.sin(theta)],
            [SCALE * math.sin(theta), SCALE * math.cos(theta)],
        ]
    )
    if flip:
        cd = cd @ np.diag([-1.0, 1.0])
    wcs.wcs.cd = cd
    return wcs


def sky_to_pixel_of(wcs):
    def sky_to_pixel(ra, dec):
        return wcs.all_world2pix(ra, dec, 0)

    return sky_to_pixel


def pixel_to_sky_of(wcs):
    def pixel_to_sky(x, y):
        return wcs.all_pix2world(x, y, 0)

    return pixel_to_sky


def angle_deg(v):
    return math.degrees(math.atan2(v[1], v[0])) % 360


def angle_between(a, b):
    """Smallest angle (degrees) between two directions."""
    return abs((angle_deg(a) - angle_deg(b) + 180) % 360 - 180)


# Markers ---------------------------------------------------------------------


@pytest.mark.parametrize(("stamp", "panel"), [(30, 240), (64, 240), (7, 240), (13, 100), (30, 64)])
def test_panel_position_lands_in_the_upsampled_source_pixel(stamp, panel):
    # The renderer upsamples with nearest_index: canvas pixel k shows stamp
    # pixel floor((k + 0.5) * stamp / panel); column/row of the marker must
    # show the stamp pixel holding the position.
    k = np.arange(panel)
    source = np.clip(((k + 0.5) * stamp / panel).astype(int), 0, stamp - 1)
    # Positions at least a canvas pixel away from stamp-pixel edges.
    for x, y in [(stamp // 2, stamp // 2), (0.3, stamp - 1.2), (stamp // 3 + 0.26, 1.3)]:
        u, v = panel_position(x, y, stamp, panel)
        assert source[math.floor(u)] == math.floor(x + 0.5)
        assert stamp - 1 - source[math.floor(v)] == math.floor(y + 0.5)


@pytest.mark.parametrize("style", ["reticle", "crosshair"])
@pytest.mark.parametrize(("u", "v"), [(120.0, 120.0), (17.3, 200.9), (233.5, 4.2)])
def test_marker_is_centred_on_the_position(style, u, v):
    lines, halo = marker_masks(style, u, v, 240)
    rows, cols = np.nonzero(lines)
    col, row = math.floor(u), math.floor(v)
    assert not lines[row, col]  # the source pixel itself is left visible
    if style == "crosshair" or (0 < col - 20 and col + 20 < 240 and 0 < row - 20 and row + 20 < 240):
        # Every horizontal arm pixel is on the source's row, every vertical one on its column.
        assert set(rows[cols != col]) == {row}
        assert set(cols[rows != row]) == {col}
    if 20 < col < 220 and 20 < row < 220:
        assert rows.mean() + 0.5 == pytest.approx(v, abs=0.5)
        assert cols.mean() + 0.5 == pytest.approx(u, abs=0.5)
    assert not (lines & halo).any()
    assert halo.any()


def test_ticks_sit_on_the_edges_in_the_source_row_and_column():
    lines, _ = marker_masks("ticks", 100.4, 57.9, 240)
    rows, cols = np.nonzero(lines)
    assert set(rows[cols < 10]) == {57} and set(rows[cols >= 230]) == {57}
    assert set(cols[rows < 10]) == {100} and set(cols[rows >= 230]) == {100}
    assert not lines[20:220, 20:220].any()


def test_marker_off_and_bad_style():
    assert marker_masks("off", 10, 10, 240) is None
    assert marker_masks("reticle", math.nan, 10, 240) is None
    assert set(MARKER_STYLES) == {"off", "reticle", "crosshair", "ticks"}
    with pytest.raises(ValueError, match="valid choices"):
        marker_masks("circle", 10, 10, 240)


# Sky directions and compass ----------------------------------------------------


@pytest.mark.parametrize("rotation", [0.0, 37.0, 90.0, 151.0, 200.0, 311.0])
def test_north_and_east_follow_the_wcs_rotation(rotation):
    north, east = sky_directions(sky_to_pixel_of(rotated_wcs(rotation)), 150.0, 2.0)
    # A sky rotation by theta turns North from +y toward -x... solve with the CD matrix.
    cd = rotated_wcs(rotation).wcs.cd
    expected_north = np.linalg.solve(cd, [0.0, 1.0])
    expected_east = np.linalg.solve(cd, [1.0, 0.0])
    assert angle_between(north, expected_north) < 0.01
    assert angle_between(east, expected_east) < 0.05
    # Unrotated: North up, East left.
    if rotation == 0.0:
        assert north == pytest.approx((0, 1), abs=1e-6) and east == pytest.approx((-1, 0), abs=1e-5)


def _arrow_direction(mask, origin):
    """Direction (x right, y up) from the origin to the farthest arrow pixel."""
    rows, cols = np.nonzero(mask)
    du, dv = cols + 0.5 - origin[0], rows + 0.5 - origin[1]
    far = np.argsort(du**2 + dv**2)[-12:]  # the letter, beyond the tip
    return float(du[far].mean()), float(-dv[far].mean())


@pytest.mark.parametrize("rotation", [0.0, 37.0, 90.0, 151.0, 245.0])
@pytest.mark.parametrize("flip", [False, True])
def test_compass_arrows_point_north_and_east_on_pixels(rotation, flip):
    north, east = sky_directions(sky_to_pixel_of(rotated_wcs(rotation, flip)), 150.0, 2.0)
    n_mask, e_mask, halo = compass_masks(north, east, 240)
    origin = compass_geometry(north, east, 240).origin
    assert angle_between(_arrow_direction(n_mask, origin), north) < 6
    assert angle_between(_arrow_direction(e_mask, origin), east) < 6
    both = n_mask | e_mask
    assert not (both & halo).any()
    rows, cols = np.nonzero(both | halo)
    assert rows.min() >= 0 and cols.max() < 240  # fits in the panel


# Orientation -----------------------------------------------------------------


def test_dihedral_array_and_point_agree_for_all_transforms():
    stamp = np.arange(7 * 7, dtype=float).reshape(7, 7)
    for transform in [DihedralTransform(a, b, c, d) for a, b, c, d in _signed_permutations()]:
        out = transform.apply_array(stamp)
        for x, y in [(0, 0), (6, 1), (2, 5), (3, 3)]:
            xp, yp = transform.apply_point(x, y, 7)
            assert out[int(yp), int(xp)] == stamp[y, x]


def _signed_permutations():
    for a in (-1, 1):
        for d in (-1, 1):
            yield a, 0, 0, d
            yield 0, a, d, 0


@pytest.mark.parametrize("rotation", np.arange(0.0, 360.0, 23.0))
@pytest.mark.parametrize("flip", [False, True])
def test_cardinal_puts_a_star_north_of_the_source_in_the_upper_half(rotation, flip):
    size, c = 31, 15
    wcs = rotated_wcs(rotation, flip)
    north, east = sky_directions(sky_to_pixel_of(wcs), 150.0, 2.0)
    stamp = np.zeros((size, size))
    # Star 10 px north and a fainter one 10 px east of the source.
    stamp[round(c + 10 * north[1]), round(c + 10 * north[0])] = 100.0
    stamp[round(c + 10 * east[1]), round(c + 10 * east[0])] = 50.0
    transform = cardinal_transform(north, east)
    shown = transform.apply_array(stamp)
    y_star, x_star = np.argwhere(shown == 100.0)[0]
    y_east, x_east = np.argwhere(shown == 50.0)[0]
    assert y_star > c and abs(x_star - c) <= y_star - c  # upper half, within 45° of up
    assert x_east < c and abs(y_east - c) <= c - x_east  # left half, within 45° of left


def test_cardinal_is_identity_for_a_north_up_east_left_wcs():
    north, east = sky_directions(sky_to_pixel_of(rotated_wcs(0.0)), 150.0, 2.0)
    assert cardinal_transform(north, east).is_identity


@pytest.mark.parametrize("rotation", [37.0, 131.0, 290.0])
def test_north_up_resampling_puts_a_star_straight_above_the_source(rotation):
    size = 31
    wcs = rotated_wcs(rotation)
    x_src, y_src = 1010.3, 990.7
    ra, dec = (float(v) for v in wcs.all_pix2world(x_src, y_src, 0))
    x0, y0 = math.floor(x_src + 0.5) - size // 2, math.floor(y_src + 0.5) - size // 2
    # A smooth star 8 arcsec (40 px) north of the source would be off the
    # stamp; put it 2 arcsec (10 px) north.
    star_x, star_y = (float(v) for v in wcs.all_world2pix(ra, dec + 2.0 / 3600, 0))
    yy, xx = np.mgrid[y0 : y0 + size, x0 : x0 + size]
    stamp = 100 * np.exp(-((xx - star_x) ** 2 + (yy - star_y) ** 2) / (2 * 1.5**2))
    stamp_wcs = local_tan_wcs(pixel_to_sky_of(wcs), x_src, y_src, x0, y0, size)
    target = north_up_wcs(ra, dec, x_src - x0, y_src - y0, 0.2, size)
    resampled = resample_north_up(stamp, stamp_wcs, target)
    peak_y, peak_x = np.unravel_index(np.nanargmax(resampled), resampled.shape)
    assert peak_x == pytest.approx(x_src - x0, abs=1.0)
    assert peak_y == pytest.approx(y_src - y0 + 10, abs=1.0)
    # Corners of a rotated stamp fall off the input: no data there.
    assert np.isnan(resampled).any() and np.isfinite(resampled[size // 2]).all()


# Stamp WCS on the real HSC SIP WCS ---------------------------------------------------


def hsc_wcs():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return astropy.wcs.WCS(fits.getheader(HSC, 1))


@pytest.mark.parametrize(("x", "y"), [(100.3, 57.8), (10.0, 190.2), (199.4, 0.6)])
def test_local_tan_wcs_maps_the_source_and_its_surroundings(x, y):
    wcs = hsc_wcs()  # SIP distortion, FK5 (the relative geometry is what matters here)
    size = 30
    x0, y0 = math.floor(x + 0.5) - size // 2, math.floor(y + 0.5) - size // 2
    stamp_wcs = local_tan_wcs(pixel_to_sky_of(wcs), x, y, x0, y0, size)
    ra, dec = wcs.all_pix2world(x, y, 0)
    sx, sy = stamp_wcs.all_world2pix(ra, dec, 0)
    assert (float(sx), float(sy)) == pytest.approx((x - x0, y - y0), abs=0.01)
    # Every corner of the stamp within 0.01 px of the full SIP WCS.
    for px, py in [(x0, y0), (x0 + size - 1, y0), (x0, y0 + size - 1), (x0 + size - 1, y0 + size - 1)]:
        r, d = wcs.all_pix2world(px, py, 0)
        qx, qy = stamp_wcs.all_world2pix(r, d, 0)
        assert (float(qx) + x0, float(qy) + y0) == pytest.approx((px, py), abs=0.01)


# Orienting a stamp with its mask planes ----------------------------------------------


@pytest.mark.parametrize("rotation", [0.0, 64.0, 180.0, 301.0])
@pytest.mark.parametrize("orientation", ["detector", "cardinal", "north_up"])
def test_orient_stamp_keeps_star_mask_and_source_together(rotation, orientation):
    size = 30
    wcs = rotated_wcs(rotation)
    x_src, y_src = 1000.2, 1003.9
    ra, dec = (float(v) for v in wcs.all_pix2world(x_src, y_src, 0))
    x0, y0 = math.floor(x_src + 0.5) - size // 2, math.floor(y_src + 0.5) - size // 2
    star_x, star_y = (float(v) for v in wcs.all_world2pix(ra, dec + 1.6 / 3600, 0))  # 8 px north
    yy, xx = np.mgrid[y0 : y0 + size, x0 : x0 + size]
    stamp = 100 * np.exp(-((xx - star_x) ** 2 + (yy - star_y) ** 2) / (2 * 1.2**2))
    star_mask = stamp > 50  # a mask plane set on the star
    north, east = sky_directions(sky_to_pixel_of(wcs), ra, dec)
    stamp_wcs = local_tan_wcs(pixel_to_sky_of(wcs), x_src, y_src, x0, y0, size)
    target = north_up_wcs(ra, dec, x_src - x0, y_src - y0, 0.2, size)

    def resample(array, order):
        return resample_north_up(array, stamp_wcs, target, order=order)

    oriented = orient_stamp(
        orientation, stamp, (x_src - x0, y_src - y0), north, east, extra=(star_mask,), resample=resample
    )
    peak_y, peak_x = np.unravel_index(np.nanargmax(oriented.image), oriented.image.shape)
    px, py = oriented.position
    # The star lies 8 px from the source along the drawn North direction.
    assert (peak_x - px, peak_y - py) == pytest.approx(
        (8 * oriented.north[0], 8 * oriented.north[1]), abs=1.0
    )
    assert oriented.extra[0][peak_y, peak_x]
    assert oriented.resampled == (orientation == "north_up")
    if orientation != "detector":
        assert oriented.north[1] >= math.sqrt(0.5) - 1e-9 and oriented.east[0] <= -math.sqrt(0.5) + 1e-9
    if orientation == "north_up":
        assert oriented.north == (0.0, 1.0) and (px, py) == (x_src - x0, y_src - y0)


def test_orient_stamp_rejects_unknown_orientation():
    with pytest.raises(ValueError, match="valid choices"):
        orient_stamp("sky", np.zeros((3, 3)), (1, 1), (0, 1), (-1, 0))
    with pytest.raises(ValueError, match="resampling"):
        orient_stamp("north_up", np.zeros((3, 3)), (1, 1), (0, 1), (-1, 0))
