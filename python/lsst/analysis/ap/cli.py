"""Cutouts from the command line.

``plotImageSubtractionCutouts REPO OUTPUTPATH`` reads the images from a Butler
repository.  Sources come from an APDB (``--sqlitefile``, ``--apdb-config``,
or ``--postgres_url`` / ``--namespace``, read through lsst-dax-apdb), a
catalog file (``--catalog``: parquet, CSV or FITS table) or the Butler's
DiaSource tables (``--dataset-type`` with ``--where``).  Visit, time, detector,
band and reliability options choose the sources; with an APDB they become the
SQL query.  Without ``--all`` the first ``--limit`` sources are drawn (with
a warning when that leaves selected sources out); with ``--all`` every
selected source.  Exit status: `EXIT_CODES`.

Without a Butler, ``plotAlertCutouts INPUT… OUTPUT`` draws the stamps of Rubin
or ZTF alert packets (files, directories, glob patterns) and ``plotFileCutouts
CATALOG OUTPUT --science … --template … --difference …`` cuts a DiaSource
catalog's stamps out of image files.  All three take the same ``-c``/``-C``
configuration overrides and log options, and write the same outputs.
"""

from __future__ import annotations

__all__ = (
    "EXIT_CODES",
    "EXPORT_COLUMNS",
    "alerts_main",
    "build_alerts_parser",
    "build_files_parser",
    "build_parser",
    "exit_status",
    "files_main",
    "main",
    "output_location",
    "require_repository_instrument",
)

import argparse
import gzip
import io
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from .apdb import (
    DEFAULT_POSTGRES_URL,
    ApdbRegionReader,
    DiaSourceReader,
    DiaSourceSelection,
    make_apdb_config,
    open_apdb_reader,
    postgres_url,
)
from .interrupts import EXIT_INTERRUPTED, interruptible
from .logs import configure_logging
from .sources import SourceTableError, load_butler_sources, load_catalog

_LOG = logging.getLogger("lsst.analysis.ap.cli")

PROG = "plotImageSubtractionCutouts"

EXPORT_COLUMNS = (
    "diaSourceId",
    "visit",
    "detector",
    "diaObjectId",
    "ssObjectId",
    "midpointMjdTai",
    "ra",
    "dec",
    "x",
    "y",
    "apFlux",
    "apFluxErr",
    "snr",
    "psfFlux",
    "psfFluxErr",
    "isDipole",
    "trailLength",
    "band",
    "extendedness",
    "reliability",
    "pixelFlags_bad",
    "pixelFlags_cr",
    "pixelFlags_crCenter",
    "pixelFlags_edge",
    "pixelFlags_interpolated",
    "pixelFlags_interpolatedCenter",
    "pixelFlags_offimage",
    "pixelFlags_saturated",
    "pixelFlags_saturatedCenter",
    "pixelFlags_suspect",
    "pixelFlags_suspectCenter",
    "pixelFlags_streak",
    "pixelFlags_streakCenter",
    "pixelFlags_injected",
    "pixelFlags_injectedCenter",
    "pixelFlags_injected_template",
    "pixelFlags_injected_templateCenter",
)
"""Columns of ``all_diasources.csv.gz`` and ``exported_diasources.csv.gz``
(those a table has), written when ``save_as_numpy`` is set."""


EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_ALL_FAILED = 3
EXIT_OUTPUT = 4

EXIT_CODES = {
    EXIT_OK: "every source written or skipped (already present), or none to draw",
    EXIT_SOME_FAILED: "some sources failed (see failures.csv); the others were written or skipped",
    EXIT_USAGE: "usage or input error (bad option, catalog, query or configuration); nothing drawn",
    EXIT_ALL_FAILED: "every source failed (e.g. no images in the collections); see failures.csv",
    EXIT_OUTPUT: "the outputs could not be written (unwritable, full or unreachable); every file written "
    "is whole and the same command finishes the run",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); every file written is whole and the same command finishes "
    "the run",
}
"""Exit status of ``plotImageSubtractionCutouts`` and what it means."""


def exit_status(summary: dict) -> int:
    """Exit status of a run from its summary (see `EXIT_CODES`).

    Parameters
    ----------
    summary : `dict`
        The run's summary (``written``, ``skipped``, ``failed`` counts).

    Returns
    -------
    status : `int`
        `EXIT_OK`, `EXIT_SOME_FAILED` or `EXIT_ALL_FAILED`.

    """
    if not summary["failed"]:
        return EXIT_OK
    if summary["written"] or summary["skipped"]:
        return EXIT_SOME_FAILED
    return EXIT_ALL_FAILED


class CommandError(Exception):
    """A problem reported as one line on standard error (exit status 2)."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Make template/science/difference cutout PNGs of DiaSources and Zooniverse manifests.",
        epilog="APDB options, selection and authentication: see the APDB page of the documentation.",
    )
    parser.add_argument("repo", help="Butler repository holding the images.")
    parser.add_argument(
        "output",
        metavar="outputPath",
        type=output_location,
        help="Where to write images/ (PNGs), the manifests and the failure list: a local path or an "
        "lsst-resources URI (file://, s3://bucket/prefix, ...).",
    )
    apdb = parser.add_argument_group(
        "APDB",
        "DiaSources from an APDB, opened by lsst-dax-apdb (passwords from LSST_DB_AUTH / db-auth.yaml).",
    )
    apdb.add_argument("--sqlitefile", help="SQLite APDB file.")
    apdb.add_argument(
        "--apdb-config",
        help="lsst-dax-apdb configuration: file, URI or label:NAME (APDB index, DAX_APDB_INDEX_URI).",
    )
    apdb.add_argument(
        "--postgres_url",
        help="PostgreSQL APDB: SQLAlchemy URL (postgresql://user@host:port/db) or user@host/db; "
        f"with only --namespace: {DEFAULT_POSTGRES_URL}.",
    )
    apdb.add_argument("--namespace", help="PostgreSQL schema holding the APDB tables (apdb-cli --namespace).")
    apdb.add_argument("--apdb-prefix", help="Table-name prefix of the APDB (apdb-cli --prefix).")
    apdb.add_argument(
        "--apdb-by-region",
        action="store_true",
        help="Ask an SQL APDB visit × detector by sky region and time (lsst-dax-apdb's public "
        "getDiaSources), as a Cassandra APDB always is, instead of one SQL query.",
    )
    other = parser.add_argument_group("other sources")
    other.add_argument("--catalog", help="DiaSource catalog file: parquet, CSV or FITS table.")
    other.add_argument(
        "--dataset-type", help="Butler DiaSource table dataset type to read (e.g. dia_source_detector)."
    )
    other.add_argument("--where", default="", help="Butler query expression (with --dataset-type only).")
    select = parser.add_argument_group("selection (inclusive bounds; in the SQL query for an APDB)")
    select.add_argument("--visit-min", type=_integer(), help="Smallest visit.")
    select.add_argument("--visit-max", type=_integer(), help="Largest visit.")
    select.add_argument("--mjd-min", type=_finite(), help="Earliest midpointMjdTai (MJD, TAI).")
    select.add_argument("--mjd-max", type=_finite(), help="Latest midpointMjdTai (MJD, TAI).")
    select.add_argument("--detector", type=_integer(), nargs="+", default=[], help="Detector(s).")
    select.add_argument("--band", nargs="+", default=[], help="Band(s).")
    select.add_argument("--reliabilityMin", type=_finite(), default=None, help="Minimum reliability.")
    select.add_argument("--reliabilityMax", type=_finite(), default=None, help="Maximum reliability.")
    parser.add_argument(
        "--limit",
        type=_integer(minimum=1),
        default=5,
        help="Number of sources to draw (default 5).",
    )
    parser.add_argument("--all", action="store_true", help="Draw every selected source.")
    parser.add_argument(
        "--collections",
        nargs="*",
        default=None,
        help="Butler collection(s) holding the images (and tables); none: every collection (slow).",
    )
    parser.add_argument("--instrument", help="Instrument name, when the sources and the APDB name none.")
    parser.add_argument(
        "-j",
        "--jobs",
        type=_integer(minimum=0),
        default=0,
        help="Processes that draw: this one and N-1 workers (0 or 1: this one only); at most one per "
        "usable core (a larger N is capped, with a warning).",
    )
    parser.add_argument("--no-progress", action="store_true", help="Do not log progress.")
    _common_options(parser)
    return parser


def _option_type(kind: str, convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type``: ``convert`` the option's text, and turn a
    `ValueError` into argparse's usage error (exit status 2), which names
    the option.

    Parameters
    ----------
    kind : `str`
        What the option takes, for the message (``"an integer"``).
    convert : `~collections.abc.Callable` [[`str`], `typing.Any`]
        Converts the text; raises `ValueError` for a bad value.

    Returns
    -------
    parse : `~collections.abc.Callable` [[`str`], `typing.Any`]
        The ``type`` to give `argparse.ArgumentParser.add_argument`.

    """

    def parse(text: str) -> Any:
        try:
            return convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expects {kind}, not {text!r}") from None

    parse.__name__ = kind
    return parse


def _integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` taking an integer (no fraction, no exponent).

    Parameters
    ----------
    minimum : `int`, optional
        Smallest value accepted.
    maximum : `int`, optional
        Largest value accepted.

    Returns
    -------
    parse : `~collections.abc.Callable` [[`str`], `int`]
        The ``type`` (see `_option_type`).

    """

    def convert(text: str) -> int:
        value = int(text.strip(), 10)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise ValueError(text)
        return value

    if maximum is not None:
        kind = (
            f"an integer from {minimum} to {maximum}"
            if minimum is not None
            else f"an integer up to {maximum}"
        )
    else:
        kind = "an integer" if minimum is None else f"an integer of at least {minimum}"
    return _option_type(kind, convert)


def _finite(minimum: float | None = None, maximum: float | None = None) -> Callable[[str], float]:
    """An argparse ``type`` taking a finite number (not ``nan`` or
    ``inf``).

    Parameters
    ----------
    minimum, maximum : `float`, optional
        Bounds of the values accepted (inclusive).

    Returns
    -------
    parse : `~collections.abc.Callable` [[`str`], `float`]
        The ``type`` (see `_option_type`).

    """

    def convert(text: str) -> float:
        value = float(text)
        too_small = minimum is not None and value < minimum
        too_large = maximum is not None and value > maximum
        if not math.isfinite(value) or too_small or too_large:
            raise ValueError(text)
        return value

    if minimum is not None and maximum is not None:
        bounds = f" [{minimum:g}, {maximum:g}]"
    elif minimum is not None:
        bounds = f" (at least {minimum:g})"
    elif maximum is not None:
        bounds = f" (at most {maximum:g})"
    else:
        bounds = ""
    return _option_type(f"a finite number{bounds}", convert)


def output_location(text: str) -> str:
    """The argparse ``type`` of an output directory argument: a local path
    or a URI of a scheme lsst-resources knows.

    Parameters
    ----------
    text : `str`
        The argument.

    Returns
    -------
    location : `str`
        ``text``, unchanged.

    Raises
    ------
    argparse.ArgumentTypeError
        Raised for a URI of an unknown scheme (a usage error, exit status
        2, naming the argument and the scheme).

    """
    from .outputs.store import OutputLocationError, resolve_output_location

    try:
        resolve_output_location(text)
    except OutputLocationError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _selection(args: argparse.Namespace) -> DiaSourceSelection:
    return DiaSourceSelection(
        visit_min=args.visit_min,
        visit_max=args.visit_max,
        mjd_min=args.mjd_min,
        mjd_max=args.mjd_max,
        detectors=tuple(args.detector),
        bands=tuple(args.band),
        reliability_min=args.reliabilityMin,
        reliability_max=args.reliabilityMax,
    )


def _check_source_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    postgres = args.postgres_url is not None or (args.namespace is not None and not args.apdb_config)
    chosen = [
        name
        for name, given in (
            ("--sqlitefile", args.sqlitefile),
            ("--apdb-config", args.apdb_config),
            ("--postgres_url/--namespace", postgres),
            ("--catalog", args.catalog),
            ("--dataset-type", args.dataset_type),
        )
        if given
    ]
    if len(chosen) != 1:
        parser.error(
            "give one source of DiaSources: --sqlitefile, --apdb-config, --postgres_url/--namespace, "
            f"--catalog or --dataset-type (got {', '.join(chosen) or 'none'})"
        )
    if args.where and not args.dataset_type:
        parser.error(
            "--where is a Butler query and applies to --dataset-type only; for an APDB or a "
            "catalog use --visit-min/--visit-max, --mjd-min/--mjd-max, --detector and --band"
        )
    if args.namespace and args.sqlitefile:
        parser.error("--namespace (a PostgreSQL schema) does not apply to --sqlitefile")
    if args.apdb_prefix and not (args.sqlitefile or args.apdb_config or postgres):
        parser.error("--apdb-prefix applies to an APDB only")
    if args.apdb_by_region and not (args.sqlitefile or args.apdb_config or postgres):
        parser.error("--apdb-by-region applies to an APDB only")


def _open_apdb(args: argparse.Namespace) -> DiaSourceReader | None:
    if args.sqlitefile:
        config = make_apdb_config(sqlitefile=args.sqlitefile, prefix=args.apdb_prefix)
    elif args.apdb_config:
        config = make_apdb_config(
            config_uri=args.apdb_config, namespace=args.namespace, prefix=args.apdb_prefix
        )
    elif args.postgres_url is not None or args.namespace is not None:
        url = postgres_url(args.postgres_url or DEFAULT_POSTGRES_URL)
        config = make_apdb_config(db_url=url, namespace=args.namespace, prefix=args.apdb_prefix)
    else:
        return None
    return ApdbRegionReader(config) if args.apdb_by_region else open_apdb_reader(config)


def _origin(args: argparse.Namespace, reader: DiaSourceReader | None) -> str:
    """Where the sources come from, for messages."""
    if reader is not None:
        return reader.description
    if args.catalog:
        return f"catalog {args.catalog}"
    return f"{args.dataset_type} tables ({args.where or 'all'})"


def _apply_overrides(config: Any, args: argparse.Namespace) -> None:
    """Apply the ``-C`` files, then the ``-c`` values, through
    `lsst.pipe.base.configOverrides.ConfigOverrides` (as ``pipetask`` does), so
    dotted names such as ``connections.science`` can be set.
    """
    from lsst.pipe.base.configOverrides import ConfigOverrides

    overrides = ConfigOverrides()
    for path in args.config_file:
        overrides.addFileOverride(str(Path(path).expanduser()))
    for item in args.config:
        field, sep, value = item.partition("=")
        if not sep or not field.strip():
            raise CommandError(f"-c expects field=value, got {item!r}")
        overrides.addValueOverride(field.strip(), value.strip())
    overrides.applyTo(config)


def _open_butler(args: argparse.Namespace) -> Any:
    """The Butler, with a one-line error for a missing repository or
    collection."""
    from lsst.daf.butler import Butler

    try:
        butler = Butler(args.repo, collections=args.collections)
    except Exception as error:
        raise CommandError(f"cannot open Butler repository {args.repo}: {_first_line(error)}") from None
    missing = []
    for name in args.collections or ():
        try:
            found = butler.collections.query(name)
        except Exception:
            found = []
        if not found:
            missing.append(name)
    if missing:
        raise CommandError(
            f"collection(s) {', '.join(repr(m) for m in missing)} not found in Butler repository {args.repo}."
        )
    if not args.collections:
        # As the original command: no --collections searches every collection.
        from lsst.daf.butler import CollectionType
        from lsst.daf.butler.registry import RegistryDefaults

        runs = list(butler.collections.query("*", collection_types={CollectionType.RUN}))
        _LOG.info("No --collections: searching all %d RUN collection(s) of %s.", len(runs), args.repo)
        butler.registry.defaults = RegistryDefaults(collections=runs)
    return butler


def _repository_instruments(butler: Any) -> list[str] | None:
    try:
        return sorted(str(record.name) for record in butler.query_dimension_records("instrument"))
    except Exception:
        return None


def _instrument(args: argparse.Namespace, reader: DiaSourceReader | None, butler: Any) -> str | None:
    """The instrument to label sources without an instrument column with."""
    if reader is None or reader.instrument is None:
        if reader is not None:
            _LOG.info(
                "%s names no instrument in its metadata table; using %s.",
                reader.description,
                repr(args.instrument) if args.instrument else "the repository's only instrument",
            )
        return args.instrument
    if args.instrument and args.instrument != reader.instrument:
        raise CommandError(
            f"--instrument {args.instrument} contradicts {reader.description}, "
            f"whose metadata names instrument {reader.instrument!r}."
        )
    require_repository_instrument(reader, butler, args.repo)
    return reader.instrument


def require_repository_instrument(reader: DiaSourceReader, butler: Any, repo: str) -> None:
    """Stop when the instrument named in an APDB's metadata is not one of
    the Butler repository's: none of its images could be found.

    Parameters
    ----------
    reader : `~lsst.analysis.ap.apdb.DiaSourceReader`
        The open APDB (an APDB that names no instrument passes).
    butler : `lsst.daf.butler.Butler`
        The repository.
    repo : `str`
        The repository as the user gave it, for the message.

    Raises
    ------
    CommandError
        When the repository lacks the instrument; the message names both.

    """
    known = _repository_instruments(butler)
    if reader.instrument is not None and known and reader.instrument not in known:
        raise CommandError(
            f"{reader.description} holds DiaSources of instrument {reader.instrument!r}, which Butler "
            f"repository {repo} does not have (it has: {', '.join(known) or 'none'})."
        )


class _CsvGzip:
    """A gzip-compressed CSV built page by page and written atomically."""

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        self._stream = gzip.GzipFile(fileobj=self._buffer, mode="wb", mtime=0)
        self._columns: list[str] | None = None
        self.rows = 0

    def add(self, frame: pd.DataFrame) -> None:
        if self._columns is None:
            self._columns = [column for column in EXPORT_COLUMNS if column in frame.columns]
        text = frame[self._columns].to_csv(index=False, header=self.rows == 0)
        self._stream.write(text.encode())
        self.rows += len(frame)

    def write(self, store: Any, relpath: str) -> None:
        """Write to ``relpath`` of an `~lsst.analysis.ap.outputs.store.OutputStore`."""
        if self._columns is None:
            self._stream.write(",".join(EXPORT_COLUMNS[:1]).encode() + b"\n")
        self._stream.close()
        store.write(relpath, self._buffer.getvalue())


def _run(args: argparse.Namespace, config: Any) -> int:
    from .outputs.store import OutputStore
    from .plotImageSubtractionCutouts import PlotImageSubtractionCutoutsTask

    start = time.perf_counter()
    selection = _selection(args)
    # APDB and catalog problems are reported before the repository is opened.
    reader = _open_apdb(args)
    frame = None
    if args.catalog:
        frame = selection.apply(load_catalog(args.catalog), f"catalog {args.catalog}")
    butler = _open_butler(args)
    if args.dataset_type:
        frame = load_butler_sources(
            butler, args.dataset_type, where=args.where, collections=args.collections, limit=None
        )
        frame = selection.apply(frame, _origin(args, reader))
    instrument = _instrument(args, reader, butler)
    if reader is not None:
        # A Cassandra APDB is asked visit × detector by region and time.
        known = _repository_instruments(butler) or []
        reader.locate(butler, instrument or (known[0] if len(known) == 1 else None))
    origin = _origin(args, reader)
    task = PlotImageSubtractionCutoutsTask(config=config, output_path=args.output)
    store = OutputStore(task.output_path)
    if reader is not None:
        _LOG.info("%s: %d DiaSource(s) selected (%s).", origin, reader.count(selection), selection.describe())
    if config.save_as_numpy:
        # Every selected source, written first so a partial run still has it.
        everything = _CsvGzip()
        if reader is not None:
            for page in reader.pages(selection, max(args.limit, 1000)):
                everything.add(page)
        else:
            everything.add(frame)
        everything.write(store, "all_diasources.csv.gz")
    exported = _CsvGzip() if config.save_as_numpy else None
    options = dict(instrument=instrument, progress=not args.no_progress, origin=origin)
    if reader is not None:
        data = reader.read(selection, limit=None if args.all else args.limit)
        selected = reader.count(selection) if not args.all else len(data)
    else:
        data = frame if args.all else frame.iloc[: args.limit]
        selected = len(frame)
    if len(data) < selected:
        _LOG.warning(
            "%s: %d DiaSources selected, drawing only the first %d (--limit %d); "
            "pass --all to draw every one.",
            origin,
            selected,
            len(data),
            args.limit,
        )
    result = task.run(data, butler, args.jobs, **options)
    drawn = [*result.written, *result.skipped]
    if exported is not None:
        exported.add(data[data["diaSourceId"].isin(drawn)])
    if exported is not None:
        exported.write(store, "exported_diasources.csv.gz")
    if reader is not None:
        reader.close()
    print(f"Output: {task.output_path}")
    return _report(result, start, "DiaSource(s)")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@interruptible(PROG)
def main(argv: list[str] | None = None) -> int:
    """Run ``plotImageSubtractionCutouts``.

    Parameters
    ----------
    argv : `list` [`str`], optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    status : `int`
        Process exit status (`EXIT_CODES`): 0 every source written or
        skipped; 1 some sources failed (listed in ``failures.csv``); 2 bad
        options, configuration or input (APDB, catalog, repository,
        collections, a table value naming its column and row), reported on
        one line of standard error without a traceback, nothing drawn; 3
        every source failed; 4 the outputs cannot be written.

    """
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_source_options(parser, args)
    _start_logging(parser, args)
    try:
        config = _cutout_config(args)
    except CommandError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    from .outputs.store import OutputError

    try:
        return _run(args, config)
    except (CommandError, SourceTableError) as error:
        print(f"{PROG}: {' '.join(str(error).split())}", file=sys.stderr)
        return EXIT_USAGE
    except OutputError as error:
        return output_failure(PROG, error)


def output_failure(prog: str, error: Exception) -> int:
    """Print why the outputs could not be written (one line on stderr) and
    return `EXIT_OUTPUT`.

    Parameters
    ----------
    prog : `str`
        Name of the command.
    error : `Exception`
        The `~lsst.analysis.ap.outputs.store.OutputError`.

    Returns
    -------
    status : `int`
        `EXIT_OUTPUT`.

    """
    print(
        f"{prog}: {error}. Every file written is complete; run the same "
        "command again once this is fixed to finish the run.",
        file=sys.stderr,
    )
    return EXIT_OUTPUT


# Without a Butler ------------------------------------------------------------------


def _common_options(
    parser: argparse.ArgumentParser, config: str = "PlotImageSubtractionCutoutsConfig"
) -> None:
    """Options of every cutout command: overrides of its ``config`` (the
    configuration class's name), the manifest URL root and logging.
    """
    parser.add_argument(
        "-C",
        "--configFile",
        "--config-file",
        dest="config_file",
        action="append",
        default=[],
        help=f"{config} override file(s).",
    )
    parser.add_argument("-c", "--config", action="append", default=[], help="Config override: field=value.")
    parser.add_argument(
        "--url-root", default=None, help="URL root for the Zooniverse manifest (sets url_root)."
    )
    parser.add_argument(
        "--log-level",
        action="append",
        default=[],
        metavar="LEVEL|COMPONENT=LEVEL",
        help="Log level (default INFO) of the root and lsst loggers, or of one component "
        "(e.g. lsst.analysis.ap=DEBUG, which also sets the tasks' loggers); may be repeated.",
    )
    parser.add_argument(
        "--log-file", action="append", default=[], help="Also append the log to this file; may be repeated."
    )


def _start_logging(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--log-level`` / ``--log-file``; a bad value is a usage error."""
    try:
        configure_logging(args.log_level, args.log_file)
    except (ValueError, OSError) as error:
        parser.error(str(error))


def add_worker_option(parser: argparse.ArgumentParser) -> None:
    """Add ``-j/--jobs``, the worker processes of a command that draws
    only in workers when asked to (alerts, sequences).

    Parameters
    ----------
    parser : `argparse.ArgumentParser`
        The command's parser.

    """
    parser.add_argument(
        "-j",
        "--jobs",
        type=_integer(minimum=0),
        default=0,
        help="Worker processes (0: none; at most one per usable core).",
    )


def build_alerts_parser() -> argparse.ArgumentParser:
    """The argument parser of ``plotAlertCutouts``."""
    parser = argparse.ArgumentParser(
        prog="plotAlertCutouts",
        description="Draw the template/science/difference stamps of Rubin or ZTF alert packets. "
        "Each INPUT is a packet file, a directory or a glob pattern; a file's format is read from its "
        "first bytes, not its name: an Avro container file (Rubin or ZTF alerts, the schema inside), a "
        "Parquet file with one alert per row (as the Fink broker stores them), or one Rubin alert in "
        "the Confluent wire format (magic byte 0, schema id, Avro body; the schema from "
        "lsst-alert-packet).",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="Packet files (Avro container, Parquet or Confluent wire-format), directories (searched "
        "recursively for *.avro, *.avsc.bin, *.bin, *.alert, *.parquet) or glob patterns (quoted, "
        "e.g. 'night-*/*.avro').",
    )
    parser.add_argument(
        "output",
        type=output_location,
        help="Directory to write images/, manifests and the failure list to: a local path or an "
        "lsst-resources URI.",
    )
    add_worker_option(parser)
    parser.add_argument(
        "--instrument", default="LSSTCam", help="Instrument recorded for Rubin packets (default LSSTCam)."
    )
    _common_options(parser)
    return parser


def build_files_parser() -> argparse.ArgumentParser:
    """The argument parser of ``plotFileCutouts``."""
    parser = argparse.ArgumentParser(
        prog="plotFileCutouts",
        description="Cut DiaSource stamps out of science, template and difference image files "
        "(lsst.images or afw FITS, image cutout service files, FITS images with a celestial WCS).",
    )
    parser.add_argument("catalog", help="DiaSource catalog: parquet, CSV or FITS table.")
    parser.add_argument(
        "output",
        type=output_location,
        help="Directory to write images/, manifests and the failure list to: a local path or an "
        "lsst-resources URI.",
    )
    for role in ("science", "template", "difference"):
        parser.add_argument(
            f"--{role}",
            nargs="+",
            required=True,
            help=f"{role.capitalize()} image file(s), directory or glob pattern; each source is cut "
            "from the file of its visit and detector when the files say which they are, else from "
            "the file holding its whole stamp, then the nearest image centre (image_files.csv lists "
            "each source's files).",
        )
    parser.add_argument("--instrument", help="Instrument name of rows that have none (default: unknown).")
    _common_options(parser)
    return parser


def configure(config: Any, args: argparse.Namespace) -> Any:
    """``config`` with ``--url-root``, the ``-C`` files and the ``-c``
    values applied, validated.

    Raises
    ------
    CommandError
        Raised, in one line, for an override that cannot be applied or a
        value the configuration refuses.

    """
    if args.url_root:
        config.url_root = args.url_root
    try:
        _apply_overrides(config, args)
        config.validate()
    except CommandError:
        raise
    except Exception as error:
        raise CommandError(f"bad configuration: {' '.join(_first_line(error).split())}") from None
    return config


def _cutout_config(args: argparse.Namespace) -> Any:
    """The cutout task's configuration of a command (see `configure`)."""
    from .plotImageSubtractionCutouts import PlotImageSubtractionCutoutsConfig

    return configure(PlotImageSubtractionCutoutsConfig(), args)


def _report(result, start: float, unit: str) -> int:
    summary = result.summary
    print(
        f"{summary['total']} {unit} in {time.perf_counter() - start:.1f} s: {summary['written']} written, "
        f"{summary['skipped']} skipped (already present), {summary['failed']} failed"
    )
    for reason, count in summary["failed_by_reason"].items():
        print(f"  failed, {reason}: {count}")
    if result.manifest.zooniverse is not None:
        print(f"Zooniverse manifest: {result.manifest.zooniverse}")
    print(f"Failures: {result.manifest.failures}")
    if result.vetting_page is not None:
        print(f"Vetting page: {result.vetting_page}")
    return exit_status(summary)


@interruptible("plotAlertCutouts")
def alerts_main(argv: list[str] | None = None) -> int:
    """Run ``plotAlertCutouts``; returns the exit status, as
    ``plotImageSubtractionCutouts`` (`EXIT_CODES`): failed packets are
    listed in ``failures.csv`` and make the status 1 (some) or 3 (all).
    """
    parser = build_alerts_parser()
    args = parser.parse_args(argv)
    _start_logging(parser, args)
    from .standalone import expand_packet_inputs, make_alert_cutouts

    try:
        config = _cutout_config(args)
    except CommandError as error:
        print(f"plotAlertCutouts: {error}", file=sys.stderr)
        return 2
    try:
        files = expand_packet_inputs(args.inputs)
    except FileNotFoundError as error:
        print(f"plotAlertCutouts: {error}", file=sys.stderr)
        return 2
    from .outputs.store import OutputError

    start = time.perf_counter()
    try:
        result = make_alert_cutouts(
            files, args.output, config=config, njobs=args.jobs, instrument=args.instrument
        )
    except OutputError as error:
        return output_failure("plotAlertCutouts", error)
    print(f"Output: {args.output}")
    return _report(result, start, "packet(s)")


@interruptible("plotFileCutouts")
def files_main(argv: list[str] | None = None) -> int:
    """Run ``plotFileCutouts``; returns the exit status (`EXIT_CODES`)."""
    parser = build_files_parser()
    args = parser.parse_args(argv)
    _start_logging(parser, args)
    from .outputs.store import OutputError
    from .sources import SourceTableError
    from .standalone import make_file_cutouts

    try:
        config = _cutout_config(args)
    except CommandError as error:
        print(f"plotFileCutouts: {error}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        result = make_file_cutouts(
            args.catalog,
            args.output,
            science=args.science,
            template=args.template,
            difference=args.difference,
            config=config,
            instrument=args.instrument,
        )
    except (SourceTableError, FileNotFoundError) as error:
        print(f"plotFileCutouts: {error}", file=sys.stderr)
        return 2
    except OutputError as error:
        return output_failure("plotFileCutouts", error)
    print(f"Output: {args.output}")
    status = _report(result, start, "DiaSource(s)")
    ambiguous = int(result.image_files["ambiguous"].sum())
    print(
        f"Image files of each source: {os.path.join(args.output, 'image_files.csv')}"
        + (f" ({ambiguous} chosen by position among several files)" if ambiguous else "")
    )
    return status
