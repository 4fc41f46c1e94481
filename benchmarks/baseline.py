"""The documented matplotlib way of drawing a cutout triplet, and the
original end-to-end way of making cutouts; used only as the baseline of
`benchmarks.benchmark`.

Nothing in the cutout task uses this module.  It reproduces what the task
replaced, so that the benchmark compares against it in the same run on the
same sources:

- `baseline_triplet_png`: one `matplotlib.figure.Figure` per source (Agg
  canvas, no pyplot state), ``layout="constrained"``, three ``imshow``
  panels per stamp size titled Template / Science / Difference, astropy
  `~astropy.visualization.ImageNormalize` with an asinh stretch on min/max
  for the template and science and a linear stretch on zscale for the
  difference, a 1-arcsecond scale bar on every panel, the annotation texts
  of `~lsst.analysis.ap.display.annotation.SourceAnnotation` (grey field labels, red
  labels of flagged fluxes, black values, coloured badges of set flags and
  grey ones of unset flags), saved with ``bbox_inches="tight"`` to PNG bytes.
- `draw_original`: for each visit × detector, read the three *whole*
  exposures (all planes) with ``butler.get(dataset_type, data_id)``, cut the
  stamps from them and draw each source with `baseline_triplet_png`.
"""

from __future__ import annotations

__all__ = ("OriginalGroupTiming", "OriginalRun", "baseline_triplet_png", "draw_original")

import dataclasses
import io
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lsst.analysis.ap.datasets import DEFAULT_SCIENCE_TYPE, IMAGE_ROLES, PANEL_TITLES, image_dataset_types
from lsst.analysis.ap.display.annotation import BADGES, FLAGGED_RGB, SourceAnnotation
from lsst.analysis.ap.geometry import cut_stamp, pixel_scale_arcsec, sky_to_pixel, stamp_box
from lsst.analysis.ap.sources import group_by_detector, standardize_sources

_LABEL_COLOR = "dimgray"
_GHOST_COLOR = "#c8c8c8"
_ANNOTATION_LINES = (
    ("diaSourceId", "instrument", "detector", "visit", "band"),
    ("ra", "dec", "snr", "chi2"),
    ("psf", "psf_snr", "ap", "ap_snr"),
    ("total", "total_snr", "mag", "reliability"),
)


def _rgb(rgb: Sequence[int]) -> tuple[float, float, float]:
    r, g, b = rgb
    return (r / 255.0, g / 255.0, b / 255.0)


def _norm(array: np.ndarray, role: str) -> Any:
    from astropy.visualization import (
        AsinhStretch,
        ImageNormalize,
        LinearStretch,
        MinMaxInterval,
        ZScaleInterval,
    )

    finite = array[np.isfinite(array)]
    if finite.size == 0 or finite.min() == finite.max():
        return None
    if role == "difference":
        return ImageNormalize(finite, interval=ZScaleInterval(), stretch=LinearStretch())
    return ImageNormalize(finite, interval=MinMaxInterval(), stretch=AsinhStretch())


def _draw_annotation(ax: Any, annotation: SourceAnnotation) -> None:
    """The annotation texts: a label and a value per field, a badge per flag."""
    ax.set_axis_off()
    fields = annotation.fields()
    n_lines = len(_ANNOTATION_LINES) + 1
    for line, keys in enumerate(_ANNOTATION_LINES):
        y = 1.0 - (line + 0.5) / n_lines
        x = 0.0
        for key in keys:
            field = fields[key]
            label = ax.text(
                x,
                y,
                field.label,
                color=_rgb(FLAGGED_RGB) if field.flagged else _LABEL_COLOR,
                fontsize=8,
                va="center",
                transform=ax.transAxes,
            )
            ax.annotate(
                field.text,
                xy=(1.0, 0.5),
                xycoords=label,
                xytext=(4, 0),
                textcoords="offset points",
                color="black",
                fontsize=8.5,
                va="center",
            )
            x += 0.3 if key in ("psf", "ap", "total") else 0.26 if key == "diaSourceId" else 0.17
    y = 0.5 / n_lines
    for k, badge in enumerate(BADGES):
        is_set = annotation.has_badge(badge.name)
        ax.text(
            k * 0.105,
            y,
            badge.name,
            fontsize=7,
            fontweight="bold",
            va="center",
            color="white" if is_set else _GHOST_COLOR,
            bbox={
                "boxstyle": "round,pad=0.25",
                "facecolor": _rgb(badge.rgb) if is_set else "white",
                "edgecolor": _rgb(badge.rgb) if is_set else _GHOST_COLOR,
            },
            transform=ax.transAxes,
        )


def _draw_scale_bar(ax: Any, stamp_size: int, pixel_scale_arcsec: float | None) -> None:
    if pixel_scale_arcsec is None or not math.isfinite(pixel_scale_arcsec) or pixel_scale_arcsec <= 0:
        return
    length = 1.0 / pixel_scale_arcsec
    if length > 0.8 * stamp_size:
        return
    x0 = 0.06 * stamp_size - 0.5
    y0 = 0.06 * stamp_size - 0.5
    ax.plot([x0, x0 + length], [y0, y0], color="white", linewidth=3, solid_capstyle="butt")
    ax.text(x0, y0 + 0.04 * stamp_size, '1"', color="white", fontsize=9, fontweight="bold", va="bottom")


def baseline_triplet_png(
    stamps: Sequence[Sequence[np.ndarray]],
    annotation: SourceAnnotation | None,
    pixel_scale_arcsec: float | None,
    *,
    dpi: float = 100.0,
    colormap: str = "gray",
) -> bytes:
    """Draw one source as a matplotlib figure and save it to PNG bytes.

    Parameters
    ----------
    stamps
        One (template, science, difference) triplet per stamp size; 2-D
        arrays, NaN for no data, row 0 at the bottom.
    annotation
        Catalog values to write above the panels; `None` for none.
    pixel_scale_arcsec
        Pixel scale, for the 1-arcsecond scale bars.
    dpi
        Resolution of the figure.
    colormap
        matplotlib colormap of every panel.

    Returns
    -------
    bytes
        The PNG file content.

    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_rows = len(stamps)
    annotation_height = 1.5 if annotation is not None else 0.0
    figure = Figure(figsize=(7.5, 2.5 * n_rows + 0.3 + annotation_height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    ratios = ([annotation_height / 2.5] if annotation is not None else []) + [1.0] * n_rows
    grid = figure.add_gridspec(len(ratios), 3, height_ratios=ratios)
    if annotation is not None:
        _draw_annotation(figure.add_subplot(grid[0, :]), annotation)
    first = 1 if annotation is not None else 0
    for row, triplet in enumerate(stamps):
        for column, (role, stamp) in enumerate(zip(IMAGE_ROLES, triplet, strict=True)):
            ax = figure.add_subplot(grid[first + row, column])
            array = np.asarray(stamp, dtype=float)
            ax.imshow(array, origin="lower", cmap=colormap, norm=_norm(array, role), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(PANEL_TITLES[column], fontsize=11, fontweight="bold")
            _draw_scale_bar(ax, array.shape[0], pixel_scale_arcsec)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight", dpi=dpi)
    return buffer.getvalue()


@dataclasses.dataclass(frozen=True)
class OriginalGroupTiming:
    """Timing of the original way on one visit × detector.

    Attributes
    ----------
    visit, detector
        The visit × detector.
    n_sources
        Sources of the visit × detector in the input.
    n_drawn
        Sources drawn (at most ``max_draw_per_exposure``).
    read_wall, read_cpu
        Seconds to read the three whole exposures (wall clock, CPU).
    draw_wall, draw_cpu
        Seconds to cut and draw the ``n_drawn`` sources and write them.

    """

    visit: int
    detector: int
    n_sources: int
    n_drawn: int
    read_wall: float
    read_cpu: float
    draw_wall: float
    draw_cpu: float

    def estimated_seconds(self, cpu: bool = False) -> float:
        """Read time plus the draw time extrapolated to every source."""
        read, draw = (self.read_cpu, self.draw_cpu) if cpu else (self.read_wall, self.draw_wall)
        if self.n_drawn == 0:
            return read
        return read + draw * self.n_sources / self.n_drawn


@dataclasses.dataclass(frozen=True)
class OriginalRun:
    """What `draw_original` did and how long it took."""

    groups: tuple[OriginalGroupTiming, ...]

    @property
    def n_sources(self) -> int:
        """Sources in the input."""
        return sum(g.n_sources for g in self.groups)

    @property
    def n_drawn(self) -> int:
        """Sources actually drawn."""
        return sum(g.n_drawn for g in self.groups)

    @property
    def extrapolated(self) -> bool:
        """Whether some sources were not drawn and their cost is extrapolated."""
        return self.n_drawn < self.n_sources

    def seconds_per_source(self, cpu: bool = False) -> float:
        """Estimated cost per source of the whole input (reads included)."""
        total = sum(g.estimated_seconds(cpu) for g in self.groups)
        return total / max(self.n_sources, 1)


def draw_original(
    butler: Any,
    sources: pd.DataFrame,
    output_dir: str | Path,
    *,
    sizes: Sequence[int] = (30,),
    add_metadata: bool = True,
    science_image_type: str = DEFAULT_SCIENCE_TYPE,
    diff_image_type: str | None = None,
    max_draw_per_exposure: int | None = None,
) -> OriginalRun:
    """Make cutouts the original way: three whole exposures per visit ×
    detector, one matplotlib figure per source.

    Parameters
    ----------
    butler
        Butler with default collections holding the images.
    sources
        DiaSources with APDB column names and an ``instrument`` column.
    output_dir
        Directory the PNGs are written to (``<diaSourceId>.png``).
    sizes
        Stamp sizes, one row of panels each.
    add_metadata
        Write the annotation texts.
    science_image_type, diff_image_type
        Dataset types, as in the task configuration.
    max_draw_per_exposure
        Draw at most this many sources of each visit × detector (the first
        ones); the cost of the others is extrapolated by
        `OriginalRun.seconds_per_source`.  `None` draws them all.

    Returns
    -------
    OriginalRun
        Per visit × detector timings.

    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    types = image_dataset_types(science_image_type, diff_image_type)
    sources = standardize_sources(sources, origin="DiaSource table").sources
    timings = []
    for (instrument, visit, detector), group in group_by_detector(sources):
        data_id = {"instrument": instrument, "visit": int(visit), "detector": int(detector)}
        wall, cpu = time.perf_counter(), time.process_time()
        exposures = {role: butler.get(types[role], data_id) for role in IMAGE_ROLES}
        read_wall, read_cpu = time.perf_counter() - wall, time.process_time() - cpu
        todo = group if max_draw_per_exposure is None else group.iloc[:max_draw_per_exposure]
        wall, cpu = time.perf_counter(), time.process_time()
        _draw_group(exposures, todo, output_dir, tuple(sizes), add_metadata)
        timings.append(
            OriginalGroupTiming(
                visit=int(visit),
                detector=int(detector),
                n_sources=len(group),
                n_drawn=len(todo),
                read_wall=read_wall,
                read_cpu=read_cpu,
                draw_wall=time.perf_counter() - wall,
                draw_cpu=time.process_time() - cpu,
            )
        )
        del exposures
    return OriginalRun(tuple(timings))


def _draw_group(
    exposures: dict[str, Any],
    sources: pd.DataFrame,
    output_dir: Path,
    sizes: tuple[int, ...],
    add_metadata: bool,
) -> None:
    if sources.empty:
        return
    ra, dec = sources["ra"].to_numpy(float), sources["dec"].to_numpy(float)
    positions = {role: sky_to_pixel(exposure.sky_projection, ra, dec) for role, exposure in exposures.items()}
    science = exposures["science"]
    scale = pixel_scale_arcsec(science.sky_projection, science.bbox)
    for index, row in enumerate(sources.to_dict("records")):
        stamps = []
        for size in sizes:
            triplet = []
            for role in IMAGE_ROLES:
                image = exposures[role].image
                x, y = positions[role][0][index], positions[role][1][index]
                if math.isfinite(x) and math.isfinite(y):
                    triplet.append(cut_stamp(image.array, image.bbox, stamp_box(x, y, size)))
                else:
                    triplet.append(np.full((size, size), np.nan, dtype=np.float32))
            stamps.append(tuple(triplet))
        annotation = SourceAnnotation.from_row(row) if add_metadata else None
        png = baseline_triplet_png(stamps, annotation, scale)
        (output_dir / f"{int(row['diaSourceId'])}.png").write_bytes(png)
