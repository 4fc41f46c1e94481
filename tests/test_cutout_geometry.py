"""Stamp geometry through the core, with images that do not share a pixel
grid: each panel is cut at the source's position through its own WCS and
bounding box origin.
"""

from __future__ import annotations

import logging

import astropy.units as u
import astropy.wcs
import numpy as np
import pandas as pd
import pytest
from lsst.images import Box, GeneralFrame, Image, SkyProjection

from lsst.analysis.ap.core import CutoutSettings, DetectorCutouter
from lsst.analysis.ap.display.renderer import TripletRenderer
from lsst.analysis.ap.geometry import MAX_STAMP_SIZE, mean_sky_position, sky_separation_arcsec
from lsst.analysis.ap.images.butler import PlaneReader
from lsst.analysis.ap.outputs.ledger import run_token
from lsst.analysis.ap.outputs.paths import OutputLayout
from lsst.analysis.ap.outputs.store import OutputStore

RA, DEC = 150.0, 2.5


def make_image(
    start: tuple[int, int], rotation_deg: float, crpix: tuple[float, float]
) -> tuple[Image, tuple[float, float]]:
    """A 120×100 image with origin ``start`` (y, x), a TAN WCS, and one
    bright Gaussian at (RA, DEC)."""
    bbox = Box.from_shape((100, 120), start=start)
    scale = 0.2 / 3600
    theta = np.radians(rotation_deg)
    wcs = astropy.wcs.WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [RA + 0.001, DEC - 0.0007]
    wcs.wcs.crpix = list(crpix)
    wcs.wcs.cd = scale * np.array([[-np.cos(theta), np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    projection = SkyProjection.from_fits_wcs(
        wcs, GeneralFrame(unit=u.pix), pixel_bounds=bbox, x0=bbox.x.start, y0=bbox.y.start
    )
    x, y = wcs.all_world2pix(RA, DEC, 0)
    x, y = float(x) + bbox.x.start, float(y) + bbox.y.start
    yy, xx = np.mgrid[bbox.y.start : bbox.y.stop, bbox.x.start : bbox.x.stop]
    pixels = 1000.0 * np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / 1.5**2)
    return Image(pixels.astype(np.float32), bbox=bbox, sky_projection=projection), (x, y)


def reader_for(image: Image) -> PlaneReader:
    def getter(component, parameters):
        if component == "bbox":
            return image.bbox
        if component == "sky_projection":
            return image.sky_projection
        box = (parameters or {}).get("bbox")
        return image[box] if box is not None else image

    return PlaneReader(name="synthetic", getter=getter)


def one_source(source_id: int) -> pd.DataFrame:
    """A DiaSource at (RA, DEC)."""
    return pd.DataFrame(
        {
            "diaSourceId": [source_id],
            "visit": [1],
            "detector": [0],
            "ra": [RA],
            "dec": [DEC],
            "instrument": ["X"],
        }
    )


def numpy_cutouter(tmp_path, sizes: tuple[int, ...]) -> DetectorCutouter:
    """A cutting core writing PNGs and numpy stamps of ``sizes`` under ``tmp_path``."""
    return DetectorCutouter(
        CutoutSettings(sizes=sizes, save_as_numpy=True),
        TripletRenderer(list(sizes), False),
        OutputLayout(tmp_path, None),
        OutputStore(tmp_path),
        run_token(),
        url_root=None,
        log=logging.getLogger("test"),
        make_renderer=lambda sizes: TripletRenderer(sizes, False),
    )


def test_each_panel_is_cut_through_its_own_wcs_and_origin(tmp_path):
    images = {
        "template": make_image((20, 10), 30.0, (40.0, 70.0)),
        "science": make_image((0, 0), 0.0, (60.0, 50.0)),
        "difference": make_image((-7, 5), -50.0, (30.0, 45.0)),
    }
    # The source lies at different array positions in the three images.
    assert len({(round(x), round(y)) for _, (x, y) in images.values()}) == 3
    sources = one_source(7)
    cutouter = numpy_cutouter(tmp_path, (31,))
    for threshold in (None, 1):  # bbox reads, then whole reads
        cutouter.settings = CutoutSettings(
            sizes=(31,), save_as_numpy=True, whole_read_min_sources=threshold, overwrite=True
        )
        records = cutouter.process(sources, {role: reader_for(image) for role, (image, _) in images.items()})
        assert list(records["status"]) == ["written"], records["reason"].tolist()
        for role, short in (("template", "temp"), ("science", "sci"), ("difference", "diff")):
            saved = np.load(tmp_path / "numpy" / f"7_{short}_31.npy")
            assert saved.shape == (1, 31, 31)
            stamp = saved[0]
            peak = np.unravel_index(np.nanargmax(stamp), stamp.shape)
            assert abs(peak[0] - 15) <= 1 and abs(peak[1] - 15) <= 1, (role, peak)


def afw_centered_box_start(position: float, size: int) -> int:
    """Lower corner of afw's ``Box2I.makeCenteredBox`` along one axis."""
    corner = position - 0.5 * size + 0.5  # the box's lower pixel centre
    return int(np.floor(corner + 0.5))  # Point2I(Point2D): rounded half up


def test_stamps_cover_the_pixels_afw_cuts_for_even_and_odd_sizes(tmp_path):
    image, (x, y) = make_image((0, 0), 0.0, (59.4, 50.0))
    frac_x, frac_y = x - np.floor(x), y - np.floor(y)
    # One coordinate below the half pixel and one above it, so an even size
    # is centred on the rounded pixel in one axis and not in the other.
    assert (frac_x < 0.5) != (frac_y < 0.5), (x, y)
    sources = one_source(9)
    sizes = (2, 7, 30, 31)
    cutouter = numpy_cutouter(tmp_path, sizes)
    records = cutouter.process(
        sources, {role: reader_for(image) for role in ("template", "science", "difference")}
    )
    assert list(records["status"]) == ["written"], records["reason"].tolist()
    for size in sizes:
        x0, y0 = afw_centered_box_start(x, size), afw_centered_box_start(y, size)
        stamp = np.load(tmp_path / "numpy" / f"9_sci_{size}.npy")[0]
        np.testing.assert_array_equal(stamp, image.array[y0 : y0 + size, x0 : x0 + size])
        # The source lies within half a pixel of the stamp's centre.
        assert abs(x - (x0 + (size - 1) / 2)) <= 0.5 and abs(y - (y0 + (size - 1) / 2)) <= 0.5


def test_a_footprint_beyond_the_largest_stamp_fails_with_no_footprint(tmp_path):
    """A bboxSize above MAX_STAMP_SIZE fails its source (no 5000 × 5000
    stamp is allocated); the next source is drawn."""
    image, _ = make_image((0, 0), 0.0, (60.0, 50.0))
    sources = pd.concat([one_source(1), one_source(2)], ignore_index=True)
    sources["bboxSize"] = [5000, 21]
    cutouter = numpy_cutouter(tmp_path, (21,))
    cutouter.settings = CutoutSettings(use_footprint=True, save_as_numpy=True)
    records = cutouter.process(
        sources, {role: reader_for(image) for role in ("template", "science", "difference")}
    )
    assert list(records["status"]) == ["failed", "written"], records["reason"].tolist()
    assert records["reason_code"].iloc[0] == "no_footprint"
    assert (
        records["reason"].iloc[0]
        == f"bboxSize 5000 is larger than the largest stamp size ({MAX_STAMP_SIZE} pixels)"
    )
    assert np.load(tmp_path / "numpy" / "2_sci_21.npy").shape == (1, 21, 21)


def test_mean_sky_position_across_ra_zero_and_around_a_pole():
    """The mean of positions on both sides of RA 0/360 is near RA 0, not at
    RA 180 as the mean of the angles; around a pole it is the pole side."""
    ra, dec = mean_sky_position(np.array([359.9999995, 0.0000005, np.nan]), np.array([2.5, 2.5, 1.0]))
    assert min(ra, 360.0 - ra) < 1e-9 and abs(dec - 2.5) < 1e-9
    # A mean a hair below RA 0 is in [0, 360) (``% 360`` alone gives 360.0 there).
    for ras in ([359.9999995, 0.0000005], [359.9, 0.1], [359.99, 0.01]):
        ra, _ = mean_sky_position(np.array(ras), np.array([2.5, 2.5]))
        assert 0.0 <= ra < 360.0, ra
    ra, dec = mean_sky_position(np.array([0.0, 90.0, 180.0, 270.0]), np.array([89.9] * 4))
    assert abs(dec - 90.0) < 1e-6
    ra, dec = mean_sky_position(np.array([10.0, 20.0]), np.array([-30.0, -30.0]))
    assert abs(ra - 15.0) < 1e-9 and -30.1 < dec < -30.0
    assert all(np.isnan(mean_sky_position(np.array([np.nan]), np.array([1.0]))))
    # One position (an object of one epoch) comes back to the last bit, even by a pole.
    assert mean_sky_position(np.array([123.456789012345] * 2), np.array([89.9999999] * 2)) == (
        123.456789012345,
        89.9999999,
    )


def test_sky_separation_across_ra_zero():
    """3.6 arcseconds across RA 0/360 are 3.6 arcseconds (as the plain
    difference of RAs, they were 359.999 degrees)."""
    separation = sky_separation_arcsec(
        np.array([359.9995, 0.0005, 180.0]), np.array([0.0, 0.0, 0.0]), 0.0, 0.0
    )
    np.testing.assert_allclose(separation[:2], [1.8, 1.8], rtol=1e-6)
    assert separation[2] == pytest.approx(180 * 3600)


def test_objects_chosen_by_position_across_ra_zero():
    """--ra 0.0001 finds the object at RA 359.9999 (0.72 arcsec away)."""
    import argparse

    from lsst.analysis.ap.sequences.cli import select_objects

    sources = pd.DataFrame({"diaObjectId": [9, 10], "ra": [359.9999, 180.0], "dec": [0.0, 0.0]})
    args = argparse.Namespace(diaObjectId=[], id_column=None, ra=0.0001, dec=0.0, radius=1.0, most_epochs=0)
    assert select_objects(args, sources) == [9]


def test_object_choices_that_match_nothing_say_which():
    """A position with no DiaObject near it, or --radius alone, is a usage
    error naming what was asked (it was the hint to give objects, or
    --radius was ignored)."""
    import argparse

    from lsst.analysis.ap.sequences.cli import select_objects

    sources = pd.DataFrame({"diaObjectId": [9], "ra": [10.0], "dec": [0.0]})
    asked = dict(diaObjectId=[], id_column=None, most_epochs=0, catalog="x.csv")
    with pytest.raises(
        ValueError, match=r"no DiaObject of catalog x.csv matches --ra 20 --dec 0 --radius 1 \(arcsec\)"
    ):
        select_objects(argparse.Namespace(**asked, ra=20.0, dec=0.0, radius=None), sources)
    with pytest.raises(ValueError, match="--radius needs them"):
        select_objects(argparse.Namespace(**asked, ra=None, dec=None, radius=5.0), sources)
    assert select_objects(argparse.Namespace(**asked, ra=10.0, dec=0.0, radius=None), sources) == [9]
