"""The ``plotDiaObjectSequences`` command: every epoch of DiaObjects."""

from __future__ import annotations

__all__ = ("build_parser", "main")

import argparse
import sys
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..cli import (
    _common_options,
    _finite,
    _integer,
    _start_logging,
    add_worker_option,
    interruptible,
    output_location,
    require_repository_instrument,
)

if TYPE_CHECKING:
    from ..apdb import DiaSourceSelection

_PROG = "plotDiaObjectSequences"

DEFAULT_RADIUS_ARCSEC = 1.0
"""Search radius of ``--ra``/``--dec`` when ``--radius`` is not given."""


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser."""
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Contact sheets, GIF/APNG animations and multi-frame Zooniverse subjects of every "
        "epoch of DiaObjects, from a Butler repository.",
    )
    parser.add_argument("repo", help="Butler repository holding the images.")
    parser.add_argument(
        "output", type=output_location, help="Directory the sequences/ products are written under."
    )
    parser.add_argument("--collections", nargs="*", default=None, help="Collections holding the images.")
    parser.add_argument(
        "--diaObjectId",
        nargs="+",
        # Signed or unsigned 64-bit ids.
        type=_integer(-(2**63), 2**64 - 1),
        default=[],
        help="DiaObject ids to draw.",
    )
    parser.add_argument(
        "--id-column",
        default=None,
        help="With --catalog: draw every DiaObject listed in this column of the catalog.",
    )
    parser.add_argument(
        "--most-epochs",
        type=_integer(minimum=0),
        default=0,
        metavar="N",
        help="Draw the N DiaObjects with the most DiaSources.",
    )
    parser.add_argument("--ra", type=_finite(), help="Draw the DiaObjects near this position (degrees)...")
    parser.add_argument("--dec", type=_finite(-90.0, 90.0), help="...and this declination (degrees).")
    parser.add_argument(
        "--radius",
        type=_finite(minimum=0.0),
        help=f"Search radius around --ra/--dec (arcsec; default {DEFAULT_RADIUS_ARCSEC:g}).",
    )
    parser.add_argument("--band", help="Keep only epochs of this band.")
    parser.add_argument("--mjd-min", type=_finite(), help="Keep only epochs from this MJD on.")
    parser.add_argument("--mjd-max", type=_finite(), help="Keep only epochs up to this MJD.")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--catalog", help="DiaSource catalog file (parquet, CSV or FITS table).")
    source.add_argument("--sqlitefile", help="SQLite APDB file to read the DiaSources from.")
    source.add_argument("--apdb-config", help="APDB configuration file to read the DiaSources from.")
    parser.add_argument(
        "--dataset-type",
        default="dia_source_detector",
        help="Butler DiaSource table dataset type (when no catalog or APDB is given).",
    )
    add_worker_option(parser)
    _common_options(parser, "PlotDiaObjectSequencesConfig")
    return parser


def _sources(args: argparse.Namespace, butler: Any) -> pd.DataFrame:
    from ..apdb import ApdbDiaSourceReader, make_apdb_config
    from ..sources import load_butler_sources, load_catalog

    if args.catalog:
        return load_catalog(args.catalog)
    if args.sqlitefile or args.apdb_config:
        config = make_apdb_config(sqlitefile=args.sqlitefile, config_uri=args.apdb_config)
        with ApdbDiaSourceReader(config) as reader:
            require_repository_instrument(reader, butler, args.repo)
            return reader.read()
    return load_butler_sources(butler, args.dataset_type, collections=args.collections)


def _origin(args: argparse.Namespace) -> str:
    """Where the DiaSources come from, for messages."""
    if args.catalog:
        return f"catalog {args.catalog}"
    if args.sqlitefile or args.apdb_config:
        return f"APDB {args.sqlitefile or args.apdb_config}"
    return f"{args.dataset_type} tables"


def select_objects(args: argparse.Namespace, sources: pd.DataFrame) -> list[int]:
    """The DiaObject ids the arguments ask for, in the order given.

    Raises
    ------
    ValueError
        When no object is asked for, or a column is missing.

    """
    from ..geometry import sky_separation_arcsec
    from ..sources import integer_column

    ids = list(args.diaObjectId)
    given = []  # the selections that ask for objects by what the table holds
    if args.id_column:
        if args.id_column not in sources.columns:
            raise ValueError(f"the catalog has no column {args.id_column!r}")
        given.append(f"--id-column {args.id_column}")
        listed = integer_column(sources[args.id_column], args.id_column, _origin(args), nullable=True)
        ids.extend(int(v) for v in pd.unique(pd.Series(listed).dropna()))
    if args.ra is not None or args.dec is not None or args.radius is not None:
        if args.ra is None or args.dec is None:
            raise ValueError("--ra and --dec go together (and --radius needs them)")
        radius = DEFAULT_RADIUS_ARCSEC if args.radius is None else args.radius
        given.append(f"--ra {args.ra:g} --dec {args.dec:g} --radius {radius:g} (arcsec)")
        near = sky_separation_arcsec(sources["ra"], sources["dec"], args.ra, args.dec) <= radius
        ids.extend(int(v) for v in pd.unique(sources.loc[near, "diaObjectId"].dropna()))
    if args.most_epochs > 0:
        given.append(f"--most-epochs {args.most_epochs}")
        counts = sources.groupby("diaObjectId").size().sort_values(ascending=False, kind="stable")
        ids.extend(int(v) for v in counts.index[: args.most_epochs])
    if not ids and given:
        raise ValueError(f"no DiaObject of {_origin(args)} matches {'; '.join(given)}")
    if not ids:
        raise ValueError("give DiaObjects with --diaObjectId, --id-column, --most-epochs or --ra/--dec")
    return list(dict.fromkeys(ids))


def _epoch_window(args: argparse.Namespace) -> DiaSourceSelection | None:
    """The epochs of ``--band``, ``--mjd-min`` and ``--mjd-max`` (`None`
    when none is given)."""
    from ..apdb import DiaSourceSelection

    if not args.band and args.mjd_min is None and args.mjd_max is None:
        return None
    return DiaSourceSelection(
        mjd_min=args.mjd_min, mjd_max=args.mjd_max, bands=(args.band,) if args.band else ()
    )


@interruptible(_PROG)
def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status (`lsst.analysis.ap.cli.EXIT_CODES`
    counted in DiaObjects: 0 all drawn, 1 some failed, 2 bad arguments or
    input, 3 all failed, 4 the outputs could not be written).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    _start_logging(parser, args)
    from ..cli import _open_butler, configure, exit_status, output_failure
    from ..outputs.store import OutputError
    from ..sources import SourceTableError
    from .task import PlotDiaObjectSequencesConfig, PlotDiaObjectSequencesTask, require_object_ids

    try:
        config = configure(PlotDiaObjectSequencesConfig(), args)
        butler = _open_butler(args)
        sources = require_object_ids(_sources(args, butler), _origin(args))
        ids = select_objects(args, sources)
        window = _epoch_window(args)
    except Exception as error:
        print(f"{_PROG}: {error}", file=sys.stderr)
        return 2
    try:
        task = PlotDiaObjectSequencesTask(config=config, output_path=args.output)
        # The sources are checked (instrument, ids, coordinates) before any work.
        result = task.run(ids, butler, sources, njobs=args.jobs, origin=_origin(args), window=window)
    except SourceTableError as error:
        print(f"{_PROG}: {error}", file=sys.stderr)
        return 2
    except OutputError as error:
        return output_failure(_PROG, error)
    summary = result.summary
    print(
        f"{summary['objects']} DiaObject(s): {summary['written']} written, {summary['failed']} failed; "
        f"{summary['epochs_drawn']} epoch(s) drawn, {summary['epochs_failed']} not drawn"
    )
    print(f"Output: {task.store.location}/sequences")
    return exit_status({"written": summary["written"], "skipped": 0, "failed": summary["failed"]})


if __name__ == "__main__":
    sys.exit(main())
