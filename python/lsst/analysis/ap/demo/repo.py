"""Build the demo Butler repository and APDB.

The demo repository is the embedded default input of the cutout job and the
fixture of the tests: a local SQLite Butler repository holding science,
template and difference images and a DiaSource table for every
visit × detector of a simulated camera, with the same DiaSources stored in
an APDB (SQLite).  ``makeCutoutDemoRepo PATH`` builds one from the command
line; `build_demo_repo` does it from Python.

As in Rubin repositories, science images are `lsst.images.VisitImage`
(storage class ``VisitImage``), differences `lsst.images.DifferenceImage`
(``DifferenceImage``) and templates `lsst.images.MaskedImage`
(``MaskedImageV2``).  Science and difference carry the visit's Gaussian PSF,
its `~astro_metadata_translator.ObservationInfo` and the detector of the
demo camera (`lsst.analysis.ap.demo.camera`).
"""

from __future__ import annotations

__all__ = (
    "DEFAULT_COLLECTION",
    "DemoRepo",
    "DemoSpec",
    "build_demo_repo",
    "main",
    "store_apdb_sources",
)

import argparse
import dataclasses
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import astropy.time
import astropy.units as u
import numpy as np
import pandas as pd
from astro_metadata_translator import ObservationInfo
from astropy.coordinates import SkyCoord
from lsst.daf.butler import Butler, DatasetType, Timespan
from lsst.images import (
    Box,
    DetectorFrame,
    DifferenceImage,
    Image,
    Mask,
    MaskedImage,
    MaskPlane,
    MaskSchema,
    ObservationSummaryStats,
    SkyProjection,
    VisitImage,
)
from lsst.images.cameras import CameraFrameSet, Detector
from lsst.images.psfs import GaussianPointSpreadFunction
from lsst.sphgeom import ConvexPolygon, LonLat, UnitVector3d

from ..datasets import (
    DEFAULT_DIA_SOURCE_TYPE,
    DEFAULT_DIFFERENCE_TYPE,
    DEFAULT_SCIENCE_TYPE,
    DEFAULT_TEMPLATE_TYPE,
)
from ..display.annotation import AB_ZEROPOINT_NJY
from .camera import RAFT, detector_name, make_camera_frame_set, make_detector
from .scene import (
    EXPOSURE_TIME,
    MASK_PLANES,
    PIXEL_SCALE_ARCSEC,
    DemoSpec,
    DetectorScene,
    VisitGeometry,
    make_sky,
    make_visit_geometries,
    simulate_detector,
)

_LOG = logging.getLogger(__name__)

DEFAULT_COLLECTION = "DemoCam/runs/demo"
"""RUN collection holding every demo dataset."""

SCIENCE_TYPE = DEFAULT_SCIENCE_TYPE
TEMPLATE_TYPE = DEFAULT_TEMPLATE_TYPE
DIFFERENCE_TYPE = DEFAULT_DIFFERENCE_TYPE
DIA_SOURCE_TYPE = DEFAULT_DIA_SOURCE_TYPE
IMAGE_DIMENSIONS = ("instrument", "visit", "detector")
STORAGE_CLASSES = {
    SCIENCE_TYPE: "VisitImage",
    TEMPLATE_TYPE: "MaskedImageV2",
    DIFFERENCE_TYPE: "DifferenceImage",
}
"""Storage class of each image dataset type, as in Rubin repositories."""


@dataclasses.dataclass(frozen=True)
class DemoRepo:
    """What `build_demo_repo` made.

    Attributes
    ----------
    root : `pathlib.Path`
        Root of the Butler repository.
    collection : `str`
        RUN collection with every demo dataset.
    apdb_config : `pathlib.Path`
        Path of the APDB configuration file (pass to `lsst.dax.apdb.Apdb.from_uri`).
    apdb_file : `pathlib.Path`
        Path of the APDB SQLite file.
    spec : `DemoSpec`
        The specification it was built from.
    n_sources : `int`
        Number of DiaSources written.
    data_ids : `tuple` [`tuple` [`int`, `int`], ...]
        ``(visit, detector)`` pairs with images and sources.

    """

    root: Path
    collection: str
    apdb_config: Path
    apdb_file: Path
    spec: DemoSpec
    n_sources: int
    data_ids: tuple[tuple[int, int], ...]

    def butler(self, writeable: bool = False) -> Butler:
        """A Butler on the demo repository with the demo collection.

        Parameters
        ----------
        writeable : `bool`, optional
            Open it writeable.

        Returns
        -------
        butler : `lsst.daf.butler.Butler`
            The Butler (close it, or use it as a context manager).

        """
        return Butler.from_config(str(self.root), collections=[self.collection], writeable=writeable)

    def sources(self) -> pd.DataFrame:
        """All demo DiaSources, read back from the Butler tables.

        Returns
        -------
        sources : `pandas.DataFrame`
            The sources, ordered by ``diaSourceId``.

        """
        with self.butler() as butler:
            frames = [
                butler.get(ref) for ref in butler.query_datasets(DIA_SOURCE_TYPE, collections=self.collection)
            ]
        return pd.concat(frames, ignore_index=True).sort_values("diaSourceId", ignore_index=True)


def _register_dimensions(butler: Butler, spec: DemoSpec, geometries: list[VisitGeometry]) -> None:
    registry = butler.registry
    registry.insertDimensionData(
        "instrument",
        {
            "name": spec.instrument,
            "detector_max": max(spec.detectors) + 1,
            "visit_max": 10_000_000,
            "exposure_max": 10_000_000,
        },
    )
    registry.insertDimensionData(
        "physical_filter",
        *[{"instrument": spec.instrument, "name": f"{band}_demo", "band": band} for band in spec.all_bands],
    )
    registry.insertDimensionData(
        "detector",
        *[
            {
                "instrument": spec.instrument,
                "id": detector,
                "full_name": detector_name(detector),
                "raft": RAFT,
                "name_in_raft": detector_name(detector),
                "purpose": "SCIENCE",
            }
            for detector in spec.detectors
        ],
    )
    for geometry in geometries:
        begin, end = _visit_times(geometry)
        day_obs = _day_obs(begin)
        registry.syncDimensionData(
            "day_obs",
            {"instrument": spec.instrument, "id": day_obs, "timespan": Timespan(begin - 12 * u.hour, None)},
        )
        regions = {
            detector: _detector_region(geometry, detector, spec.image_size) for detector in spec.detectors
        }
        corners = [vertex for region in regions.values() for vertex in region.getVertices()]
        registry.insertDimensionData(
            "visit",
            {
                "instrument": spec.instrument,
                "id": geometry.visit,
                "name": f"demo_{geometry.visit}",
                "physical_filter": spec.physical_filter_of(geometry.visit),
                "day_obs": day_obs,
                "exposure_time": EXPOSURE_TIME,
                "target_name": "demo field",
                "observation_reason": "science",
                "science_program": "demo",
                "region": ConvexPolygon.convexHull(corners),
                "timespan": Timespan(begin, end),
            },
        )
        registry.insertDimensionData(
            "visit_detector_region",
            *[
                {
                    "instrument": spec.instrument,
                    "visit": geometry.visit,
                    "detector": detector,
                    "region": region,
                }
                for detector, region in regions.items()
            ],
        )


def _visit_times(geometry: VisitGeometry) -> tuple[astropy.time.Time, astropy.time.Time]:
    """Start and end (TAI) of a visit's exposure."""
    begin = astropy.time.Time(geometry.mjd, format="mjd", scale="tai")
    return begin, begin + EXPOSURE_TIME * u.s


def _day_obs(begin: astropy.time.Time) -> int:
    """Observing day (YYYYMMDD, rolling over at noon) of a time."""
    return int((begin - 12 * u.hour).strftime("%Y%m%d"))


def _detector_region(geometry: VisitGeometry, detector: int, size: int) -> ConvexPolygon:
    """Sky polygon through the outer corners of a detector."""
    wcs = geometry.wcs[detector]
    x = np.array([-0.5, size - 0.5, size - 0.5, -0.5])
    y = np.array([-0.5, -0.5, size - 0.5, size - 0.5])
    ra, dec = wcs.all_pix2world(x, y, 0)
    return ConvexPolygon([UnitVector3d(LonLat.fromDegrees(a, d)) for a, d in zip(ra, dec, strict=True)])


def _register_dataset_types(butler: Butler) -> None:
    universe = butler.dimensions
    for name, storage_class in STORAGE_CLASSES.items():
        butler.registry.registerDatasetType(
            DatasetType(name, IMAGE_DIMENSIONS, storage_class, universe=universe)
        )
    butler.registry.registerDatasetType(
        DatasetType(DIA_SOURCE_TYPE, IMAGE_DIMENSIONS, "DataFrame", universe=universe)
    )


def _masked_image(
    image: np.ndarray,
    variance: np.ndarray,
    planes: dict[str, np.ndarray],
    projection: SkyProjection,
    bbox: Box,
) -> MaskedImage:
    schema = MaskSchema([MaskPlane(name, doc) for name, doc in MASK_PLANES.items()])
    mask = Mask(schema=schema, bbox=bbox)
    for name, plane in planes.items():
        mask.set(name, plane)
    return MaskedImage(
        Image(image, bbox=bbox, unit=u.nJy, sky_projection=projection),
        mask=mask,
        variance=Image(variance, bbox=bbox, unit=u.nJy**2),
    )


def _obs_info(spec: DemoSpec, geometry: VisitGeometry, detector: Detector) -> ObservationInfo:
    """Standardized observation metadata of one visit and detector."""
    begin, end = _visit_times(geometry)
    exposure_time = EXPOSURE_TIME * u.s
    return ObservationInfo(
        telescope="Demo Telescope",
        instrument=spec.instrument,
        exposure_id=geometry.visit,
        visit_id=geometry.visit,
        physical_filter=spec.physical_filter_of(geometry.visit),
        datetime_begin=begin,
        datetime_end=end,
        exposure_time=exposure_time,
        exposure_time_requested=exposure_time,
        dark_time=exposure_time,
        boresight_rotation_angle=geometry.rotation_deg * u.deg,
        boresight_rotation_coord="sky",
        tracking_radec=SkyCoord(geometry.ra, geometry.dec, unit="deg", frame="icrs"),
        detector_num=detector.id,
        detector_name=detector.name,
        detector_unique_name=f"{RAFT}_{detector.name}",
        detector_serial=detector.serial,
        detector_group=RAFT,
        detector_exposure_id=geometry.visit * (max(spec.detectors) + 1) + detector.id,
        object="demo field",
        science_program="demo",
        observation_type="science",
        observation_reason="science",
        observation_id=f"demo_{geometry.visit}",
        observing_day=_day_obs(begin),
        has_simulated_content=True,
        can_see_sky=True,
    )


def _summary_stats(scene: DetectorScene, size: int) -> ObservationSummaryStats:
    """The summary statistics the simulation knows exactly."""
    sigma = scene.psf_sigma
    corners_x = np.array([-0.5, size - 0.5, size - 0.5, -0.5])
    corners_y = np.array([-0.5, -0.5, size - 0.5, size - 0.5])
    ra_corners, dec_corners = scene.wcs.all_pix2world(corners_x, corners_y, 0)
    ra, dec = scene.wcs.all_pix2world((size - 1) / 2, (size - 1) / 2, 0)
    return ObservationSummaryStats(
        psfSigma=sigma,
        psfArea=4 * np.pi * sigma**2,
        psfIxx=sigma**2,
        psfIyy=sigma**2,
        psfIxy=0.0,
        ra=float(ra),
        dec=float(dec),
        pixelScale=PIXEL_SCALE_ARCSEC,
        expTime=EXPOSURE_TIME,
        zeroPoint=AB_ZEROPOINT_NJY,
        raCorners=tuple(float(a) for a in ra_corners),
        decCorners=tuple(float(d) for d in dec_corners),
    )


def _write_scene(
    butler: Butler, spec: DemoSpec, geometry: VisitGeometry, scene: DetectorScene, frames: CameraFrameSet
) -> None:
    """Write the science (`VisitImage`), template (`MaskedImage`) and
    difference (`DifferenceImage`) images and the DiaSources of a scene.
    """
    bbox = Box.from_shape((spec.image_size, spec.image_size))
    frame = DetectorFrame(instrument=spec.instrument, visit=scene.visit, detector=scene.detector, bbox=bbox)
    projection = SkyProjection.from_fits_wcs(scene.wcs, frame, pixel_bounds=bbox)
    data_id = {"instrument": spec.instrument, "visit": scene.visit, "detector": scene.detector}
    detector = make_detector(spec, scene.detector, frames, visit=scene.visit)
    # The stamp covers the ±5σ the simulation renders each source to.
    psf = GaussianPointSpreadFunction(
        sigma=scene.psf_sigma, bounds=bbox, stamp_size=2 * math.ceil(5 * scene.psf_sigma) + 1
    )
    visit_components = {
        "psf": psf,
        "detector": detector,
        "obs_info": _obs_info(spec, geometry, detector),
        "summary_stats": _summary_stats(scene, spec.image_size),
        "band": spec.band_of(geometry.visit),
    }
    science = _masked_image(scene.science, scene.science_variance, scene.science_planes, projection, bbox)
    template = _masked_image(scene.template, scene.template_variance, scene.template_planes, projection, bbox)
    difference = _masked_image(
        scene.difference, scene.difference_variance, scene.difference_planes, projection, bbox
    )
    butler.put(
        VisitImage(science.image, mask=science.mask, variance=science.variance, **visit_components),
        SCIENCE_TYPE,
        data_id,
    )
    butler.put(template, TEMPLATE_TYPE, data_id)
    # The simulated template has the science PSF already: there is no
    # PSF-matching kernel, and no template coadd to describe.
    butler.put(
        DifferenceImage(
            difference.image, mask=difference.mask, variance=difference.variance, **visit_components
        ),
        DIFFERENCE_TYPE,
        data_id,
    )
    butler.put(scene.sources, DIA_SOURCE_TYPE, data_id)


def _apdb_objects(sources: pd.DataFrame) -> pd.DataFrame:
    """DiaObject records (mean position, counts) for a set of DiaSources."""
    grouped = sources.groupby("diaObjectId")
    objects = pd.DataFrame(
        {
            "ra": grouped["ra"].mean(),
            "dec": grouped["dec"].mean(),
            "nDiaSources": grouped.size().astype(np.int32),
            "firstDiaSourceMjdTai": grouped["midpointMjdTai"].min(),
            "lastDiaSourceMjdTai": grouped["midpointMjdTai"].max(),
        }
    ).reset_index()
    for band in "ugrizy":
        objects[f"{band}_psfFluxNdata"] = np.int32(0)
    return objects


def store_apdb_sources(apdb: Any, sources: pd.DataFrame, instrument: str) -> None:
    """Store DiaSources and their DiaObjects in an APDB, visit by visit, and
    name the instrument in the APDB ``metadata`` table.

    Parameters
    ----------
    apdb : `lsst.dax.apdb.Apdb`
        The APDB (SQLite, PostgreSQL, ...).
    sources : `pandas.DataFrame`
        DiaSources with APDB column names (``instrument`` is not stored).
    instrument : `str`
        Instrument name recorded under the ``instrument`` metadata key.

    """
    seen: set[int] = set()
    sources = sources.drop(columns=["instrument"], errors="ignore")
    for _, visit_sources in sources.groupby("visit", sort=True):
        mjd = float(visit_sources["midpointMjdTai"].iloc[0])
        objects = _apdb_objects(visit_sources)
        objects = objects[~objects["diaObjectId"].isin(seen)]
        seen.update(objects["diaObjectId"])
        apdb.store(astropy.time.Time(mjd, format="mjd", scale="tai"), objects, visit_sources)
    apdb.metadata.set("instrument", instrument, force=True)


def write_apdb(path: Path, sources: pd.DataFrame, instrument: str) -> Path:
    """Create an SQLite APDB holding DiaSources.

    Parameters
    ----------
    path : `pathlib.Path`
        Directory of the APDB.
    sources : `pandas.DataFrame`
        DiaSources to insert (their DiaObjects are derived from them).
    instrument : `str`
        Instrument name recorded in the APDB ``metadata`` table.

    Returns
    -------
    config : `pathlib.Path`
        Path of the APDB configuration file.

    """
    from lsst.dax.apdb import Apdb
    from lsst.dax.apdb.sql import ApdbSql

    path.mkdir(parents=True, exist_ok=True)
    db_file = path / "apdb.sqlite3"
    config = ApdbSql.init_database(db_url=f"sqlite:///{db_file}")
    config_file = path / "apdb-config.yaml"
    config.save(str(config_file))
    store_apdb_sources(Apdb.from_config(config), sources, instrument)
    return config_file


def build_demo_repo(root: str | Path, spec: DemoSpec | None = None, *, apdb: bool = True) -> DemoRepo:
    """Build the demo Butler repository (and APDB) at ``root``.

    Parameters
    ----------
    root : `str` or `Path`
        Directory to create; it must not hold a repository already.
    spec : `DemoSpec`, optional
        What to simulate; `DemoSpec` defaults give a small repository that
        builds in seconds.
    apdb : `bool`, optional
        Also write the DiaSources to an SQLite APDB under ``root/apdb``.

    Returns
    -------
    `DemoRepo`
        Paths, collection and counts of what was written.

    """
    spec = spec or DemoSpec()
    root = Path(root).absolute()
    if (root / "butler.yaml").exists():
        raise FileExistsError(f"{root} already holds a Butler repository; remove it or choose another path.")
    rng = np.random.default_rng(spec.seed)
    geometries = make_visit_geometries(spec, rng)
    stars, objects = make_sky(spec, rng)
    Butler.makeRepo(str(root))
    all_sources = []
    data_ids = []
    with Butler.from_config(str(root), writeable=True, run=DEFAULT_COLLECTION) as butler:
        _register_dimensions(butler, spec, geometries)
        _register_dataset_types(butler)
        frames = make_camera_frame_set(spec)
        for visit_index, geometry in enumerate(geometries):
            for detector in spec.detectors:
                scene = simulate_detector(spec, geometry, visit_index, detector, stars, objects, rng)
                _write_scene(butler, spec, geometry, scene, frames)
                all_sources.append(scene.sources)
                data_ids.append((geometry.visit, detector))
    sources = pd.concat(all_sources, ignore_index=True)
    apdb_dir = root / "apdb"
    apdb_config = write_apdb(apdb_dir, sources, spec.instrument) if apdb else apdb_dir / "apdb-config.yaml"
    repo = DemoRepo(
        root=root,
        collection=DEFAULT_COLLECTION,
        apdb_config=apdb_config,
        apdb_file=apdb_dir / "apdb.sqlite3",
        spec=spec,
        n_sources=len(sources),
        data_ids=tuple(data_ids),
    )
    (root / "demo.json").write_text(
        json.dumps(
            {
                "collection": repo.collection,
                "apdb_config": str(repo.apdb_config),
                "spec": dataclasses.asdict(spec),
                "n_sources": repo.n_sources,
            },
            indent=2,
        )
    )
    return repo


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: ``makeCutoutDemoRepo PATH``.

    Parameters
    ----------
    argv : `list` [`str`], optional
        Command-line arguments (default: ``sys.argv[1:]``).

    """
    from ..cli import _integer

    parser = argparse.ArgumentParser(
        prog="makeCutoutDemoRepo",
        description="Build the demo Butler repository and APDB for the cutout task.",
    )
    parser.add_argument("root", help="Directory of the new repository.")
    parser.add_argument(
        "--visits", type=_integer(minimum=1), default=DemoSpec.n_visits, help="Number of visits."
    )
    parser.add_argument(
        "--detectors", type=_integer(minimum=1), default=DemoSpec.n_detectors, help="Detectors per visit."
    )
    parser.add_argument(
        "--size", type=_integer(minimum=1), default=DemoSpec.image_size, help="Detector width/height (px)."
    )
    parser.add_argument(
        "--objects",
        type=_integer(minimum=0),
        default=DemoSpec.objects_per_detector,
        help="Multi-epoch DiaObjects per detector.",
    )
    parser.add_argument("--seed", type=_integer(minimum=0), default=DemoSpec.seed, help="Random seed.")
    parser.add_argument(
        "--bands",
        default="",
        help="Comma-separated bands the visits cycle through (default: every visit in r).",
    )
    parser.add_argument("--no-apdb", action="store_true", help="Do not write the APDB.")
    args = parser.parse_args(argv)
    spec = DemoSpec(
        n_visits=args.visits,
        n_detectors=args.detectors,
        image_size=args.size,
        objects_per_detector=args.objects,
        seed=args.seed,
        bands=tuple(b.strip() for b in args.bands.split(",") if b.strip()),
    )
    start = time.perf_counter()
    repo = build_demo_repo(args.root, spec, apdb=not args.no_apdb)
    elapsed = time.perf_counter() - start
    print(
        f"Demo repository: {repo.root}\n"
        f"  collection: {repo.collection}\n"
        f"  {len(repo.data_ids)} visit×detector, {repo.n_sources} DiaSources, built in {elapsed:.1f} s\n"
        f"  APDB config: {repo.apdb_config}" + ("" if not args.no_apdb else " (not written)")
    )
