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
from lsst.images import XY, Box, MaskedImage

from lsst.analysis.ap.demo import DIA_SOURCE_TYPE, build_demo_repo
from lsst.analysis.ap.demo_scene import MASK_PLANES, DemoSpec
from lsst.analysis.ap.sources import load_apdb_sources

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
    apdb = load_apdb_sources(sqlitefile=demo_repo.apdb_file)
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
    assert isinstance(science, MaskedImage)
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


def test_build_is_deterministic_and_refuses_existing(tmp_path):
    spec = DemoSpec(n_visits=1, n_detectors=1, image_size=96, objects_per_detector=3, stars_per_detector=10)
    a = build_demo_repo(tmp_path / "a", spec, apdb=False)
    b = build_demo_repo(tmp_path / "b", spec, apdb=False)
    pd.testing.assert_frame_equal(a.sources(), b.sources())
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
