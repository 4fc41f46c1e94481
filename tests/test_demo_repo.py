"""The demo repository: real Butler datasets, real APDB, bbox reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.coordinates import SkyCoord
from lsst.daf.butler import Butler
from lsst.images import XY, Box, DifferenceImage, MaskedImage, VisitImage
from lsst.images.psfs import GaussianPointSpreadFunction

from lsst.analysis.ap.apdb import ApdbDiaSourceReader, make_apdb_config
from lsst.analysis.ap.demo import DIA_SOURCE_TYPE, build_demo_repo
from lsst.analysis.ap.demo.camera import PIXEL_SIZE_MM, make_amplifiers, make_camera_frame_set, make_detector
from lsst.analysis.ap.demo.scene import (
    MASK_PLANES,
    DemoSpec,
    make_sky,
    make_visit_geometries,
    simulate_detector,
)

IMAGE_TYPES = ("preliminary_visit_image", "template_detector", "difference_image")
BUTLER = [sys.executable, "-m", "lsst.daf.butler.cli.butler"]


def test_query_datasets_lists_every_visit_detector(demo_repo):
    expected = {(v, d) for v in demo_repo.spec.visits for d in demo_repo.spec.detectors}
    assert set(demo_repo.data_ids) == expected
    for dataset_type in (*IMAGE_TYPES, DIA_SOURCE_TYPE):
        out = subprocess.run(
            [
                "butler",
                "query-datasets",
                str(demo_repo.root),
                dataset_type,
                "--collections",
                demo_repo.collection,
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(sys.executable).parent,
            env={"PATH": str(Path(sys.executable).parent)},
        ).stdout
        found = set()
        for line in out.splitlines():
            parts = line.split()
            if parts and parts[0] == dataset_type:
                # columns: type run id instrument detector visit ...
                found.add((int(parts[5]), int(parts[4])))
        assert found == expected, dataset_type


def test_dimension_records_have_regions(demo_repo):
    with demo_repo.butler() as butler:
        visits = list(butler.query_dimension_records("visit"))
        assert {v.id for v in visits} == set(demo_repo.spec.visits)
        assert all(v.region is not None and v.physical_filter == "r_demo" for v in visits)
        regions = list(butler.query_dimension_records("visit_detector_region"))
        assert len(regions) == len(demo_repo.data_ids)
        sources = demo_repo.sources()
        # Every DiaSource lies inside its visit_detector_region's sky polygon.
        from lsst.sphgeom import LonLat, UnitVector3d

        by_key = {(r.visit, r.detector): r.region for r in regions}
        inside = [
            by_key[(s.visit, s.detector)].contains(UnitVector3d(LonLat.fromDegrees(s.ra, s.dec)))
            for s in sources.itertuples()
        ]
        assert np.mean(inside) == 1.0


def test_apdb_returns_the_butler_sources(demo_repo, demo_sources):
    with ApdbDiaSourceReader(make_apdb_config(sqlitefile=demo_repo.apdb_file)) as reader:
        apdb = reader.read()
        assert reader.instrument == demo_repo.spec.instrument
    assert len(apdb) == len(demo_sources)
    merged = demo_sources.merge(apdb, on="diaSourceId", suffixes=("", "_apdb"))
    assert len(merged) == len(demo_sources)
    for column in ("visit", "detector", "diaObjectId", "ra", "dec", "psfFlux", "pixelFlags_edge", "bboxSize"):
        np.testing.assert_allclose(
            merged[column].astype(float), merged[f"{column}_apdb"].astype(float), rtol=1e-6, err_msg=column
        )


def test_apdb_api_query(demo_repo, demo_sources):
    """Through lsst.dax.apdb itself: DiaSources of all objects in the field."""
    import astropy.time
    from lsst.dax.apdb import Apdb
    from lsst.sphgeom import Angle, Circle, LonLat, UnitVector3d

    apdb = Apdb.from_uri(str(demo_repo.apdb_config))
    centre = UnitVector3d(LonLat.fromDegrees(demo_sources.ra.mean(), demo_sources.dec.mean()))
    region = Circle(centre, Angle.fromDegrees(0.5))
    found = apdb.getDiaSources(region, None, astropy.time.Time(61010, format="mjd", scale="tai"))
    assert set(found["diaSourceId"]) == set(demo_sources["diaSourceId"])


def test_sources_have_apdb_columns_and_units(demo_sources):
    schema = pd.read_csv(Path(__file__).parent / "data" / "apdb_DiaSource_columns.csv")
    required = set(schema.loc[~schema["nullable"], "name"]) - {"pixelId"}
    assert required <= set(demo_sources.columns)
    flags = [c for c in schema["name"] if c.startswith("pixelFlags")]
    assert set(flags) <= set(demo_sources.columns)
    assert demo_sources["diaSourceId"].is_unique
    # The same DiaObject is seen in several visits.
    visits_per_object = demo_sources.groupby("diaObjectId")["visit"].nunique()
    assert (visits_per_object >= 2).sum() >= 3
    # Transients of every kind: positive, negative (fading) and dipoles.
    assert (demo_sources["psfFlux"] > 0).any() and (demo_sources["psfFlux"] < 0).any()
    assert demo_sources["isDipole"].any()
    # Sources on and across the image edge, flagged as such.
    assert demo_sources["pixelFlags_edge"].sum() >= len(demo_sources["visit"].unique())


def test_flags_agree_with_masks(demo_repo, demo_sources):
    with demo_repo.butler() as butler:
        for (visit, detector), sources in demo_sources.groupby(["visit", "detector"]):
            mi = butler.get("difference_image", instrument="DemoCam", visit=visit, detector=detector)
            for plane, column in (("EDGE", "pixelFlags_edge"), ("SAT", "pixelFlags_saturated")):
                mask = mi.mask.get(plane)
                for s in sources.itertuples():
                    half = int(s.bboxSize) // 2
                    ix, iy = int(round(s.x)), int(round(s.y))
                    window = mask[max(iy - half, 0) : iy + half + 1, max(ix - half, 0) : ix + half + 1]
                    assert bool(window.any()) == bool(getattr(s, column)), (s.diaSourceId, plane)


def test_images_are_consistent(demo_repo):
    with demo_repo.butler() as butler:
        visit, detector = demo_repo.data_ids[0]
        data_id = {"instrument": "DemoCam", "visit": visit, "detector": detector}
        science = butler.get("preliminary_visit_image", data_id)
        template = butler.get("template_detector", data_id)
        difference = butler.get("difference_image", data_id)
    assert isinstance(science, VisitImage) and isinstance(difference, DifferenceImage)
    assert type(template) is MaskedImage
    assert set(MASK_PLANES) <= set(science.mask.schema.names)
    expected = science.image.array - template.image.array
    np.testing.assert_allclose(difference.image.array, expected, rtol=1e-6, atol=1e-2, equal_nan=True)
    nodata = template.mask.get("NO_DATA")
    assert nodata.any() and np.isnan(template.image.array[nodata]).all()
    for plane in ("SAT", "CR", "EDGE", "INTRP", "SUSPECT", "DETECTED", "BAD"):
        assert science.mask.get(plane).any(), plane

    # The template is less noisy than the science image (robust sigma of the sky).
    def sky_sigma(a):
        a = a[np.isfinite(a)]
        return 1.4826 * np.median(np.abs(a - np.median(a)))

    assert sky_sigma(template.image.array) < sky_sigma(science.image.array)


def test_visits_have_distinct_rotations(demo_repo):
    with demo_repo.butler() as butler:
        angles = []
        for visit in demo_repo.spec.visits:
            proj = butler.get(
                "preliminary_visit_image.sky_projection", instrument="DemoCam", visit=visit, detector=0
            )
            a, b = proj.pixel_to_sky(XY(np.array([100.0, 150.0]), np.array([100.0, 100.0])))
            angles.append(a.position_angle(b).deg)
    assert len({round(a) for a in angles}) == len(angles)


def test_bbox_read_returns_sub_image(demo_repo):
    visit, detector = demo_repo.data_ids[0]
    data_id = {"instrument": "DemoCam", "visit": visit, "detector": detector}
    box = Box.from_shape((30, 30), start=(40, 70))
    with demo_repo.butler() as butler:
        sub = butler.get("difference_image", data_id, parameters={"bbox": box})
        full = butler.get("difference_image", data_id)
    assert sub.bbox == box and sub.image.array.shape == (30, 30)
    np.testing.assert_array_equal(sub.image.array, full.image.array[40:70, 70:100])
    # The sub-image keeps the parent's sky projection.
    sky = full.sky_projection.pixel_to_sky(XY(85.0, 55.0))
    sub_sky = sub.sky_projection.pixel_to_sky(XY(85.0, 55.0))
    assert sky.separation(sub_sky).arcsec < 1e-6
    assert isinstance(sky, SkyCoord)


STORAGE_CLASSES = {
    "preliminary_visit_image": ("VisitImage", VisitImage),
    "template_detector": ("MaskedImageV2", MaskedImage),
    "difference_image": ("DifferenceImage", DifferenceImage),
}


@pytest.mark.parametrize("dataset_type", IMAGE_TYPES)
def test_storage_classes_and_components(demo_repo, dataset_type):
    """What the cutout code reads: bbox reads and the image, bbox and
    sky_projection components, for every image type.
    """
    storage_class, python_type = STORAGE_CLASSES[dataset_type]
    visit, detector = demo_repo.data_ids[-1]
    box = Box.from_shape((21, 17), start=(100, 3))
    with demo_repo.butler() as butler:
        ref = butler.find_dataset(dataset_type, instrument="DemoCam", visit=visit, detector=detector)
        assert ref.datasetType.storageClass_name == storage_class
        full = butler.get(ref)
        sub = butler.get(ref, parameters={"bbox": box})
        image = butler.get(ref.makeComponentRef("image"), parameters={"bbox": box})
        bbox = butler.get(ref.makeComponentRef("bbox"))
        projection = butler.get(ref.makeComponentRef("sky_projection"))
    assert type(full) is python_type and type(sub) is python_type
    assert sub.bbox == box == image.bbox and bbox == full.bbox
    np.testing.assert_array_equal(image.array, full.image.array[100:121, 3:20])
    np.testing.assert_array_equal(sub.image.array, full.image.array[100:121, 3:20])
    np.testing.assert_array_equal(sub.mask.array, full.mask.array[100:121, 3:20])
    assert projection.pixel_frame.detector == detector and projection.pixel_frame.visit == visit
    sky = projection.pixel_to_sky(XY(10.0, 110.0))
    assert sky.separation(sub.sky_projection.pixel_to_sky(XY(10.0, 110.0))).arcsec < 1e-6
    if python_type is not MaskedImage:
        # Sub-images keep every visit-level component.
        assert sub.psf == full.psf and sub.detector == full.detector and sub.obs_info == full.obs_info


@pytest.mark.parametrize("dataset_type", ["preliminary_visit_image", "difference_image"])
def test_visit_components(demo_repo, dataset_type):
    spec = demo_repo.spec
    geometries = make_visit_geometries(spec, np.random.default_rng(spec.seed))
    frames = make_camera_frame_set(spec)
    with demo_repo.butler() as butler:
        for geometry in geometries:
            for detector in spec.detectors:
                ref = butler.find_dataset(
                    dataset_type, instrument="DemoCam", visit=geometry.visit, detector=detector
                )
                psf = butler.get(ref.makeComponentRef("psf"))
                camera_detector = butler.get(ref.makeComponentRef("detector"))
                obs_info = butler.get(ref.makeComponentRef("obs_info"))
                assert isinstance(psf, GaussianPointSpreadFunction)
                assert psf.sigma == pytest.approx(geometry.psf_sigma, rel=1e-12)
                assert psf.kernel_bbox.x.size % 2 == 1
                assert camera_detector.id == detector and camera_detector.visit == geometry.visit
                assert camera_detector == make_detector(spec, detector, frames, visit=geometry.visit)
                amplifiers = camera_detector.amplifiers
                assert [a.name for a in amplifiers] == [f"C{r}{c}" for r in range(2) for c in range(4)]
                assert sum(a.bbox.x.size * a.bbox.y.size for a in amplifiers) == spec.image_size**2
                assert obs_info.physical_filter == "r_demo" and obs_info.instrument == "DemoCam"
                assert obs_info.visit_id == geometry.visit and obs_info.detector_num == detector
        full = butler.get(dataset_type, instrument="DemoCam", visit=geometries[0].visit, detector=0)
    assert full.band == "r" and full.physical_filter == "r_demo"
    assert full.summary_stats.psfSigma == pytest.approx(geometries[0].psf_sigma)


def test_camera_geometry_matches_the_wcs(demo_repo):
    """Pixels → focal plane follows the detector grid (10 µm pixels), and
    the field angle from the boresight is the sky separation from the WCS
    tangent point (0.2"/px plate scale).
    """
    spec = demo_repo.spec
    geometry = make_visit_geometries(spec, np.random.default_rng(spec.seed))[1]
    with demo_repo.butler() as butler:
        detectors = {
            d: butler.get(
                "preliminary_visit_image.detector", instrument="DemoCam", visit=geometry.visit, detector=d
            )
            for d in spec.detectors
        }
    centre = (spec.image_size - 1) / 2
    x = np.array([0.0, centre, spec.image_size - 1.0, 17.0])
    y = np.array([0.0, centre, 5.0, spec.image_size - 1.0])
    boresight = SkyCoord(geometry.ra, geometry.dec, unit="deg")
    for d, detector in detectors.items():
        assert detector.pixel_size == PIXEL_SIZE_MM and detector.bbox.x.size == spec.image_size
        fp = detector.to_focal_plane.apply_forward(x=x, y=y)
        orientation = detector.orientation
        np.testing.assert_allclose(fp.x, orientation.focal_plane_x + (x - centre) * PIXEL_SIZE_MM, atol=1e-12)
        np.testing.assert_allclose(fp.y, orientation.focal_plane_y + (y - centre) * PIXEL_SIZE_MM, atol=1e-12)
        field_angle = detector.to_field_angle.apply_forward(x=x, y=y)
        ra, dec = geometry.wcs[d].all_pix2world(x, y, 0)
        separation = SkyCoord(ra, dec, unit="deg").separation(boresight).rad
        np.testing.assert_allclose(np.hypot(field_angle.x, field_angle.y), separation, rtol=1e-6)
    # Detectors sit side by side on the grid, a 40-pixel gap apart.
    if len(detectors) > 1:
        pitch = detectors[1].orientation.focal_plane_x - detectors[0].orientation.focal_plane_x
        assert pitch == pytest.approx((spec.image_size + 40) * PIXEL_SIZE_MM)


@pytest.mark.parametrize("size", [96, 97, 256])
def test_amplifiers_tile_the_detector(size):
    bbox = Box.from_shape((size, size))
    amplifiers = make_amplifiers(bbox)
    covered = np.zeros((size, size), int)
    for amplifier in amplifiers:
        covered[amplifier.bbox.y.slice_within(bbox.y), amplifier.bbox.x.slice_within(bbox.x)] += 1
        raw = amplifier.assembled_raw_geometry
        assert raw.data_bbox.y.size == amplifier.bbox.y.size and raw.data_bbox.x.size == amplifier.bbox.x.size
        for part in (raw.data_bbox, raw.serial_overscan_bbox, raw.parallel_overscan_bbox, raw.prescan_bbox):
            assert raw.bbox.contains(part)
        assert amplifier.readout_corner == ("UL" if amplifier.name.startswith("C1") else "LL")
    assert (covered == 1).all()


def test_pixels_round_trip(demo_repo):
    """The images read back are exactly what the simulation made (the
    first scene, re-simulated from the seed as `build_demo_repo` does).
    """
    spec = demo_repo.spec
    rng = np.random.default_rng(spec.seed)
    geometries = make_visit_geometries(spec, rng)
    stars, objects = make_sky(spec, rng)
    scene = simulate_detector(spec, geometries[0], 0, spec.detectors[0], stars, objects, rng)
    data_id = {"instrument": "DemoCam", "visit": scene.visit, "detector": scene.detector}
    with demo_repo.butler() as butler:
        for dataset_type, image, variance, planes in (
            ("preliminary_visit_image", scene.science, scene.science_variance, scene.science_planes),
            ("template_detector", scene.template, scene.template_variance, scene.template_planes),
            ("difference_image", scene.difference, scene.difference_variance, scene.difference_planes),
        ):
            stored = butler.get(dataset_type, data_id)
            np.testing.assert_array_equal(stored.image.array, image, err_msg=dataset_type)
            np.testing.assert_array_equal(stored.variance.array, variance, err_msg=dataset_type)
            for name, plane in planes.items():
                np.testing.assert_array_equal(stored.mask.get(name), plane, err_msg=f"{dataset_type} {name}")
    pd.testing.assert_frame_equal(
        demo_repo.sources().query(f"visit == {scene.visit} and detector == 0").reset_index(drop=True),
        scene.sources.reset_index(drop=True),
        check_dtype=False,
    )


def test_build_is_deterministic_and_refuses_existing(tmp_path):
    spec = DemoSpec(n_visits=1, n_detectors=1, image_size=96, objects_per_detector=3, stars_per_detector=10)
    a = build_demo_repo(tmp_path / "a", spec, apdb=False)
    b = build_demo_repo(tmp_path / "b", spec, apdb=False)
    pd.testing.assert_frame_equal(a.sources(), b.sources())
    data_id = {"instrument": "DemoCam", "visit": spec.visits[0], "detector": 0}
    with a.butler() as butler_a, b.butler() as butler_b:
        for dataset_type in IMAGE_TYPES:
            image_a, image_b = butler_a.get(dataset_type, data_id), butler_b.get(dataset_type, data_id)
            np.testing.assert_array_equal(image_a.image.array, image_b.image.array)
            np.testing.assert_array_equal(image_a.mask.array, image_b.mask.array)
            if dataset_type != "template_detector":
                assert image_a.psf == image_b.psf and image_a.detector == image_b.detector
                assert image_a.obs_info == image_b.obs_info
    with pytest.raises(FileExistsError, match="already holds a Butler repository"):
        build_demo_repo(tmp_path / "a", spec)


def test_command_line_builder(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from lsst.analysis.ap.demo import main; main()",
            str(tmp_path / "r"),
            "--visits",
            "1",
            "--detectors",
            "1",
            "--size",
            "96",
            "--objects",
            "2",
            "--no-apdb",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"Demo repository: {tmp_path / 'r'}" in out
    assert Butler.from_config(str(tmp_path / "r")).query_datasets(
        "difference_image", collections="DemoCam/runs/demo"
    )
