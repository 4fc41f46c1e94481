"""Template / science / difference cutouts of DiaSources, as a
PipelineTask, a Python call and (through `lsst.analysis.ap.cli`) a command.
"""

from __future__ import annotations

__all__ = (
    "CutoutIds",
    "CutoutPath",
    "GatherCutoutManifestConfig",
    "GatherCutoutManifestConnections",
    "GatherCutoutManifestTask",
    "PlotImageSubtractionCutoutsConfig",
    "PlotImageSubtractionCutoutsConnections",
    "PlotImageSubtractionCutoutsTask",
)

import dataclasses
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import lsst.pex.config as pexConfig
import lsst.pipe.base as pipeBase
import lsst.pipe.base.connectionTypes as cT
import numpy as np
import pandas as pd

from .core import CutoutSettings, DetectorCutouter, FailureLog, make_detector_records
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
from .geometry import MAX_STAMP_SIZE
from .images.arrays import masked_image_plane_reader
from .images.butler import (
    butler_plane_reader,
    find_image_datasets,
    handle_plane_reader,
    local_files,
)
from .images.tiles import release_bands
from .outputs.ledger import Ledger, group_part_path, run_token
from .outputs.manifests import join_url, write_manifests
from .outputs.paths import CutoutPath, OutputLayout, is_power_of_ten
from .outputs.store import OutputStore, resolve_output_location
from .parallel import (
    MIN_PIECE_SOURCES,
    Progress,
    cleaned_after_interrupt,
    draw_in_workers,
    split_for_processes,
    usable_njobs,
)
from .records import (
    STATUS_FAILED,
    STATUS_SKIPPED,
    STATUS_WRITTEN,
    ReasonCode,
    concat_records,
    make_record,
    records_frame,
    summarize,
)
from .sources import group_by_detector, source_rows, standardize_repository_sources, standardize_sources
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
        doc=f"Widths (pixels, 1 to {MAX_STAMP_SIZE}) of the square cutouts; one row of "
        "template/science/difference per size.",
        default=[30],
    )
    use_footprint = pexConfig.Field[bool](
        doc="Cut one square stamp as wide as the source's footprint (bboxSize) instead of using 'sizes'; "
        f"a source without a bboxSize, or with one above {MAX_STAMP_SIZE}, fails with reason no_footprint.",
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
    threads = pexConfig.RangeField[int](
        doc="Threads drawing the sources of one visit × detector at once: tile decompression, PNG "
        "encoding and file writes run outside Python's global lock, so they overlap on free cores.  "
        "Used with the default display options and without FITS stamps, when the images are read "
        "through the tile reader (what lsst-images writes) or whole; 1 draws one source at a time.  "
        "At most one thread per core the process may run on (its CPU affinity).  "
        "The files written are the same either way.",
        default=3,
        min=1,
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
            bad = [size for size in self.sizes if not 1 <= size <= MAX_STAMP_SIZE]
            if bad:
                raise pexConfig.FieldValidationError(
                    type(self).sizes, self, f"cutout sizes must be 1 to {MAX_STAMP_SIZE} pixels, got {bad}"
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
        if self.chunk_size is not None and not is_power_of_ten(self.chunk_size):
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
        "threads",
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


def _source_dict(source: Any) -> dict[str, Any]:
    """The columns of one source given to `generate_image`: a mapping (a
    `dict`, a `pandas.Series`, an astropy ``Row``) or a `numpy.record`
    (as the original's ``data.to_records()`` gives).
    """
    names = getattr(getattr(source, "dtype", None), "names", None)
    if names:
        return {name: source[name] for name in names}
    return dict(source)


def _renderer_factory(
    config: PlotImageSubtractionCutoutsConfig,
) -> Callable[[Sequence[int]], TripletRenderer]:
    scalings = _scalings(config)
    options = config.display.options()

    def make(sizes: Sequence[int], add_metadata: bool = config.add_metadata) -> TripletRenderer:
        return TripletRenderer(
            sizes,
            add_metadata,
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


def _manifest_ids(sources: Iterable[int]) -> list[int]:
    """The diaSourceIds given to `PlotImageSubtractionCutoutsTask.write_manifest`.

    Parameters
    ----------
    sources : `~collections.abc.Iterable` [`int`]
        diaSourceIds.

    Returns
    -------
    ids : `list` [`int`]
        The ids, in order.

    Raises
    ------
    TypeError
        Raised for a table (whose iteration gives its column names or rows,
        not ids), or a value that is not an integer.

    """
    if isinstance(sources, pd.DataFrame) or hasattr(sources, "colnames"):
        raise TypeError(
            f"write_manifest expects the diaSourceIds of the sources (the list write_images returns), "
            f"not a {type(sources).__module__.split('.')[0]} {type(sources).__name__}; pass its "
            "diaSourceId column, e.g. write_manifest(table['diaSourceId'])"
        )
    ids = []
    for value in sources:
        try:
            ids.append(int(value))
        except (TypeError, ValueError):
            raise TypeError(
                f"write_manifest expects diaSourceIds (integers), not {type(value).__name__} {value!r}"
            ) from None
    return ids


class PlotImageSubtractionCutoutsTask(pipeBase.PipelineTask):
    """Make template / science / difference cutout PNGs of DiaSources, and
    manifests for a Zooniverse upload.

    Parameters
    ----------
    output_path : `str` or `pathlib.Path`, optional
        Directory to write to; defaults to ``config.output_path``.
    **kwargs : `~typing.Any`
        Passed to `lsst.pipe.base.PipelineTask`.

    Notes
    -----
    Python entry points (the first four are the original package's):

    - `run` (``data, butler, njobs=0``): draw the cutouts and write the
      manifests; returns the list of diaSourceIds that have a PNG
      (`CutoutIds`).
    - `write_images` and `write_manifest`: the two halves of `run`, for
      callers that draw several tables (pages) and write one manifest.
    - `generate_image`: one source's PNG from images in memory.
    - `makeCutouts`: as `run`, returning the full result as an
      `lsst.pipe.base.Struct` (per-source records, counts, files written).

    Under ``pipetask`` and BPS the task runs through `runQuantum` (one visit
    × detector per quantum), which does not call `run`.

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
        self.cutout_path = CutoutPath(self.output_path, chunk_size=self.config.chunk_size)
        """Paths of the PNGs (`~lsst.analysis.ap.outputs.paths.CutoutPath`)."""
        self.numpy_path = CutoutPath(
            self.output_path, chunk_size=self.config.chunk_size, subdirectory="numpy"
        )
        """Paths of the saved stamp arrays (`~lsst.analysis.ap.outputs.paths.CutoutPath`)."""
        self._failure_log = FailureLog(self.log)
        # Records and sources of write_images calls not yet given to
        # write_manifest.
        self._pending: list[tuple[pd.DataFrame, pd.DataFrame]] = []

    def _reduce_kwargs(self) -> dict[str, Any]:
        # Pickling (worker processes, user code) keeps the output directory
        # and the record-file token.
        kwargs = super()._reduce_kwargs()
        kwargs["output_path"] = self._store.location
        kwargs["writer_token"] = self._token
        return kwargs

    @property
    def _output_path(self) -> Path | str:
        # The original package's attribute name.
        return self.output_path

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

    def _settings(self, threads: int | None = None) -> CutoutSettings:
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
            threads=self.config.threads if threads is None else threads,
        )

    def _cutouter(self, threads: int | None = None) -> DetectorCutouter:
        return DetectorCutouter(
            self._settings(threads),
            self._renderer,
            OutputLayout(self._store.location, self.config.chunk_size),
            self._store,
            self._token,
            url_root=self.config.url_root,
            log=self.log,
            make_renderer=self._make_renderer,
            failure_log=self._failure_log,
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
        table = standardize_sources(
            sources, instrument=str(data_id["instrument"]), origin=f"dia sources of {data_id}"
        )
        records = concat_records(
            [
                self._cutouter().reject(table.rejected),
                self.runDetector(
                    table.sources, {role: handle_plane_reader(h) for role, h in handles.items()}
                ),
            ]
        )
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

    # Python entry points -----------------------------------------------------

    def run(self, data: Any, butler: Any, njobs: int = 0, **kwargs: Any) -> CutoutIds:
        """Draw cutouts of DiaSources read from ``butler`` and write the
        manifests (the original package's ``run``).

        Parameters
        ----------
        data : `pandas.DataFrame` or `astropy.table.Table`
            DiaSources with APDB column names (at least ``diaSourceId, ra,
            dec, visit, detector``, and ``instrument`` unless the repository
            has one instrument).
        butler : `lsst.daf.butler.Butler`
            Butler with default collections holding the images.
        njobs : `int`, optional
            Number of processes that draw: this one and ``njobs - 1``
            spawned workers; 0 and 1 draw in this process only.  At most
            one per core this process may run on (a larger value is capped,
            with a warning).
        **kwargs
            Keyword arguments of `makeCutouts` (``instrument``,
            ``progress``, ``origin``).

        Returns
        -------
        source_ids : `CutoutIds`
            diaSourceIds, in input order, of the sources whose PNG is in
            place: drawn now, or already present from an earlier run.  A
            `list`, which also carries the `makeCutouts` result.

        """
        return CutoutIds(self.makeCutouts(data, butler, njobs, **kwargs))

    def makeCutouts(
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
        manifests, failure list and summary.

        Parameters
        ----------
        data : `pandas.DataFrame` or `astropy.table.Table`
            DiaSources with APDB column names; an ``instrument`` column is
            needed unless the repository has exactly one instrument.
        butler : `lsst.daf.butler.Butler`
            Butler with default collections holding the images.
        njobs : `int`, optional
            Number of processes that draw: this one and ``njobs - 1``
            workers started with the ``spawn`` method; 0 and 1 draw in this
            process only.  At most one per core this process may run on (a
            larger value is capped, with a warning).  Each process takes visit × detector groups (the
            crowded ones cut in bands of rows), this one from the start,
            while the workers import the stack.
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
            ``ids`` (diaSourceIds with a PNG in place, written or skipped,
            in input order), ``summary`` (counts) and ``manifest`` (paths
            of the files written).

        """
        records, sources = self._draw(
            data, butler, njobs, instrument=instrument, progress=progress, origin=origin
        )
        return self.finish(records, sources)

    def write_images(self, data: Any, butler: Any, njobs: int = 0, **kwargs: Any) -> list[int]:
        """Draw and write the cutouts of DiaSources, without the manifests
        (see `write_manifest`).

        Parameters
        ----------
        data : `pandas.DataFrame` or `astropy.table.Table`
            DiaSources, as for `run`.
        butler : `lsst.daf.butler.Butler`
            Butler with default collections holding the images.
        njobs : `int`, optional
            Number of processes that draw: this one and ``njobs - 1``
            spawned workers; 0 and 1 draw in this process only.  At most
            one per core this process may run on (a larger value is capped,
            with a warning).
        **kwargs
            Keyword arguments of `makeCutouts` (``instrument``,
            ``progress``, ``origin``).

        Returns
        -------
        sources : `list` [`int`]
            diaSourceIds, in input order, of the sources whose PNG is in
            place (drawn now or already present).  Failed sources are left
            out and logged at ERROR.

        """
        records, sources = self._draw(data, butler, njobs, **kwargs)
        self._pending.append((records, sources))
        return _ids_in_order(records, sources["diaSourceId"])

    def write_manifest(self, sources: Iterable[int]) -> pipeBase.Struct:
        """Write the manifests for sources drawn by `write_images`.

        Parameters
        ----------
        sources : `~collections.abc.Iterable` [`int`]
            diaSourceIds of the sources whose PNG goes into the manifest
            (usually everything `write_images` returned).

        Returns
        -------
        result : `lsst.pipe.base.Struct`
            As `makeCutouts` returns, for the records of the `write_images`
            calls since the last `write_manifest`.

        Raises
        ------
        TypeError
            Raised when ``sources`` is not diaSourceIds: a table (pass its
            ``diaSourceId`` column), or values that are not integers.

        Notes
        -----
        As every manifest of this package, ``manifest.csv`` (written when
        ``config.url_root`` is set) lists every PNG recorded in the output
        directory: ``sources``, and those of earlier runs into it that are
        still present.  The failures go to ``failures.csv``.

        """
        wanted = _manifest_ids(sources)
        records = concat_records([r for r, _ in self._pending])
        sources = pd.concat([s for _, s in self._pending], ignore_index=True) if self._pending else None
        self._pending.clear()
        unknown = set(wanted).difference(records["diaSourceId"].astype(int))
        if unknown:
            self.log.info(
                "%d diaSourceId(s) given to write_manifest were not drawn by write_images here; they are "
                "listed only if an earlier run into %s recorded them.",
                len(unknown),
                self.output_path,
            )
        if self.config.url_root is None:
            self.log.info("No url_root config provided, so no Zooniverse manifest file was written.")
        return self.finish(records, sources, order=wanted)

    def _make_manifest(self, sources: Iterable[int]) -> pd.DataFrame:
        """Zooniverse manifest rows of sources, as the original package made
        them.

        Parameters
        ----------
        sources : `~collections.abc.Iterable` [`int`]
            diaSourceIds.

        Returns
        -------
        manifest : `pandas.DataFrame`
            ``external_id``, ``location:1`` (the PNG's URL under
            ``config.url_root``, with its chunk directory) and
            ``metadata:diaSourceId``.

        Raises
        ------
        ValueError
            Raised if ``config.url_root`` is not set.

        """
        if self.config.url_root is None:
            raise ValueError("config.url_root is not set: a Zooniverse manifest needs the URL of the images")
        ids = [int(i) for i in sources]
        layout = OutputLayout(self._store.location, self.config.chunk_size)
        return pd.DataFrame(
            {
                "external_id": ids,
                "location:1": [join_url(self.config.url_root, layout.image_relpath(i)) for i in ids],
                "metadata:diaSourceId": ids,
            }
        )

    def generate_image(
        self,
        science: Any,
        template: Any,
        difference: Any,
        center: Any,
        scale: float,
        dia_source_id: int | None = None,
        save_as_numpy: bool = False,
        source: Any = None,
        footprint: Any = None,
    ) -> io.BytesIO:
        """Draw one source's cutouts from images in memory.

        Parameters
        ----------
        science, template, difference : `lsst.images.MaskedImage`
            The images (`~lsst.images.VisitImage`,
            `~lsst.images.DifferenceImage` or other MaskedImages with a sky
            projection); `lsst.afw.image.Exposure` objects are accepted when
            lsst.afw is importable.
        center : `astropy.coordinates.SkyCoord`, `lsst.geom.SpherePoint` or `tuple`
            Sky position of the source; a tuple is ``(ra, dec)`` in degrees.
        scale : `float`
            Pixel scale in arcseconds, for the scale bar.
        dia_source_id : `int`, optional
            diaSourceId, naming the numpy files.
        save_as_numpy : `bool`, optional
            Save the raw stamps as ``(1, size, size)`` arrays under
            `numpy_path` (needs ``dia_source_id``).
        source : `~collections.abc.Mapping` or `numpy.record`, optional
            DiaSource row (a `pandas.Series`, a `dict`, an astropy ``Row``
            or a `numpy.record`) to annotate the cutouts with; a source
            given is annotated even when ``config.add_metadata`` is not
            set, as in the original (the PNG then has the annotated
            configuration's size).
        footprint : optional
            Cut one square stamp as wide as this footprint instead of
            ``config.sizes``: a width in pixels, an `lsst.images.Box`, or an
            object with ``getBBox()`` (an afw Footprint).

        Returns
        -------
        image : `io.BytesIO`
            The PNG, positioned at its start.

        Raises
        ------
        ValueError
            Raised if ``save_as_numpy`` is set without ``dia_source_id``.
        Exception
            Whatever makes the cutout impossible (e.g. the source is off an
            image): unlike `run`, nothing is caught.

        """
        if save_as_numpy and dia_source_id is None:
            raise ValueError("save_as_numpy needs a dia_source_id to name the files")
        ra, dec = _sky_position(center)
        row = _source_dict(source) if source is not None else {}
        row.update(ra=ra, dec=dec)
        row.setdefault("diaSourceId", dia_source_id if dia_source_id is not None else 0)
        sizes = (_footprint_width(footprint),) if footprint is not None else None
        cutouter = self._cutouter()
        images = {"science": science, "template": template, "difference": difference}
        readers = {role: masked_image_plane_reader(role, images[role]) for role in IMAGE_ROLES}
        positions = {}
        for role, reader in readers.items():
            xs, ys = reader.sky_to_pixel(np.array([ra]), np.array([dec]))
            positions[role] = (float(xs[0]), float(ys[0]))
        sizes, stamps = cutouter.cut_stamps(row, readers, positions, sizes)
        if save_as_numpy:
            cutouter.save_numpy(int(dia_source_id), sizes, stamps)
        renderer = None
        if source is not None and not self.config.add_metadata:
            # As the original: a source given is annotated, whatever
            # add_metadata (which decides what runs pass) says.
            renderer = self._make_renderer(sizes, add_metadata=True)
        return io.BytesIO(
            cutouter.render(row if source is not None else None, sizes, stamps, scale, renderer=renderer)
        )

    def _draw(
        self,
        data: Any,
        butler: Any,
        njobs: int = 0,
        *,
        instrument: str | None = None,
        progress: bool = False,
        origin: str = "DiaSource table",
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Draw the sources of ``data``; return their records and the
        standardized sources.
        """
        # Rows without an instrument (no column, or null values) are of the
        # repository's instrument when it has only one (asked only then).
        table = standardize_repository_sources(data, butler, instrument=instrument, origin=origin)
        sources = table.sources
        self.prepare_output()
        groups = [frame for _, frame in group_by_detector(sources)]
        self.log.info(
            "Drawing %d DiaSource(s) from %d visit×detector(s) into %s",
            len(sources),
            len(groups),
            self.output_path,
        )
        self._failure_log.reset()
        rejected = self._cutouter().reject(table.rejected)
        meter = Progress(self.log, len(sources), enabled=progress)
        njobs = usable_njobs(njobs, self.log)
        try:
            pieces = self._pieces(butler, groups, njobs) if njobs > 1 else groups
            if njobs > 1 and len(pieces) > 1:
                with cleaned_after_interrupt(self.remove_partial_files):
                    frames = draw_in_workers(self, butler, pieces, njobs, meter.update)
            else:
                frames = [self.drawGroups(butler, groups, meter.update)]
        finally:
            # The tile bands this process kept for the next visit × detector.
            release_bands()
        self._failure_log.report_unlogged()
        return concat_records([rejected, *frames]), sources

    def _pieces(self, butler: Any, groups: list[pd.DataFrame], njobs: int) -> list[pd.DataFrame]:
        """The work of ``njobs`` processes: the groups, crowded ones cut in
        bands of rows (`~lsst.analysis.ap.parallel.split_for_processes`).

        Only groups whose three images are local files read by tiles (what
        lsst-images writes, with the default ``whole_read_min_sources``) are
        cut, which this process checks by opening the science image (about
        10 ms): a group with an image missing then fails as a whole (and is
        logged once), and images read whole (a remote store, files without
        tiles, a configured whole read) are read once.
        """
        large = [group for group in groups if len(group) >= 2 * MIN_PIECE_SOURCES]
        if not large or self.config.whole_read_min_sources is not None:
            return groups
        types = _image_types(self.config)
        found = find_image_datasets(butler, {role: types[role] for role in IMAGE_ROLES}, map(_data_id, large))
        cut = set()
        for group in large:
            datasets = found.get(_group_key(group), {})
            if local_files(datasets):
                science = butler_plane_reader(butler, types["science"], _data_id(group), datasets["science"])
                try:
                    if science.shares_tiles:
                        cut.add(_group_key(group))
                finally:
                    science.release()
        return split_for_processes(groups, njobs, splittable=lambda group: _group_key(group) in cut)

    def drawGroups(
        self,
        butler: Any,
        groups: Iterable[pd.DataFrame],
        on_group: Callable[[pd.DataFrame], None] | None = None,
        *,
        threads: int | None = None,
    ) -> pd.DataFrame:
        """Draw visit × detector groups of sources in this process, reading
        the images through ``butler``.

        Parameters
        ----------
        butler : `lsst.daf.butler.Butler`
            Butler with default collections holding the images.
        groups : iterable of `pandas.DataFrame`
            Standardized sources, one frame per visit × detector (or piece
            of one).
        on_group : callable, optional
            Called with the record table of each group as it finishes.
        threads : `int`, optional
            Drawing threads, instead of ``config.threads`` (worker
            processes that share the cores draw in fewer).

        Returns
        -------
        records : `pandas.DataFrame`
            Record table of all the groups.

        """
        cutouter = self._cutouter(threads)
        types = _image_types(self.config)
        groups = list(groups)
        data_ids = [_data_id(sources) for sources in groups]
        found = find_image_datasets(butler, {role: types[role] for role in IMAGE_ROLES}, data_ids)
        frames = []
        for sources, data_id in zip(groups, data_ids, strict=True):
            datasets = found.get(_group_key(sources), {})

            def open_readers(data_id: dict = data_id, datasets: dict = datasets) -> dict:
                # The science image first, as the original loaded it: when
                # several are missing, the error names the science image.
                readers = {
                    role: butler_plane_reader(butler, types[role], data_id, datasets.get(role))
                    for role in ("science", "template", "difference")
                }
                return {role: readers[role] for role in IMAGE_ROLES}

            frames.append(make_detector_records(cutouter, sources, open_readers))
            if on_group is not None:
                on_group(frames[-1])
        return concat_records(frames)

    def prepare_output(self) -> None:
        """Before drawing: check that the output directory can be written and
        remove the partial files an interrupted run left.

        Raises
        ------
        lsst.analysis.ap.outputs.store.OutputError
            Raised with the directory and the cause when it cannot be written.

        """
        self.check_output()
        stale = self.remove_partial_files()
        if stale:
            self.log.info("Removed %d partial file(s) left by an interrupted run.", stale)

    def remove_partial_files(self) -> int:
        """Remove the temporaries of writers that ended mid-write (an
        interrupted run's, workers stopped by Ctrl-C).

        Returns
        -------
        removed : `int`
            How many files were removed.

        """
        return self._store.sweep_temporaries(("images", "numpy", "records"))

    def check_output(self) -> None:
        """Check, before any work, that the output directory can be written.

        Raises
        ------
        lsst.analysis.ap.outputs.store.OutputError
            Raised with the directory and the cause when it cannot.

        """
        self._store.check_writable()

    def finish(
        self,
        records: pd.DataFrame,
        sources: pd.DataFrame | None = None,
        *,
        order: Sequence[int] | None = None,
    ) -> pipeBase.Struct:
        """Write the manifests, failure list, summary and (with
        ``config.vetting_page``) the vetting page of a run.

        Parameters
        ----------
        records : `pandas.DataFrame`
            Records of every source of the run.
        sources : `pandas.DataFrame`, optional
            The run's DiaSources, for the catalog values the vetting page
            shows (S/N, fluxes, reliability, flags, DiaObject), and the
            input order of ``ids``.
        order : `~collections.abc.Sequence` [`int`], optional
            Order of ``ids`` (and the ids to include) if not that of
            ``sources`` (or, without sources, of ``records``).

        Returns
        -------
        result : `lsst.pipe.base.Struct`
            ``records``, ``summary``, ``manifest``, ``vetting_page`` (where
            ``index.html`` is, `None` when not written), the ``written``,
            ``skipped`` and ``failed`` diaSourceIds, and ``ids`` (see
            `makeCutouts`).

        """
        files = write_manifests(records, self._store, self.config.url_root, token=self._token)
        page = None
        if self.config.vetting_page:
            page = write_output_vetting_page(self._store, sources, records=files.records).page
        summary = summarize(records)
        self.log.info(
            "Cutouts: %d written, %d skipped (already present), %d failed%s",
            summary["written"],
            summary["skipped"],
            summary["failed"],
            f" {summary['failed_by_reason']}, listed in {files.failures}" if summary["failed"] else "",
        )
        statuses = records["status"].tolist()
        ids = records["diaSourceId"].tolist()
        by_status = {
            status: [int(i) for i, s in zip(ids, statuses, strict=True) if s == status]
            for status in (STATUS_WRITTEN, STATUS_SKIPPED, STATUS_FAILED)
        }
        if order is None:
            order = (sources if sources is not None and "diaSourceId" in sources else records)["diaSourceId"]
        return pipeBase.Struct(
            records=records,
            summary=summary,
            manifest=files,
            vetting_page=page,
            ids=_ids_in_order(records, order),
            **by_status,
        )


class CutoutIds(list):
    """The diaSourceIds `PlotImageSubtractionCutoutsTask.run` returns: a
    `list` of `int`, as the original package's ``run`` returned, that also
    carries the result of `PlotImageSubtractionCutoutsTask.makeCutouts`.

    Parameters
    ----------
    result : `lsst.pipe.base.Struct`
        The result of `~PlotImageSubtractionCutoutsTask.makeCutouts`; the
        list holds its ``ids``.

    Notes
    -----
    ``len``, iteration, indexing and comparison with a list are those of the
    ids.  The fields of ``result`` (``records``, ``summary``, ``manifest``,
    ``written``, ``skipped``, ``failed``, ``ids``) are also attributes.

    """

    def __init__(self, result: pipeBase.Struct) -> None:
        super().__init__(result.ids)
        self.result = result

    def __getattr__(self, name: str) -> Any:
        result = self.__dict__.get("result")
        if result is not None and name in result.getDict():
            return getattr(result, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def _data_id(sources: pd.DataFrame) -> dict[str, Any]:
    """Data ID of the visit × detector of a group of standardized sources."""
    first = sources.iloc[0]
    return {
        "instrument": first["instrument"],
        "visit": int(first["visit"]),
        "detector": int(first["detector"]),
    }


def _group_key(sources: pd.DataFrame) -> tuple[str, int, int]:
    """``(instrument, visit, detector)`` of a group, as `find_image_datasets`
    keys it."""
    data_id = _data_id(sources)
    return str(data_id["instrument"]), data_id["visit"], data_id["detector"]


def _ids_in_order(records: pd.DataFrame, order: Sequence[int]) -> list[int]:
    """Ids of ``order`` whose PNG is in place (written or skipped), each
    once, in that order.
    """
    statuses = records["status"].tolist()
    in_place = (STATUS_WRITTEN, STATUS_SKIPPED)
    pairs = zip(records["diaSourceId"].tolist(), statuses, strict=True)
    present = {int(i) for i, status in pairs if status in in_place}
    ids = []
    for value in order.tolist() if isinstance(order, pd.Series) else order:
        dia_source_id = int(value)
        if dia_source_id in present:
            ids.append(dia_source_id)
            present.discard(dia_source_id)
    return ids


def _sky_position(center: Any) -> tuple[float, float]:
    """``(ra, dec)`` in degrees of a SkyCoord, an lsst.geom.SpherePoint or
    an ``(ra, dec)`` pair in degrees.
    """
    if hasattr(center, "getRa"):
        return float(center.getRa().asDegrees()), float(center.getDec().asDegrees())
    if hasattr(center, "icrs"):
        icrs = center.icrs
        return float(icrs.ra.deg), float(icrs.dec.deg)
    ra, dec = center
    return float(ra), float(dec)


def _footprint_width(footprint: Any) -> int:
    """Stamp width of a footprint: the larger side of its bounding box."""
    if isinstance(footprint, (int, np.integer)):
        return int(footprint)
    if hasattr(footprint, "getBBox"):
        dimensions = footprint.getBBox().getDimensions()
        return int(max(dimensions.getX(), dimensions.getY()))
    return int(max(footprint.x.size, footprint.y.size))


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
        table = concat_records(records)
        if len(unhandled):
            if table.empty:
                self.log.warning(
                    "No cutout quantum ran; %d visit × detector(s) with DiaSources have no record and "
                    "there is no output directory to report them in.",
                    len(unhandled),
                )
            else:
                output_path, url_root = table["output_path"].iloc[0], table["url_root"].iloc[0]
                table = concat_records(
                    [
                        table,
                        *(
                            _missing_quantum_records(key, sources, output_path, url_root)
                            for key, sources in unhandled
                        ),
                    ]
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
            files = write_manifests(None, store, url_root or None)
            if self.config.vetting_page:
                page = write_output_vetting_page(store, page_sources, records=files.records).page
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
    table = standardize_sources(sources, instrument=instrument, origin=f"DiaSources of {key}")
    frame = pd.concat([table.sources, table.rejected], ignore_index=True)
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
            for row in source_rows(frame)
        ]
    )


def __getattr__(name: str) -> Any:
    # The original module also held the command line: ``main`` and
    # ``build_argparser`` stay reachable here, imported on first use (the
    # command line imports this module).
    if name in ("main", "build_argparser"):
        from . import cli

        return cli.main if name == "main" else cli.build_parser
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
