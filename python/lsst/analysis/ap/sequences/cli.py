"""The ``plotDiaObjectSequences`` command: every epoch of DiaObjects."""

from __future__ import annotations

__all__ = ("build_parser", "main")

import argparse
import logging
import sys
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..cli import (
    _common_options,
    _finite,
    _integer,
    _start_logging,
    add_worker_option,
    output_location,
    require_repository_instrument,
)
from ..interrupts import interruptible

if TYPE_CHECKING:
    from ..apdb import DiaSourceSelection

_LOG = logging.getLogger(__name__)

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


class _ObjectSources:
    """The DiaSources a run needs: the objects asked for, the DiaSources of
    those objects, and those of the cutout run in the output directory
    whose vetting page is rewritten (`None`: the objects' own).

    A catalog or the Butler's tables are read whole.  An APDB is asked, in
    SQL, for what each selection needs (the sources near ``--ra/--dec``,
    by their indexed sky pixels, the counts of ``--most-epochs``), then for the
    objects' DiaSources only, and for those of the visits of the cutout run
    in the output directory: it is never read whole.  When the latter
    cannot be read, that run's vetting page is not rewritten
    (``refresh_page``).
    """

    def __init__(self, args: argparse.Namespace, butler: Any) -> None:
        from ..sources import load_butler_sources, load_catalog
        from .task import require_object_ids

        if args.id_column and not args.catalog:
            raise ValueError(f"--id-column {args.id_column} names a column of --catalog, which is not given")
        self.page_sources: pd.DataFrame | None = None
        self.refresh_page = True
        origin = _origin(args)
        if args.sqlitefile or args.apdb_config:
            self._read_apdb(args, butler, origin)
            return
        if args.catalog:
            table = load_catalog(args.catalog)
        else:
            table = load_butler_sources(butler, args.dataset_type, collections=args.collections)
        self.sources = require_object_ids(table, origin)
        self.ids = select_objects(args, self.sources)

    def _read_apdb(self, args: argparse.Namespace, butler: Any, origin: str) -> None:
        from ..apdb import ApdbDiaSourceReader, DiaSourceSelection, make_apdb_config
        from .task import require_object_ids

        config = make_apdb_config(sqlitefile=args.sqlitefile, config_uri=args.apdb_config)
        with ApdbDiaSourceReader(config) as reader:
            require_repository_instrument(reader, butler, args.repo)
            near = pd.DataFrame({"diaObjectId": pd.Series(dtype="Int64"), "ra": [], "dec": []})
            if args.ra is not None and args.dec is not None:
                # Only the sources within the radius are looked at: a damaged
                # row elsewhere is not asked for.
                near = reader.sources_near(args.ra, args.dec, _radius(args))
            most = reader.most_observed_objects(args.most_epochs) if args.most_epochs > 0 else []
            self.ids = select_objects(args, require_object_ids(near, origin), most_epochs=most)
            table = reader.read(DiaSourceSelection(dia_object_ids=tuple(self.ids)))
            self.sources = require_object_ids(table, origin)
            try:
                visits = _cutout_run_visits(args.output)
                if visits:
                    self.page_sources = reader.read(DiaSourceSelection(visits=visits))
            except Exception as error:  # the page is a view: the sequences are drawn without it
                _LOG.warning(
                    "The vetting page of the cutout run in %s is not rewritten with the sequences: its "
                    "DiaSources cannot be read (%s).",
                    args.output,
                    error,
                )
                self.refresh_page = False


def _cutout_run_visits(output: str) -> tuple[int, ...]:
    """The visits of the cutout runs in ``output`` (none when it holds
    none).

    Raises
    ------
    Exception
        When their ``records.csv`` cannot be read.

    """
    from ..outputs.manifests import RECORDS_FILE
    from ..outputs.store import OutputStore
    from ..sources import integer_column

    store = OutputStore(output)
    if store.size(RECORDS_FILE) is None:
        return ()
    shown = str(store.display(RECORDS_FILE))
    try:
        with store.open_read(RECORDS_FILE) as stream:
            visits = pd.read_csv(stream, usecols=["visit"], dtype=str, keep_default_na=False)["visit"]
    except Exception as error:
        raise ValueError(f"{shown}: {error}") from error
    return tuple(sorted({int(visit) for visit in integer_column(visits, "visit", shown)}))


def _radius(args: argparse.Namespace) -> float:
    """The search radius of ``--ra/--dec`` (arcsec)."""
    return DEFAULT_RADIUS_ARCSEC if args.radius is None else args.radius


def _origin(args: argparse.Namespace) -> str:
    """Where the DiaSources come from, for messages."""
    if args.catalog:
        return f"catalog {args.catalog}"
    if args.sqlitefile or args.apdb_config:
        return f"APDB {args.sqlitefile or args.apdb_config}"
    return f"{args.dataset_type} tables"


def select_objects(
    args: argparse.Namespace, sources: pd.DataFrame, most_epochs: list[int] | None = None
) -> list[int]:
    """The DiaObject ids the arguments ask for, in the order given.

    Parameters
    ----------
    args : `argparse.Namespace`
        The command's arguments.
    sources : `pandas.DataFrame`
        DiaSources the selections by column and position look in (with
        exact integer ``diaObjectId``, `.task.require_object_ids`).
    most_epochs : `list` [`int`], optional
        The objects of ``--most-epochs`` when the APDB counted them;
        `None`: counted in ``sources``.

    Raises
    ------
    ValueError
        When no object is asked for, when one asked for is
        `~lsst.analysis.ap.sources.NO_DIA_OBJECT_ID`, or when a column is
        missing.  The selections by column, position and number of sources
        never pick the sources of no object (id null or
        `~lsst.analysis.ap.sources.NO_DIA_OBJECT_ID`).

    """
    from ..sources import NO_DIA_OBJECT_ID, NOT_A_DIA_OBJECT, integer_column, within_radius

    if NO_DIA_OBJECT_ID in args.diaObjectId:
        raise ValueError(f"--diaObjectId {NOT_A_DIA_OBJECT}")
    ids = list(args.diaObjectId)
    found: list[int] = []  # the objects the selections by what the table holds find
    given = []
    if args.id_column:
        if args.id_column not in sources.columns:
            raise ValueError(f"the catalog has no column {args.id_column!r}")
        given.append(f"--id-column {args.id_column}")
        listed = integer_column(sources[args.id_column], args.id_column, _origin(args), nullable=True)
        found.extend(int(v) for v in pd.unique(pd.Series(listed).dropna()))
    if args.ra is not None or args.dec is not None or args.radius is not None:
        if args.ra is None or args.dec is None:
            raise ValueError("--ra and --dec go together (and --radius needs them)")
        given.append(f"--ra {args.ra:g} --dec {args.dec:g} --radius {_radius(args):g} (arcsec)")
        near = within_radius(sources, args.ra, args.dec, _radius(args))
        found.extend(int(v) for v in pd.unique(sources.loc[near, "diaObjectId"].dropna()))
    if args.most_epochs > 0:
        given.append(f"--most-epochs {args.most_epochs}")
        if most_epochs is None:
            objects = sources["diaObjectId"]
            counts = objects[objects != NO_DIA_OBJECT_ID].value_counts(sort=False).sort_index()
            most_epochs = counts.sort_values(ascending=False, kind="stable").index[: args.most_epochs]
        found.extend(int(v) for v in most_epochs)
    ids.extend(object_id for object_id in found if object_id != NO_DIA_OBJECT_ID)
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
    from .task import PlotDiaObjectSequencesConfig, PlotDiaObjectSequencesTask

    try:
        config = configure(PlotDiaObjectSequencesConfig(), args)
        butler = _open_butler(args)
        selected = _ObjectSources(args, butler)
        window = _epoch_window(args)
    except Exception as error:
        print(f"{_PROG}: {error}", file=sys.stderr)
        return 2
    try:
        task = PlotDiaObjectSequencesTask(config=config, output_path=args.output)
        # The sources are checked (instrument, ids, coordinates) before any work.
        result = task.run(
            selected.ids,
            butler,
            selected.sources,
            njobs=args.jobs,
            origin=_origin(args),
            window=window,
            page_sources=selected.page_sources,
            refresh_page=selected.refresh_page,
        )
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
