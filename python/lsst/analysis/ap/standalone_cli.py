"""Commands that make cutouts without a Butler.

``plotAlertCutouts INPUT… OUTPUT`` draws the stamps of Rubin or ZTF alert
packets (files, directories, glob patterns).  ``plotFileCutouts CATALOG
OUTPUT --science … --template … --difference …`` cuts a DiaSource catalog's
stamps out of image files.  Both take the ``-c``/``-C`` configuration
overrides of ``plotImageSubtractionCutouts`` and write the same outputs.
"""

from __future__ import annotations

__all__ = ("alerts_main", "build_alerts_parser", "build_files_parser", "files_main")

import argparse
import logging
import sys
import time

from .cli import _apply_overrides


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
