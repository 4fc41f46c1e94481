"""Cutouts without a Butler: from alert packets and from image files.

`make_alert_cutouts` draws the stamps that Rubin or ZTF alert packets carry;
`make_file_cutouts` cuts stamps of a DiaSource table out of science,
template and difference image files.  Both go through the same cutting core
(`lsst.analysis.ap.core.DetectorCutouter`), configuration
(`PlotImageSubtractionCutoutsConfig`) and outputs as the Butler path:
``images/<chunk>/<id>.png``, the Zooniverse and panoptes manifests,
``failures.csv``, ``summary.json`` and ``records.csv``.  Every packet and
every source ends written, skipped or failed with a reason that names the
packet or file.
"""

from __future__ import annotations

__all__ = ("expand_packet_inputs", "make_alert_cutouts", "make_file_cutouts")

import glob
import io
import logging
import os
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from lsst.pipe.base import Struct

from .core import DetectorCutouter, make_detector_records
from .datasets import IMAGE_ROLES
from .images.alerts import (
    AVRO_CONTAINER_MAGIC,
    AlertSource,
    PacketFailure,
    alert_row,
    alert_source,
    alert_source_id,
    decode_wire_message,
    read_container,
    read_packets,
)
from .images.butler import ImageUnavailableError
from .images.files import (
    FileChoice,
    FileIdentity,
    choose_file,
    file_identity,
    file_plane_reader,
    placement,
    role_files,
    unique_files,
)
from .interrupts import stop_if_interrupted
from .parallel import cleaned_after_interrupt, explain_broken_pool, sigint_ignored, usable_njobs, worker_pool
from .plotImageSubtractionCutouts import PlotImageSubtractionCutoutsConfig, PlotImageSubtractionCutoutsTask
from .records import ReasonCode, concat_records, empty_records, records_frame
from .sources import SourceTableError, source_rows, standardize_sources

_LOG = logging.getLogger(__name__)

PACKET_SUFFIXES = (".avro", ".avsc.bin", ".bin", ".alert", ".parquet")
"""Files a directory given as input is searched for (recursively)."""

DEFAULT_INSTRUMENT = "LSSTCam"
"""Instrument recorded for Rubin packets (which do not name it)."""


# Alert packets -------------------------------------------------------------------


def _broken_link(path: Path) -> bool:
    """Whether ``path`` is a symbolic link to nothing."""
    return path.is_symlink() and not path.exists()


def _packet_file(path: Path) -> bool:
    """Whether ``path`` is a file to read packets from: a file, or a broken
    symbolic link (whose packets then fail, naming it).
    """
    return path.is_file() or _broken_link(path)


def expand_packet_inputs(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Packet files from files, directories (searched recursively for
    `PACKET_SUFFIXES`) and glob patterns, in order, without repeats.

    Broken symbolic links are kept: reading them gives a failed record
    that names them.

    Raises
    ------
    FileNotFoundError
        When an input matches no file.

    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if _packet_file(p) and p.name.endswith(PACKET_SUFFIXES))
        elif path.exists() or _broken_link(path):
            found = [path]
        else:
            found = sorted(
                Path(p) for p in glob.glob(os.fspath(item), recursive=True) if _packet_file(Path(p))
            )
        if not found:
            raise FileNotFoundError(f"no alert packet file at {item}")
        files.extend(found)
    return unique_files(files)


def _packet_id(packet: str) -> int:
    """A stable negative id for a packet whose source id is unknown."""
    return -(zlib.crc32(packet.encode()) + 1)


def _failure_row(failure: PacketFailure, instrument: str) -> dict[str, Any]:
    """The record row of a failed packet: its values where the packet gave
    usable ones (a damaged packet's may be of any type), else defaults."""
    row = dict(failure.row or {})

    def value(name: str, default: Any, kind: type) -> Any:
        item = row.get(name)
        if item is None:
            return default
        try:
            item = kind(item)
        except (TypeError, ValueError, OverflowError):
            return default
        return default if isinstance(item, float) and np.isnan(item) else item

    return {
        "diaSourceId": value("diaSourceId", _packet_id(failure.packet), int),
        "instrument": value("instrument", instrument, str),
        "visit": value("visit", -1, int),
        "detector": value("detector", -1, int),
        "band": value("band", "", str),
        "ra": value("ra", float("nan"), float),
        "dec": value("dec", float("nan"), float),
    }


def _unreadable_packet(packet: str, error: Exception) -> PacketFailure:
    """The failure of a packet whose fields cannot be read (a value of the
    wrong type or range, a missing record), naming the packet and the error."""
    detail = " ".join(str(error).split()) or "no detail"
    return PacketFailure(
        packet, ReasonCode.BAD_PACKET, f"{packet}: cannot read the alert: {type(error).__name__}: {detail}"
    )


def _duplicate_failure(record: dict, packet: str, first: str, instrument: str) -> PacketFailure:
    """The failure of a packet whose source id an earlier packet carries."""
    source_id = alert_source_id(record)
    row = alert_row(record, instrument=instrument) or {}
    # Recorded under the packet's own id: the id's record is the first copy's.
    row["diaSourceId"] = _packet_id(packet)
    return PacketFailure(
        packet,
        ReasonCode.DUPLICATE_ID,
        f"{packet}: source id {source_id} was already read from {first}; this copy is not drawn",
        row,
    )


def _packet_records(
    cutouter: DetectorCutouter,
    packet: str,
    record: dict | PacketFailure,
    instrument: str,
    first: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Records of one packet (its source drawn by the core, or failed), and
    its standardized source row when it has one; ``first`` names the
    earlier packet with the same source id, if any.
    """
    if isinstance(record, PacketFailure):
        source: AlertSource | PacketFailure = record
    else:
        try:
            if first is not None:
                source = _duplicate_failure(record, packet, first, instrument)
            else:
                source = alert_source(record, packet, instrument=instrument)
        except Exception as error:  # one damaged packet never stops the run
            source = _unreadable_packet(packet, error)
    if not isinstance(source, PacketFailure):
        try:
            table = standardize_sources(pd.DataFrame([dict(source.row)]), origin=packet)
        except SourceTableError as error:
            source = PacketFailure(packet, ReasonCode.BAD_PACKET, str(error), source.row)
        else:
            if len(table.rejected):
                rejected = table.rejected.assign(reason=f"{packet}: " + table.rejected["reason"])
                return cutouter.reject(rejected), None
            readers = source.readers
            return make_detector_records(cutouter, table.sources, lambda: readers), table.sources
    failed = records_frame([cutouter._fail(_failure_row(source, instrument), source.code, source.reason)])
    return failed, None


def _iter_packets(item: Any, index: int) -> Iterator[tuple[str, dict | PacketFailure]]:
    """Packets of one input: a file, wire-format bytes, or a decoded dict."""
    if isinstance(item, Mapping):
        yield f"packet {index}", dict(item)
    elif isinstance(item, bytes | bytearray):
        name = f"packet {index}"
        if bytes(item).startswith(AVRO_CONTAINER_MAGIC):
            yield from read_container(name, io.BytesIO(bytes(item)))
        else:
            yield name, decode_wire_message(bytes(item), name)
    else:
        yield from read_packets(item)


def _first_packet(record: dict | PacketFailure, packet: str, seen: dict[int, str]) -> str | None:
    """The packet that first carried the source id of ``record`` (`None`
    when this is the first, or the packet has no id); ``seen`` maps the
    ids met so far to their first packet, and is updated.
    """
    if isinstance(record, PacketFailure):
        return None
    try:
        source_id = alert_source_id(record)
    except Exception:  # failed when it is drawn, with its reason
        return None
    if source_id is None:
        return None
    first = seen.get(source_id)
    if first is None:
        seen[source_id] = packet
    return first


def _alert_records(
    task: PlotImageSubtractionCutoutsTask,
    items: Sequence[Any],
    instrument: str,
    seen: dict[int, str] | None = None,
    duplicates: Mapping[str, str] | None = None,
) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Records of the packets of ``items``, and their source rows (for the
    vetting page).

    A packet whose source id an earlier one carries fails
    (``duplicate_id``): earlier in ``items`` (``seen``, the ids met so far
    and their first packet, is updated), or as ``duplicates`` (packet ->
    first packet, found beforehand) says.
    """
    cutouter = task._cutouter()
    frames = [empty_records()]
    rows = []
    seen = {} if seen is None else seen
    for index, item in enumerate(items):
        for packet, record in _iter_packets(item, index):
            first = duplicates.get(packet) if duplicates is not None else _first_packet(record, packet, seen)
            records, source = _packet_records(cutouter, packet, record, instrument, first)
            frames.append(records)
            if source is not None:
                rows.append(source)
    return pd.concat(frames, ignore_index=True), rows


def make_alert_cutouts(
    packets: Iterable[Any],
    output_path: str | os.PathLike[str],
    *,
    config: PlotImageSubtractionCutoutsConfig | None = None,
    njobs: int = 0,
    instrument: str = DEFAULT_INSTRUMENT,
) -> Struct:
    """Draw the stamps of alert packets.

    Parameters
    ----------
    packets
        Packet files (Avro containers, Confluent wire-format messages),
        directories and glob patterns (see `expand_packet_inputs`), or
        packets themselves: wire-format or container `bytes`, or decoded
        alert `dict` objects.  A file reached by several of them is read
        once.
    output_path
        Output directory.
    config
        Task configuration (stamp sizes, display, chunking, url_root, ...).
    njobs
        Worker processes, each taking batches of packet files; 0 draws here.
        At most one per core this process may run on (a larger value is
        capped, with a warning).
    instrument
        Instrument recorded for Rubin packets.

    Returns
    -------
    lsst.pipe.base.Struct
        As `PlotImageSubtractionCutoutsTask.run`: ``records``, ``summary``,
        ``manifest``, ``written``, ``skipped``, ``failed``.

    Raises
    ------
    FileNotFoundError
        When an input path matches no file.

    """
    task = PlotImageSubtractionCutoutsTask(config=config, output_path=output_path)
    items: list[Any] = []
    for item in packets:
        if isinstance(item, str | os.PathLike):
            items.extend(expand_packet_inputs([item]))
        else:
            items.append(item)
    items = unique_files(items)  # a file reached twice is read once
    task.prepare_output()
    task.log.info("Drawing the stamps of %d packet input(s) into %s", len(items), task.output_path)
    files = [item for item in items if isinstance(item, Path)]
    njobs = usable_njobs(njobs, task.log)
    if njobs > 0 and len(files) > 1:
        others = [item for item in items if not isinstance(item, Path)]
        seen: dict[int, str] = {}
        records, rows = _alert_records(task, others, instrument, seen)
        # Copies of an id in the files of different workers: found here,
        # in input order, so that the first copy is the one drawn.
        duplicates = _duplicate_packets(files, seen)
        frames = [records]
        # A few batches of files per worker: single-message files are
        # small, and one task each would cost more than drawing them.
        n_batches = min(len(files), 4 * njobs)
        batches = [([str(f) for f in files[i::n_batches]], duplicates) for i in range(n_batches)]
        # Workers that log through this process (the command's format,
        # its --log-file) and end with it.
        with (
            cleaned_after_interrupt(task.remove_partial_files),
            worker_pool(
                _start_alert_worker,
                (task.config, str(task.output_path), task.writer_token, instrument),
                min(njobs, n_batches),
            ) as pool,
        ):
            with sigint_ignored():  # the workers start now
                results = pool.map(_alert_worker_files, batches)
            try:
                for file_records, file_rows in results:
                    stop_if_interrupted()
                    frames.append(file_records)
                    rows.extend(file_rows)
            except BrokenProcessPool as error:
                raise explain_broken_pool(error) from error
        records = pd.concat(frames, ignore_index=True)
    else:
        records, rows = _alert_records(task, items, instrument)
    sources = pd.concat(rows, ignore_index=True) if rows else None
    _warn_of_stamps_without_wcs(task, sources)
    return task.finish(records, sources)


def _wcs_options(config: PlotImageSubtractionCutoutsConfig) -> list[str]:
    """The options of ``config`` that need a stamp's WCS, in words."""
    options = []
    if config.display.orientation != "detector":
        options.append(f"display.orientation={config.display.orientation}")
    if config.display.compass:
        options.append("display.compass")
    if config.save_fits_stamps:
        options.append("the WCS of save_fits_stamps")
    return options


def _warn_of_stamps_without_wcs(task: PlotImageSubtractionCutoutsTask, sources: pd.DataFrame | None) -> None:
    """One warning when ZTF stamps (which carry no WCS) were drawn with
    options that need one: those options are not applied to them.
    """
    options = _wcs_options(task.config)
    if sources is None or not options or "instrument" not in sources:
        return
    n_ztf = int((sources["instrument"] == "ZTF").sum())
    if n_ztf:
        task.log.warning(
            "%d ZTF packet(s): their stamps carry no WCS, so the options that need one (%s) are not "
            "applied to them; they are drawn as read out, centred on the candidate.",
            n_ztf,
            ", ".join(options),
        )


_WORKER: dict[str, Any] = {}


def _start_alert_worker(
    config: PlotImageSubtractionCutoutsConfig, output_path: str, token: str, instrument: str
) -> None:
    """Worker-process initializer: one task per worker, writing record files
    under the parent run's token.
    """
    logging.basicConfig(level=logging.INFO)
    _WORKER["task"] = PlotImageSubtractionCutoutsTask(
        config=config, output_path=output_path, writer_token=token
    )
    _WORKER["instrument"] = instrument


def _alert_worker_files(batch: tuple[list[str], dict[str, str]]) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Worker-process entry point: draw the packets of a batch of files
    (the paths, and the repeated packets of the run with their first copy).
    """
    paths, duplicates = batch
    return _alert_records(
        _WORKER["task"], [Path(p) for p in paths], _WORKER["instrument"], duplicates=duplicates
    )


def _duplicate_packets(files: Sequence[Path], seen: dict[int, str]) -> dict[str, str]:
    """Packets of ``files`` whose source id an earlier packet carries (read
    in order, after the ids of ``seen``), each with that first packet.
    """
    duplicates = {}
    for path in files:
        for packet, record in read_packets(path):
            first = _first_packet(record, packet, seen)
            if first is not None:
                duplicates[packet] = first
    return duplicates


# Image files -----------------------------------------------------------------------


class _FileReaders:
    """One plane reader per image file, opened on first use."""

    def __init__(self, files: Mapping[str, list[Path]]) -> None:
        self.files = files
        self._readers: dict[Path, Any] = {}
        self._errors: dict[Path, ImageUnavailableError] = {}
        self._identities: dict[Path, FileIdentity] = {}
        self._decided: dict[tuple[str, int, int], FileChoice] = {}

    def reader(self, path: Path) -> Any:
        if path in self._errors:
            raise self._errors[path]
        if path not in self._readers:
            try:
                reader = file_plane_reader(path)
                reader.bbox  # noqa: B018  (reads the headers once, now)
            except ImageUnavailableError as error:
                self._errors[path] = error
                raise
            self._readers[path] = reader
        return self._readers[path]

    def identities(self, role: str) -> dict[Path, FileIdentity]:
        """What each file of ``role`` says it is (read once per file)."""
        for path in self.files[role]:
            if path not in self._identities:
                self._identities[path] = file_identity(path)
        return {path: self._identities[path] for path in self.files[role]}

    def find(self, role: str, row: Mapping[str, Any], size: int) -> FileChoice:
        """The file of ``role`` a source is cut from
        (`lsst.analysis.ap.images.files.choose_file`).
        """
        ra, dec = float(row["ra"]), float(row["dec"])
        visit, detector = int(row["visit"]), int(row["detector"])
        key = (role, visit, detector)
        if key in self._decided:
            return self._decided[key]
        placed = False

        def place(paths: list[Path]) -> tuple[list, list[str]]:
            nonlocal placed
            placed = True
            placements, problems = [], []
            for path in paths:
                try:
                    placements.append(placement(path, self.reader(path), ra, dec, size))
                except ImageUnavailableError as error:
                    problems.append(str(error))
            return placements, problems

        choice = choose_file(role, visit, detector, self.files[role], self.identities(role), place)
        if not placed:
            # Decided by the ids alone: the same for every source of the visit × detector.
            self._decided[key] = choice
        return choice


def make_file_cutouts(
    sources: Any,
    output_path: str | os.PathLike[str],
    *,
    science: Any,
    template: Any,
    difference: Any,
    config: PlotImageSubtractionCutoutsConfig | None = None,
    instrument: str | None = None,
    origin: str = "DiaSource table",
) -> Struct:
    """Cut the stamps of DiaSources out of image files.

    Parameters
    ----------
    sources
        DiaSources (`pandas.DataFrame`, `astropy.table.Table`, or the path
        of a parquet/CSV/FITS catalog) with APDB column names.
    output_path
        Output directory.
    science, template, difference
        The images of each role: a file, a directory of FITS files, a glob
        pattern, or a list of them.  Each source is cut from the file of its
        visit and detector when the files say which they are, else from the
        file whose image holds it (the whole stamp first, then the nearest
        image centre); see `lsst.analysis.ap.images.files.choose_file`.
    config
        Task configuration.
    instrument
        Instrument name of sources without one (no ``instrument`` column,
        or a null value); ``unknown`` when not given: image files name no
        instrument to find or check it against, so such rows are drawn
        (unlike the Butler path's ``no_instrument``).
    origin
        Where the table came from, for messages.

    Returns
    -------
    lsst.pipe.base.Struct
        As `PlotImageSubtractionCutoutsTask.run`, and ``image_files``: the
        files each source was given (`pandas.DataFrame` also written to
        ``image_files.csv``: ``diaSourceId``, ``visit``, ``detector``,
        ``science``, ``template``, ``difference``, ``choice`` (how each
        was chosen) and ``ambiguous`` (other files held the source too)).

    Raises
    ------
    lsst.analysis.ap.sources.SourceTableError
        When the table cannot be used at all.
    FileNotFoundError
        When an image path matches no file.

    """
    from .sources import load_catalog

    if isinstance(sources, str | os.PathLike):
        origin = f"catalog {sources}"
        sources = load_catalog(sources)
    table = standardize_sources(sources, instrument=instrument or "unknown", origin=origin)
    frame = table.sources
    files = {
        role: role_files(spec, role)
        for role, spec in (("template", template), ("science", science), ("difference", difference))
    }
    task = PlotImageSubtractionCutoutsTask(config=config, output_path=output_path)
    task.prepare_output()
    cutouter = task._cutouter()
    readers = _FileReaders(files)
    assigned: dict[tuple[Path, Path, Path], list[int]] = {}
    frames = [cutouter.reject(table.rejected)]
    failed_rows = []
    choices = []
    size = max(task.config.sizes)
    for position, row in enumerate(source_rows(frame)):
        chosen: dict[str, FileChoice] = {}
        for role in IMAGE_ROLES:
            choice = readers.find(role, row, size)
            if choice.path is None:
                failed_rows.append(cutouter._fail(row, ReasonCode.MISSING_IMAGE, choice.reason))
                break
            chosen[role] = choice
        else:
            assigned.setdefault(tuple(chosen[role].path for role in IMAGE_ROLES), []).append(position)
            choices.append(_choice_row(row, chosen))
    if failed_rows:
        frames.append(records_frame(failed_rows))
    image_files = pd.DataFrame(choices, columns=list(_CHOICE_COLUMNS))
    task._store.write("image_files.csv", image_files.to_csv(index=False).encode())
    n_ambiguous = int(image_files["ambiguous"].sum())
    if n_ambiguous:
        task.log.warning(
            "%d source(s) lie on several image files of a role that do not say which visit and detector "
            "they are; each was cut from the file chosen by position (listed in image_files.csv)",
            n_ambiguous,
        )
    task.log.info(
        "Drawing %d DiaSource(s) from %d image file triplet(s) into %s",
        len(frame),
        len(assigned),
        task.output_path,
    )
    for paths, positions in assigned.items():

        def open_readers(paths: tuple[Path, ...] = paths) -> dict[str, Any]:
            return {role: readers.reader(path) for role, path in zip(IMAGE_ROLES, paths, strict=True)}

        frames.append(make_detector_records(cutouter, frame.iloc[positions], open_readers))
    records = concat_records(frames)
    result = task.finish(records, frame)
    result.image_files = image_files
    return result


_CHOICE_COLUMNS = ("diaSourceId", "visit", "detector", *IMAGE_ROLES, "choice", "ambiguous")
"""Columns of ``image_files.csv``."""


def _choice_row(row: Mapping[str, Any], chosen: Mapping[str, FileChoice]) -> dict[str, Any]:
    """The ``image_files.csv`` row of a source: its files and how each was chosen."""
    notes = []
    for role, choice in chosen.items():
        note = f"{role}: {choice.rule}"
        if choice.others:
            note += " (also on " + ", ".join(str(path) for path in choice.others) + ")"
        notes.append(note)
    return {
        "diaSourceId": row["diaSourceId"],
        "visit": row["visit"],
        "detector": row["detector"],
        **{role: str(choice.path) for role, choice in chosen.items()},
        "choice": "; ".join(notes),
        "ambiguous": any(choice.ambiguous for choice in chosen.values()),
    }
