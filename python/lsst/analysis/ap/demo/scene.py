"""Simulated visits, detectors, images and DiaSources for the demo repository.

Everything here is pure: numbers and arrays in, numbers and arrays out, with
a seeded `numpy.random.Generator` so that one specification always gives
the same scene.  `lsst.analysis.ap.demo` writes what this module makes into a
Butler repository and an APDB.

The scene is a star field on the sky observed in several visits, each with
its own pointing dither, sky rotation and seeing.  Every visit covers the
same detectors; each detector has its own TAN WCS.  Science images hold the
star field convolved with a Gaussian PSF plus noise and defects; templates
sit on the same pixel grid with less noise; differences are science minus
template, in which the transients (new, brightening, fading, dipoles) show.
DiaSources are measured on those images with the known PSF, and their flags
are derived from the masks around each source.
"""

from __future__ import annotations

__all__ = (
    "MASK_PLANES",
    "DemoSpec",
    "DetectorScene",
    "EXPOSURE_TIME",
    "PIXEL_SCALE_ARCSEC",
    "VisitGeometry",
    "detector_offsets",
    "make_visit_geometries",
    "simulate_detector",
)

import dataclasses
import math
from collections.abc import Sequence

import astropy.wcs
import numpy as np
import pandas as pd

from ..display.annotation import AB_ZEROPOINT_NJY

PIXEL_SCALE_ARCSEC = 0.2
"""Pixel scale of the demo camera."""

EXPOSURE_TIME = 30.0
"""Exposure time of every visit, in seconds."""

MASK_PLANES: dict[str, str] = {
    "BAD": "Bad pixel (detector defect).",
    "SAT": "Pixel is saturated.",
    "INTRP": "Pixel value was interpolated.",
    "CR": "Cosmic ray hit.",
    "EDGE": "Pixel is too close to the detector edge.",
    "DETECTED": "Pixel is part of a positive detection footprint.",
    "DETECTED_NEGATIVE": "Pixel is part of a negative detection footprint.",
    "SUSPECT": "Pixel value is suspect (e.g. non-linear regime).",
    "NO_DATA": "No data was available for this pixel.",
}
"""Mask planes of the demo images, named as afw names them."""

TRANSIENT_KINDS = ("new", "brightening", "fading", "dipole")


@dataclasses.dataclass(frozen=True)
class DemoSpec:
    """What to simulate.

    Parameters
    ----------
    n_visits : `int`
        Number of visits.
    n_detectors : `int`
        Number of detectors per visit, laid out on a square grid.
    image_size : `int`
        Width and height of each detector in pixels.
    objects_per_detector : `int`
        Mean number of multi-epoch DiaObjects (transients seen in several
        visits) per detector area.
    singles_per_detector : `int`
        Single-epoch transients per visit and detector, several of them
        placed on and across the image edges.
    stars_per_detector : `int`
        Static stars per detector area.
    seed : `int`
        Seed of the random number generator.
    instrument : `str`
        Instrument name.
    band : `str`
        Band of every visit, unless ``bands`` is given.
    first_visit : `int`
        Identifier of the first visit; the others follow.
    bands : `tuple` [`str`], optional
        Bands the visits cycle through (visit k in ``bands[k % len(bands)]``),
        so that objects are seen in several bands.

    """

    n_visits: int = 3
    n_detectors: int = 2
    image_size: int = 512
    objects_per_detector: int = 16
    singles_per_detector: int = 6
    stars_per_detector: int = 150
    seed: int = 20261121
    instrument: str = "DemoCam"
    band: str = "r"
    first_visit: int = 1001
    bands: tuple[str, ...] = ()

    @property
    def physical_filter(self) -> str:
        """Physical filter name of the band."""
        return f"{self.band}_demo"

    def band_of(self, visit: int) -> str:
        """Band of one visit."""
        if not self.bands:
            return self.band
        return self.bands[(visit - self.first_visit) % len(self.bands)]

    def physical_filter_of(self, visit: int) -> str:
        """Physical filter name of one visit's band."""
        return f"{self.band_of(visit)}_demo"

    @property
    def all_bands(self) -> tuple[str, ...]:
        """Every band of the visits."""
        return tuple(dict.fromkeys(self.band_of(v) for v in self.visits))

    @property
    def visits(self) -> list[int]:
        """Visit identifiers."""
        return [self.first_visit + k for k in range(self.n_visits)]

    @property
    def detectors(self) -> list[int]:
        """Detector identifiers."""
        return list(range(self.n_detectors))


@dataclasses.dataclass(frozen=True)
class VisitGeometry:
    """Pointing of one visit and the WCS of each of its detectors."""

    visit: int
    ra: float
    dec: float
    rotation_deg: float
    psf_sigma: float
    mjd: float
    wcs: dict[int, astropy.wcs.WCS]


@dataclasses.dataclass
class DetectorScene:
    """Simulated images and sources of one visit and detector.

    Image arrays are in nJy per pixel, indexed ``[y, x]``; mask arrays are
    boolean per plane.  ``template_planes`` and ``difference_planes`` follow
    the same convention.
    """

    visit: int
    detector: int
    wcs: astropy.wcs.WCS
    psf_sigma: float
    science: np.ndarray
    science_variance: np.ndarray
    science_planes: dict[str, np.ndarray]
    template: np.ndarray
    template_variance: np.ndarray
    template_planes: dict[str, np.ndarray]
    difference: np.ndarray
    difference_variance: np.ndarray
    difference_planes: dict[str, np.ndarray]
    sources: pd.DataFrame


FIELD_RA = 150.0
FIELD_DEC = 2.5
SCIENCE_NOISE = 20.0
TEMPLATE_NOISE = 8.0
SATURATION = 40_000.0


def _grid_shape(n_detectors: int) -> tuple[int, int]:
    """Rows and columns of the detector grid."""
    n_cols = math.ceil(math.sqrt(n_detectors))
    return math.ceil(n_detectors / n_cols), n_cols


def detector_offsets(spec: DemoSpec) -> dict[int, tuple[float, float]]:
    """Focal-plane offsets of each detector centre from the boresight, on a
    grid with a 40-pixel gap.

    Parameters
    ----------
    spec : `DemoSpec`
        What is simulated.

    Returns
    -------
    offsets : `dict` [`int`, `tuple` [`float`, `float`]]
        ``(x, y)`` offset in pixels of each detector.

    """
    n_rows, n_cols = _grid_shape(spec.n_detectors)
    pitch = spec.image_size + 40
    offsets = {}
    for detector in spec.detectors:
        row, col = divmod(detector, n_cols)
        offsets[detector] = ((col - (n_cols - 1) / 2) * pitch, (row - (n_rows - 1) / 2) * pitch)
    return offsets


def _tan_wcs(ra: float, dec: float, rotation_deg: float, crpix: tuple[float, float]) -> astropy.wcs.WCS:
    """A TAN WCS with East left, North up before rotation."""
    scale = PIXEL_SCALE_ARCSEC / 3600.0
    theta = math.radians(rotation_deg)
    cos, sin = math.cos(theta), math.sin(theta)
    wcs = astropy.wcs.WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [crpix[0], crpix[1]]
    wcs.wcs.cd = np.array([[-scale * cos, scale * sin], [scale * sin, scale * cos]])
    wcs.wcs.radesys = "ICRS"
    return wcs


def make_visit_geometries(spec: DemoSpec, rng: np.random.Generator) -> list[VisitGeometry]:
    """Pointing, rotation, seeing and detector WCSs of every visit.

    All detectors of a visit share the tangent point (the boresight); a
    detector's CRPIX places the boresight at its focal-plane offset, so the
    detectors tile the sky as the focal plane does, rotated with the visit.

    Parameters
    ----------
    spec : `DemoSpec`
        What is simulated.
    rng : `numpy.random.Generator`
        Random numbers.

    Returns
    -------
    geometries : `list` [`VisitGeometry`]
        One per visit.

    """
    offsets = detector_offsets(spec)
    geometries = []
    half = (spec.image_size - 1) / 2
    for k, visit in enumerate(spec.visits):
        dither = rng.normal(0.0, 15.0, size=2) * PIXEL_SCALE_ARCSEC / 3600.0
        ra = FIELD_RA + dither[0] / math.cos(math.radians(FIELD_DEC))
        dec = FIELD_DEC + dither[1]
        rotation = (37.0 * k + rng.uniform(-5, 5)) % 360.0
        fwhm_arcsec = rng.uniform(0.65, 1.05)
        psf_sigma = fwhm_arcsec / 2.3548 / PIXEL_SCALE_ARCSEC
        wcs = {
            detector: _tan_wcs(ra, dec, rotation, (half + 1 - dx, half + 1 - dy))
            for detector, (dx, dy) in offsets.items()
        }
        geometries.append(
            VisitGeometry(
                visit=visit,
                ra=ra,
                dec=dec,
                rotation_deg=rotation,
                psf_sigma=psf_sigma,
                mjd=61000.1 + 1.03 * k,
                wcs=wcs,
            )
        )
    return geometries


def _field_radius_deg(spec: DemoSpec) -> float:
    """Radius of a disc around the boresight that the detectors of every
    visit cover, but for the gaps between them.
    """
    n_rows, n_cols = _grid_shape(spec.n_detectors)
    radius_pixels = 0.45 * min(n_rows, n_cols) * (spec.image_size + 40) - 20 * (n_rows == 1 == n_cols)
    return radius_pixels * PIXEL_SCALE_ARCSEC / 3600.0


def make_sky(spec: DemoSpec, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Static stars and multi-epoch transients (DiaObjects) on the sky.

    Parameters
    ----------
    spec : `DemoSpec`
        What is simulated.
    rng : `numpy.random.Generator`
        Random numbers.

    Returns
    -------
    stars, objects : `pandas.DataFrame`
        Tables with ``ra``, ``dec`` and fluxes in nJy; ``objects`` also has
        ``diaObjectId``, ``kind`` and the dipole offset.

    """
    radius = _field_radius_deg(spec)
    area_factor = spec.n_detectors

    def disc(n: int) -> tuple[np.ndarray, np.ndarray]:
        r = radius * np.sqrt(rng.uniform(0, 1, n))
        phi = rng.uniform(0, 2 * np.pi, n)
        dec = FIELD_DEC + r * np.sin(phi)
        ra = FIELD_RA + r * np.cos(phi) / math.cos(math.radians(FIELD_DEC))
        return ra, dec

    n_stars = spec.stars_per_detector * area_factor
    ra, dec = disc(n_stars)
    mag = 24.5 - rng.power(2.2, n_stars) * 8.0  # few bright stars, many faint ones
    mag[: 3 * area_factor] = rng.uniform(14.5, 16.0, 3 * area_factor)  # saturated cores on every detector
    stars = pd.DataFrame({"ra": ra, "dec": dec, "flux": 10 ** ((AB_ZEROPOINT_NJY - mag) / 2.5)})

    n_objects = spec.objects_per_detector * area_factor
    ra, dec = disc(n_objects)
    kinds = np.array(TRANSIENT_KINDS)[np.arange(n_objects) % len(TRANSIENT_KINDS)]
    mag = rng.uniform(19.0, 22.5, n_objects)
    objects = pd.DataFrame(
        {
            "diaObjectId": np.arange(1, n_objects + 1, dtype=np.int64),
            "ra": ra,
            "dec": dec,
            "kind": kinds,
            "flux": 10 ** ((AB_ZEROPOINT_NJY - mag) / 2.5),
            "dipole_dx": rng.uniform(-1.5, 1.5, n_objects),
            "dipole_dy": rng.uniform(-1.5, 1.5, n_objects),
        }
    )
    return stars, objects


def _add_gaussians(image: np.ndarray, x: np.ndarray, y: np.ndarray, flux: np.ndarray, sigma: float) -> None:
    """Add normalised circular Gaussians to ``image`` in place."""
    height, width = image.shape
    r = int(math.ceil(5 * sigma))
    offsets = np.arange(-r, r + 1)
    norm = 1.0 / (2 * math.pi * sigma**2)
    for xc, yc, f in zip(x, y, flux, strict=True):
        ix, iy = int(round(xc)), int(round(yc))
        x0, x1 = max(ix - r, 0), min(ix + r + 1, width)
        y0, y1 = max(iy - r, 0), min(iy + r + 1, height)
        if x0 >= x1 or y0 >= y1:
            continue
        gx = np.exp(-0.5 * ((ix + offsets - xc) / sigma) ** 2)[x0 - (ix - r) : x1 - (ix - r)]
        gy = np.exp(-0.5 * ((iy + offsets - yc) / sigma) ** 2)[y0 - (iy - r) : y1 - (iy - r)]
        image[y0:y1, x0:x1] += (f * norm) * np.outer(gy, gx)


def _transients_on_detector(
    spec: DemoSpec,
    rng: np.random.Generator,
    objects: pd.DataFrame,
    wcs: astropy.wcs.WCS,
    visit_index: int,
    visit: int,
    detector: int,
) -> pd.DataFrame:
    """Transients seen on one visit and detector, with their template and
    science fluxes and pixel positions.
    """
    size = spec.image_size
    x, y = wcs.all_world2pix(objects["ra"], objects["dec"], 0)
    inside = (x >= 0) & (x <= size - 1) & (y >= 0) & (y <= size - 1)
    seen = objects[inside].copy()
    seen["x"] = x[inside]
    seen["y"] = y[inside]
    # Multi-epoch light curves: a different flux change in every visit.
    phase = 1.0 + 0.3 * np.sin(1.7 * visit_index + seen["diaObjectId"].to_numpy())
    base = seen["flux"].to_numpy()
    kind = seen["kind"].to_numpy()
    seen["template_flux"] = np.where(kind == "new", 0.0, base)
    seen["science_flux"] = np.select(
        [kind == "new", kind == "brightening", kind == "fading", kind == "dipole"],
        [base * phase, base * (1 + 0.8 * phase), base * (1 - 0.6 / phase), base],
    )
    # Single-epoch transients, several on or across the image edges.
    n = spec.singles_per_detector
    edge_positions = [(2.0, size * 0.4), (size - 3.0, size * 0.6), (6.0, 6.0), (size * 0.5, size - 9.0)]
    xs, ys = [], []
    for i in range(n):
        if i < len(edge_positions):
            xs.append(edge_positions[i][0])
            ys.append(edge_positions[i][1])
        else:
            xs.append(rng.uniform(20, size - 20))
            ys.append(rng.uniform(20, size - 20))
    first_id = 1_000_000 + (visit * 100 + detector) * 100
    singles = pd.DataFrame(
        {
            "diaObjectId": np.arange(first_id, first_id + n, dtype=np.int64),
            "kind": ["new"] * n,
            "x": xs,
            "y": ys,
            "template_flux": 0.0,
            "science_flux": 10 ** ((AB_ZEROPOINT_NJY - rng.uniform(19.5, 21.5, n)) / 2.5),
            "dipole_dx": 0.0,
            "dipole_dy": 0.0,
        }
    )
    ra, dec = wcs.all_pix2world(singles["x"], singles["y"], 0)
    singles["ra"] = ra
    singles["dec"] = dec
    columns = ["diaObjectId", "kind", "x", "y", "ra", "dec", "template_flux", "science_flux"]
    columns += ["dipole_dx", "dipole_dy"]
    return pd.concat([seen[columns], singles[columns]], ignore_index=True)


def _cosmic_rays(rng: np.random.Generator, size: int, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Short straight tracks, as (rows, cols) index arrays."""
    tracks = []
    for _ in range(count):
        length = rng.integers(2, 7)
        angle = rng.uniform(0, np.pi)
        x0, y0 = rng.uniform(15, size - 15, 2)
        t = np.arange(length)
        cols = np.clip(np.round(x0 + t * np.cos(angle)).astype(int), 0, size - 1)
        rows = np.clip(np.round(y0 + t * np.sin(angle)).astype(int), 0, size - 1)
        tracks.append((rows, cols))
    return tracks


def simulate_detector(
    spec: DemoSpec,
    geometry: VisitGeometry,
    visit_index: int,
    detector: int,
    stars: pd.DataFrame,
    objects: pd.DataFrame,
    rng: np.random.Generator,
) -> DetectorScene:
    """Simulate the science, template and difference images and the
    DiaSources of one visit and detector.

    Parameters
    ----------
    spec : `DemoSpec`
        What is simulated.
    geometry : `VisitGeometry`
        The visit's pointing, seeing and detector WCSs.
    visit_index : `int`
        Index of the visit in ``spec.visits``.
    detector : `int`
        Detector id.
    stars, objects : `pandas.DataFrame`
        The sky (`make_sky`).
    rng : `numpy.random.Generator`
        Random numbers.

    Returns
    -------
    scene : `DetectorScene`
        Pixels, masks and DiaSources of the visit × detector.

    """
    size = spec.image_size
    wcs = geometry.wcs[detector]
    sigma = geometry.psf_sigma
    sx, sy = wcs.all_world2pix(stars["ra"], stars["dec"], 0)
    margin = 6 * sigma
    near = (sx > -margin) & (sx < size + margin) & (sy > -margin) & (sy < size + margin)
    sx, sy, sflux = sx[near], sy[near], stars["flux"].to_numpy()[near]

    transients = _transients_on_detector(spec, rng, objects, wcs, visit_index, geometry.visit, detector)
    tx, ty = transients["x"].to_numpy(), transients["y"].to_numpy()
    dipole = (transients["kind"] == "dipole").to_numpy()

    template = np.zeros((size, size), np.float64)
    _add_gaussians(template, sx, sy, sflux, sigma)
    _add_gaussians(template, tx, ty, transients["template_flux"].to_numpy(), sigma)
    science = np.zeros((size, size), np.float64)
    _add_gaussians(science, sx, sy, sflux, sigma)
    science_x = tx + np.where(dipole, transients["dipole_dx"], 0.0)
    science_y = ty + np.where(dipole, transients["dipole_dy"], 0.0)
    _add_gaussians(science, science_x, science_y, transients["science_flux"].to_numpy(), sigma)

    planes_s = {name: np.zeros((size, size), bool) for name in MASK_PLANES}
    planes_t = {name: np.zeros((size, size), bool) for name in MASK_PLANES}

    # Saturated cores: clip, flag SAT and INTRP (afw interpolates them).
    for image, planes in ((science, planes_s), (template, planes_t)):
        saturated = image > SATURATION
        image[saturated] = SATURATION
        planes["SAT"] |= saturated
        planes["INTRP"] |= saturated

    science += rng.normal(0.0, SCIENCE_NOISE, science.shape)
    template += rng.normal(0.0, TEMPLATE_NOISE, template.shape)

    # Cosmic rays hit the science image only; some of them were interpolated.
    for i, (rows, cols) in enumerate(_cosmic_rays(rng, size, max(3, size * size // 60_000))):
        science[rows, cols] += rng.uniform(800, 3000)
        planes_s["CR"][rows, cols] = True
        if i % 2:
            planes_s["INTRP"][rows, cols] = True
    # A bad column, interpolated over from its neighbours.
    bad_col = int(size * 0.73)
    science[:, bad_col] = 0.5 * (science[:, bad_col - 1] + science[:, bad_col + 1])
    planes_s["BAD"][:, bad_col] = True
    planes_s["INTRP"][:, bad_col] = True
    # A band of suspect pixels near the top of the detector.
    suspect_rows = slice(int(size * 0.85), int(size * 0.85) + 4)
    science[suspect_rows, :] += 15.0
    planes_s["SUSPECT"][suspect_rows, :] = True
    # The template does not cover one corner: NaN and NO_DATA there.
    nodata = (slice(0, int(size * 0.2)), slice(int(size * 0.88), size))
    template[nodata] = np.nan
    planes_t["NO_DATA"][nodata] = True
    # EDGE border on every image.
    border = 4
    for planes in (planes_s, planes_t):
        planes["EDGE"][:border, :] = planes["EDGE"][-border:, :] = True
        planes["EDGE"][:, :border] = planes["EDGE"][:, -border:] = True
    planes_s["DETECTED"] |= science > 5 * SCIENCE_NOISE
    planes_t["DETECTED"] |= template > 5 * TEMPLATE_NOISE

    science_var = np.full_like(science, SCIENCE_NOISE**2) + np.clip(science, 0, None) * 0.01
    template_var = (
        np.full_like(template, TEMPLATE_NOISE**2) + np.clip(np.nan_to_num(template), 0, None) * 0.01
    )
    template_var[nodata] = np.nan
    difference = science - template
    difference_var = science_var + template_var
    noise_diff = math.hypot(SCIENCE_NOISE, TEMPLATE_NOISE)
    planes_d = {name: planes_s[name] | planes_t[name] for name in MASK_PLANES}
    planes_d["DETECTED"] = np.nan_to_num(difference) > 5 * noise_diff
    planes_d["DETECTED_NEGATIVE"] = np.nan_to_num(difference) < -5 * noise_diff

    sources = measure_sources(
        spec,
        geometry,
        detector,
        transients,
        science=science,
        science_var=science_var,
        difference=difference,
        difference_var=difference_var,
        planes=planes_d,
        rng=rng,
    )
    return DetectorScene(
        visit=geometry.visit,
        detector=detector,
        wcs=wcs,
        psf_sigma=sigma,
        science=science.astype(np.float32),
        science_variance=science_var.astype(np.float32),
        science_planes=planes_s,
        template=template.astype(np.float32),
        template_variance=template_var.astype(np.float32),
        template_planes=planes_t,
        difference=difference.astype(np.float32),
        difference_variance=difference_var.astype(np.float32),
        difference_planes=planes_d,
        sources=sources,
    )


def _psf_fit(
    image: np.ndarray, variance: np.ndarray, x: float, y: float, sigma: float, half: int
) -> tuple[float, float, float, int]:
    """Linear PSF-flux fit at a fixed position.

    Returns flux, its error, chi2 and the number of pixels used (pixels off
    the image or NaN are ignored).
    """
    size_y, size_x = image.shape
    ix, iy = int(round(x)), int(round(y))
    x0, x1 = max(ix - half, 0), min(ix + half + 1, size_x)
    y0, y1 = max(iy - half, 0), min(iy + half + 1, size_y)
    if x0 >= x1 or y0 >= y1:
        return math.nan, math.nan, math.nan, 0
    yy, xx = np.mgrid[y0:y1, x0:x1]
    model = np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / sigma**2) / (2 * math.pi * sigma**2)
    data, var = image[y0:y1, x0:x1], variance[y0:y1, x0:x1]
    good = np.isfinite(data) & np.isfinite(var) & (var > 0)
    if good.sum() < 3:
        return math.nan, math.nan, math.nan, int(good.sum())
    m, d, v = model[good], data[good], var[good]
    denominator = np.sum(m * m / v)
    flux = float(np.sum(m * d / v) / denominator)
    error = float(1.0 / math.sqrt(denominator))
    chi2 = float(np.sum((d - flux * m) ** 2 / v))
    return flux, error, chi2, int(good.sum())


def _aperture(
    image: np.ndarray, variance: np.ndarray, x: float, y: float, radius: float
) -> tuple[float, float, bool]:
    """Aperture flux, error, and whether the aperture was truncated."""
    size_y, size_x = image.shape
    r = int(math.ceil(radius))
    ix, iy = int(round(x)), int(round(y))
    yy, xx = np.mgrid[iy - r : iy + r + 1, ix - r : ix + r + 1]
    inside = (xx - x) ** 2 + (yy - y) ** 2 <= radius**2
    on_image = (xx >= 0) & (xx < size_x) & (yy >= 0) & (yy < size_y)
    use = inside & on_image
    values = image[yy[use], xx[use]]
    var = variance[yy[use], xx[use]]
    good = np.isfinite(values) & np.isfinite(var)
    truncated = bool((inside & ~on_image).any() or not good.all())
    return float(values[good].sum()), float(math.sqrt(var[good].sum())), truncated


def _any_in(plane: np.ndarray, x: float, y: float, half: int) -> bool:
    size_y, size_x = plane.shape
    ix, iy = int(round(x)), int(round(y))
    window = plane[
        max(iy - half, 0) : min(iy + half + 1, size_y), max(ix - half, 0) : min(ix + half + 1, size_x)
    ]
    return bool(window.any())


def measure_sources(
    spec: DemoSpec,
    geometry: VisitGeometry,
    detector: int,
    transients: pd.DataFrame,
    *,
    science: np.ndarray,
    science_var: np.ndarray,
    difference: np.ndarray,
    difference_var: np.ndarray,
    planes: dict[str, np.ndarray],
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Measure one DiaSource per transient on the difference and science
    images, with flags set from the masks around each source.

    Columns are named and typed as in the APDB ``DiaSource`` table; columns
    this demo does not measure are left out (the APDB fills its defaults).

    Parameters
    ----------
    spec : `DemoSpec`
        What is simulated.
    geometry : `VisitGeometry`
        The visit's pointing, seeing and detector WCSs.
    detector : `int`
        Detector id.
    transients : `pandas.DataFrame`
        Transients on the detector, with pixel positions.
    science, science_var, difference, difference_var : `numpy.ndarray`
        Image and variance planes.
    planes : `dict` [`str`, `numpy.ndarray`]
        Boolean mask planes by name.
    rng : `numpy.random.Generator`
        Random numbers (centroid noise).

    Returns
    -------
    sources : `pandas.DataFrame`
        One DiaSource per transient.

    """
    sigma = geometry.psf_sigma
    half = int(math.ceil(3 * sigma))
    size = spec.image_size
    rows = []
    for i, t in enumerate(transients.itertuples(index=False)):
        x = float(t.x + rng.normal(0, 0.05))
        y = float(t.y + rng.normal(0, 0.05))
        psf_flux, psf_err, chi2, ndata = _psf_fit(difference, difference_var, x, y, sigma, half)
        sci_flux, sci_err, _, _ = _psf_fit(science, science_var, x, y, sigma, half)
        ap_flux, ap_err, truncated = _aperture(difference, difference_var, x, y, 3 * sigma)
        snr = abs(psf_flux / psf_err) if psf_err and math.isfinite(psf_err) else math.nan
        bbox_size = int(np.clip(2 * (half + 2 + int(math.sqrt(snr if snr > 0 else 0.0))) + 1, 11, 61))
        foot = bbox_size // 2
        flags = {}
        for plane, column in (
            ("BAD", "bad"),
            ("CR", "cr"),
            ("EDGE", "edge"),
            ("NO_DATA", "nodata"),
            ("INTRP", "interpolated"),
            ("SAT", "saturated"),
            ("SUSPECT", "suspect"),
        ):
            flags[f"pixelFlags_{column}"] = _any_in(planes[plane], x, y, foot)
            if column not in ("bad", "edge"):
                flags[f"pixelFlags_{column}Center"] = _any_in(planes[plane], x, y, 1)
        off_image = not (0 <= x <= size - 1 and 0 <= y <= size - 1)
        near_edge = min(x, y, size - 1 - x, size - 1 - y) < half
        any_pixel_flag = any(flags.values())
        no_good = ndata < 3
        kind = str(t.kind)
        reliability = float(np.clip(rng.beta(8, 2) if kind != "dipole" else rng.beta(3, 4), 0, 1))
        if flags["pixelFlags_crCenter"] or near_edge:
            reliability *= 0.3
        ra, dec = geometry.wcs[detector].all_pix2world(x, y, 0)
        rows.append(
            {
                "diaSourceId": np.int64(geometry.visit * 1_000_000 + detector * 10_000 + i),
                "visit": np.int64(geometry.visit),
                "detector": np.int16(detector),
                "diaObjectId": np.int64(t.diaObjectId),
                "parentDiaSourceId": np.int64(0),
                "midpointMjdTai": geometry.mjd,
                "exposureTime": EXPOSURE_TIME,
                "ra": float(ra),
                "dec": float(dec),
                "x": x,
                "y": y,
                "xErr": 0.05,
                "yErr": 0.05,
                "centroid_flag": near_edge or no_good,
                "apFlux": ap_flux,
                "apFluxErr": ap_err,
                "apFlux_flag": truncated,
                "apFlux_flag_apertureTruncated": truncated,
                "isNegative": bool(psf_flux < 0),
                "snr": snr,
                "psfFlux": psf_flux,
                "psfFluxErr": psf_err,
                "psfChi2": chi2,
                "psfNdata": np.int32(ndata),
                # The general flag is set whenever a specific failure flag is.
                "psfFlux_flag": no_good
                or near_edge
                or flags["pixelFlags_saturatedCenter"]
                or flags["pixelFlags_nodataCenter"],
                "psfFlux_flag_edge": near_edge,
                "psfFlux_flag_noGoodPixels": no_good,
                "trailNdata": np.int32(0),
                "dipoleNdata": np.int32(ndata if kind == "dipole" else 0),
                "scienceFlux": sci_flux,
                "scienceFluxErr": sci_err,
                "forced_PsfFlux_flag": near_edge or flags["pixelFlags_saturatedCenter"],
                "forced_PsfFlux_flag_edge": near_edge,
                "forced_PsfFlux_flag_noGoodPixels": False,
                "shape_flag": near_edge or any_pixel_flag and flags["pixelFlags_crCenter"],
                "shape_flag_no_pixels": False,
                "shape_flag_not_contained": near_edge,
                "shape_flag_parent_source": False,
                "extendedness": 0.1,
                "reliability": reliability,
                "reliabilityVersion": "demo-1",
                "band": spec.band_of(geometry.visit),
                "isDipole": kind == "dipole",
                "dipoleFitAttempted": True,
                "timeProcessedMjdTai": geometry.mjd + 0.01,
                "bboxSize": np.int32(bbox_size),
                "pixelFlags": any_pixel_flag,
                **flags,
                "pixelFlags_offimage": off_image,
                "pixelFlags_streak": False,
                "pixelFlags_streakCenter": False,
                "pixelFlags_injected": False,
                "pixelFlags_injectedCenter": False,
                "pixelFlags_injected_template": False,
                "pixelFlags_injected_templateCenter": False,
                "glint_trail": False,
            }
        )
    return _typed_frame(rows)


FLOAT32_COLUMNS = (
    "xErr yErr apFlux apFluxErr snr psfFlux psfFluxErr psfChi2 scienceFlux scienceFluxErr "
    "exposureTime extendedness reliability x y"
).split()


def _typed_frame(rows: Sequence[dict]) -> pd.DataFrame:
    """DataFrame with APDB column types (float for ``float`` columns,
    ``bool`` for flags, int64/int32/int16 for ids and counts).
    """
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    for column in FLOAT32_COLUMNS:
        frame[column] = frame[column].astype(np.float32)
    for column in frame.columns:
        if frame[column].dtype == object and isinstance(frame[column].iloc[0], bool | np.bool_):
            frame[column] = frame[column].astype(bool)
    frame["detector"] = frame["detector"].astype(np.int16)
    for column in ("psfNdata", "trailNdata", "dipoleNdata", "bboxSize"):
        frame[column] = frame[column].astype(np.int32)
    return frame
