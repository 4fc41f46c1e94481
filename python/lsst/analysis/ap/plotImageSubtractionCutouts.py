"""Template / science / difference cutouts of DiaSources, as a
PipelineTask, a Python call and (through `lsst.analysis.ap.cli`) a command.
"""

from __future__ import annotations

__all__ = (
    "GatherCutoutManifestConfig",
    "GatherCutoutManifestConnections",
    "GatherCutoutManifestTask",
    "PlotImageSubtractionCutoutsConfig",
    "PlotImageSubtractionCutoutsConnections",
    "PlotImageSubtractionCutoutsTask",
)

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import lsst.pex.config as pexConfig
import lsst.pipe.base as pipeBase
import lsst.pipe.base.connectionTypes as cT
import pandas as pd

from .core import CutoutSettings, DetectorCutouter, make_detector_records
from .datasets import (
    DEFAULT_DIA_SOURCE_TYPE,
    DEFAULT_DIFFERENCE_TYPE,
    DEFAULT_MANIFEST_TYPE,
    DEFAULT_RECORDS_TYPE,
    DEFAULT_SCIENCE_TYPE,
    DEFAULT_TEMPLATE_TYPE,
    IMAGE_ROLES,
    image_dataset_types,
)
from .display.config import DisplayConfig
from .display.renderer import TripletRenderer
from .display.scaling import DEFAULT_SCALING_NAMES, INTERVAL_NAMES, STRETCH_NAMES, DisplayScaling
from .images.butler import butler_plane_reader, handle_plane_reader, only_instrument
from .outputs.ledger import Ledger, group_part_path, run_token
from .outputs.manifests import write_manifests
from .outputs.paths import OutputLayout
from .outputs.store import OutputStore, resolve_output_location
from .parallel import Progress, draw_in_workers
from .records import (
    STATUS_FAILED,
    STATUS_SKIPPED,
    STATUS_WRITTEN,
    ReasonCode,
    empty_records,
    make_record,
    records_frame,
    summarize,
)
from .sources import group_by_detector, standardize_sources
from .vetting import write_output_vetting_page
from .vetting.page import SOURCE_COLUMNS as VETTING_SOURCE_COLUMNS


class PlotImageSubtractionCutoutsConnections(
    pipeBase.PipelineTaskConnections, dimensions=("instrument", "visit", "detector")
):
    """Inputs of one visit × detector: the three images (read lazily, by
    bbox) and its DiaSource table; output: the record of every source.
    """

    science = cT.Input(
        doc="Science image the science stamps are cut from.",
        name=DEFAULT_SCIENCE_TYPE,
        storageClass="MaskedImageV2",
        dimensions=("instrument", "visit", "detector"),
        deferLoad=True,
    )
    template = cT.Input(
        doc="Template warped to the science image, the template stamps are cut from.",
        name=DEFAULT_TEMPLATE_TYPE,
        storageClass="MaskedImageV2",
        dimensions=("instrument", "visit", "detector"),
        deferLoad=True,
    )
    difference = cT.Input(
        doc="Difference image the difference stamps are cut from.",
        name=DEFAULT_DIFFERENCE_TYPE,
        storageClass="MaskedImageV2",
        dimensions=("instrument", "visit", "detector"),
        deferLoad=True,
    )
    diaSources = cT.Input(
        doc="DiaSources measured on the difference image.",
        name=DEFAULT_DIA_SOURCE_TYPE,
        storageClass="DataFrame",
        dimensions=("instrument", "visit", "detector"),
    )
    records = cT.Output(
        doc="One row per DiaSource handled: id, relative PNG path, status and reason.",
        name=DEFAULT_RECORDS_TYPE,
        storageClass="DataFrame",
        dimensions=("instrument", "visit", "detector"),
    )

    def __init__(self, *, config: PlotImageSubtractionCutoutsConfig) -> None:
        super().__init__(config=config)
        for role, name in _image_types(config).items():
            connection = getattr(self, role)
            if connection.name != name:
                setattr(self, role, dataclasses.replace(connection, name=name))


def _image_types(config: PlotImageSubtractionCutoutsConfig) -> dict[str, str]:
    """Dataset types of the three images, by role, as the task reads them.

    An explicit ``connections.<role>`` override wins over the
    ``science_image_type`` / ``diff_image_type`` fields, in a pipeline as in
    a Python or command-line run.
    """
    names = image_dataset_types(config.science_image_type, config.diff_image_type)
    defaults = image_dataset_types(DEFAULT_SCIENCE_TYPE, None)
    types = {}
    for role in IMAGE_ROLES:
        connection_name = getattr(config.connections, role)
        types[role] = connection_name if connection_name != defaults[role] else names[role]
    return types


def _scaling_fields(role: str) -> tuple[pexConfig.ChoiceField, pexConfig.ChoiceField]:
    """The interval and stretch config fields of one panel."""
    interval, stretch = DEFAULT_SCALING_NAMES[role]
    return (
        pexConfig.ChoiceField[str](
            doc=f"Display limits of the {role} panel.",
            default=interval,
            allowed={n: n for n in INTERVAL_NAMES},
        ),
        pexConfig.ChoiceField[str](
            doc=f"Display stretch of the {role} panel.",
            default=stretch,
            allowed={n: n for n in STRETCH_NAMES},
        ),
    )


def _is_power_of_ten(value: int) -> bool:
    return value >= 1 and 10 ** round(math.log10(value)) == value


def _vetting_page_field() -> pexConfig.Field:
    """The config field that turns the vetting page on or off."""
    return pexConfig.Field[bool](
        doc="After the manifests, also write index.html in the output directory: a static page for "
        "browsing, filtering, sorting and labelling every cutout in a browser, with a Zooniverse "
        "preview (lsst.analysis.ap.vetting; works from file:// and over HTTP at url_root).",
        default=True,
    )


class PlotImageSubtractionCutoutsConfig(
    pipeBase.PipelineTaskConfig, pipelineConnections=PlotImageSubtractionCutoutsConnections
):
    """Configuration of `PlotImageSubtractionCutoutsTask`."""

    sizes = pexConfig.ListField[int](
        doc="Widths (pixels) of the square cutouts; one row of template/science/difference per size.",
        default=[30],
    )
    use_footprint = pexConfig.Field[bool](
        doc="Cut one square stamp as wide as the source's footprint (bboxSize) instead of using 'sizes'.",
        default=False,
    )
    add_metadata = pexConfig.Field[bool](
        doc="Annotate the cutouts with catalog values (ids, coordinates, fluxes) and flag badges.",
        default=True,
    )
    chunk_size = pexConfig.Field[int](
        doc="Write at most this many PNGs per sub-directory (a power of ten), named for "
        "(diaSourceId // chunk_size) * chunk_size; None writes all files to one images/ directory.",
        default=10000,
        optional=True,
    )
    save_as_numpy = pexConfig.Field[bool](
        doc="Also save the raw stamp arrays as numpy/<chunk>/<id>_{sci,temp,diff}_<size>.npy.",
        default=False,
    )
    url_root = pexConfig.Field[str](
        doc="URL the output directory will be served from, for the Zooniverse manifest; "
        "None writes no Zooniverse manifest.",
        default=None,
        optional=True,
    )
    science_image_type = pexConfig.Field[str](
        doc="Dataset type of the science image (older processings: calexp, initial_pvi, visit_image).",
        default=DEFAULT_SCIENCE_TYPE,
    )
    diff_image_type = pexConfig.Field[str](
        doc="Optional prefix P of the template and difference dataset types, read as P_templateExp and "
        "P_differenceExp; None uses template_detector and difference_image.",
        default=None,
        optional=True,
    )
    output_path = pexConfig.Field[str](
        doc="Directory the cutouts are written to: a local path or any lsst-resources URI (file://, "
        "s3://, ...).  A relative path is made absolute when the configuration is validated (when a "
        "quantum graph is built: at submission), so every job writes into one directory.  The "
        "output_path constructor argument overrides it.",
        default=None,
        optional=True,
    )
    whole_read_min_sources = pexConfig.RangeField[int](
        doc="Read whole image planes of a visit × detector once when it has at least this many sources "
        "to draw; with fewer, read one small bbox per source and image.  None chooses: planes stored "
        "as lossless tiles (what lsst-images writes) are always read by box, each tile decoded once and "
        "shared between nearby stamps; other planes are read whole from about image height / (stamp "
        "+ 10) sources (about 100 for 4096-px detectors and 30-px stamps).",
        default=None,
        optional=True,
        min=1,
    )
    overwrite = pexConfig.Field[bool](
        doc="Redraw sources whose PNG already exists; otherwise they are skipped (resume).",
        default=False,
    )
    panel_pixels = pexConfig.RangeField[int](
        doc="Width and height in pixels of each image panel in the PNG.",
        default=240,
        min=32,
    )
    colormap = pexConfig.Field[str](doc="matplotlib colormap name for all panels.", default="gray")
    template_interval, template_stretch = _scaling_fields("template")
    science_interval, science_stretch = _scaling_fields("science")
    difference_interval, difference_stretch = _scaling_fields("difference")
    png_compress_level = pexConfig.RangeField[int](
        doc="zlib compression level of the PNGs (0-9).", default=1, min=0, max=9, inclusiveMax=True
    )
    vetting_page = _vetting_page_field()
    display = pexConfig.ConfigField(
        dtype=DisplayConfig,
        doc="Optional display choices: interval and stretch parameters, per-panel colormaps, "
        "sign-aware difference, smoothing, shared template/science limits, mask overlay, source "
        "marker, compass and orientation (defaults draw the plain cutouts).",
    )
    save_fits_stamps = pexConfig.Field[bool](
        doc="Also write every stamp as fits/<chunk>/<id>_{sci,temp,diff}_<size>.fits in the layout of "
        "Rubin alert cutouts: image with the stamp's TAN WCS and BUNIT, MASK (plane names in MP_* cards) "
        "and UNCERT (variance); readable with astropy.nddata.CCDData.read.",
        default=False,
    )
    single_stamps = pexConfig.Field[bool](
        doc="Also write every panel as stamps/<chunk>/<id>_{sci,temp,diff}_<size>.png: one undecorated "
        "PNG pixel per stamp pixel, with the panel's scaling, colormap and orientation.",
        default=False,
    )

    def validate(self) -> None:
        super().validate()
        if not self.use_footprint:
            if not self.sizes:
                raise pexConfig.FieldValidationError(
                    type(self).sizes, self, "at least one cutout size is needed (or set use_footprint)"
                )
            bad = [size for size in self.sizes if size < 1]
            if bad:
                raise pexConfig.FieldValidationError(
                    type(self).sizes, self, f"cutout sizes must be at least 1 pixel, got {bad}"
                )
        import matplotlib

        if self.colormap not in matplotlib.colormaps:
            raise pexConfig.FieldValidationError(
                type(self).colormap, self, f"unknown matplotlib colormap {self.colormap!r}"
            )
        if self.output_path is not None:
            # Resolved once, here: validate() runs when the pipeline graph is
            # built (pipetask qgraph, bps submit), before the configuration is
            # frozen and stored with the graph, so every quantum, in whatever
            # working directory, writes to the same place.
            resolved = OutputStore(resolve_output_location(self.output_path)).location
            if resolved != self.output_path:
                self.output_path = resolved
        for role in IMAGE_ROLES:
            self.display.check_scaling(
                role, getattr(self, f"{role}_interval"), getattr(self, f"{role}_stretch")
            )
        if self.chunk_size is not None and not _is_power_of_ten(self.chunk_size):
            raise pexConfig.FieldValidationError(
                type(self).chunk_size,
                self,
                f"must be a power of ten (1, 10, 100, …) or None, not {self.chunk_size}",
            )


_NOT_DRAWING_FIELDS = frozenset(
    {
        "output_path",
        "url_root",
        "chunk_size",
        "save_as_numpy",
        "whole_read_min_sources",
        "overwrite",
        "connections",
        "saveLogOutput",
        "saveMetadata",
        "save_fits_stamps",
        "single_stamps",
    }
)
"""Configuration fields that do not change how a PNG looks."""


def drawing_key(config: PlotImageSubtractionCutoutsConfig) -> str:
    """Key of the display configuration: two configurations with the same
    key draw the same PNG of a source.

    Every field counts except those of `_NOT_DRAWING_FIELDS` (where files
    go, manifests, reading strategy), so a display field added later counts
    without being listed.
    """
    fields = {name: value for name, value in config.toDict().items() if name not in _NOT_DRAWING_FIELDS}
    if config.display.is_default:
        # Default display options draw what the task drew before they
        # existed: the key of an unchanged configuration stays the same.
        del fields["display"]
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _renderer_factory(
    config: PlotImageSubtractionCutoutsConfig,
) -> Callable[[Sequence[int]], TripletRenderer]:
    scalings = _scalings(config)
    options = config.display.options()

    def make(sizes: Sequence[int]) -> TripletRenderer:
        return TripletRenderer(
            sizes,
            config.add_metadata,
            panel_pixels=config.panel_pixels,
            colormap=config.colormap,
            template_scaling=scalings["template"],
            science_scaling=scalings["science"],
            difference_scaling=scalings["difference"],
            compress_level=config.png_compress_level,
            options=options,
        )

    return make


def _scalings(config: PlotImageSubtractionCutoutsConfig) -> dict[str, DisplayScaling]:
    """The display scaling of each panel, by role."""
    return {
        role: config.display.scaling(
            role, getattr(config, f"{role}_interval"), getattr(config, f"{role}_stretch")
        )
        for role in IMAGE_ROLES
    }


class PlotImageSubtractionCutoutsTask(pipeBase.PipelineTask):
    """Make template / science / difference cutout PNGs of DiaSources, and
    manifests for a Zooniverse upload.

    Parameters
    ----------
    output_path : `str` or `pathlib.Path`, optional
        Directory to write to; defaults to ``config.output_path``.
    **kwargs : `~typing.Any`
        Passed to `lsst.pipe.base.PipelineTask`.

    """

    ConfigClass = PlotImageSubtractionCutoutsConfig
    _DefaultName = "plotImageSubtractionCutouts"
    config: PlotImageSubtractionCutoutsConfig

    def __init__(
        self, *, output_path: str | Path | None = None, writer_token: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        path = output_path if output_path is not None else self.config.output_path
        if path is None:
            raise ValueError(
                "No output directory: pass output_path= or set config.output_path "
                "(on the command line: -c plotImageSubtractionCutouts:output_path=DIR)."
            )
        self._store = OutputStore(path)
        # Names this run's record files; worker processes share their parent's.
        self._token = writer_token or run_token()
        self._make_renderer = _renderer_factory(self.config)
        # Footprint stamps get a renderer per size, made as sizes are met.
        self._renderer = None if self.config.use_footprint else self._make_renderer(tuple(self.config.sizes))

    @property
    def output_path(self) -> Path | str:
        """Directory the cutouts are written to (a `~pathlib.Path` when
        local, else the URI).
        """
        return self._store.local_path() if self._store.is_local else self._store.location

    @property
    def writer_token(self) -> str:
        """Token naming this run's record files."""
        return self._token

    def _settings(self) -> CutoutSettings:
        return CutoutSettings(
            sizes=tuple(self.config.sizes),
            use_footprint=self.config.use_footprint,
            save_as_numpy=self.config.save_as_numpy,
            whole_read_min_sources=self.config.whole_read_min_sources,
            overwrite=self.config.overwrite,
            drawing=drawing_key(self.config),
            display=self.config.display.settings(_scalings(self.config)["template"]),
            save_fits_stamps=self.config.save_fits_stamps,
            single_stamps=self.config.single_stamps,
        )

    def _cutouter(self) -> DetectorCutouter:
        return DetectorCutouter(
            self._settings(),
            self._renderer,
            OutputLayout(self._store.location, self.config.chunk_size),
            self._store,
            self._token,
            url_root=self.config.url_root,
            log=self.log,
            make_renderer=self._make_renderer,
        )

    # PipelineTask entry point ------------------------------------------------

    def runQuantum(
        self,
        butlerQC: pipeBase.QuantumContext,
        inputRefs: pipeBase.InputQuantizedConnection,
        outputRefs: pipeBase.OutputQuantizedConnection,
    ) -> None:
        data_id = butlerQC.quantum.dataId
        handles = {role: butlerQC.get(getattr(inputRefs, role)) for role in IMAGE_ROLES}
        sources = butlerQC.get(inputRefs.diaSources)
        sources = standardize_sources(
            sources, instrument=str(data_id["instrument"]), origin=f"dia sources of {data_id}"
        )
        records = self.runDetector(sources, {role: handle_plane_reader(h) for role, h in handles.items()})
        butlerQC.put(pipeBase.Struct(records=records), outputRefs)

    def runDetector(self, sources: pd.DataFrame, readers: dict) -> pd.DataFrame:
        """Draw the sources of one visit × detector from open readers.

        Parameters
        ----------
        sources : `pandas.DataFrame`
            Standardized DiaSources of one visit × detector.
        readers : `dict` [`str`, `~lsst.analysis.ap.images.butler.PlaneReader`]
            Readers of the three images, by role.

        Returns
        -------
        records : `pandas.DataFrame`
            The record table of those sources.

        """
        return make_detector_records(self._cutouter(), sources, lambda: readers)

    # Python entry point ------------------------------------------------------

    def run(
        self,
        data: Any,
        butler: Any,
        njobs: int = 0,
        *,
        instrument: str | None = None,
        progress: bool = False,
        origin: str = "DiaSource table",
    ) -> pipeBase.Struct:
        """Draw cutouts of DiaSources read from ``butler`` and write the
        manifests.

        Parameters
        ----------
        data : `pandas.DataFrame` or `astropy.table.Table`
            DiaSources with
            APDB column names; an ``instrument`` column is needed unless the
            repository has exactly one instrument.
        butler : `lsst.daf.butler.Butler`
            Butler with default collections holding the images.
        njobs : `int`, optional
            Number of worker processes; 0 draws in this process.  Workers
            are started with the ``spawn`` method, and each takes whole
            visit × detector groups.
        instrument : `str`, optional
            Instrument of sources without an ``instrument`` column.
        progress : `bool`, optional
            Log progress (sources done, rate) as visit × detector groups
            finish.
        origin : `str`, optional
            Where ``data`` came from (a file name, an APDB), for messages.

        Returns
        -------
        result : `lsst.pipe.base.Struct`
            ``records`` (one row per source: id, path, status, reason),
            ``written``, ``skipped``, ``failed`` (lists of diaSourceId),
            ``summary`` (counts) and ``manifest`` (paths of the files
            written).

        """
        if instrument is None and (not isinstance(data, pd.DataFrame) or "instrument" not in data.columns):
            instrument = only_instrument(butler)
        sources = standardize_sources(data, instrument=instrument, origin=origin)
        self.prepare_output()
        groups = [frame for _, frame in group_by_detector(sources)]
        self.log.info(
            "Drawing %d DiaSource(s) from %d visit×detector(s) into %s",
            len(sources),
            len(groups),
            self.output_path,
        )
        meter = Progress(self.log, len(sources), enabled=progress)
        if njobs > 0 and len(groups) > 1:
            frames = draw_in_workers(self, butler, groups, njobs, meter.update)
        else:
            frames = [self.drawGroups(butler, groups, meter.update)]
        records = pd.concat([empty_records(), *frames], ignore_index=True)
        return self.finish(records, sources)

    def drawGroups(
        self,
        butler: Any,
        groups: Iterable[pd.DataFrame],
        on_group: Callable[[pd.DataFrame], None] | None = None,
    ) -> pd.DataFrame:
        """Draw visit × detector groups of sources in this process, reading
        the images through ``butler``.

        Parameters
        ----------
        butler : `lsst.daf.butler.Butler`
            Butler with default collections holding the images.
        groups : iterable of `pandas.DataFrame`
            Standardized sources, one frame per visit × detector.
        on_group : callable, optional
            Called with the record table of each group as it finishes.

        Returns
        -------
        records : `pandas.DataFrame`
            Record table of all the groups.

        """
        cutouter = self._cutouter()
        types = _image_types(self.config)
        frames = []
        for sources in groups:
            first = sources.iloc[0]
            data_id = {
                "instrument": first["instrument"],
                "visit": int(first["visit"]),
                "detector": int(first["detector"]),
            }

            def open_readers(data_id: dict = data_id) -> dict:
                return {role: butler_plane_reader(butler, types[role], data_id) for role in IMAGE_ROLES}

            frames.append(make_detector_records(cutouter, sources, open_readers))
            if on_group is not None:
                on_group(frames[-1])
        return pd.concat([empty_records(), *frames], ignore_index=True)

    def prepare_output(self) -> None:
        """Before drawing: check that the output directory can be written and
        remove the partial files an interrupted run left.

        Raises
        ------
        lsst.analysis.ap.outputs.store.OutputError
            Raised with the directory and the cause when it cannot be written.

        """
        self.check_output()
        stale = self._store.sweep_temporaries(("images", "numpy", "records"))
        if stale:
            self.log.info("Removed %d partial file(s) left by an interrupted run.", stale)

    def check_output(self) -> None:
        """Check, before any work, that the output directory can be written.

        Raises
        ------
        lsst.analysis.ap.outputs.store.OutputError
            Raised with the directory and the cause when it cannot.

        """
        self._store.check_writable()

    def finish(self, records: pd.DataFrame, sources: pd.DataFrame | None = None) -> pipeBase.Struct:
        """Write the manifests, failure list, summary and (with
        ``config.vetting_page``) the vetting page of a run.

        Parameters
        ----------
        records : `pandas.DataFrame`
            Records of every source of the run.
        sources : `pandas.DataFrame`, optional
            The run's DiaSources, for the catalog values the vetting page
            shows (S/N, fluxes, reliability, flags, DiaObject).

        Returns
        -------
        result : `lsst.pipe.base.Struct`
            ``records``, ``summary``, ``manifest``, ``vetting_page`` (where
            ``index.html`` is, `None` when not written) and the ``written``,
            ``skipped`` and ``failed`` diaSourceIds (see `run`).

        """
        files = write_manifests(records, self._store, self.config.url_root, token=self._token)
        page = None
        if self.config.vetting_page:
            page = write_output_vetting_page(self._store, sources).page
        summary = summarize(records)
        self.log.info(
            "Cutouts: %d written, %d skipped (already present), %d failed%s",
            summary["written"],
            summary["skipped"],
            summary["failed"],
            f" {summary['failed_by_reason']}" if summary["failed"] else "",
        )
        by_status = {
            status: records.loc[records["status"] == status, "diaSourceId"].astype(int).tolist()
            for status in (STATUS_WRITTEN, STATUS_SKIPPED, STATUS_FAILED)
        }
        return pipeBase.Struct(
            records=records, summary=summary, manifest=files, vetting_page=page, **by_status
        )


# Gathering ---------------------------------------------------------------------


class GatherCutoutManifestConnections(pipeBase.PipelineTaskConnections, dimensions=()):
    """All per-quantum records in, one manifest table out."""

    records = cT.Input(
        doc="Records of every visit × detector.",
        name=DEFAULT_RECORDS_TYPE,
        storageClass="DataFrame",
        dimensions=("instrument", "visit", "detector"),
        multiple=True,
    )
    diaSources = cT.Input(
        doc="The DiaSource tables the cutout task was given, to record as failed the sources of a "
        "visit × detector whose cutout quantum could not run (an input image is missing; build the "
        "graph with --dataset-query-constraint dia_source_detector so that such visit × detectors are "
        "kept). Must name the same dataset type as the cutout task's diaSources connection.",
        name=DEFAULT_DIA_SOURCE_TYPE,
        storageClass="DataFrame",
        dimensions=("instrument", "visit", "detector"),
        multiple=True,
        deferLoad=True,
    )
    manifest = cT.Output(
        doc="Union of the records, as used for the manifests.",
        name=DEFAULT_MANIFEST_TYPE,
        storageClass="DataFrame",
        dimensions=(),
    )


class GatherCutoutManifestConfig(
    pipeBase.PipelineTaskConfig, pipelineConnections=GatherCutoutManifestConnections
):
    """Configuration of `GatherCutoutManifestTask` (the output directory and
    URL root are recorded by the cutout task).
    """

    vetting_page = _vetting_page_field()


class GatherCutoutManifestTask(pipeBase.PipelineTask):
    """Write the Zooniverse and panoptes manifests, the failure list and the
    summary from the records of every cutout quantum.
    """

    ConfigClass = GatherCutoutManifestConfig
    _DefaultName = "gatherCutoutManifest"

    def runQuantum(
        self,
        butlerQC: pipeBase.QuantumContext,
        inputRefs: pipeBase.InputQuantizedConnection,
        outputRefs: pipeBase.OutputQuantizedConnection,
    ) -> None:
        records = butlerQC.get(inputRefs.records)
        handles = butlerQC.get(inputRefs.diaSources)
        recorded = {
            (str(r["instrument"].iloc[0]), int(r["visit"].iloc[0]), int(r["detector"].iloc[0]))
            for r in records
            if len(r)
        }
        unhandled = []
        for handle in handles:
            data_id = handle.ref.dataId
            key = (str(data_id["instrument"]), int(data_id["visit"]), int(data_id["detector"]))
            if key not in recorded:
                unhandled.append((key, handle.get()))
        page_sources = _page_sources(handles) if self.config.vetting_page else None
        butlerQC.put(self.run(records, unhandled, page_sources=page_sources), outputRefs)

    def run(
        self,
        records: list[pd.DataFrame],
        unhandled: list[tuple[tuple[str, int, int], pd.DataFrame]] = (),
        *,
        page_sources: pd.DataFrame | None = None,
    ) -> pipeBase.Struct:
        """Write the manifests (and with ``config.vetting_page`` the vetting
        page) of each output directory in ``records``.

        Parameters
        ----------
        records : `list` [`pandas.DataFrame`]
            Record tables of the cutout quanta that ran.
        unhandled : `list` [`tuple` [`tuple` [`str`, `int`, `int`], `pandas.DataFrame`]], optional
            ``((instrument, visit, detector), sources)`` of the visit ×
            detectors that have DiaSources but no record table: their
            cutout quantum could not run (an input image is missing), and
            each of their sources is recorded as failed.
        page_sources : `pandas.DataFrame`, optional
            DiaSources of the run, for the catalog values the vetting page
            shows.

        Returns
        -------
        result : `lsst.pipe.base.Struct`
            ``manifest``: the union of the records, with the failures of the
            unhandled visit × detectors.

        """
        table = pd.concat([empty_records(), *records], ignore_index=True)
        if len(unhandled):
            if table.empty:
                self.log.warning(
                    "No cutout quantum ran; %d visit × detector(s) with DiaSources have no record and "
                    "there is no output directory to report them in.",
                    len(unhandled),
                )
            else:
                output_path, url_root = table["output_path"].iloc[0], table["url_root"].iloc[0]
                table = pd.concat(
                    [
                        table,
                        *(
                            _missing_quantum_records(key, sources, output_path, url_root)
                            for key, sources in unhandled
                        ),
                    ],
                    ignore_index=True,
                )
                for (instrument, visit, detector), sources in unhandled:
                    self.log.warning(
                        "visit %d detector %d (%s): no cutout quantum ran (an input image is missing); "
                        "its %d source(s) are recorded as failed",
                        visit,
                        detector,
                        instrument,
                        len(sources),
                    )
        token = run_token()
        for (output_path, url_root), part in table.groupby(["output_path", "url_root"], dropna=False):
            store = OutputStore(output_path)
            # The cutout quanta wrote their own record files; the sources of
            # the visit × detectors without a quantum get theirs here.
            missing = part[part["path"] == ""]
            ledger = Ledger(store)
            for (instrument, visit, detector), group in missing.groupby(["instrument", "visit", "detector"]):
                ledger.write_part(group_part_path(instrument, visit, detector, token), group)
            write_manifests(None, store, url_root or None)
            if self.config.vetting_page:
                page = write_output_vetting_page(store, page_sources).page
                self.log.info("Vetting page: %s", page)
            summary = summarize(part)
            self.log.info(
                "%s: %d written, %d skipped, %d failed %s",
                output_path,
                summary["written"],
                summary["skipped"],
                summary["failed"],
                summary["failed_by_reason"],
            )
        return pipeBase.Struct(manifest=table)


def _page_sources(handles: Sequence[Any]) -> pd.DataFrame | None:
    """The DiaSource columns the vetting page shows, read from deferred
    handles (only those columns).
    """
    frames = []
    for handle in handles:
        try:
            available = set(handle.get(component="columns"))
        except Exception:
            # A storage without a column list: read the whole table.
            frames.append(handle.get())
            continue
        columns = [c for c in ("diaSourceId", *VETTING_SOURCE_COLUMNS) if c in available]
        if "diaSourceId" in columns:
            frames.append(handle.get(parameters={"columns": columns}))
    return pd.concat(frames, ignore_index=True) if frames else None


def _missing_quantum_records(
    key: tuple[str, int, int], sources: pd.DataFrame, output_path: str, url_root: str
) -> pd.DataFrame:
    """Failure records of the sources of a visit × detector whose cutout
    quantum did not run.
    """
    instrument, visit, detector = key
    frame = standardize_sources(sources, instrument=instrument, origin=f"DiaSources of {key}")
    reason = f"no cutout quantum ran for visit {visit} detector {detector}: an input image is missing"
    return records_frame(
        [
            make_record(
                row,
                STATUS_FAILED,
                ReasonCode.MISSING_IMAGE,
                reason,
                path="",
                output_path=output_path,
                url_root=url_root,
            )
            for row in frame.to_dict("records")
        ]
    )
