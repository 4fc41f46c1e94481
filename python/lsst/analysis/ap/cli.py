"""Cutouts from the command line.

``plotImageSubtractionCutouts REPO OUTPUT`` reads the images from a Butler
repository.  Sources come from an APDB (``--sqlitefile`` or
``--apdb-config``), a catalog file (``--catalog``: parquet, CSV or FITS table)
or the Butler's DiaSource tables (``--dataset-type`` with ``--where``).

Without a Butler, ``plotAlertCutouts INPUT… OUTPUT`` draws the stamps of Rubin
or ZTF alert packets (files, directories, glob patterns) and ``plotFileCutouts
CATALOG OUTPUT --science … --template … --difference …`` cuts a DiaSource
catalog's stamps out of image files.  All three take the same ``-c``/``-C``
configuration overrides and write the same outputs.
"""

from __future__ import annotations

__all__ = (
    "alerts_main",
    "build_alerts_parser",
    "build_files_parser",
    "build_parser",
    "files_main",
    "main",
)

import argparse
import logging
import sys
import time
from typing import Any

from .apdb import load_apdb_sources
from .sources import SourceTableError, load_butler_sources, load_catalog, select_reliability

_LOG = logging.getLogger("lsst.analysis.ap.cli")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the command.

    Returns
    -------
    parser : `argparse.ArgumentParser`
        The parser.

    """
    parser = argparse.ArgumentParser(
        prog="plotImageSubtractionCutouts",
        description="Make template/science/difference cutout PNGs of DiaSources and Zooniverse manifests.",
    )
    parser.add_argument("repo", help="Butler repository holding the images.")
    parser.add_argument(
        "output",
        help="Directory to write images/, manifests and the failure list to: a local path or an "
        "lsst-resources URI (file://, s3://bucket/prefix, ...).",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--sqlitefile", help="SQLite APDB file to read DiaSources from.")
    source.add_argument(
        "--apdb-config", help="lsst-dax-apdb configuration (SQL APDB) to read DiaSources from."
    )
    source.add_argument("--catalog", help="DiaSource catalog file: parquet, CSV or FITS table.")
    source.add_argument(
        "--dataset-type", help="Butler DiaSource table dataset type to read (e.g. dia_source_detector)."
    )
    parser.add_argument("--where", default="", help="Butler query constraint for --dataset-type.")
    parser.add_argument(
        "--collections", nargs="+", required=True, help="Butler collections holding the images (and tables)."
    )
    parser.add_argument("--instrument", help="Instrument name, when the sources have no instrument column.")
    parser.add_argument(
        "--limit", type=int, default=1000, help="Process at most this many sources (default 1000)."
    )
    parser.add_argument("--all", action="store_true", help="Process all sources (no --limit).")
    parser.add_argument("--reliabilityMin", type=float, default=None, help="Minimum reliability to keep.")
    parser.add_argument("--reliabilityMax", type=float, default=None, help="Maximum reliability to keep.")
    parser.add_argument("-j", "--jobs", type=int, default=0, help="Worker processes (0: none).")
    parser.add_argument("-C", "--config-file", action="append", default=[], help="Config override file(s).")
    parser.add_argument("-c", "--config", action="append", default=[], help="Config override: field=value.")
    parser.add_argument(
        "--url-root", default=None, help="URL root for the Zooniverse manifest (sets url_root)."
    )
    parser.add_argument("--no-progress", action="store_true", help="Do not show the progress display.")
    return parser


def _load_sources(args: argparse.Namespace, butler: Any) -> Any:
    limit = None if args.all else args.limit
    if args.sqlitefile or args.apdb_config:
        return load_apdb_sources(
            sqlitefile=args.sqlitefile,
            apdb_config=args.apdb_config,
            limit=limit,
            reliability_min=args.reliabilityMin,
            reliability_max=args.reliabilityMax,
        )
    if args.catalog:
        frame = load_catalog(args.catalog)
    else:
        frame = load_butler_sources(
            butler,
            args.dataset_type,
            where=args.where,
            collections=args.collections,
            limit=limit if args.reliabilityMin is None and args.reliabilityMax is None else None,
        )
    frame = select_reliability(frame, args.reliabilityMin, args.reliabilityMax)
    return frame if limit is None else frame.iloc[:limit]


def _origin(args: argparse.Namespace) -> str:
    """Where the sources come from, for messages."""
    if args.sqlitefile:
        return f"APDB {args.sqlitefile}"
    if args.apdb_config:
        return f"APDB {args.apdb_config}"
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
        overrides.addFileOverride(path)
    for item in args.config:
        field, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"plotImageSubtractionCutouts: -c expects field=value, got {item!r}")
        overrides.addValueOverride(field.strip(), value.strip())
    overrides.applyTo(config)


def main(argv: list[str] | None = None) -> int:
    """Run the command.

    Parameters
    ----------
    argv : `list` [`str`], optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    status : `int`
        Process exit status: 0 when the run finished (whatever failed per
        source is in ``failures.csv``), 2 for bad configuration or input.

    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from lsst.daf.butler import Butler

    from .outputs.store import OutputError
    from .plotImageSubtractionCutouts import (
        PlotImageSubtractionCutoutsConfig,
        PlotImageSubtractionCutoutsTask,
    )

    config = PlotImageSubtractionCutoutsConfig()
    if args.url_root:
        config.url_root = args.url_root
    try:
        _apply_overrides(config, args)
        config.validate()
    except Exception as error:
        print(f"plotImageSubtractionCutouts: bad configuration: {error}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    butler = None
    try:
        if args.dataset_type is None:
            # Catalog and APDB problems are reported before the repository is opened.
            sources = _load_sources(args, butler)
        butler = Butler.from_config(args.repo, collections=args.collections)
        if args.dataset_type is not None:
            sources = _load_sources(args, butler)
    except SourceTableError as error:
        print(f"plotImageSubtractionCutouts: {error}", file=sys.stderr)
        return 2
    task = PlotImageSubtractionCutoutsTask(config=config, output_path=args.output)
    try:
        result = task.run(
            sources,
            butler,
            njobs=args.jobs,
            instrument=args.instrument,
            progress=not args.no_progress,
            origin=_origin(args),
        )
    except SourceTableError as error:
        print(f"plotImageSubtractionCutouts: {error}", file=sys.stderr)
        return 2
    except OutputError as error:
        print(
            f"plotImageSubtractionCutouts: {error}. Every file written is complete; run the same "
            "command again once this is fixed to finish the run.",
            file=sys.stderr,
        )
        return 1
    summary = result.summary
    elapsed = time.perf_counter() - start
    print(
        f"{summary['total']} DiaSource(s) in {elapsed:.1f} s: {summary['written']} written, "
        f"{summary['skipped']} skipped (already present), {summary['failed']} failed"
    )
    for reason, count in summary["failed_by_reason"].items():
        print(f"  failed, {reason}: {count}")
    print(f"Output: {task.output_path}")
    if result.manifest.zooniverse is not None:
        print(f"Zooniverse manifest: {result.manifest.zooniverse}")
    print(f"Failures: {result.manifest.failures}")
    if result.vetting_page is not None:
        print(f"Vetting page: {result.vetting_page}")
    return 0


# Without a Butler ------------------------------------------------------------------


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-C", "--config-file", action="append", default=[], help="Config override file(s).")
    parser.add_argument("-c", "--config", action="append", default=[], help="Config override: field=value.")
    parser.add_argument(
        "--url-root", default=None, help="URL root for the Zooniverse manifest (sets url_root)."
    )


def build_alerts_parser() -> argparse.ArgumentParser:
    """The argument parser of ``plotAlertCutouts``."""
    parser = argparse.ArgumentParser(
        prog="plotAlertCutouts",
        description="Draw the template/science/difference stamps of Rubin or ZTF alert packets.",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="Packet files (Avro containers or Confluent wire-format messages), directories "
        "(searched recursively for *.avro, *.bin, *.alert) or glob patterns.",
    )
    parser.add_argument("output", help="Directory to write images/, manifests and the failure list to.")
    parser.add_argument("-j", "--jobs", type=int, default=0, help="Worker processes (0: none).")
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
    parser.add_argument("output", help="Directory to write images/, manifests and the failure list to.")
    for role in ("science", "template", "difference"):
        parser.add_argument(
            f"--{role}",
            nargs="+",
            required=True,
            help=f"{role.capitalize()} image file(s), directory or glob pattern; with several, each "
            "source is cut from the first file that holds it.",
        )
    parser.add_argument("--instrument", help="Instrument name, when the catalog has no instrument column.")
    _common_options(parser)
    return parser


def _config(prog: str, args: argparse.Namespace):
    from .plotImageSubtractionCutouts import PlotImageSubtractionCutoutsConfig

    config = PlotImageSubtractionCutoutsConfig()
    if args.url_root:
        config.url_root = args.url_root
    _apply_overrides(config, args)
    config.validate()
    return config


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
    return 0


def alerts_main(argv: list[str] | None = None) -> int:
    """Run ``plotAlertCutouts``; returns the exit status (2 for unusable
    arguments or inputs; failed packets are listed, not fatal).
    """
    args = build_alerts_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from .standalone import expand_packet_inputs, make_alert_cutouts

    try:
        config = _config("plotAlertCutouts", args)
    except Exception as error:
        print(f"plotAlertCutouts: bad configuration: {error}", file=sys.stderr)
        return 2
    try:
        files = expand_packet_inputs(args.inputs)
    except FileNotFoundError as error:
        print(f"plotAlertCutouts: {error}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    result = make_alert_cutouts(
        files, args.output, config=config, njobs=args.jobs, instrument=args.instrument
    )
    print(f"Output: {args.output}")
    return _report(result, start, "packet(s)")


def files_main(argv: list[str] | None = None) -> int:
    """Run ``plotFileCutouts``; returns the exit status."""
    args = build_files_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from .sources import SourceTableError
    from .standalone import make_file_cutouts

    try:
        config = _config("plotFileCutouts", args)
    except Exception as error:
        print(f"plotFileCutouts: bad configuration: {error}", file=sys.stderr)
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
    print(f"Output: {args.output}")
    return _report(result, start, "DiaSource(s)")
