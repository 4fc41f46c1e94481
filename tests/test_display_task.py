"""The display options through the task on the real demo Butler repository:
marker and compass positions, orientations, mask overlay, empty panels,
FITS stamps, single stamps and the recorded display limits."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.nddata import CCDData
from PIL import Image

from lsst.analysis.ap.demo.scene import make_visit_geometries
from lsst.analysis.ap.display.compass import compass_geometry
from lsst.analysis.ap.display.decorations import COMPASS_NORTH_RGB, MARKER_RGB
from lsst.analysis.ap.display.renderer import TripletRenderer
from lsst.analysis.ap.geometry import stamp_box
from lsst.analysis.ap.images.butler import PlaneReader
from lsst.analysis.ap.plotImageSubtractionCutouts import (
    PlotImageSubtractionCutoutsConfig,
    PlotImageSubtractionCutoutsTask,
)
from lsst.analysis.ap.stamp_wcs import projection_mappings

SIZE = 30
INSTRUMENT = "DemoCam"
P = 240


@pytest.fixture(scope="module")
def butler(demo_repo):
    with demo_repo.butler() as butler:
        yield butler


@pytest.fixture(scope="module")
def visit_rotation(demo_repo) -> dict[int, float]:
    """The demo's known sky rotation of each visit (degrees)."""
    spec = demo_repo.spec
    return {g.visit: g.rotation_deg for g in make_visit_geometries(spec, np.random.default_rng(spec.seed))}


@pytest.fixture(scope="module")
def sources(demo_sources) -> pd.DataFrame:
    """Sources of two visits, away from and at the image edges."""
    return demo_sources[demo_sources["visit"].isin(demo_sources["visit"].unique()[:2])]


def run(sources, butler, output, **display):
    config = PlotImageSubtractionCutoutsConfig()
    config.whole_read_min_sources = 1
    config.add_metadata = False
    for name, value in display.pop("task", {}).items():
        setattr(config, name, value)
    for name, value in display.items():
        setattr(config.display, name, value)
    config.validate()
    task = PlotImageSubtractionCutoutsTask(config=config, output_path=output)
    return task, task.run(sources, butler)


def png_rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def panel(rgb, box):
    return rgb[box.y0 : box.y1, box.x0 : box.x1]


def stamp_position(butler, row, role_type):
    """Source position in a role's stamp through that image's own WCS,
    computed here from the Butler's sky projection."""
    projection = butler.get(
        role_type, visit=int(row.visit), detector=int(row.detector), instrument=INSTRUMENT
    ).sky_projection
    sky_to_pixel, _ = projection_mappings(projection)
    x, y = (float(v[0]) for v in sky_to_pixel(np.array([row.ra]), np.array([row.dec])))
    box = stamp_box(x, y, SIZE)
    return x - box.x0, y - box.y0


ROLE_TYPES = ("template_detector", "preliminary_visit_image", "difference_image")


def test_marker_and_compass_on_demo_sources(sources, butler, tmp_path, visit_rotation):
    task, result = run(sources, butler, tmp_path / "out", marker="reticle", compass=True)
    renderer = TripletRenderer([SIZE], False, panel_pixels=P)
    records = result.records.set_index("diaSourceId")
    written = [i for i in result.written]
    assert len(written) >= 20
    for dia_source_id in written[:25]:
        row = sources.set_index("diaSourceId").loc[dia_source_id]
        row = pd.Series(row).rename(None)
        row["diaSourceId"] = dia_source_id
        rgb = png_rgb(tmp_path / "out" / records.loc[dia_source_id, "path"])
        theta = math.radians(visit_rotation[int(row.visit)])
        north = (math.sin(theta), math.cos(theta))  # the demo's TAN: North turned by the rotation
        for box, role_type in zip(renderer.panel_boxes[0], ROLE_TYPES, strict=True):
            x, y = stamp_position(butler, row, role_type)
            shown = panel(rgb, box)
            rows, cols = np.nonzero(np.all(shown == MARKER_RGB, axis=-1))
            arms = (np.abs(cols + 0.5 - (x + 0.5) * 8) < 20) & (np.abs(rows + 0.5 - (P - (y + 0.5) * 8)) < 20)
            assert arms.sum() >= 30, dia_source_id
            if 3 < x < SIZE - 4 and 3 < y < SIZE - 4:  # arms all inside the panel
                assert cols[arms].mean() + 0.5 == pytest.approx((x + 0.5) * 8, abs=1.0)
                assert rows[arms].mean() + 0.5 == pytest.approx(P - (y + 0.5) * 8, abs=1.0)
            # North arrow (goldenrod, near the compass origin) along the known rotation.
            origin = compass_geometry(north, (-north[1], north[0]), P).origin
            near = np.hypot(cols + 0.5 - origin[0], rows + 0.5 - origin[1]) < 40
            du, dv = cols[near] + 0.5 - origin[0], -(rows[near] + 0.5 - origin[1])
            far = np.argsort(du**2 + dv**2)[-10:]
            angle = math.degrees(math.atan2(dv[far].mean(), du[far].mean()))
            expected = math.degrees(math.atan2(north[1], north[0]))
            assert abs((angle - expected + 180) % 360 - 180) < 8, (dia_source_id, angle, expected)
    assert not records["resampled"].any()
    limits = json.loads(records.loc[written[0], "display_limits"])
    assert set(limits) == {"template", "science", "difference"} and len(limits["science"]) == 1


def test_cardinal_and_north_up_bring_north_up(sources, butler, tmp_path, visit_rotation):
    for orientation in ("cardinal", "north_up"):
        _, result = run(sources, butler, tmp_path / orientation, compass=True, orientation=orientation)
        records = result.records.set_index("diaSourceId")
        assert records.loc[result.written, "resampled"].all() == (orientation == "north_up")
        renderer = TripletRenderer([SIZE], False, panel_pixels=P)
        for dia_source_id in result.written[:10]:
            rgb = png_rgb(tmp_path / orientation / records.loc[dia_source_id, "path"])
            for box in renderer.panel_boxes[0]:
                shown = panel(rgb, box)
                rows, cols = np.nonzero(np.all(shown == COMPASS_NORTH_RGB, axis=-1))
                near = (cols > P - 100) & (rows < 100)
                du, dv = cols[near] + 0.5 - (P - 2.2 * 24), -(rows[near] + 0.5 - 2.2 * 24)
                far = np.argsort(du**2 + dv**2)[-10:]
                angle = math.degrees(math.atan2(dv[far].mean(), du[far].mean()))
                tolerance = 8 if orientation == "north_up" else 45 + 8
                assert abs(angle - 90) < tolerance, (orientation, dia_source_id, angle)


def test_mask_overlay_reads_the_mask_only_when_on(sources, butler, tmp_path, monkeypatch):
    calls = []
    original = PlaneReader.read_component

    def counting(self, box, component):
        calls.append(component)
        return original(self, box, component)

    monkeypatch.setattr(PlaneReader, "read_component", counting)
    subset = sources.head(6)
    run(subset, butler, tmp_path / "plain")
    assert calls == []
    task, result = run(
        subset, butler, tmp_path / "overlay", mask_overlay=True, mask_overlay_planes=["DETECTED"]
    )
    assert "mask" in calls and "variance" not in calls
    plain = png_rgb(tmp_path / "plain" / result.records["path"].iloc[0])
    shown = png_rgb(tmp_path / "overlay" / result.records["path"].iloc[0])
    assert shown.shape[0] > plain.shape[0]  # legend below
    # DETECTED (afw blue) blended over the source in the difference panel.
    renderer = TripletRenderer([SIZE], False, panel_pixels=P)
    centre = panel(shown, renderer.panel_boxes[0][1])[
        P // 2 - 4 : P // 2 + 4, P // 2 - 4 : P // 2 + 4
    ].astype(int)
    assert np.all(centre[..., 2] > centre[..., 0])


def test_fits_and_single_stamps_read_back(sources, butler, tmp_path):
    subset = sources.head(5)
    output = tmp_path / "out"
    task, result = run(
        subset,
        butler,
        output,
        task={"save_fits_stamps": True, "single_stamps": True, "save_as_numpy": True},
    )
    layout = task._cutouter().layout
    for dia_source_id in result.written:
        row = subset.set_index("diaSourceId").loc[dia_source_id]
        for tag, role_type in zip(("temp", "sci", "diff"), ROLE_TYPES, strict=True):
            path = output / layout.fits_relpath(dia_source_id, tag, SIZE)
            array = np.load(output / layout.numpy_relpath(dia_source_id, tag, SIZE))[0]  # (1, size, size)
            ccd = CCDData.read(path)
            np.testing.assert_array_equal(ccd.data, array)
            assert str(ccd.unit) == "nJy"
            image = butler.get(
                role_type, visit=int(row.visit), detector=int(row.detector), instrument=INSTRUMENT
            )
            with fits.open(path) as hdus:
                x0, y0 = hdus[0].header["CUTMINX"] + 1, hdus[0].header["CUTMINY"] + 1
                names = {k[3:]: v for k, v in hdus["MASK"].header.items() if k.startswith("MP_")}
                bits = hdus["MASK"].data
                variance = hdus["UNCERT"].data
            y_slice = slice(max(y0, 0), y0 + SIZE)
            x_slice = slice(max(x0, 0), x0 + SIZE)
            for name, bit in names.items():
                expected = image.mask.get(name)[y_slice, x_slice]
                got = ((bits >> bit) & 1 == 1)[y_slice.start - y0 :, x_slice.start - x0 :]
                np.testing.assert_array_equal(got[: expected.shape[0], : expected.shape[1]], expected)
            expected_var = image.variance.array[y_slice, x_slice]
            np.testing.assert_array_equal(
                variance[y_slice.start - y0 :, x_slice.start - x0 :][
                    : expected_var.shape[0], : expected_var.shape[1]
                ],
                expected_var,
            )
            sky_to_pixel, _ = projection_mappings(image.sky_projection)
            x, y = (float(v[0]) for v in sky_to_pixel(np.array([row.ra]), np.array([row.dec])))
            sx, sy = ccd.wcs.world_to_pixel_values(row.ra, row.dec)
            assert (float(sx), float(sy)) == pytest.approx((x - x0, y - y0), abs=0.01)
            single = Image.open(output / layout.single_stamp_relpath(dia_source_id, tag, SIZE))
            assert single.size == (SIZE, SIZE)


def test_source_with_an_empty_template_is_drawn(demo_sources, butler, tmp_path):
    # The demo holds a source whose template stamp has no data.
    _, result = run(demo_sources, butler, tmp_path / "out")
    assert "no_data" not in set(result.records["reason_code"])
    renderer = TripletRenderer([SIZE], False, panel_pixels=P)
    found = 0
    for path in result.records.loc[result.records["status"] == "written", "path"]:
        rgb = png_rgb(tmp_path / "out" / path)
        template = panel(rgb, renderer.panel_boxes[0][0])
        if np.all(template[: P // 3] == renderer.no_data_rgb):
            found += 1
            assert not np.all(template == renderer.no_data_rgb)  # labelled
    assert found >= 1


def test_command_line_sets_display_options(demo_repo, tmp_path):
    """``-c display.<field>=<value>`` reaches the task; a bad value is a clear
    configuration error with exit status 2 or more."""
    import subprocess
    import sys

    out = tmp_path / "cli"
    base = [
        sys.executable,
        "-c",
        "import sys; from lsst.analysis.ap.cli import main; sys.exit(main())",
        str(demo_repo.root),
        str(out),
        "--collections",
        demo_repo.collection,
        "--sqlitefile",
        str(demo_repo.apdb_file),
        "--all",
    ]
    done = subprocess.run(
        base
        + ["-c", "display.orientation=north_up", "-c", "display.marker=ticks", "-c", "save_fits_stamps=True"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    records = pd.read_csv(out / "records.csv")
    written = records[records["status"] == "written"]
    assert len(written) > 10 and written["resampled"].all()
    assert len(list((out / "fits").rglob("*.fits"))) == 3 * len(written)
    bad = subprocess.run(
        base + ["-c", "display.difference_interval_params={'window': 3}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert bad.returncode != 0 and "difference_interval_params" in bad.stderr
