"""The core of the cutout job: all sources of one visit × detector, from
image reads to written files and per-source records.

Every entry point (PipelineTask quanta, ``run(data, butler, njobs)``, the
command line) ends here.  One bad source never stops the others: each
failure becomes a record with its reason.
"""

from __future__ import annotations

__all__ = (
    "FAILURE_LOG_LIMIT",
    "CutoutSettings",
    "DetectorCutouter",
    "FailureLog",
    "make_detector_records",
    "whole_read_threshold",
)

import collections
import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from lsst.images.utils import round_half_up

from .datasets import IMAGE_ROLES, ROLES
from .display.annotation import RUBIN_SCHEME, SourceAnnotation, annotation_scheme
from .display.diverging import negative_flux
from .display.overlays import canonical_plane_name
from .display.panels import DisplaySettings, PanelInput, RoleStamps, prepare_source
from .display.renderer import TripletRenderer
from .display.single_stamps import stamp_png
from .geometry import MAX_STAMP_SIZE, StampBox, cut_stamp, footprint_stamp_size, stamp_box, union_box
from .images.butler import ImageUnavailableError, PlaneReader
from .interrupts import stop_if_interrupted
from .outputs.atomic import numpy_bytes
from .outputs.fits_stamps import stamp_fits_bytes
from .outputs.ledger import GroupRecordFiles, Ledger, PriorDrawing
from .outputs.paths import OutputLayout
from .outputs.store import OutputError, OutputStore
from .parallel import available_cores
from .records import (
    STATUS_FAILED,
    STATUS_SKIPPED,
    STATUS_WRITTEN,
    ReasonCode,
    empty_records,
    make_record,
    records_frame,
)
from .sources import missing_optional_columns, source_rows
from .stamp_wcs import local_tan_wcs, projection_mappings

_FAR_PIXELS = 1e8
"""Pixel coordinates beyond this are from a sky position far off the image
(the projection may return huge or meaningless values there)."""


RECORD_CHECKPOINT_SOURCES = 200
"""Sources drawn between two writes of a visit × detector's record file: a
run killed in the middle of a crowded detector keeps (on resume) all but the
last few of its PNGs."""


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
    display : `~lsst.analysis.ap.display.panels.DisplaySettings`
        What the display options need prepared (orientation, directions,
        mask planes, smoothing, shared limits).
    save_fits_stamps : `bool`
        Also write each stamp as a FITS file in the alert cutout layout.
    single_stamps : `bool`
        Also write each panel as an undecorated native-resolution PNG.
    threads : `int`
        Sources of one visit × detector drawn at once in threads (see
        `DetectorCutouter.threads_for`); 1 draws them one after the other.

    """

    sizes: tuple[int, ...] = (30,)
    use_footprint: bool = False
    save_as_numpy: bool = False
    whole_read_min_sources: int | None = None
    overwrite: bool = False
    drawing: str = ""
    display: DisplaySettings = DisplaySettings()
    save_fits_stamps: bool = False
    single_stamps: bool = False
    threads: int = 1


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


FAILURE_LOG_LIMIT = 50
"""Failed sources logged one line each (at ERROR) per run and process; the
others are counted, and every failure is listed in ``failures.csv``."""


class FailureLog:
    """Logs each failed source at ERROR as ``<ErrorClass> processing
    diaSourceId <id>: <message>`` (the original package's form), up to
    ``limit`` lines; beyond that the failures are only counted.

    Parameters
    ----------
    log : `logging.Logger`
        Logger to write to.
    limit : `int`, optional
        Number of failures logged one by one.

    """

    def __init__(self, log: logging.Logger | Any, limit: int = FAILURE_LOG_LIMIT) -> None:
        self.log = log
        self.limit = limit
        self.logged = 0
        self.unlogged = 0
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Start counting again (a new run)."""
        self.logged = self.unlogged = 0

    def error(self, dia_source_id: int, error: BaseException | str, context: str = "") -> None:
        """Log (or count) one failed source.

        Parameters
        ----------
        dia_source_id : `int`
            The failed source.
        error : `BaseException` or `str`
            What made it fail: an error (a wrapping error is named by its
            cause), or the reason of a failure found without one (named as
            a `SourceFailure`).
        context : `str`, optional
            Appended to the message (e.g. the visit and detector).

        """
        with self._lock:  # sources may fail in several threads at once
            if self.logged >= self.limit:
                self.unlogged += 1
                return
            self.logged += 1
            last = self.logged == self.limit
        if isinstance(error, BaseException):
            origin = error.__cause__ if error.__cause__ is not None else error
            name, message = type(origin).__name__, str(origin)
        else:
            name, message = SourceFailure.__name__, error
        self.log.error("%s processing diaSourceId %d: %s%s", name, dia_source_id, message, context)
        if last:
            self.log.error(
                "%d failed sources logged; further failures are counted, and failures.csv lists them all",
                self.limit,
            )

    def report_unlogged(self) -> None:
        """Log how many failures were not logged one by one, if any."""
        if self.unlogged:
            self.log.error(
                "%d further failed diaSourceId(s) not logged one by one: failures.csv lists every failure",
                self.unlogged,
            )


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
    failure_log : `FailureLog`, optional
        Where failed sources are logged one by one (bounded); a new one on
        ``log`` if not given.

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
        failure_log: FailureLog | None = None,
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
        self._other_renderers: dict[tuple[int, ...], TripletRenderer] = {}
        self._renderers_lock = threading.Lock()
        self._missing_columns_logged: set[str] = set()
        self.failure_log = failure_log if failure_log is not None else FailureLog(log)

    def _renderer_for(self, sizes: tuple[int, ...]) -> TripletRenderer:
        if self.renderer is not None and sizes == self.settings.sizes:
            return self.renderer
        with self._renderers_lock:
            if sizes not in self._other_renderers:
                self._other_renderers[sizes] = self._make_renderer(sizes)
            return self._other_renderers[sizes]

    def _record(
        self,
        row: Mapping[str, Any],
        status: str,
        code: ReasonCode = ReasonCode.NONE,
        reason: str = "",
        *,
        limits: Any = None,
        resampled: bool = False,
    ) -> dict:
        return make_record(
            row,
            status,
            code,
            reason,
            path=self.layout.image_relpath(int(row["diaSourceId"])),
            output_path=self.store.location,
            url_root=self.url_root,
            display_limits=_limits_json(limits),
            resampled=resampled,
        )

    def _fail(
        self, row: Mapping[str, Any], code: ReasonCode, reason: str, error: BaseException | None = None
    ) -> dict:
        self.failure_log.error(
            int(row["diaSourceId"]),
            reason if error is None else error,
            f" (visit {int(row['visit'])}, detector {int(row['detector'])})",
        )
        return self._record(row, STATUS_FAILED, code, reason)

    def _sizes(self, row: Mapping[str, Any]) -> tuple[int, ...]:
        if not self.settings.use_footprint:
            return self.settings.sizes
        size = footprint_stamp_size(row.get("bboxSize"))
        if size is None:
            raise SourceFailure(
                ReasonCode.NO_FOOTPRINT,
                f"use_footprint is set but bboxSize ({row.get('bboxSize')!r}) is not a positive number",
            )
        if size > MAX_STAMP_SIZE:
            raise SourceFailure(
                ReasonCode.NO_FOOTPRINT,
                f"bboxSize {size} is larger than the largest stamp size ({MAX_STAMP_SIZE} pixels)",
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
        rows = source_rows(sources)
        # This visit × detector's records, in files of their own.
        files = (
            GroupRecordFiles(
                self.ledger, rows[0]["instrument"], rows[0]["visit"], rows[0]["detector"], self.token
            )
            if rows
            else None
        )
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
                kept = list(records)
                records.extend(
                    self._process_readable(
                        sources, todo, readers, checkpoint=lambda drawn: files.write(kept + drawn)
                    )
                )
        if files is not None:
            files.write(records)
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
        self,
        sources: pd.DataFrame,
        todo: list[dict],
        readers: Mapping[str, PlaneReader],
        checkpoint: Callable[[list[dict]], None] | None = None,
    ) -> list[dict]:
        """Draw the sources to draw of a visit × detector whose images are
        open; every `RECORD_CHECKPOINT_SOURCES` sources ``checkpoint`` is
        called with the records so far (a kill then loses at most that many
        drawings on resume).
        """
        records: list[dict] = []
        self._log_missing_columns(sources)
        try:
            try:
                geometry = self._prepare(todo, readers)
            except ImageUnavailableError as error:
                return self._fail_group(todo, error)
            # Closed before the readers are released, also when a checkpoint
            # fails: no thread draws from a released reader.
            with contextlib.closing(self._draw_all(todo, readers, geometry)) as drawn:
                for record in drawn:
                    records.append(record)
                    if checkpoint is not None and len(records) % RECORD_CHECKPOINT_SOURCES == 0:
                        checkpoint(records)
        finally:
            for reader in readers.values():
                reader.release()
        return records

    def threads_for(self, readers: Mapping[str, PlaneReader]) -> int:
        """Number of threads drawing the sources of a visit × detector.

        Sources are drawn in ``settings.threads`` threads (at most one per
        core this process may run on) when every image is read through the
        tile reader or was read whole (reads that are safe in threads, and
        whose decompression releases the GIL), the display is the default
        one and no FITS stamps are written; otherwise one at a time.  Inflating tiles, encoding PNGs and
        writing files run outside the GIL, so on a machine with free cores
        they overlap with the rendering of other sources (the renderer is
        shared by the threads).

        Parameters
        ----------
        readers : `~collections.abc.Mapping` [`str`, `~lsst.analysis.ap.images.butler.PlaneReader`]
            Readers of the images, by role, after `_prepare`.

        Returns
        -------
        threads : `int`
            1 to draw the sources one after the other.

        """
        settings = self.settings
        if settings.threads <= 1 or not settings.display.is_default or settings.save_fits_stamps:
            return 1
        if not all(getattr(reader, "reads_in_threads", False) for reader in readers.values()):
            return 1
        # On one core, threads only add switching and contention for the GIL.
        return min(settings.threads, available_cores())

    def _draw_all(
        self, todo: list[dict], readers: Mapping[str, PlaneReader], geometry: dict[str, Any]
    ) -> Iterator[dict]:
        """Records of the sources of ``todo``, in their order, drawn one
        after the other or in `threads_for` threads.
        """
        threads = min(self.threads_for(readers), len(todo))
        if threads <= 1:
            for row in todo:
                yield self._draw_one(row, readers, geometry)
            return
        # At most a few sources ahead of the one whose record is next: the
        # memory held does not grow with the number of sources.
        ahead = 2 * threads
        pending: collections.deque[concurrent.futures.Future[dict]] = collections.deque()
        with concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="cutouts") as pool:
            try:
                for row in todo:
                    pending.append(pool.submit(self._draw_one, row, readers, geometry))
                    if len(pending) >= ahead:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:
                # An error that stops the run (OutputError), or a consumer
                # that stops early: draw no further source.
                for future in pending:
                    future.cancel()

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
        for row in todo:
            self.failure_log.error(int(row["diaSourceId"]), error)
        return [self._record(row, STATUS_FAILED, error.code, str(error)) for row in todo]

    def reject(self, rejected: pd.DataFrame) -> pd.DataFrame:
        """Failure records of sources refused by validation (the
        ``rejected`` rows of a `~lsst.analysis.ap.sources.SourceTable`),
        each logged with its reason.
        """
        if rejected.empty:
            return empty_records()
        return records_frame(
            [self._fail(row, row["reason_code"], row["reason"]) for row in source_rows(rejected)]
        )

    def fail_all(self, sources: pd.DataFrame, code: ReasonCode, reason: str) -> pd.DataFrame:
        """Failure records of every source of ``sources`` with one reason."""
        return records_frame([self._record(row, STATUS_FAILED, code, reason) for row in source_rows(sources)])

    def _log_missing_columns(self, sources: pd.DataFrame) -> None:
        # Sources annotated with another survey's scheme (ZTF) show that
        # survey's fields, not the APDB columns.
        if "instrument" in sources and not (
            sources["instrument"]
            .map(lambda name: annotation_scheme(name if isinstance(name, str) else None) == RUBIN_SCHEME)
            .any()
        ):
            return
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
        positions = {role: _sky_to_pixel(readers[role], ra, dec) for role in IMAGE_ROLES}
        # The scale bar is drawn from the science image's pixel scale (the
        # template and difference share its pixel grid).
        scale = readers["science"].pixel_scale_arcsec()
        if len(todo) >= whole_read_threshold(self.settings, readers["science"].bbox.y.size):
            # Planes whose box reads share decoded tiles never gain from a
            # whole read, unless the configuration asks for one.
            forced = self.settings.whole_read_min_sources is not None
            for role in IMAGE_ROLES:
                if forced or not getattr(readers[role], "shares_tiles", False):
                    readers[role].read_whole()
        return {
            "positions": positions,
            "scale": scale,
            "index": {row["diaSourceId"]: i for i, row in enumerate(todo)},
        }

    def _cut(self, role: str, reader: PlaneReader, x: float, y: float, sizes: tuple[int, ...]) -> _RoleCut:
        bbox = reader.bbox
        if not (np.isfinite(x) and np.isfinite(y)) or max(abs(x), abs(y)) > _FAR_PIXELS:
            raise SourceFailure(
                ReasonCode.OFF_IMAGE,
                f"sky position has no pixel position near the {role} image {reader.name}",
            )
        if not bbox.contains(x=round_half_up(x), y=round_half_up(y)):
            raise SourceFailure(
                ReasonCode.OFF_IMAGE,
                f"centre ({x:.1f}, {y:.1f}) is off the {role} image {reader.name} (x {bbox.x}, y {bbox.y})",
            )
        boxes: list[StampBox] = [stamp_box(x, y, size) for size in sizes]
        region = union_box(boxes, bbox)
        assert region is not None  # the centre pixel is inside
        array, array_box = reader.read(region)
        stamps = [cut_stamp(array, array_box, box) for box in boxes]
        planes: list[dict[str, np.ndarray]] | None = None
        variances: list[np.ndarray] | None = None
        unit = None
        # The mask and variance are read only when an option needs them.
        # Readers of stamps that carry no mask (alert packets) offer no
        # ``read_component``: their panels get no overlay.
        has_planes = hasattr(reader, "read_component")
        if has_planes and (self.settings.display.needs_mask or self.settings.save_fits_stamps):
            mask = reader.read_component(region, "mask")
            names = [n for n in mask.schema.names if n]
            planes = []
            for box in boxes:
                planes.append(
                    {
                        name: cut_stamp(mask.get(name).astype(np.float32), mask.bbox, box, fill=0.0) > 0
                        for name in names
                    }
                )
        if has_planes and self.settings.save_fits_stamps:
            variance = reader.read_component(region, "variance")
            variances = [cut_stamp(variance.array, variance.bbox, box) for box in boxes]
            unit = getattr(variance, "unit", None)
            unit = None if unit is None else unit**0.5
        return _RoleCut(stamps, boxes, planes, variances, unit, x, y)

    def cut_stamps(
        self,
        row: Mapping[str, Any],
        readers: Mapping[str, PlaneReader],
        positions: Mapping[str, tuple[float, float]],
        sizes: tuple[int, ...] | None = None,
    ) -> tuple[tuple[int, ...], dict[str, list[np.ndarray]]]:
        """Cut the stamps of one source from each image.

        Parameters
        ----------
        row : `~collections.abc.Mapping`
            The source.
        readers : `~collections.abc.Mapping` [`str`, `~lsst.analysis.ap.images.butler.PlaneReader`]
            Readers of the images, by role.
        positions : `~collections.abc.Mapping` [`str`, `tuple`]
            ``(x, y)`` pixel position of the source in each image, by role.
        sizes : `tuple` [`int`, ...], optional
            Stamp widths; by default those of the settings (or of the
            source's footprint).

        Returns
        -------
        sizes : `tuple` [`int`, ...]
            Stamp widths.
        stamps : `dict` [`str`, `list` [`numpy.ndarray`]]
            One stamp per size, by role.

        """
        sizes = self._sizes(row) if sizes is None else tuple(sizes)
        stamps = {}
        for role in IMAGE_ROLES:
            x, y = positions[role]
            stamps[role] = self._cut(role, readers[role], x, y, sizes).stamps
        return sizes, stamps

    def render(
        self,
        row: Mapping[str, Any] | None,
        sizes: tuple[int, ...],
        stamps: Mapping[str, list[np.ndarray]],
        scale: float | None,
        *,
        renderer: TripletRenderer | None = None,
    ) -> bytes:
        """Draw one source's stamps as a PNG.

        Parameters
        ----------
        row : `~collections.abc.Mapping` or `None`
            The source, drawn as annotations when the renderer draws
            metadata.
        sizes : `tuple` [`int`, ...]
            Stamp widths.
        stamps : `~collections.abc.Mapping` [`str`, `list` [`numpy.ndarray`]]
            One stamp per size, by role.
        scale : `float` or `None`
            Pixel scale in arcseconds, for the scale bars.
        renderer : `~lsst.analysis.ap.display.renderer.TripletRenderer`, optional
            The renderer to draw with; by default the configuration's for
            ``sizes``.

        Returns
        -------
        png : `bytes`
            The PNG.

        """
        renderer = renderer or self._renderer_for(sizes)
        annotation = (
            SourceAnnotation.from_row(row, instrument=_instrument_of(row))
            if renderer.add_metadata and row is not None
            else None
        )
        triplets = [
            (stamps["template"][i], stamps["science"][i], stamps["difference"][i]) for i in range(len(sizes))
        ]
        return renderer.render_png(triplets, annotation, scale)

    def save_numpy(
        self, dia_source_id: int, sizes: tuple[int, ...], stamps: Mapping[str, list[np.ndarray]]
    ) -> None:
        """Save the raw stamps as arrays of shape ``(1, size, size)``, the
        layout of the original package that its users' readers expect.

        Parameters
        ----------
        dia_source_id : `int`
            The source.
        sizes : `tuple` [`int`, ...]
            Stamp widths.
        stamps : `~collections.abc.Mapping` [`str`, `list` [`numpy.ndarray`]]
            One stamp per size, by role.

        """
        for role in ROLES:
            for size, stamp in zip(sizes, stamps[role.name], strict=True):
                relpath = self.layout.numpy_relpath(dia_source_id, role.tag, size)
                self.store.write(relpath, numpy_bytes(stamp[np.newaxis, ...]))

    def _draw_one(self, row: dict, readers: Mapping[str, PlaneReader], geometry: dict[str, Any]) -> dict:
        index = geometry["index"][row["diaSourceId"]]
        resampled = False
        limits: Any = None
        try:
            sizes = self._sizes(row)
            per_role: dict[str, _RoleCut] = {}
            for role in IMAGE_ROLES:
                xs, ys = geometry["positions"][role]
                per_role[role] = self._cut(role, readers[role], xs[index], ys[index], sizes)
            # A source is drawn when at least one panel has data; empty
            # panels are drawn in the no-data colour and labelled.
            if not any(np.isfinite(s).any() for cut in per_role.values() for s in cut.stamps):
                images = ", ".join(readers[role].name for role in IMAGE_ROLES)
                raise SourceFailure(ReasonCode.NO_DATA, f"no stamp has valid pixels (all NaN) in {images}")
            renderer = self._renderer_for(sizes)
            annotation = (
                SourceAnnotation.from_row(row, instrument=str(row["instrument"]))
                if renderer.add_metadata
                else None
            )
            display = self.settings.display
            contexts = None
            stamps = [
                (
                    per_role["template"].stamps[i],
                    per_role["science"].stamps[i],
                    per_role["difference"].stamps[i],
                )
                for i in range(len(sizes))
            ]
            if not display.is_default:
                stamps, contexts, resampled = self._prepare_display(row, readers, per_role, geometry["scale"])
            rendered = renderer.render_source(
                stamps, annotation, geometry["scale"], contexts, negative_flux(row.get("psfFlux"))
            )
            limits = rendered.limits
            dia_source_id = int(row["diaSourceId"])
            if self.settings.save_as_numpy:
                self.save_numpy(dia_source_id, sizes, {role: cut.stamps for role, cut in per_role.items()})
            if self.settings.save_fits_stamps:
                self._write_fits_stamps(row, readers, per_role, sizes)
            if self.settings.single_stamps:
                self._write_single_stamps(dia_source_id, renderer, stamps, contexts, sizes)
            self.store.write(self.layout.image_relpath(dia_source_id), rendered.png)
        except SourceFailure as failure:
            return self._fail(row, failure.code, str(failure), failure)
        except ImageUnavailableError as error:
            return self._fail(row, ReasonCode.READ_ERROR, str(error), error)
        except OutputError:
            # The output directory cannot be written (full, read-only,
            # unreachable): not this source's fault, and every other
            # source would fail the same way.
            raise
        except Exception as error:  # one bad source never aborts the run
            return self._fail(row, ReasonCode.ERROR, f"{type(error).__name__}: {error}", error)
        record = self._record(row, STATUS_WRITTEN, limits=limits, resampled=resampled)
        return {**record, "drawing": self.settings.drawing, "png_size": len(rendered.png)}

    def _prepare_display(
        self,
        row: dict,
        readers: Mapping[str, PlaneReader],
        per_role: Mapping[str, _RoleCut],
        scale: float | None,
    ) -> tuple[list, list, bool]:
        """Orient, smooth and decorate the stamps of one source."""
        display = self.settings.display
        roles = []
        for role in IMAGE_ROLES:
            cut = per_role[role]
            projection = readers[role].projection
            sky_to_pixel, pixel_to_sky = (
                (None, None) if projection is None else projection_mappings(projection)
            )
            panels = tuple(
                PanelInput(
                    stamp,
                    box.x0,
                    box.y0,
                    cut.x,
                    cut.y,
                    None if cut.planes is None else _canonical_planes(cut.planes[i]),
                )
                for i, (stamp, box) in enumerate(zip(cut.stamps, cut.boxes, strict=True))
            )
            roles.append(RoleStamps(panels, sky_to_pixel, pixel_to_sky))
        return prepare_source(display, roles, float(row["ra"]), float(row["dec"]), scale)

    def _write_fits_stamps(
        self,
        row: dict,
        readers: Mapping[str, PlaneReader],
        per_role: Mapping[str, _RoleCut],
        sizes: tuple[int, ...],
    ) -> None:
        dia_source_id = int(row["diaSourceId"])
        for role in ROLES:
            cut = per_role[role.name]
            projection = readers[role.name].projection
            pixel_to_sky = None if projection is None else projection_mappings(projection)[1]
            for i, size in enumerate(sizes):
                box = cut.boxes[i]
                wcs = (
                    None
                    if pixel_to_sky is None
                    else local_tan_wcs(pixel_to_sky, cut.x, cut.y, box.x0, box.y0, size)
                )
                data = stamp_fits_bytes(
                    cut.stamps[i],
                    wcs,
                    variance=None if cut.variances is None else cut.variances[i],
                    mask=None if cut.planes is None else cut.planes[i],
                    unit=None if cut.unit is None else str(cut.unit),
                    x0=box.x0,
                    y0=box.y0,
                    metadata={
                        "DIASRCID": dia_source_id,
                        "VISIT": int(row["visit"]),
                        "DETECTOR": int(row["detector"]),
                    },
                )
                self.store.write(self.layout.fits_relpath(dia_source_id, role.tag, size), data)

    def _write_single_stamps(
        self,
        dia_source_id: int,
        renderer: TripletRenderer,
        stamps: list,
        contexts: list | None,
        sizes: tuple[int, ...],
    ) -> None:
        colormaps = renderer.options.colormaps
        for i, size in enumerate(sizes):
            for column, role in enumerate(ROLES):
                scaling = renderer.scalings[column]
                context = contexts[i][column] if contexts is not None else None
                interval = (
                    context.interval
                    if context is not None and context.interval is not None
                    else scaling.interval
                )
                png = stamp_png(
                    stamps[i][column],
                    interval,
                    scaling.stretch,
                    colormaps[column] or renderer.colormap,
                    renderer.no_data_rgb,
                    renderer.compress_level,
                )
                relpath = self.layout.single_stamp_relpath(dia_source_id, role.tag, size)
                self.store.write(relpath, png)


@dataclasses.dataclass
class _RoleCut:
    """The stamps of one image of one source, one per size."""

    stamps: list[np.ndarray]
    boxes: list[StampBox]
    planes: list[dict[str, np.ndarray]] | None
    variances: list[np.ndarray] | None
    unit: Any
    x: float
    y: float


def _canonical_planes(planes: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Mask planes keyed by their lsst.images names (afw names mapped)."""
    return {canonical_plane_name(name): bits for name, bits in planes.items()}


def _instrument_of(row: Mapping[str, Any]) -> str:
    """The row's instrument name ('' when it has none)."""
    value = row.get("instrument")
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _sky_to_pixel(reader: PlaneReader, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel positions of sky positions; a position the projection refuses
    gets NaN (its source alone fails as off the image).
    """
    try:
        return reader.sky_to_pixel(ra, dec)
    except ImageUnavailableError:
        raise
    except Exception:
        if len(ra) == 1:
            return np.array([np.nan]), np.array([np.nan])
    pairs = [_sky_to_pixel(reader, ra[i : i + 1], dec[i : i + 1]) for i in range(len(ra))]
    return np.concatenate([x for x, _ in pairs]), np.concatenate([y for _, y in pairs])


def make_detector_records(
    cutouter: DetectorCutouter,
    sources: pd.DataFrame,
    open_readers: Callable[[], Mapping[str, PlaneReader]],
) -> pd.DataFrame:
    """Open the readers of one visit × detector (once) and process its
    sources; a missing or unreadable image fails them all with its reason,
    and so does any unexpected error of the visit × detector as a whole
    (the other visit × detectors go on).

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

    Raises
    ------
    KeyboardInterrupt
        The command was interrupted (before any work here).

    """
    stop_if_interrupted()
    try:
        readers: Mapping[str, PlaneReader] | ImageUnavailableError = open_readers()
    except ImageUnavailableError as error:
        readers = error
    try:
        return cutouter.process(sources, readers)
    except OutputError:
        # The output directory cannot be written: every other visit ×
        # detector would fail the same way (the command reports it once).
        raise
    except Exception as error:  # one bad visit × detector never aborts the run
        first = sources.iloc[0]
        reason = (
            f"visit {int(first['visit'])} detector {int(first['detector'])}: {type(error).__name__}: {error}"
        )
        cutouter.log.warning("%s; its %d source(s) fail", reason, len(sources))
        for dia_source_id in sources["diaSourceId"].tolist():
            cutouter.failure_log.error(int(dia_source_id), error)
        return cutouter.fail_all(sources, ReasonCode.ERROR, reason)


def _limits_json(limits: Any) -> str:
    """The display limits of a source as recorded: JSON ``{role: [[vmin,
    vmax] or null per size]}``; empty when the source was not drawn.
    """
    if limits is None:
        return ""
    table = {
        role: [None if row[column] is None else [float(v) for v in row[column]] for row in limits]
        for column, role in enumerate(IMAGE_ROLES)
    }
    return json.dumps(table, separators=(",", ":"))
