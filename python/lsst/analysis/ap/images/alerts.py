r"""Alert packets as cutout sources: Rubin and ZTF.

A packet carries its three stamps and the catalog values of its source, so
it needs no Butler.  `read_packets` reads a file of packets:

* an Avro container file (``Obj\\x01`` first), holding Rubin or ZTF alerts
  with the writer schema embedded;
* a Parquet file (``PAR1`` first) with one alert per row, the alert's
  fields as columns, as brokers such as Fink store alert streams;
* one Rubin alert in the Confluent wire format, as Rubin's alert stream
  sends it: a magic byte 0, a 4-byte big-endian schema id and the
  schemaless Avro body.  The schema comes from ``lsst-alert-packet``: the
  version whose id (``MAJOR * 100 + MINOR``) is the header's, or else the
  newest shipped version that decodes the whole body exactly.

`alert_source` turns a decoded packet into a `AlertSource`: the source row
(APDB ``DiaSource`` column names) and a plane reader per role, ready for the
cutting core.  Anything wrong with a packet (bad header, truncated body,
unknown schema, null or damaged stamps) becomes a `PacketFailure` naming
the packet and the reason; the other packets of the file are still read.

Rubin stamps are FITS files written by astropy ``CCDData`` (image in nJy in
the primary HDU with a local TAN WCS, variance in ``UNCERT``, mask in
``MASK`` when present); the ``CUTMINX``/``CUTMINY`` cards place the stamp on
its detector's pixel grid.  ZTF stamps are gzipped 63 × 63 FITS images in
DN with no WCS, centred on the candidate: the source is drawn at the stamp
centre and the scale bar uses ZTF's pixel scale (`ZTF_PIXEL_SCALE_ARCSEC`).
The difference stamp of an ``isdiffpos = 'f'`` candidate, cut by ZTF from
the reference − science image, is negated so every difference is science −
reference.
"""

from __future__ import annotations

__all__ = (
    "ZTF_BANDS",
    "MAX_STAMP_BYTES",
    "ZTF_PIXEL_SCALE_ARCSEC",
    "AlertSource",
    "PacketFailure",
    "alert_source",
    "alert_row",
    "alert_source_id",
    "decode_wire_message",
    "gunzip_stamp",
    "read_container",
    "read_packets",
    "read_parquet",
    "rubin_schema_by_id",
    "rubin_schemas",
)

import dataclasses
import functools
import gzip
import io
import math
import os
import struct
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, BinaryIO

import astropy.io.fits
import astropy.wcs
import numpy as np

from ..records import ReasonCode
from .arrays import FixedPositionPlaneReader, array_plane_reader
from .butler import ImageUnavailableError
from .legacy_fits import celestial_wcs

ZTF_PIXEL_SCALE_ARCSEC = 1.01
"""Pixel scale of the ZTF cameras (arcsec/pixel), for the scale bar of
stamps that carry no WCS."""

ZTF_BANDS = {1: "g", 2: "r", 3: "i"}
"""ZTF filter id (``fid``) to band."""

MAX_STAMP_BYTES = 64 * 2**20
"""Largest decompressed size of a gzip-compressed stamp (64 MiB): a packet
whose stamp would inflate beyond it (a gzip bomb) is refused without
inflating the rest."""

ROLE_FIELDS = {"template": "cutoutTemplate", "science": "cutoutScience", "difference": "cutoutDifference"}
"""Packet field of each role's stamp."""

AVRO_CONTAINER_MAGIC = b"Obj\x01"
PARQUET_MAGIC = b"PAR1"
WIRE_MAGIC = 0
_WIRE_HEADER = struct.Struct(">bI")


@dataclasses.dataclass(frozen=True)
class PacketFailure:
    """A packet, or part of a packet file, that gives no cutouts.

    Attributes
    ----------
    packet
        Name of the packet (file, and index within it).
    code
        Class of the failure.
    reason
        What is wrong, naming the packet.
    row
        The source's catalog values when they could be read, else `None`.

    """

    packet: str
    code: ReasonCode
    reason: str
    row: Mapping[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class AlertSource:
    """One decoded alert, ready for the cutting core.

    Attributes
    ----------
    packet
        Name of the packet.
    survey
        ``"rubin"`` or ``"ztf"``.
    row
        The source with APDB ``DiaSource`` column names (``diaSourceId``,
        ``visit``, ``detector``, ``ra``, ``dec``, ``band``, fluxes in nJy,
        ...), plus the survey's own fields for the annotation.
    readers
        Plane reader of each role (``template``, ``science``,
        ``difference``).

    """

    packet: str
    survey: str
    row: Mapping[str, Any]
    readers: Mapping[str, Any]


# Schemas ---------------------------------------------------------------------


@functools.cache
def rubin_schemas() -> tuple[tuple[int, str, Any], ...]:
    """``(schema id, version, schema)`` of every alert schema version that
    ``lsst-alert-packet`` ships, newest first.
    """
    from lsst.alert.packet import SchemaRegistry

    registry = SchemaRegistry.all_schemas_from_filesystem()
    entries = []
    for version in registry.known_versions:
        schema = registry.get_by_version(version)
        entries.append((schema.get_schema_id(), version, schema))
    return tuple(sorted(entries, key=lambda e: tuple(int(p) for p in e[1].split(".")), reverse=True))


@functools.cache
def rubin_schema_by_id(schema_id: int) -> tuple[str, Any] | None:
    """``(version, schema)`` of the shipped alert schema whose id is
    ``schema_id`` (``MAJOR * 100 + MINOR``), loading only that version;
    `None` when lsst-alert-packet ships no such version.
    """
    import os.path

    from lsst.alert.packet import Schema, get_schema_path

    major, minor = divmod(int(schema_id), 100)
    if major <= 0:
        return None
    path = os.path.join(get_schema_path(major, minor), f"lsst.v{major}_{minor}.alert.avsc")
    if not os.path.isfile(path):
        return None
    schema = Schema.from_file(path)
    return (f"{major}.{minor}", schema) if schema.get_schema_id() == schema_id else None


def _decode_exactly(schema: Any, body: bytes) -> dict | None:
    """Decode ``body`` with ``schema`` if it consumes every byte."""
    import fastavro

    stream = io.BytesIO(body)
    try:
        record = fastavro.schemaless_reader(stream, schema.definition)
    except Exception:
        return None
    return record if stream.tell() == len(body) and isinstance(record, dict) else None


def decode_wire_message(message: bytes, packet: str) -> dict | PacketFailure:
    """Decode one Confluent wire-format Rubin alert.

    Parameters
    ----------
    message
        The 5-byte header and the schemaless Avro body.
    packet
        Name of the packet, for messages.

    Returns
    -------
    dict or PacketFailure
        The alert record, or why it cannot be read.

    """
    if len(message) < _WIRE_HEADER.size:
        return PacketFailure(
            packet, ReasonCode.BAD_PACKET, f"{packet}: {len(message)} bytes, shorter than the header"
        )
    magic, schema_id = _WIRE_HEADER.unpack_from(message)
    if magic != WIRE_MAGIC:
        return PacketFailure(
            packet,
            ReasonCode.BAD_PACKET,
            f"{packet}: wrong magic byte {message[0]:#04x}: neither a Confluent wire-format message "
            "(magic byte 0) nor an Avro container file",
        )
    body = message[_WIRE_HEADER.size :]
    by_id = rubin_schema_by_id(schema_id)
    if by_id is not None:
        version, schema = by_id
        record = _decode_exactly(schema, body)
        if record is None:
            return PacketFailure(
                packet,
                ReasonCode.BAD_PACKET,
                f"{packet}: the body does not decode with alert schema {version} (schema id {schema_id}): "
                "truncated or damaged",
            )
        return record
    schemas = rubin_schemas()
    for _, _, schema in schemas:
        record = _decode_exactly(schema, body)
        if record is not None:
            return record
    return PacketFailure(
        packet,
        ReasonCode.UNKNOWN_SCHEMA,
        f"{packet}: unknown schema id {schema_id}, and no alert schema shipped by lsst-alert-packet "
        f"({', '.join(entry[1] for entry in schemas)}) decodes its body",
    )


# Reading packet files ----------------------------------------------------------


def read_packets(path: str | os.PathLike[str]) -> Iterator[tuple[str, dict | PacketFailure]]:
    """Read the packets of one file.

    Yields
    ------
    packet : str
        Name of the packet: the file, and ``#<index>`` within an Avro
        container.
    record : dict or PacketFailure
        The decoded alert, or why it (or the rest of the file) cannot be
        read (a broken symbolic link is one failure naming its target).

    """
    name = os.fspath(path)
    if os.path.islink(name) and not os.path.exists(name):
        reason = f"{name}: broken symbolic link (to {os.readlink(name)}, which does not exist)"
        yield name, PacketFailure(name, ReasonCode.BAD_PACKET, reason)
        return
    try:
        with open(path, "rb") as stream:
            magic = stream.read(len(AVRO_CONTAINER_MAGIC))
            if magic == AVRO_CONTAINER_MAGIC:
                # Containers are streamed: a night's file need not fit in memory.
                stream.seek(0)
                yield from read_container(name, stream)
                return
            if magic == PARQUET_MAGIC:
                stream.seek(0)
                yield from read_parquet(name, stream)
                return
            stream.seek(0)
            data = stream.read()
    except OSError as error:
        yield name, PacketFailure(name, ReasonCode.BAD_PACKET, f"{name}: cannot read the file ({error})")
        return
    yield name, decode_wire_message(data, name)


def read_container(name: str, stream: BinaryIO) -> Iterator[tuple[str, dict | PacketFailure]]:
    """Read the packets of an Avro container, named ``name#<index>``; damage
    ends the reading with a failure after the packets read so far.
    """
    import fastavro

    yield from _numbered(
        name, lambda: fastavro.reader(stream), "the Avro container", "packet(s)", "holds no packets"
    )


def read_parquet(name: str, stream: BinaryIO) -> Iterator[tuple[str, dict | PacketFailure]]:
    """Read the alerts of a Parquet file, one per row, named
    ``name#<row>``; damage ends the reading with a failure after the rows
    read so far.

    The rows are read in batches, so a night's file need not fit in memory;
    nested columns (``candidate``, ``diaSource``, the cutouts'
    ``stampData``) come back as the dicts and bytes a decoded Avro packet
    holds.
    """
    import pyarrow.parquet

    def rows() -> Iterator[dict]:
        parquet = pyarrow.parquet.ParquetFile(stream)
        for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS):
            yield from batch.to_pylist()

    yield from _numbered(name, rows, "the Parquet file", "row(s)", "holds no alerts")


def _numbered(
    name: str, records: Callable[[], Iterable[dict]], what: str, unit: str, empty: str
) -> Iterator[tuple[str, dict | PacketFailure]]:
    """The records of a multi-packet file, named ``name#<index>``; an error
    while reading (opening included) ends them with a failure that says how
    many were read, and a file with none gives a failure too.
    """
    index = 0
    try:
        for record in records():
            yield f"{name}#{index}", record
            index += 1
    except Exception as error:
        packet = f"{name}#{index}"
        reason = f"{name}: {what} is damaged after {index} {unit} ({type(error).__name__}: {error})"
        yield packet, PacketFailure(packet, ReasonCode.BAD_PACKET, reason)
        return
    if index == 0:
        yield name, PacketFailure(name, ReasonCode.BAD_PACKET, f"{name}: {what} {empty}")


_PARQUET_BATCH_ROWS = 64
"""Rows decoded at a time (a ZTF alert with its stamps is about 60 kB)."""


# From a packet to a source -------------------------------------------------------


def survey_of(record: Mapping[str, Any]) -> str | None:
    """``"rubin"``, ``"ztf"`` or `None`, from the packet's fields (`None`
    for a record that is not an object with fields)."""
    if not isinstance(record, Mapping):
        return None
    if "diaSource" in record:
        return "rubin"
    if "candidate" in record and "candid" in record:
        return "ztf"
    return None


def alert_source_id(record: Mapping[str, Any]) -> int | None:
    """The source id a decoded packet carries: the Rubin ``diaSourceId``,
    the ZTF ``candid``; `None` when it has none that is an integer.
    """
    survey = survey_of(record)
    if survey == "rubin":
        value = (record.get("diaSource") or {}).get("diaSourceId", record.get("diaSourceId"))
    elif survey == "ztf":
        value = record.get("candid", (record.get("candidate") or {}).get("candid"))
    else:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        return None
    return int(value)


def alert_row(record: Mapping[str, Any], *, instrument: str) -> dict[str, Any] | None:
    """The source row of a decoded packet (see `AlertSource.row`), or
    `None` when it is not an alert.
    """
    survey = survey_of(record)
    if survey is None:
        return None
    return _rubin_row(record, instrument) if survey == "rubin" else _ztf_row(record)


def alert_source(record: Mapping[str, Any], packet: str, *, instrument: str) -> AlertSource | PacketFailure:
    """The source and stamps of one decoded packet.

    Parameters
    ----------
    record
        The decoded alert.
    packet
        Name of the packet, for messages.
    instrument
        Instrument name for Rubin packets (the packet does not name it).

    """
    survey = survey_of(record)
    if survey is None:
        found = (
            f"fields {sorted(map(str, record))[:8]}"
            if isinstance(record, Mapping)
            else f"a record of type {type(record).__name__}, not an object with fields"
        )
        return PacketFailure(
            packet,
            ReasonCode.BAD_PACKET,
            f"{packet}: not a Rubin (diaSource) or ZTF (candidate) alert; {found}",
        )
    row = _rubin_row(record, instrument) if survey == "rubin" else _ztf_row(record)
    if survey == "ztf" and _ztf_positive(row["isdiffpos"]) is None:
        return PacketFailure(
            packet,
            ReasonCode.BAD_PACKET,
            f"{packet}: isdiffpos {row['isdiffpos']!r} is neither 't' nor 'f': the sign of the difference "
            "stamp is unknown",
            row,
        )
    stamps = {}
    for role, field in ROLE_FIELDS.items():
        stamp = record.get(field)
        if survey == "ztf" and isinstance(stamp, Mapping):
            stamp = stamp.get("stampData")
        stamps[role] = stamp
    null = [field for role, field in ROLE_FIELDS.items() if stamps[role] is None]
    if null:
        return PacketFailure(
            packet,
            ReasonCode.NO_CUTOUT,
            f"{packet}: {', '.join(null)} {'is' if len(null) == 1 else 'are'} null",
            row,
        )
    readers = {}
    for role, field in ROLE_FIELDS.items():
        stamp = stamps[role]
        name = f"{packet} ({field})"
        try:
            if survey == "rubin":
                readers[role] = _rubin_reader(stamp, name)
            else:
                negate = role == "difference" and not _ztf_positive(row["isdiffpos"])
                readers[role] = _ztf_reader(stamp, name, negate=negate)
        except ImageUnavailableError as error:
            return PacketFailure(packet, ReasonCode.BAD_CUTOUT, str(error), row)
    return AlertSource(packet=packet, survey=survey, row=row, readers=readers)


def _rubin_row(record: Mapping[str, Any], instrument: str) -> dict[str, Any]:
    row = dict(record["diaSource"] or {})
    row.setdefault("diaSourceId", record.get("diaSourceId"))
    row["instrument"] = instrument
    return row


def _ztf_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """The ZTF candidate with APDB names for what has one.

    ``diaSourceId`` is ``candid``, ``visit`` the processing id ``pid`` (one
    exposure and CCD quadrant), ``detector`` the readout channel ``rcid``,
    ``band`` from ``fid``.  ``psfFlux``/``psfFluxErr`` are ``magpsf ±
    sigmapsf`` in nJy (AB), negative when ``isdiffpos`` is ``'f'``;
    ``reliability`` is the deep-learning score ``drb`` when present, else
    ``rb``.
    """
    candidate = dict(record["candidate"])
    positive = _ztf_positive(candidate.get("isdiffpos", "t"))
    magpsf, sigmapsf = candidate.get("magpsf"), candidate.get("sigmapsf")
    flux = error = None
    if magpsf is not None and math.isfinite(magpsf) and positive is not None:
        flux = 10.0 ** ((31.4 - magpsf) / 2.5) * (1.0 if positive else -1.0)
        if sigmapsf is not None and math.isfinite(sigmapsf):
            error = abs(flux) * sigmapsf * math.log(10.0) / 2.5
    reliability = candidate.get("drb")
    if reliability is None:
        reliability = candidate.get("rb")
    return {
        "diaSourceId": record.get("candid", candidate.get("candid")),
        "instrument": "ZTF",
        "visit": candidate.get("pid"),
        "detector": candidate.get("rcid"),
        "ra": candidate.get("ra"),
        "dec": candidate.get("dec"),
        "band": ZTF_BANDS.get(candidate.get("fid"), str(candidate.get("fid"))),
        "psfFlux": flux,
        "psfFluxErr": error,
        "reliability": reliability,
        "objectId": record.get("objectId"),
        "magpsf": magpsf,
        "sigmapsf": sigmapsf,
        "isdiffpos": candidate.get("isdiffpos"),
        "rb": candidate.get("rb"),
        "drb": candidate.get("drb"),
        "fid": candidate.get("fid"),
    }


def _ztf_positive(isdiffpos: Any) -> bool | None:
    """Whether a ZTF candidate comes from the science − reference
    subtraction (``isdiffpos`` ``'t'`` or ``'1'``, the default when absent)
    rather than reference − science (``'f'`` or ``'0'``); `None` for any
    other value, whose sign is unknown.
    """
    if isdiffpos is None:
        return True
    value = str(isdiffpos).strip().lower()
    if value in ("t", "1", "true"):
        return True
    if value in ("f", "0", "false"):
        return False
    return None


def gunzip_stamp(data: bytes, name: str, limit: int = MAX_STAMP_BYTES) -> bytes:
    """The bytes of a stamp, inflated when gzip-compressed.

    The inflated size is measured first, a chunk at a time without keeping
    the output: a stamp that would be larger than ``limit`` (a gzip bomb, a
    few kB that inflate to gigabytes) is refused without being held in
    memory.

    Parameters
    ----------
    data : `bytes`
        The stamp as the packet carries it.
    name : `str`
        The packet and stamp, for messages.
    limit : `int`, optional
        Largest decompressed size, in bytes.

    Returns
    -------
    stamp : `bytes`
        ``data`` itself when not gzip-compressed, else its contents.

    Raises
    ------
    lsst.analysis.ap.images.butler.ImageUnavailableError
        When the gzip data are damaged or inflate beyond ``limit``.

    """
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        size = _inflated_size(data, limit)
        if size > limit:
            raise ImageUnavailableError(
                f"{name}: the gzip-compressed stamp ({len(data)} bytes) inflates to more than "
                f"{limit // 2**20} MiB; refused (a gzip bomb?)"
            )
        return gzip.decompress(data)
    except (zlib.error, EOFError, gzip.BadGzipFile) as error:
        raise ImageUnavailableError(f"{name}: damaged gzip data ({error})") from error


_INFLATE_CHUNK = 2**20
"""Bytes inflated at a time while measuring a compressed stamp."""


def _inflated_size(data: bytes, limit: int) -> int:
    """Size of gzip ``data`` inflated (every member), measured a chunk at a
    time without keeping the output; counting stops past ``limit``.
    """
    size = 0
    rest = data
    while rest:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        pending = rest
        while pending and size <= limit:
            size += len(inflater.decompress(pending, _INFLATE_CHUNK))
            pending = inflater.unconsumed_tail
        if size > limit:
            return size
        size += len(inflater.flush())
        if not inflater.eof:
            raise EOFError("truncated gzip data")
        rest = inflater.unused_data.lstrip(b"\x00")
    return size


def _open_stamp(data: bytes, name: str) -> astropy.io.fits.HDUList:
    data = gunzip_stamp(data, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hdus = astropy.io.fits.open(io.BytesIO(data), lazy_load_hdus=False)
            hdus.verify("silentfix+ignore")
            for hdu in hdus:
                _ = hdu.data
    except Exception as error:
        raise ImageUnavailableError(
            f"{name}: not a readable FITS file ({type(error).__name__}: {error})"
        ) from error
    return hdus


def _first_image(hdus: astropy.io.fits.HDUList, name: str) -> tuple[np.ndarray, astropy.io.fits.Header]:
    for hdu in hdus:
        if isinstance(hdu, astropy.io.fits.PrimaryHDU | astropy.io.fits.ImageHDU) and hdu.data is not None:
            data = np.asarray(hdu.data, dtype=np.float32)
            if data.ndim == 2 and data.size:
                return data, hdu.header
    raise ImageUnavailableError(f"{name}: the FITS file holds no 2-d image")


def _stamp_wcs(header: astropy.io.fits.Header, name: str) -> astropy.wcs.WCS:
    """The stamp's celestial WCS; a header with CRVAL and a CD/PC matrix
    but no ``CTYPE`` (as some alert production versions write) is a TAN
    projection.
    """
    header = header.copy()
    if not str(header.get("CTYPE1", "")).strip() and "CRVAL1" in header and "CRVAL2" in header:
        header["CTYPE1"], header["CTYPE2"] = "RA---TAN", "DEC--TAN"
    try:
        wcs = celestial_wcs(header, name)
    except ValueError as error:
        raise ImageUnavailableError(str(error)) from error
    if wcs is None:
        raise ImageUnavailableError(f"{name}: the stamp has no celestial WCS")
    return wcs


def _rubin_reader(data: bytes, name: str) -> Any:
    with _open_stamp(data, name) as hdus:
        array, header = _first_image(hdus, name)
        wcs = _stamp_wcs(header, name)
        # CUTMINX/Y are the parent coordinates of the pixel before the first.
        xy0 = (int(header.get("CUTMINX", -1)) + 1, int(header.get("CUTMINY", -1)) + 1)
        variance = None
        if "UNCERT" in hdus and hdus["UNCERT"].header.get("UTYPE", "VarianceUncertainty") == (
            "VarianceUncertainty"
        ):
            variance = np.asarray(hdus["UNCERT"].data, dtype=np.float32)
    return array_plane_reader(name, array, wcs=wcs, xy0=xy0, variance=variance)


def _ztf_reader(data: bytes, name: str, *, negate: bool = False) -> FixedPositionPlaneReader:
    """A reader of a ZTF stamp, the candidate at its centre pixel.

    ZTF cuts a candidate's difference stamp from the subtraction it was
    found in: science − reference for ``isdiffpos = 't'``, reference −
    science for ``'f'``.  ``negate`` turns the latter into science −
    reference, this package's convention (and Rubin's), so a source that
    faded is drawn negative.
    """
    with _open_stamp(data, name) as hdus:
        array, _ = _first_image(hdus, name)
    if negate:
        array = np.negative(array)
    ny, nx = array.shape
    return FixedPositionPlaneReader(
        name=name, array=array, x=float(nx // 2), y=float(ny // 2), pixel_scale=ZTF_PIXEL_SCALE_ARCSEC
    )
