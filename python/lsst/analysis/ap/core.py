"""The core of the cutout job: all sources of one visit × detector, from
image reads to written files and per-source records.

Every entry point (PipelineTask quanta, ``run(data, butler, njobs)``, the
command line) ends here.  One bad source never stops the others: each
failure becomes a record with its reason.
"""

from __future__ import annotations

__all__ = ("CutoutSettings", "DetectorCutouter", "make_detector_records", "whole_read_threshold")

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from lsst.images.utils import round_half_up

from .datasets import IMAGE_ROLES, ROLES
from .display.annotation import SourceAnnotation
from .display.renderer import TripletRenderer
from .geometry import StampBox, cut_stamp, footprint_stamp_size, stamp_box, union_box
from .images.butler import ImageUnavailableError, PlaneReader
from .outputs.atomic import numpy_bytes
from .outputs.ledger import Ledger, PriorDrawing, group_part_path
from .outputs.paths import OutputLayout
from .outputs.store import OutputError, OutputStore
from .records import STATUS_FAILED, STATUS_SKIPPED, STATUS_WRITTEN, ReasonCode, make_record, records_frame
from .sources import missing_optional_columns

_FAR_PIXELS = 1e8
"""Pixel coordinates beyond this are from a sky position far off the image
(the projection may return huge or meaningless values there)."""


@dataclasses.dataclass(frozen=True)
class CutoutSettings:
    """What to cut and write; built from the task configuration.

    Attributes
    ----------
    sizes : `tuple` [`int`, ...]
        Stamp widths in pixels, one row of panels each.
    use_footprint : `bool`
        Cut one square stamp of the source's footprint size (``bboxSize``).
    save_as_numpy : `bool`
        Also save the raw stamp arrays.
    whole_read_min_sources : `int` or `None`
        Read whole image planes, rather than one bbox per source, for a
        visit × detector with at least this many sources to draw; `None`
        chooses by `whole_read_threshold`.
    overwrite : `bool`
        Redraw sources whose PNG exists (otherwise they are skipped).
    drawing : `str`
        Key of the display configuration: an existing PNG is kept only when
        its record says it was drawn with the same key.

    """

    sizes: tuple[int, ...] = (30,)
    use_footprint: bool = False
    save_as_numpy: bool = False
    whole_read_min_sources: int | None = None
    overwrite: bool = False
    drawing: str = ""


def whole_read_threshold(settings: CutoutSettings, image_height: int) -> int:
    """Number of sources from which one whole read of a visit × detector's
    planes beats one bbox read per source.

    A bbox read decompresses whole rows of the tile-compressed plane, so its
    cost grows with the stamp height while a whole read costs the full
    height once: measured crossovers (``make bench``) are ~100 sources for
    4096-px detectors and ~27 for 1024-px ones with 30-px stamps, i.e.
    ``height / (stamp + 10)``.

    Parameters
    ----------
    settings : `CutoutSettings`
        What is cut; ``whole_read_min_sources``, when set, is returned.
    image_height : `int`
        Height of the image in pixels.

    Returns
    -------
    threshold : `int`
        Least number of sources for a whole read.

    """
    if settings.whole_read_min_sources is not None:
        return settings.whole_read_min_sources
    stamp = max(settings.sizes) if not settings.use_footprint else 30
    return max(1, math.ceil(image_height / (stamp + 10)))


class SourceFailure(Exception):
    """A source that cannot be drawn; ``code`` classifies the reason."""

    def __init__(self, code: ReasonCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class DetectorCutouter:
    """Draws and writes the cutouts of the sources of one visit × detector.

    Parameters
    ----------
    settings : `CutoutSettings`
        What to cut.
    renderer : `~lsst.analysis.ap.display.renderer.TripletRenderer` or `None`
        Renderer built for ``settings.sizes`` (ignored sizes when
        ``use_footprint``: a renderer per footprint size is made on demand).
    layout : `~lsst.analysis.ap.outputs.paths.OutputLayout`
        Output paths.
    store : `~lsst.analysis.ap.outputs.store.OutputStore`
        The output directory, where the files and record files go.
    token : `str`
        Writer token of this run (`lsst.analysis.ap.outputs.ledger.run_token`),
        naming its record files.
    url_root : `str` or `None`
        Recorded with each source for the manifests.
    log : `logging.Logger`
        Logger for per-source failures.
    make_renderer : callable
        Builds a renderer for other sizes (footprint stamps).

    """

    def __init__(
        self,
        settings: CutoutSettings,
        renderer: TripletRenderer | None,
        layout: OutputLayout,
        store: OutputStore,
        token: str,
        *,
        url_root: str | None,
        log: logging.Logger | Any,
        make_renderer: Callable[[Sequence[int]], TripletRenderer],
    ) -> None:
        self.settings = settings
        self.renderer = renderer
        self.layout = layout
        self.store = store
        self.ledger = Ledger(store)
        self.token = token
        self.url_root = url_root
        self.log = log
        self._make_renderer = make_renderer
        self._footprint_renderers: dict[int, TripletRenderer] = {}
        self._missing_columns_logged: set[str] = set()

    def _renderer_for(self, sizes: tuple[int, ...]) -> TripletRenderer:
        if not self.settings.use_footprint:
            return self.renderer
        (size,) = sizes
        if size not in self._footprint_renderers:
            self._footprint_renderers[size] = self._make_renderer((size,))
        return self._footprint_renderers[size]

    def _record(
        self, row: Mapping[str, Any], status: str, code: ReasonCode = ReasonCode.NONE, reason: str = ""
    ) -> dict:
        return make_record(
            row,
            status,
            code,
            reason,
            path=self.layout.image_relpath(int(row["diaSourceId"])),
            output_path=self.store.location,
            url_root=self.url_root,
        )

    def _fail(self, row: Mapping[str, Any], code: ReasonCode, reason: str) -> dict:
        self.log.warning(
            "diaSourceId=%d (visit %d, detector %d): %s",
            int(row["diaSourceId"]),
            int(row["visit"]),
            int(row["detector"]),
            reason,
        )
        return self._record(row, STATUS_FAILED, code, reason)

    def _sizes(self, row: Mapping[str, Any]) -> tuple[int, ...]:
        if not self.settings.use_footprint:
            return self.settings.sizes
        size = footprint_stamp_size(row.get("bboxSize"))
        if size is None:
            raise SourceFailure(
                ReasonCode.NO_FOOTPRINT, "use_footprint is set but bboxSize is missing or not positive"
            )
        return (size,)

    def process(
        self, sources: pd.DataFrame, readers: Mapping[str, PlaneReader] | ImageUnavailableError
    ) -> pd.DataFrame:
        """Draw every source of ``sources`` (all of one visit × detector).

        Parameters
        ----------
        sources : `pandas.DataFrame`
            Standardized DiaSources of one visit × detector.
        readers : `~collections.abc.Mapping` [`str`, `~lsst.analysis.ap.images.butler.PlaneReader`] \
or `~lsst.analysis.ap.images.butler.ImageUnavailableError`
            Readers of the template, science and difference images, or the
            error that prevented finding one of them (every source to draw
            then fails with that reason, without further reads).

        Returns
        -------
        records : `pandas.DataFrame`
            One record per source.

        """
        records: list[dict] = []
        todo = []
        rows = sources.to_dict("records")
        prior = self._prior_drawings(rows[0]) if rows and not self.settings.overwrite else {}
        redrawn = {"other": 0, "unknown": 0, "damaged": 0}
        for row in rows:
            keep = self._keep_existing(row, prior.get(int(row["diaSourceId"])), redrawn)
            if keep is not None:
                records.append(
                    {
                        **self._record(row, STATUS_SKIPPED, ReasonCode.EXISTS, "PNG already present"),
                        "drawing": keep.drawing,
                        "png_size": keep.png_size,
                    }
                )
            else:
                todo.append(row)
        self._log_redrawn(rows, redrawn)
        if todo:
            if isinstance(readers, ImageUnavailableError):
                records.extend(self._fail_group(todo, readers))
            else:
                records.extend(self._process_readable(sources, todo, readers))
        if records:
            first = records[0]
            # This visit × detector's records, in a file of their own: what
            # this writer drew stays known whatever other writers do.
            self.ledger.write_part(
                group_part_path(first["instrument"], first["visit"], first["detector"], self.token),
                pd.DataFrame(records),
            )
        return records_frame(records)

    def _prior_drawings(self, row: Mapping[str, Any]) -> dict[int, PriorDrawing]:
        return self.ledger.prior_drawings(str(row["instrument"]), int(row["visit"]), int(row["detector"]))

    def _keep_existing(
        self, row: Mapping[str, Any], prior: PriorDrawing | None, redrawn: dict[str, int]
    ) -> PriorDrawing | None:
        """The record of an existing PNG to keep (resume), or `None` to draw
        it: kept only when its record says it was drawn with this display
        configuration, its size is the recorded one and it is a PNG.
        """
        if self.settings.overwrite:
            return None
        relpath = self.layout.image_relpath(row["diaSourceId"])
        size = self.store.size(relpath)
        # An empty file (a crash between create and write on some file
        # systems) is not a finished PNG.
        if not size:
            return None
        if prior is None:
            redrawn["unknown"] += 1
            return None
        if prior.drawing != self.settings.drawing:
            redrawn["other"] += 1
            return None
        if prior.png_size != size or (self.store.is_local and not self.store.is_png(relpath)):
            redrawn["damaged"] += 1
            return None
        return prior

    def _log_redrawn(self, rows: list[dict], redrawn: dict[str, int]) -> None:
        if not any(redrawn.values()):
            return
        first = rows[0]
        why = {
            "other": "drawn with another display configuration",
            "unknown": "with no record of how they were drawn (an interrupted run, or not ours)",
            "damaged": "not the PNG that was recorded (damaged or replaced)",
        }
        for kind, count in redrawn.items():
            if count:
                self.log.warning(
                    "visit %d detector %d: %d existing PNG(s) %s are redrawn",
                    int(first["visit"]),
                    int(first["detector"]),
                    count,
                    why[kind],
                )

    def _process_readable(
        self, sources: pd.DataFrame, todo: list[dict], readers: Mapping[str, PlaneReader]
    ) -> list[dict]:
        records: list[dict] = []
        self._log_missing_columns(sources)
        try:
            try:
                geometry = self._prepare(todo, readers)
            except ImageUnavailableError as error:
                return self._fail_group(todo, error)
            for row in todo:
                records.append(self._draw_one(row, readers, geometry))
        finally:
            for reader in readers.values():
                reader.release()
        return records

    def _fail_group(self, todo: list[dict], error: ImageUnavailableError) -> list[dict]:
        """Failure records of every source of a visit × detector whose images
        cannot be read, logged once for the group.
        """
        first = todo[0]
        self.log.warning(
            "visit %d detector %d: %s; its %d source(s) fail",
            int(first["visit"]),
            int(first["detector"]),
            error,
            len(todo),
        )
        return [self._record(row, STATUS_FAILED, ReasonCode.MISSING_IMAGE, str(error)) for row in todo]

    def _log_missing_columns(self, sources: pd.DataFrame) -> None:
        missing = tuple(
            c for c in missing_optional_columns(sources.columns) if c not in self._missing_columns_logged
        )
        if missing:
            self._missing_columns_logged.update(missing)
            self.log.warning(
                "DiaSource table lacks column(s) %s; they are shown as absent on the cutouts.",
                ", ".join(missing),
            )

    def _prepare(self, todo: list[dict], readers: Mapping[str, PlaneReader]) -> dict[str, Any]:
        """Pixel positions in each image, pixel scales, and whole reads for
        crowded detectors.
        """
        ra = np.array([row["ra"] for row in todo], dtype=float)
        dec = np.array([row["dec"] for row in todo], dtype=float)
        positions = {role: readers[role].sky_to_pixel(ra, dec) for role in IMAGE_ROLES}
        # The scale bar is drawn from the science image's pixel scale (the
        # template and difference share its pixel grid).
        scale = readers["science"].pixel_scale_arcsec()
        if len(todo) >= whole_read_threshold(self.settings, readers["science"].bbox.y.size):
            # Planes whose box reads share decoded tiles never gain from a
            # whole read, unless the configuration asks for one.
            forced = self.settings.whole_read_min_sources is not None
            for role in IMAGE_ROLES:
                if forced or not readers[role].shares_tiles:
                    readers[role].read_whole()
        return {
            "positions": positions,
            "scale": scale,
            "index": {row["diaSourceId"]: i for i, row in enumerate(todo)},
        }

    def _cut(
        self, role: str, reader: PlaneReader, x: float, y: float, sizes: tuple[int, ...]
    ) -> list[np.ndarray]:
        bbox = reader.bbox
        if not (np.isfinite(x) and np.isfinite(y)) or max(abs(x), abs(y)) > _FAR_PIXELS:
            raise SourceFailure(
                ReasonCode.OFF_IMAGE, f"sky position has no pixel position near the {role} image"
            )
        if not bbox.contains(x=round_half_up(x), y=round_half_up(y)):
            raise SourceFailure(
                ReasonCode.OFF_IMAGE,
                f"centre ({x:.1f}, {y:.1f}) is off the {role} image (x {bbox.x}, y {bbox.y})",
            )
        boxes: list[StampBox] = [stamp_box(x, y, size) for size in sizes]
        region = union_box(boxes, bbox)
        assert region is not None  # the centre pixel is inside
        array, array_box = reader.read(region)
        stamps = [cut_stamp(array, array_box, box) for box in boxes]
        if not any(np.isfinite(stamp).any() for stamp in stamps):
            raise SourceFailure(ReasonCode.NO_DATA, f"the {role} stamp has no valid pixels (all NaN)")
        return stamps

    def _draw_one(self, row: dict, readers: Mapping[str, PlaneReader], geometry: dict[str, Any]) -> dict:
        index = geometry["index"][row["diaSourceId"]]
        try:
            sizes = self._sizes(row)
            per_role = {}
            for role in IMAGE_ROLES:
                xs, ys = geometry["positions"][role]
                per_role[role] = self._cut(role, readers[role], xs[index], ys[index], sizes)
            stamps = [
                (per_role["template"][i], per_role["science"][i], per_role["difference"][i])
                for i in range(len(sizes))
            ]
            renderer = self._renderer_for(sizes)
            annotation = (
                SourceAnnotation.from_row(row, instrument=str(row["instrument"]))
                if renderer.add_metadata
                else None
            )
            png = renderer.render_png(stamps, annotation, geometry["scale"])
            dia_source_id = int(row["diaSourceId"])
            if self.settings.save_as_numpy:
                for role in ROLES:
                    for size, stamp in zip(sizes, per_role[role.name], strict=True):
                        relpath = self.layout.numpy_relpath(dia_source_id, role.tag, size)
                        self.store.write(relpath, numpy_bytes(stamp))
            self.store.write(self.layout.image_relpath(dia_source_id), png)
        except SourceFailure as failure:
            return self._fail(row, failure.code, str(failure))
        except ImageUnavailableError as error:
            return self._fail(row, ReasonCode.READ_ERROR, str(error))
        except OutputError:
            # The output directory cannot be written (full, read-only,
            # unreachable): not this source's fault, and every other
            # source would fail the same way.
            raise
        except Exception as error:  # one bad source never aborts the run
            return self._fail(row, ReasonCode.ERROR, f"{type(error).__name__}: {error}")
        return {**self._record(row, STATUS_WRITTEN), "drawing": self.settings.drawing, "png_size": len(png)}


def make_detector_records(
    cutouter: DetectorCutouter,
    sources: pd.DataFrame,
    open_readers: Callable[[], Mapping[str, PlaneReader]],
) -> pd.DataFrame:
    """Open the readers of one visit × detector (once) and process its
    sources; a missing image fails them all with its reason.

    Parameters
    ----------
    cutouter : `DetectorCutouter`
        Draws and writes the sources.
    sources : `pandas.DataFrame`
        Standardized DiaSources of one visit × detector.
    open_readers : callable
        Returns the readers of the three images by role; raises
        `~lsst.analysis.ap.images.butler.ImageUnavailableError` when one
        cannot be found.

    Returns
    -------
    records : `pandas.DataFrame`
        One record per source.

    """
    try:
        readers: Mapping[str, PlaneReader] | ImageUnavailableError = open_readers()
    except ImageUnavailableError as error:
        readers = error
    return cutouter.process(sources, readers)
