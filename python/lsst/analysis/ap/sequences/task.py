"""`PlotDiaObjectSequencesTask`: every epoch of DiaObjects, from a Butler."""

from __future__ import annotations

__all__ = (
    "EPOCH_COLUMNS",
    "PlotDiaObjectSequencesConfig",
    "PlotDiaObjectSequencesTask",
    "require_object_ids",
)

import dataclasses
import functools
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import lsst.pex.config as pexConfig
import lsst.pipe.base as pipeBase
import numpy as np
import pandas as pd
from astropy.visualization import ManualInterval
from PIL import Image

from ..datasets import IMAGE_ROLES as ROLES
from ..datasets import image_dataset_types
from ..display.renderer import TripletRenderer
from ..display.scaling import DEFAULT_SCALINGS, DisplayScaling, finite_limits
from ..geometry import mean_sky_position, pixel_scale_arcsec
from ..images.butler import ImageUnavailableError, PlaneReader, butler_plane_reader
from ..interrupts import stop_if_interrupted
from ..outputs.ledger import run_token
from ..outputs.manifests import (
    RECORDS_FILE,
    SEQUENCE_DIR,
    SEQUENCE_EPOCHS_FILE,
    SEQUENCE_LOCK_FILE,
    SEQUENCE_OBJECTS_FILE,
)
from ..outputs.store import OutputError, OutputStore
from ..parallel import cleaned_after_interrupt, map_in_workers, usable_njobs
from ..records import id_array
from ..sources import (
    NO_DIA_OBJECT_ID,
    NOT_A_DIA_OBJECT,
    SourceTableError,
    columns_present,
    exact_integer,
    integer_column,
    source_ids_of,
    source_rows,
    standardize_repository_sources,
)
from .align import AlignedStamp, common_grid, cut_aligned, grids_agree, local_grid
from .epochs import EPOCH_CHOICES, TIME_COLUMN, choose_epochs
from .products import (
    EpochLabel,
    animation_bytes,
    contact_sheet,
    contact_sheet_size,
    label_frame,
    sequence_manifests,
)

if TYPE_CHECKING:
    from ..apdb import DiaSourceSelection


MAX_SEQUENCE_STAMP = 1024
"""Largest stamp and panel size of a sequence (pixels): every epoch's three
stamps are held at once, and the contact sheet stacks the epochs' panels."""

MAX_SEQUENCE_EPOCHS = 500
"""Largest ``max_epochs``: a contact sheet of 500 epochs at the default panel
size is about 100,000 pixels tall."""


class PlotDiaObjectSequencesConfig(pexConfig.Config):
    """Configuration of `PlotDiaObjectSequencesTask`."""

    size = pexConfig.RangeField[int](
        doc=f"Stamp width and height, in pixels (at most {MAX_SEQUENCE_STAMP}).",
        default=41,
        min=5,
        max=MAX_SEQUENCE_STAMP,
        inclusiveMax=True,
    )
    max_epochs = pexConfig.RangeField[int](
        doc=f"Most epochs shown per object (at most {MAX_SEQUENCE_EPOCHS}); None shows all.  An "
        "object with more epochs to draw than a contact sheet can hold (image readers open images of "
        "up to about 89 million pixels: 633 epochs at the default size and panel_pixels, 25 with "
        "panel_pixels 1024) fails with that reason, before any pixel is read.",
        default=30,
        min=1,
        max=MAX_SEQUENCE_EPOCHS,
        inclusiveMax=True,
        optional=True,
    )
    epoch_choice = pexConfig.ChoiceField[str](
        doc="Which epochs are kept when an object has more than max_epochs.",
        default="latest",
        allowed=EPOCH_CHOICES,
    )
    group_by_band = pexConfig.Field[bool](
        doc="Order epochs by band, then time (else by time only).", default=False
    )
    include_non_detections = pexConfig.Field[bool](
        doc="Also show every other visit image that covers the object (from the Butler registry's "
        "visit_detector_region), labelled 'not detected'.",
        default=False,
    )
    alignment = pexConfig.ChoiceField[str](
        doc="How epochs are put on one grid.",
        default="auto",
        allowed={
            "auto": "cut each image's own pixels when all epochs share one pixel orientation, else "
            "resample onto a north-up grid",
            "north_up": "always resample onto a north-up, east-left grid centred on the object",
        },
    )
    normalization = pexConfig.ChoiceField[str](
        doc="Display limits shared by all frames of an object, so animations do not breathe.",
        default="all",
        allowed={
            "all": "each panel's limits from all its frames together",
            "template": "template and science limits from the template frames; difference from all "
            "difference frames",
        },
    )
    animation_image = pexConfig.ChoiceField[str](
        doc="Which image the animations show.",
        default="difference",
        allowed={"difference": "the difference image", "science": "the science image"},
    )
    frame_duration_ms = pexConfig.RangeField[int](
        doc="Display time of each animation frame (ms; GIF stores at most 655350).",
        default=600,
        min=20,
        max=655_350,
        inclusiveMax=True,
    )
    panel_pixels = pexConfig.RangeField[int](
        doc=f"Size of each panel on the images (at most {MAX_SEQUENCE_STAMP}).",
        default=160,
        min=32,
        max=MAX_SEQUENCE_STAMP,
        inclusiveMax=True,
    )
    science_image_type = pexConfig.Field[str](doc="Dataset type of the science images.", default="")
    diff_image_type = pexConfig.Field[str](
        doc="Prefix of legacy template/difference dataset types (as the cutout task).",
        default=None,
        optional=True,
    )
    url_root = pexConfig.Field[str](
        doc="URL the output directory is served at; enables the subject-set manifest.",
        default=None,
        optional=True,
    )

    def setDefaults(self) -> None:  # noqa: N802 (pex_config API)
        from ..datasets import DEFAULT_SCIENCE_TYPE

        self.science_image_type = DEFAULT_SCIENCE_TYPE


def require_object_ids(sources: pd.DataFrame, origin: str = "DiaSource table") -> pd.DataFrame:
    """``sources`` with exact integer ``diaObjectId`` values (null for a
    source of no object; integer text read as its number).

    Raises
    ------
    lsst.analysis.ap.sources.SourceTableError
        Raised when ``sources`` has no ``diaObjectId`` column, or when a
        value in it is not an exact integer (a fraction, other text); the
        message names the column and the rows.

    """
    if "diaObjectId" not in sources.columns:
        raise SourceTableError(
            f"{origin}: no 'diaObjectId' column, which says the DiaObject of each DiaSource "
            f"({columns_present(sources.columns)})."
        )
    ids = sources["diaObjectId"]
    if ids.dtype.kind in "iu":  # numpy's, or pandas' nullable Int64 and UInt64
        return sources
    return sources.assign(
        diaObjectId=integer_column(ids, "diaObjectId", origin, nullable=True, ids=source_ids_of(sources))
    )


_KEY_COLUMNS = ["diaObjectId", "visit", "detector"]


def _object_dir(object_id: int) -> str:
    """The directory of an object's products (relative to the output)."""
    return f"{SEQUENCE_DIR}/{object_id}"


def _product_paths(object_id: int) -> dict[str, str]:
    """The contact sheet and animations of an object, by ``objects.csv``
    column."""
    relative = _object_dir(object_id)
    return {
        "contact_sheet": f"{relative}/contact_sheet.png",
        "gif": f"{relative}/animation.gif",
        "apng": f"{relative}/animation.png",
    }


_OBJECT_TABLE_NEEDS = ("diaObjectId", "ra", "dec", "status", "frames")
"""Columns an earlier run's ``objects.csv`` must have to be merged."""

_EPOCH_TABLE_NEEDS = ("diaObjectId", "status", "path")
"""Columns an earlier run's ``epochs.csv`` must have to be merged."""

EPOCH_COLUMNS = (
    "diaObjectId",
    "epoch",
    "visit",
    "detector",
    "mjd",
    "band",
    "detected",
    "flux",
    "status",
    "reason",
    "path",
    "diaSourceId",
)
"""Columns of ``epochs.csv`` (one row per epoch of each object; the
``diaSourceId`` of a detection, empty for a non-detection)."""


class PlotDiaObjectSequencesTask(pipeBase.Task):
    """Contact sheets, animations and multi-frame subjects of DiaObjects.

    Parameters
    ----------
    output_path : `str`, optional
        Directory (or lsst-resources URI) the products are written under,
        in ``sequences/<diaObjectId>/``.
    **kwargs
        Passed to `lsst.pipe.base.Task`.

    """

    ConfigClass = PlotDiaObjectSequencesConfig
    _DefaultName = "plotDiaObjectSequences"

    def __init__(self, *, output_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store = OutputStore(output_path)

    # ------------------------------------------------------------------

    def run(
        self,
        dia_object_ids: Iterable[int],
        butler: Any,
        sources: pd.DataFrame,
        njobs: int = 0,
        *,
        origin: str = "DiaSource table",
        window: DiaSourceSelection | None = None,
        page_sources: pd.DataFrame | None = None,
        refresh_page: bool = True,
    ) -> pipeBase.Struct:
        """Draw the sequences of DiaObjects.

        Parameters
        ----------
        dia_object_ids : iterable of `int`
            Objects to draw.
        butler : `lsst.daf.butler.Butler`
            Butler with the images (default collections set).
        sources : `pandas.DataFrame`
            DiaSources with at least ``diaObjectId``, ``diaSourceId``,
            ``visit``, ``detector``, ``ra``, ``dec`` and ``midpointMjdTai``
            (``band`` and ``psfFlux`` are shown when present).  They are
            checked as the cutout task's are
            (`lsst.analysis.ap.sources.standardize_repository_sources`):
            rows without an ``instrument`` are of the repository's only
            instrument, and rows whose coordinates cannot be drawn are left
            out with a warning.
        njobs : `int`, optional
            Worker processes drawing objects in parallel (0: in this
            process); at most one per core this process may run on (a
            larger value is capped, with a warning).
        origin : `str`, optional
            Where the sources came from, for error messages.
        window : `lsst.analysis.ap.apdb.DiaSourceSelection`, optional
            The epochs to draw (bands, MJD range): DiaSources outside it are
            not drawn, and with ``include_non_detections`` only visits in
            it are added, never a visit where the object has a DiaSource
            outside it.
        page_sources : `pandas.DataFrame`, optional
            DiaSources whose catalog values the vetting page of a cutout run
            in the output directory shows when it is rewritten with the
            sequences (default: ``sources``); give them when ``sources``
            holds only the objects' DiaSources.
        refresh_page : `bool`, optional
            Whether to rewrite that page (`False` when the DiaSources it
            needs could not be read: it then keeps its catalog values).

        Returns
        -------
        result : `lsst.pipe.base.Struct`
            ``objects`` (one record per object: status, reason, products),
            ``epochs`` (one record per epoch) and ``summary`` (counts).

        Raises
        ------
        lsst.analysis.ap.sources.SourceTableError
            Raised, before any work, when ``sources`` has no ``diaObjectId``
            column, or cannot be used (a ``diaSourceId`` appears twice, a
            required column is missing, ...; the message names the column
            and the rows).

        """
        ids = list(dict.fromkeys(_object_id(i) for i in dia_object_ids))
        sources, left_out = self._standardize(sources, butler, origin)
        # Before any drawing: the partial files of an interrupted run are
        # removed, and a lock file that cannot be opened stops the run.
        self.store.sweep_temporaries((SEQUENCE_DIR,))
        with self.store.locked(SEQUENCE_LOCK_FILE):
            pass
        # Every visit × detector where an object has a DiaSource, drawable
        # or not, in the window or not: never one of its non-detections.
        everything = pd.concat([sources[_KEY_COLUMNS], left_out[_KEY_COLUMNS]], ignore_index=True)
        observed = {
            int(object_id): frozenset(zip(group["visit"].tolist(), group["detector"].tolist(), strict=True))
            for object_id, group in everything.groupby("diaObjectId", sort=False)
        }
        if window is not None:
            sources = window.apply(sources, origin)
            left_out = window.apply(left_out, origin) if len(left_out) else left_out
        rows_of = {int(k): group for k, group in sources.groupby("diaObjectId", sort=False)}
        lost_of = {int(k): group for k, group in left_out.groupby("diaObjectId", sort=False)}
        # The sources of no DiaObject are not one object's epochs.
        for table in (observed, rows_of, lost_of):
            table.pop(NO_DIA_OBJECT_ID, None)
        work = [
            _ObjectWork(
                object_id,
                rows_of.get(object_id, sources.iloc[0:0]),
                observed.get(object_id, frozenset()),
                window,
                lost_of.get(object_id, left_out.iloc[0:0]),
            )
            for object_id in ids
        ]
        njobs = usable_njobs(njobs, self.log)
        if njobs > 0 and len(work) > 1:
            with cleaned_after_interrupt(lambda: self.store.sweep_temporaries((SEQUENCE_DIR,))):
                results = map_in_workers(
                    _start_worker,
                    (self.config, self.store.location, butler),
                    _draw_object_in_worker,
                    work,
                    njobs,
                )
            order = {object_id: k for k, object_id in enumerate(ids)}
            results.sort(key=lambda result: order[result[0]["diaObjectId"]])
        else:
            results = [self._run_object(item, butler) for item in work]
        objects, epochs = [], []
        for record, epoch_records in results:
            object_id = record["diaObjectId"]
            objects.append(record)
            epochs.extend(epoch_records)
            self.log.info(
                "diaObjectId %d: %s (%d epochs)%s",
                object_id,
                record["status"],
                record["n_epochs"],
                f": {record['reason']}" if record["reason"] else "",
            )
        objects_frame = pd.DataFrame(objects)
        epochs_frame = pd.DataFrame(epochs, columns=EPOCH_COLUMNS)
        # The directory's tables keep the objects earlier runs (and runs
        # at the same time) drew there.
        with self.store.locked(SEQUENCE_LOCK_FILE):
            directory_objects, directory_epochs = self._merge_earlier(objects_frame, epochs_frame)
            self._write_tables(directory_objects, directory_epochs)
            if refresh_page:
                self._refresh_vetting_page(sources if page_sources is None else page_sources)
        summary = self._summary(objects_frame, epochs_frame)
        return pipeBase.Struct(objects=objects_frame, epochs=epochs_frame, summary=summary)

    def _standardize(
        self, sources: pd.DataFrame, butler: Any, origin: str
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The sources checked as the cutout task's, and apart the rows that
        cannot be drawn (each logged; their ``reason`` says why).
        """
        sources = require_object_ids(sources, origin)
        if TIME_COLUMN not in sources.columns:
            raise SourceTableError(
                f"{origin} has no {TIME_COLUMN!r} column: the epochs of an object are placed in time by it"
            )
        table = standardize_repository_sources(sources, butler, origin=origin)
        for row in source_rows(table.rejected):
            self.log.warning(
                "%s: diaSourceId %d (diaObjectId %s) is left out: %s",
                origin,
                row["diaSourceId"],
                row["diaObjectId"],
                row["reason"],
            )
        return table.sources, table.rejected

    def _refresh_vetting_page(self, sources: pd.DataFrame) -> None:
        """When the output directory holds a cutout run, rewrite its vetting
        page: each source's large view shows its object's frames (the page
        writer finds them in ``sequences/objects.csv``).
        """
        from ..vetting.page import write_output_vetting_page

        if self.store.size(RECORDS_FILE) is None:
            return
        try:
            write_output_vetting_page(self.store, sources)
        except Exception as error:  # the page is a view; the sequences are written
            self.log.warning("Could not add the sequences to the vetting page: %s", error)

    # ------------------------------------------------------------------

    def _object_record(self, object_id: int, ra: float, dec: float, **values: Any) -> dict[str, Any]:
        record = dict(
            diaObjectId=object_id,
            ra=ra,
            dec=dec,
            status="failed",
            reason="",
            n_epochs=0,
            n_detected=0,
            n_epochs_failed=0,
            resampled=False,
            frames="",
            contact_sheet="",
            gif="",
            apng="",
        )
        record.update(values)
        return record

    def _epochs(
        self, work: _ObjectWork, rows: pd.DataFrame, butler: Any, ra: float, dec: float
    ) -> pd.DataFrame:
        detections = rows.assign(detected=True)
        if self.config.include_non_detections:
            missed = self._non_detections(work, rows, butler, ra, dec)
            if work.window is not None and len(missed):
                missed = work.window.apply(missed, "the visits without a DiaSource")
            detections = pd.concat([detections, missed], ignore_index=True)
        return choose_epochs(
            detections,
            max_epochs=self.config.max_epochs,
            choice=self.config.epoch_choice,
            group_by_band=self.config.group_by_band,
        )

    def _non_detections(
        self, work: _ObjectWork, rows: pd.DataFrame, butler: Any, ra: float, dec: float
    ) -> pd.DataFrame:
        """The visit × detectors whose region holds the object and where it
        has no DiaSource at all (in the epoch window or not)."""
        instrument = str(rows["instrument"].iloc[0])
        seen = {(int(v), int(d)) for v, d in work.observed}
        data_ids = butler.query_data_ids(
            ["visit", "detector"],
            where=f"instrument = '{instrument}' AND visit_detector_region.region OVERLAPS POINT({ra}, {dec})",
            with_dimension_records=True,
            explain=False,
        )
        extra = []
        for data_id in data_ids:
            key = (int(data_id["visit"]), int(data_id["detector"]))
            if key in seen:
                continue
            visit = data_id.records["visit"]
            extra.append(
                dict(
                    diaObjectId=int(rows["diaObjectId"].iloc[0]),
                    diaSourceId=0,
                    instrument=instrument,
                    visit=key[0],
                    detector=key[1],
                    ra=ra,
                    dec=dec,
                    band=str(visit.physical_filter and data_id.get("band", "") or ""),
                    psfFlux=np.nan,
                    detected=False,
                    **{TIME_COLUMN: float(visit.timespan.begin.mjd)},
                )
            )
            seen.add(key)
        return pd.DataFrame(extra)

    @staticmethod
    def _epoch_record(object_id: int, k: int, epoch: Mapping[str, Any]) -> dict[str, Any]:
        """The ``epochs.csv`` row (`EPOCH_COLUMNS`) of epoch ``k`` of an
        object, not drawn yet."""
        mjd = pd.to_numeric(epoch.get(TIME_COLUMN), errors="coerce")
        values = (
            object_id,
            k,
            int(epoch["visit"]),
            int(epoch["detector"]),
            float(mjd) if mjd is not None and not pd.isna(mjd) else math.nan,
            str(epoch.get("band") or ""),
            bool(epoch["detected"]),
            _finite_or_none(epoch.get("psfFlux")),
            "failed",
            "",
            "",
            exact_integer(epoch.get("diaSourceId")) if epoch["detected"] else None,
        )
        return dict(zip(EPOCH_COLUMNS, values, strict=True))

    def _readers(self, butler: Any, epoch: Mapping[str, Any]) -> dict[str, PlaneReader]:
        types = image_dataset_types(self.config.science_image_type, self.config.diff_image_type)
        data_id = dict(
            instrument=str(epoch["instrument"]), visit=int(epoch["visit"]), detector=int(epoch["detector"])
        )
        return {role: butler_plane_reader(butler, types[role], data_id) for role in ROLES}

    def _run_object(self, work: _ObjectWork, butler: Any) -> tuple[dict, list[dict]]:
        stop_if_interrupted()
        object_id, rows = work.object_id, work.rows
        if object_id == NO_DIA_OBJECT_ID:
            return self._object_record(
                object_id, math.nan, math.nan, reason=f"diaObjectId {NOT_A_DIA_OBJECT}"
            ), []
        if rows.empty and work.left_out.empty:
            reason = "no DiaSources of this object"
            if work.observed and work.window is not None:
                reason = (
                    f"none of the object's {len(work.observed)} visit × detector(s) with a DiaSource is in "
                    f"the epoch window ({work.window.describe()})"
                )
            return self._object_record(object_id, math.nan, math.nan, reason=reason), []
        ra, dec = mean_sky_position(rows["ra"].to_numpy(dtype=float), rows["dec"].to_numpy(dtype=float))
        # An epoch without a time cannot be placed in the sequence: it is
        # recorded as not drawn, after the others.
        untimed = rows.iloc[0:0]
        if TIME_COLUMN in rows.columns:
            times = pd.to_numeric(rows[TIME_COLUMN], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            untimed, rows = rows[~np.isfinite(times)], rows[np.isfinite(times)]
        try:
            chosen = self._epochs(work, rows, butler, ra, dec) if len(rows) else rows.assign(detected=True)
        except Exception as error:
            return self._object_record(object_id, ra, dec, reason=f"cannot choose epochs: {error}"), []
        size = self.config.size
        most = self._most_sheet_epochs()
        too_large = ""
        cut: list[tuple[dict, dict[str, PlaneReader]]] = []
        epoch_records = []
        for k, epoch in enumerate(chosen.to_dict("records")):
            record = self._epoch_record(object_id, k, epoch)
            epoch_records.append(record)
            if too_large:
                record["reason"] = too_large  # not opened: the object fails
                continue
            try:
                readers = self._readers(butler, epoch)
                for role in ROLES:
                    local_grid(readers[role], ra, dec)  # raises when the object is off the image
            except (ImageUnavailableError, LookupError, ValueError) as error:
                record["reason"] = str(error)
                continue
            cut.append((record, readers))
            if most is not None and len(cut) > most:
                # More epochs to draw than a contact sheet can hold: the
                # object fails before any pixel is read, and the epochs
                # left are not opened (an object of thousands of epochs
                # fails at once).
                too_large = self._sheet_too_large_reason(most)
                for opened, readers in cut:
                    opened["reason"] = too_large
                    for reader in readers.values():
                        reader.release()
                cut = []
        for epoch in untimed.assign(detected=True).to_dict("records"):
            record = self._epoch_record(object_id, len(epoch_records), epoch)
            record["reason"] = (
                f"{TIME_COLUMN} is {epoch[TIME_COLUMN]!r}, not a finite MJD: the epoch has no time"
            )
            epoch_records.append(record)
        for epoch in work.left_out.assign(detected=True).to_dict("records"):
            record = self._epoch_record(object_id, len(epoch_records), epoch)
            record["reason"] = f"diaSourceId {epoch['diaSourceId']} cannot be drawn: {epoch['reason']}"
            epoch_records.append(record)
        if not cut:
            reasons = "; ".join(sorted({r["reason"] for r in epoch_records})) or "no epochs"
            return (
                self._object_record(
                    object_id,
                    ra,
                    dec,
                    reason=too_large or f"no epoch could be drawn: {reasons}",
                    n_epochs_failed=len(epoch_records),
                ),
                epoch_records,
            )
        try:
            return self._draw_object(object_id, ra, dec, size, cut, epoch_records)
        except OutputError:
            raise
        except Exception as error:  # one object's failure never ends the run
            reason = f"cannot draw the sequence: {type(error).__name__}: {error}"
            self.log.debug("diaObjectId %d: %s", object_id, reason, exc_info=True)
            for record in epoch_records:
                if record["status"] == "written":
                    self.store.remove(record["path"])  # no epoch image of an object not drawn
                if record["status"] == "written" or not record["reason"]:
                    record.update(status="failed", reason=reason, path="")
            for path in _product_paths(object_id).values():
                self.store.remove(path)  # nor a contact sheet or animation written before the error
            failed = len(epoch_records)
            return self._object_record(
                object_id, ra, dec, reason=reason, n_epochs_failed=failed
            ), epoch_records
        finally:
            for _, readers in cut:
                for reader in readers.values():
                    reader.release()

    def _draw_object(
        self,
        object_id: int,
        ra: float,
        dec: float,
        size: int,
        cut: list[tuple[dict, dict[str, PlaneReader]]],
        epoch_records: list[dict],
    ) -> tuple[dict, list[dict]]:
        cds = [local_grid(readers[role], ra, dec) for _, readers in cut for role in ROLES]
        resample = self.config.alignment == "north_up" or not grids_agree(cds)
        grid = None
        if resample:
            science = cut[0][1]["science"]
            scale = pixel_scale_arcsec(science.projection, science.bbox)
            grid = common_grid(ra, dec, scale, size)
        stamps: list[dict[str, AlignedStamp]] = [
            {role: cut_aligned(readers[role], ra, dec, size, grid) for role in ROLES} for _, readers in cut
        ]
        renderer = self._renderer(stamps)
        relative = _object_dir(object_id)
        rows, frames, labels, frame_paths = [], [], [], []
        role_index = ROLES.index(self.config.animation_image)
        panel = renderer.panel_boxes[0][role_index]
        for (record, _), stamp in zip(cut, stamps, strict=True):
            image = renderer.render([[stamp[role].array for role in ROLES]])
            label = EpochLabel(
                mjd=record["mjd"],
                band=record["band"],
                flux=record["flux"],
                detected=record["detected"],
                visit=record["visit"],
                detector=record["detector"],
            )
            path = f"{relative}/epoch{record['epoch']:03d}_visit{record['visit']}.png"
            self.store.write(path, _png(image))
            record.update(status="written", path=path)
            rows.append(image)
            frames.append(label_frame(image.crop((panel.x0, panel.y0, panel.x1, panel.y1)), label))
            labels.append(label)
            frame_paths.append(path)
        sheet = contact_sheet(rows, labels, title=f"diaObjectId {object_id}  RA {ra:.5f}  Dec {dec:.5f}")
        products = _product_paths(object_id)
        self.store.write(products["contact_sheet"], _png(sheet))
        duration = self.config.frame_duration_ms
        self.store.write(products["gif"], animation_bytes(frames, duration, "GIF"))
        self.store.write(products["apng"], animation_bytes(frames, duration, "PNG"))
        # Epoch images of an earlier drawing that no table lists (its run
        # was killed before writing the tables) are not this drawing's.
        kept = set(frame_paths)
        for path in self.store.list_files(relative):
            name = path.rsplit("/", 1)[-1]
            if path not in kept and name.startswith("epoch") and name.endswith(".png"):
                self.store.remove(path)
        n_failed = sum(1 for r in epoch_records if r["status"] == "failed")
        record = self._object_record(
            object_id,
            ra,
            dec,
            status="written",
            reason=f"{n_failed} epoch(s) not drawn" if n_failed else "",
            n_epochs=len(frame_paths),
            n_detected=sum(1 for label in labels if label.detected),
            n_epochs_failed=n_failed,
            resampled=resample,
            frames=";".join(frame_paths),
            **products,
        )
        return record, epoch_records

    @functools.cached_property
    def _canvas_size(self) -> tuple[int, int]:
        """Width and height of one epoch's row of the contact sheet."""
        return self._renderer().canvas_size

    def _most_sheet_epochs(self) -> int | None:
        """Most epochs a contact sheet may hold: image readers open no
        image of more than `PIL.Image.MAX_IMAGE_PIXELS` pixels (`None`:
        no limit)."""
        if Image.MAX_IMAGE_PIXELS is None:
            return None
        width, bare_height = contact_sheet_size(self._canvas_size, 0)
        return int((Image.MAX_IMAGE_PIXELS // width - bare_height) // self._canvas_size[1])

    def _sheet_too_large_reason(self, most: int) -> str:
        """Why an object of more than ``most`` epochs to draw fails."""
        pixels = Image.MAX_IMAGE_PIXELS
        limit = f"{pixels / 1e6:.0f} million" if pixels >= 1e6 else f"{pixels:,}"
        limit = f"image readers open no image of more than {limit} pixels"
        if most < 1:
            width, height = contact_sheet_size(self._canvas_size, 1)
            return (
                f"a contact sheet of one epoch is {width} × {height} pixels and {limit}; "
                "set a smaller size or panel_pixels"
            )
        return (
            f"more than {most} epoch{'s' if most > 1 else ''} to draw: a contact sheet holds at most "
            f"{most} at this size and panel_pixels, as {limit}; set max_epochs to at most {most}"
        )

    def _renderer(self, stamps: Sequence[dict[str, AlignedStamp]] = ()) -> TripletRenderer:
        """A renderer whose limits are shared by every frame of the object
        (``stamps``; the default limits without them)."""
        scalings = {}
        for role in ROLES:
            source_role = (
                "template" if self.config.normalization == "template" and role == "science" else role
            )
            pixels = np.concatenate([s[source_role].array.ravel() for s in stamps] or [np.empty(0)])
            default = DEFAULT_SCALINGS[role]
            limits = finite_limits(pixels, default.interval) or (0.0, 1.0)
            scalings[role] = DisplayScaling(ManualInterval(*limits), default.stretch)
        return TripletRenderer(
            (self.config.size,),
            False,
            panel_pixels=self.config.panel_pixels,
            template_scaling=scalings["template"],
            science_scaling=scalings["science"],
            difference_scaling=scalings["difference"],
        )

    def _earlier(self, relpath: str, required: tuple[str, ...]) -> pd.DataFrame | None:
        """An earlier run's table ``relpath``, `None` when there is none,
        or when it cannot be read or lacks a ``required`` column: it is then
        kept beside, as ``<name>.unreadable-<time>``, with a warning, and
        replaced.
        """
        if self.store.size(relpath) is None:
            return None
        data = self.store.read(relpath)
        try:
            earlier = pd.read_csv(
                io.BytesIO(data),
                keep_default_na=False,
                na_values=[""],
                # Ids kept exact (diaSourceId is empty for a non-detection).
                dtype={"diaObjectId": str, "diaSourceId": str},
            )
            missing = [column for column in required if column not in earlier.columns]
            if missing:
                present = columns_present(list(earlier.columns))
                raise ValueError(f"it has no {', '.join(map(repr, missing))} column; {present}")
            earlier["diaObjectId"] = id_array([int(v) for v in earlier["diaObjectId"]])
        except pd.errors.EmptyDataError:
            # Every run writes a header: the file was emptied since.
            self.log.warning(
                "%s of an earlier run is empty; the objects earlier runs drew into %s are no longer listed "
                "(their products stay).",
                relpath,
                self.store.location,
            )
            return None
        except Exception as error:
            kept = f"{relpath}.unreadable-{run_token()}"
            self.store.write(kept, data)
            self.log.warning(
                "%s of an earlier run cannot be read (%s); it is kept as %s and replaced by a table of "
                "this run's objects only.",
                relpath,
                error,
                kept,
            )
            return None
        return earlier

    def _merge_earlier(
        self, objects: pd.DataFrame, epochs: pd.DataFrame
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The tables of the objects earlier runs drew into the same
        directory (those not drawn again) followed by this run's; the epoch
        images of a redrawn object that this run did not draw again are
        removed.
        """
        redrawn = {int(i) for i in objects["diaObjectId"]} if not objects.empty else set()
        earlier_objects, earlier_epochs = (
            self._earlier(SEQUENCE_OBJECTS_FILE, _OBJECT_TABLE_NEEDS),
            self._earlier(SEQUENCE_EPOCHS_FILE, _EPOCH_TABLE_NEEDS),
        )
        if earlier_objects is not None:
            again = earlier_objects["diaObjectId"].isin(redrawn)
            # The products of an object that failed this time are not its
            # drawing any more (one drawn again has written them anew).
            failed = objects.loc[objects["status"] != "written", "diaObjectId"] if not objects.empty else []
            stale = earlier_objects[earlier_objects["diaObjectId"].isin(set(failed))]
            for column in ("contact_sheet", "gif", "apng"):
                if column in stale.columns:
                    for path in stale[column].dropna().astype(str):
                        if path:
                            self.store.remove(path)
            objects = _concat_by_object(earlier_objects[~again], objects)
        if earlier_epochs is not None:
            again = earlier_epochs["diaObjectId"].isin(redrawn)
            kept = set(epochs["path"]) if not epochs.empty else set()
            for path in earlier_epochs.loc[again, "path"].dropna().astype(str):
                if path and path not in kept:
                    self.store.remove(path)
            epochs = _concat_by_object(earlier_epochs[~again], epochs)
        return objects, epochs

    def _write_tables(self, objects: pd.DataFrame, epochs: pd.DataFrame) -> None:
        """Write the tables, manifests and summary of the directory."""
        written = objects[objects["status"] == "written"] if not objects.empty else objects
        subject_set, panoptes = sequence_manifests(
            written if not written.empty else pd.DataFrame(columns=["diaObjectId", "ra", "dec", "frames"]),
            self.config.url_root,
        )
        files = {
            "objects.csv": objects,
            "epochs.csv": epochs,
            "panoptes_manifest.csv": panoptes,
            "failures.csv": objects[objects["status"] == "failed"] if not objects.empty else objects,
        }
        if self.config.url_root:
            files["manifest.csv"] = subject_set
        for name, frame in files.items():
            self.store.write(f"{SEQUENCE_DIR}/{name}", frame.to_csv(index=False).encode())
        summary = self._summary(objects, epochs)
        self.store.write(f"{SEQUENCE_DIR}/summary.json", (json.dumps(summary, indent=1) + "\n").encode())

    @staticmethod
    def _summary(objects: pd.DataFrame, epochs: pd.DataFrame) -> dict[str, int]:
        """Counts of objects and epochs by status."""
        return {
            "objects": int(len(objects)),
            "written": int((objects["status"] == "written").sum()) if not objects.empty else 0,
            "failed": int((objects["status"] == "failed").sum()) if not objects.empty else 0,
            "epochs_drawn": int((epochs["status"] == "written").sum()) if not epochs.empty else 0,
            "epochs_failed": int((epochs["status"] == "failed").sum()) if not epochs.empty else 0,
        }


def _concat_by_object(earlier: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``earlier`` then those of ``new``, their ``diaObjectId``
    values exact (Python integers when one table needs ``uint64`` and the
    other does not: pandas would make floats of them).
    """
    if new.empty:
        return earlier.reset_index(drop=True)
    first, second = id_array(earlier["diaObjectId"]), id_array(new["diaObjectId"])
    if first.dtype != second.dtype and len(first):
        first, second = first.astype(object), second.astype(object)
    frame = pd.concat([earlier.assign(diaObjectId=first), new.assign(diaObjectId=second)], ignore_index=True)
    if frame["diaObjectId"].dtype == object:
        frame["diaObjectId"] = [int(v) for v in frame["diaObjectId"]]
    return frame


_WORKER: dict[str, Any] = {}
"""State of a worker process drawing sequences."""


def _start_worker(config: PlotDiaObjectSequencesConfig, output_path: str, butler: Any) -> None:
    _WORKER["task"] = PlotDiaObjectSequencesTask(config=config, output_path=output_path)
    _WORKER["butler"] = butler


@dataclasses.dataclass(frozen=True)
class _ObjectWork:
    """What one DiaObject's drawing needs: its DiaSources in the epoch
    window, the visit × detectors of all its DiaSources, the window, and its
    DiaSources in the window that cannot be drawn (with their ``reason``)."""

    object_id: int
    rows: pd.DataFrame
    observed: frozenset[tuple[int, int]]
    window: DiaSourceSelection | None
    left_out: pd.DataFrame


def _draw_object_in_worker(item: _ObjectWork) -> tuple[dict, list[dict]]:
    return _WORKER["task"]._run_object(item, _WORKER["butler"])


def _object_id(value: Any) -> int:
    """A DiaObject id asked for, as an exact integer (integer text too, as
    in a table's id column); `SourceTableError` for a value that is not one
    (``3.5``, ``True``, ``"x"``) rather than another object's id."""
    number = exact_integer(value)
    if number is None:
        raise SourceTableError(f"diaObjectId {value!r} asked for is not an integer")
    return number


def _finite_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
