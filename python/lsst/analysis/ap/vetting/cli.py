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

__all__ = ("LABELLED_RECORDS_FILE", "build_parser", "main", "read_records")

import argparse
import io
import sys
from pathlib import Path

import pandas as pd

from ..outputs.atomic import atomic_write_bytes
from ..outputs.manifests import RECORDS_FILE
from ..sources import SourceTableError, load_catalog
from .labels import LabelFileError, merge_labels, read_labels
from .page import write_vetting_page

LABELLED_RECORDS_FILE = "records_labelled.csv"
"""Default name of the records with labels, in the output directory."""

_TEXT_COLUMNS = ("instrument", "band", "path", "status", "reason_code", "reason", "url_root", "label")


def read_records(path: str | Path) -> pd.DataFrame:
    """Read a ``records.csv`` written by a run.

    Parameters
    ----------
    path : `str` or `pathlib.Path`
        The file.

    Returns
    -------
    records : `pandas.DataFrame`
        The records; text columns hold '' rather than NaN.

    Raises
    ------
    FileNotFoundError
        Raised when the file does not exist.
    ValueError
        Raised when it is not a record table (no ``diaSourceId`` column).

    """
    path = Path(path)
    frame = pd.read_csv(path, dtype={c: str for c in _TEXT_COLUMNS}, keep_default_na=True)
    if "diaSourceId" not in frame.columns:
        raise ValueError(f"{path} is not a record table: it has no diaSourceId column")
    present = [c for c in _TEXT_COLUMNS if c in frame.columns]
    return frame.fillna(dict.fromkeys(present, ""))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the command."""
    parser = argparse.ArgumentParser(
        prog="cutoutVetting",
        description="Write the HTML vetting page of a cutout run, or merge labels exported from it.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    page = commands.add_parser("page", help=f"write OUTPUT/index.html from OUTPUT/{RECORDS_FILE}")
    page.add_argument("output", help="Output directory of a run (holding records.csv and images/).")
    page.add_argument(
        "--catalog",
        help="DiaSource catalog (parquet, CSV or FITS table) for the S/N, fluxes, reliability, flags "
        "and diaObjectId shown on the page.",
    )
    page.add_argument("--title", help="Page title (default: the output directory's name).")
    merge = commands.add_parser(
        "merge-labels", help="add labels exported from the page to the records (label, label_time)"
    )
    merge.add_argument("output", help="Output directory of a run (holding records.csv).")
    merge.add_argument("labels", help="Label CSV exported from the page (diaSourceId,label,time).")
    merge.add_argument(
        "--to", help=f"File to write (default: OUTPUT/{LABELLED_RECORDS_FILE}); records.csv is not changed."
    )
    return parser


def _records_of(output: Path) -> pd.DataFrame:
    path = output / RECORDS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: is {output} the output directory of a cutout run?")
    labelled = output / LABELLED_RECORDS_FILE
    records = read_records(path)
    if labelled.exists():
        # Labels merged earlier are shown on the page too.
        earlier = read_records(labelled)
        if "label" in earlier.columns:
            keep = earlier[["diaSourceId", "label", "label_time"]].fillna("")
            records = records.merge(keep, on="diaSourceId", how="left")
    return records


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the process exit status."""
    args = build_parser().parse_args(argv)
    output = Path(args.output)
    try:
        if args.command == "page":
            records = _records_of(output)
            sources = load_catalog(args.catalog) if args.catalog else None
            files = write_vetting_page(output, records, sources, title=args.title)
            print(f"Vetting page: {files.page} ({files.n_records} record(s))")
            return 0
        records = read_records(output / RECORDS_FILE)
        labels = read_labels(args.labels)
        merged = merge_labels(records, labels)
        target = Path(args.to) if args.to else output / LABELLED_RECORDS_FILE
        buffer = io.StringIO()
        merged.to_csv(buffer, index=False)
        atomic_write_bytes(target, buffer.getvalue().encode())
    except (FileNotFoundError, ValueError, SourceTableError, LabelFileError) as error:
        print(f"cutoutVetting: {error}", file=sys.stderr)
        return 2
    labelled = int((merged["label"] != "").sum())
    print(f"{len(labels)} label(s) read; {labelled} of {len(merged)} record(s) labelled; written to {target}")
    unmatched = merged.attrs["unmatched_labels"]
    if unmatched:
        print(f"{unmatched} label(s) name sources that are not in {output / RECORDS_FILE}", file=sys.stderr)
    return 0
