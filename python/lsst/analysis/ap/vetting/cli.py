"""``cutoutVetting``: the vetting page of a run, and labels merged back.

``cutoutVetting page OUTPUT [--catalog FILE]``
    (Re)write ``OUTPUT/index.html`` from ``OUTPUT/records.csv``; with a
    DiaSource catalog, the page also shows its S/N, fluxes, reliability,
    flags and DiaObject frames.
``cutoutVetting merge-labels OUTPUT LABELS.csv [--to FILE]``
    Add the labels exported from the page to the records, as ``label`` and
    ``label_time`` columns, in ``OUTPUT/records_labelled.csv`` (or ``FILE``).

Exit status: 0 on success, 2 when an input cannot be used (the message
names the file, line and value).
"""

from __future__ import annotations

__all__ = ("build_parser", "main")

import argparse
import sys
from pathlib import Path

import pandas as pd

from ..cli import output_failure, output_location
from ..outputs.ledger import read_record_csv, record_csv_bytes
from ..outputs.manifests import RECORDS_FILE
from ..outputs.store import OutputError, OutputStore
from ..records import RECORD_COLUMNS
from ..sources import (
    SourceTableError,
    columns_present,
    integer_column,
    load_catalog,
    require_unique_source_ids,
)
from .labels import LABELLED_RECORDS_FILE, LabelFileError, merge_labels, read_labels, with_earlier_labels
from .page import write_output_vetting_page


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the command."""
    parser = argparse.ArgumentParser(
        prog="cutoutVetting",
        description="Write the HTML vetting page of a cutout run, or merge labels exported from it.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    page = commands.add_parser("page", help=f"write OUTPUT/index.html from OUTPUT/{RECORDS_FILE}")
    page.add_argument(
        "output",
        type=output_location,
        help="Output directory of a run (holding records.csv and images/).",
    )
    page.add_argument(
        "--catalog",
        help="DiaSource catalog (parquet, CSV or FITS table) for the S/N, fluxes, reliability, flags "
        "and diaObjectId shown on the page.",
    )
    page.add_argument("--title", help="Page title (default: the output directory's name).")
    merge = commands.add_parser(
        "merge-labels", help="add labels exported from the page to the records (label, label_time)"
    )
    merge.add_argument(
        "output", type=output_location, help="Output directory of a run (holding records.csv)."
    )
    merge.add_argument("labels", help="Label CSV exported from the page (diaSourceId,label,time).")
    merge.add_argument(
        "--to", help=f"File to write (default: OUTPUT/{LABELLED_RECORDS_FILE}); records.csv is not changed."
    )
    return parser


def page_catalog(path: str) -> pd.DataFrame:
    """The DiaSource catalog whose values the page shows, joined to the
    records by ``diaSourceId``.

    Raises
    ------
    lsst.analysis.ap.sources.SourceTableError
        Raised when the catalog cannot be read, has no ``diaSourceId``
        column, or has one that holds a value that is not an exact integer
        or a value twice (which source's values to show?); the message
        names the file, the column and the rows.

    """
    origin = f"Catalog {path}"
    sources = load_catalog(path)
    if "diaSourceId" not in sources.columns:
        raise SourceTableError(
            f"{origin}: no 'diaSourceId' column, by which the page finds the record of each source "
            f"({columns_present(sources.columns)})."
        )
    ids = pd.Series(integer_column(sources["diaSourceId"], "diaSourceId", origin), index=sources.index)
    require_unique_source_ids(ids, origin)
    return sources.assign(diaSourceId=ids)


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the process exit status: 0 done, 2 bad
    arguments or input, 4 the outputs could not be written (as the other
    commands)."""
    args = build_parser().parse_args(argv)
    try:
        store = OutputStore(args.output)
        if store.is_local and not store.local_path().is_dir():
            print(f"cutoutVetting: {store.location}: no such directory", file=sys.stderr)
            return 2
        if args.command == "page":
            sources = page_catalog(args.catalog) if args.catalog else None
            files = write_output_vetting_page(store, sources, title=args.title)
            print(f"Vetting page: {files.page} ({files.n_records} record(s))")
            return 0
        records_name = store.display(RECORDS_FILE)
        records = read_record_csv(store.read(RECORDS_FILE), str(records_name))
        labels = read_labels(args.labels)
        if args.to:
            target = OutputStore(Path(args.to).absolute().parent)
            name = Path(args.to).name
        else:
            target, name = store, LABELLED_RECORDS_FILE
        dropped = 0
        if target.size(name) is not None:
            # Labels merged before are kept (a label file of each session).
            shown = target.display(name)
            try:
                earlier = read_record_csv(target.read(name), str(shown))
            except ValueError as error:
                raise ValueError(
                    f"{shown} exists but is not a table merge-labels wrote, so the labels merged before "
                    f"cannot be kept ({error}); remove it or give another --to"
                ) from error
            records = with_earlier_labels(records, earlier)
            dropped = records.attrs["dropped_labels"]
        merged = merge_labels(records, labels)
        data = record_csv_bytes(merged[[*RECORD_COLUMNS, "label", "label_time"]])
        target.write(name, data)
        target = target.display(name)
    except FileNotFoundError as error:
        print(
            f"cutoutVetting: {f'{error.filename}: no such file' if error.filename else error}",
            file=sys.stderr,
        )
        return 2
    except OutputError as error:
        return output_failure("cutoutVetting", error)
    except (ValueError, SourceTableError, LabelFileError) as error:
        print(f"cutoutVetting: {error}", file=sys.stderr)
        return 2
    labelled = int((merged["label"] != "").sum())
    print(f"{len(labels)} label(s) read; {labelled} of {len(merged)} record(s) labelled; written to {target}")
    unmatched = merged.attrs["unmatched_labels"]
    if unmatched:
        print(f"{unmatched} label(s) name sources that are not in {records_name}", file=sys.stderr)
    if dropped:
        print(
            f"{dropped} label(s) merged before name sources that are no longer in {records_name}; "
            f"they are not in {target}",
            file=sys.stderr,
        )
    return 0
