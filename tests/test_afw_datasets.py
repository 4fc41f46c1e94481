"""afw-era datasets (e.g. ``calexp``, ``*_differenceExp``) whose files were
written by afw are read without afw, through the Butler, by the cutout task.

The real afw-written HSC calexp sub-image of ``tests/data/afw`` is ingested
into a real Butler repository under the old dataset type names.
"""

from __future__ import annotations

from pathlib import Path

import astropy.io.fits as fits
import astropy.wcs
import numpy as np
import pandas as pd
import pytest
from lsst.daf.butler import Butler, DatasetRef, DatasetType, FileDataset
from lsst.images import Box
from PIL import Image

from lsst.analysis.ap.cli import main
from lsst.analysis.ap.images.butler import butler_plane_reader
from lsst.analysis.ap.plotImageSubtractionCutouts import (
    PlotImageSubtractionCutoutsConfig,
    PlotImageSubtractionCutoutsTask,
)

HSC_FILE = Path(__file__).parent / "data" / "afw" / "HSC-0908120-056-small.fits"
DATA_ID = {"instrument": "HSC", "visit": 908120, "detector": 56}
TYPES = ("calexp", "oldDiff_templateExp", "oldDiff_differenceExp")


@pytest.fixture(scope="module")
def afw_repo_root(tmp_path_factory) -> Path:
    """Root of a repository holding the afw file under the old dataset types."""
    root = tmp_path_factory.mktemp("afw") / "repo"
    Butler.makeRepo(str(root))
    butler = Butler.from_config(str(root), writeable=True, run="HSC/runs/old")
    butler.registry.insertDimensionData("instrument", {"name": "HSC"})
    butler.registry.insertDimensionData(
        "physical_filter", {"instrument": "HSC", "name": "HSC-I", "band": "i"}
    )
    butler.registry.insertDimensionData("day_obs", {"instrument": "HSC", "id": 20130317})
    butler.registry.insertDimensionData("detector", {"instrument": "HSC", "id": 56, "full_name": "1_36"})
    butler.registry.insertDimensionData(
        "visit",
        {
            "instrument": "HSC",
            "id": 908120,
            "name": "908120",
            "physical_filter": "HSC-I",
            "day_obs": 20130317,
        },
    )
    for name in TYPES:
        dataset_type = DatasetType(name, tuple(DATA_ID), "ExposureF", universe=butler.dimensions)
        butler.registry.registerDatasetType(dataset_type)
        ref = DatasetRef(dataset_type, DATA_ID, run="HSC/runs/old")
        # The file's datastore record names a formatter that cannot read it,
        # as afw-era formatters cannot be imported without the afw stack.
        butler.ingest(
            FileDataset(path=str(HSC_FILE), refs=[ref], formatter="lsst.images.formatters.GenericFormatter"),
            transfer="copy",
        )
    butler.close()
    return root


@pytest.fixture(scope="module")
def afw_repo(afw_repo_root) -> Butler:
    butler = Butler.from_config(str(afw_repo_root), collections=["HSC/runs/old"])
    yield butler
    butler.close()


def test_plane_reader_reads_afw_file(afw_repo):
    reader = butler_plane_reader(afw_repo, "calexp", DATA_ID)
    assert (reader.bbox.x.start, reader.bbox.y.start, reader.bbox.x.size) == (100, 100, 200)
    box = Box.from_shape((30, 30), start=(150, 120))
    array, array_box = reader.read(box)
    assert array_box == box
    raw = fits.getdata(HSC_FILE, 1)
    np.testing.assert_array_equal(array, raw[50:80, 20:50])
    # Sky positions from astropy's reading of the file's WCS (FK5, as the
    # header says; converted to ICRS) land on the same pixels.
    wcs = astropy.wcs.WCS(fits.getheader(HSC_FILE, 1))
    local = np.array([[10.0, 20.0], [150.5, 99.0], [199.0, 0.0]])
    sky = wcs.pixel_to_world(local[:, 0], local[:, 1]).icrs
    x, y = reader.sky_to_pixel(sky.ra.deg, sky.dec.deg)
    np.testing.assert_allclose(x, local[:, 0] + 100, atol=0.01)
    np.testing.assert_allclose(y, local[:, 1] + 100, atol=0.01)
    reader.release()


def test_task_draws_cutouts_from_afw_datasets(afw_repo, tmp_path):
    wcs = astropy.wcs.WCS(fits.getheader(HSC_FILE, 1))
    sky = wcs.pixel_to_world([100.0, 3.0], [100.0, 150.0]).icrs
    sources = pd.DataFrame(
        {
            "diaSourceId": [1, 2],
            "visit": 908120,
            "detector": 56,
            "ra": sky.ra.deg,
            "dec": sky.dec.deg,
            "instrument": "HSC",
        }
    )
    config = PlotImageSubtractionCutoutsConfig(science_image_type="calexp", diff_image_type="oldDiff")
    task = PlotImageSubtractionCutoutsTask(config=config, output_path=tmp_path)
    result = task.run(sources, afw_repo)
    assert result.written == [1, 2], result.records[["diaSourceId", "reason"]]
    for dia_source_id in (1, 2):
        with Image.open(tmp_path / "images" / "0" / f"{dia_source_id}.png") as image:
            image.load()
    # Source 2 sits 3 px from the image edge: its stamps are padded with no data.
    pixels = np.asarray(Image.open(tmp_path / "images" / "0" / "2.png").convert("RGB"))
    assert (pixels == np.array(task._renderer.no_data_rgb)).all(axis=-1).any()


def test_command_line_connection_overrides_read_afw_datasets(afw_repo, afw_repo_root, tmp_path):
    """``-c connections.<role>=...`` on the command line (pipe_base's override
    machinery, dotted names) selects the afw-era datasets."""
    wcs = astropy.wcs.WCS(fits.getheader(HSC_FILE, 1))
    sky = wcs.pixel_to_world([100.0], [100.0]).icrs
    catalog = tmp_path / "sources.csv"
    pd.DataFrame(
        {"diaSourceId": [7], "visit": 908120, "detector": 56, "ra": sky.ra.deg, "dec": sky.dec.deg}
    ).to_csv(catalog, index=False)
    output = tmp_path / "out"
    argv = [str(afw_repo_root), str(output), "--collections", "HSC/runs/old", "--catalog", str(catalog)]
    for role, name in zip(("science", "template", "difference"), TYPES, strict=True):
        argv += ["-c", f"connections.{role}={name}"]
    assert main([*argv, "--instrument", "HSC", "--no-progress"]) == 0
    assert (output / "images" / "0" / "7.png").stat().st_size > 0
    assert pd.read_csv(output / "failures.csv").empty
    records = pd.read_csv(output / "records.csv")
    assert records["status"].tolist() == ["written"]


def test_display_options_on_the_real_afw_calexp(afw_repo, tmp_path):
    """Marker, mask overlay (afw plane names), north_up and FITS stamps on the
    real HSC calexp, whose SIP WCS and mask planes come from afw."""
    from astropy.nddata import CCDData

    from lsst.analysis.ap.display.decorations import MARKER_RGB
    from lsst.analysis.ap.display.renderer import TripletRenderer

    wcs = astropy.wcs.WCS(fits.getheader(HSC_FILE, 1))
    local = np.array([[35.3, 86.6], [4.2, 150.0]])  # a bright DETECTED star; an edge source
    sky = wcs.pixel_to_world(local[:, 0], local[:, 1]).icrs
    sources = pd.DataFrame(
        {"diaSourceId": [1, 2], "visit": 908120, "detector": 56, "ra": sky.ra.deg, "dec": sky.dec.deg}
    )
    sources["instrument"] = "HSC"
    config = PlotImageSubtractionCutoutsConfig(science_image_type="calexp", diff_image_type="oldDiff")
    config.add_metadata = False
    config.save_fits_stamps = True
    config.display.marker = "reticle"
    config.display.mask_overlay = True
    config.display.mask_overlay_planes = ["DETECTED", "CROSSTALK"]
    task = PlotImageSubtractionCutoutsTask(config=config, output_path=tmp_path / "detector")
    result = task.run(sources, afw_repo)
    assert result.written == [1, 2], result.records[["diaSourceId", "reason"]]
    rgb = np.asarray(Image.open(tmp_path / "detector" / "images" / "0" / "1.png").convert("RGB")).astype(int)
    renderer = TripletRenderer([30], False)
    mask = fits.getdata(HSC_FILE, 2)
    detected = (mask >> fits.getheader(HSC_FILE, 2)["MP_DETECTED"]) & 1 == 1
    for box in renderer.panel_boxes[0]:
        panel = rgb[box.y0 : box.y1, box.x0 : box.x1]
        # The marker lands on the source's position (local x 35.3, y 86.6 -> stamp 14.3, 14.6:
        # the 30-pixel box starts at floor(x - 15 + 1) = 21 and floor(y - 15 + 1) = 72).
        rows, cols = np.nonzero(np.all(panel == MARKER_RGB, axis=-1))
        assert cols.mean() + 0.5 == pytest.approx(14.8 * 8, abs=1.0)
        assert rows.mean() + 0.5 == pytest.approx(240 - 15.1 * 8, abs=1.0)
        # DETECTED (afw blue) blended where the file's DETECTED bit is set.
        stamp_detected = detected[72:102, 21:51][::-1]
        centre = panel[4::8, 4::8]
        blue_side = centre[..., 2] > centre[..., 0]
        assert blue_side[stamp_detected].mean() > 0.95 and not blue_side[~stamp_detected].any()
    # The FITS stamp holds the file's own pixels, bits and variance.
    stamp = CCDData.read(tmp_path / "detector" / "fits" / "0" / "1_sci_30.fits", unit="adu")
    np.testing.assert_array_equal(stamp.data, fits.getdata(HSC_FILE, 1)[72:102, 21:51])
    np.testing.assert_array_equal(stamp.uncertainty.array, fits.getdata(HSC_FILE, 3)[72:102, 21:51])
    sx, sy = stamp.wcs.world_to_pixel(sky[0])
    assert (float(sx), float(sy)) == pytest.approx((35.3 - 21, 86.6 - 72), abs=0.01)
    with fits.open(tmp_path / "detector" / "fits" / "0" / "1_sci_30.fits") as hdus:
        assert hdus["MASK"].header["MP_DETECTED"] == 5 and "BUNIT" not in hdus[0].header
    # north_up on the SIP WCS: resampled, recorded.
    config.display.orientation = "north_up"
    config.save_fits_stamps = False
    task = PlotImageSubtractionCutoutsTask(config=config, output_path=tmp_path / "north_up")
    result = task.run(sources, afw_repo)
    assert result.written == [1, 2] and result.records["resampled"].all()
