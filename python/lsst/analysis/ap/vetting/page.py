"""The vetting page of a run: ``index.html`` over the run's record table.

The page is static: one HTML file rendered from a Jinja2 template, a style
sheet, a script and the records as a script file
(``window.CUTOUT_RECORDS = …``), so it opens from ``file://`` without a
server and needs no request beyond the output directory (it works the same
when the directory is served over HTTP at ``url_root``).  Nothing is fetched
from the network.

Files written under the output directory::

    index.html                 the page
    vetting/vetting.css        style sheet
    vetting/vetting.js         the page's script (plain JavaScript)
    vetting/records.js         the records shown, column by column

Record columns
--------------
Every column of `lsst.analysis.ap.records.RECORD_COLUMNS` is used.  The
catalog values of the annotation (`lsst.analysis.ap.display.annotation.REQUESTED_COLUMNS`:
S/N, fluxes, reliability and the flag columns) are shown when the records
carry them or when the DiaSource table is passed as ``sources``; the flag
columns become one ``flags`` column of badge names (``SAT CR``).  Optional
columns, used where present:

``diaObjectId``
    Sources of the same DiaObject are shown as the frames of the object in
    the large view, in time (``midpointMjdTai``) or visit order.
``frame_paths``
    Paths (relative to the output directory, ``;``-separated) of further
    images of the source's DiaObject, one per frame (sequence products).
``sequence_path``
    Path of one image of the whole sequence (contact sheet, animation).
``label``, ``label_time``
    Labels merged back from an exported label file
    (`lsst.analysis.ap.vetting.merge_labels`); the page starts from them
    for sources without a label in the browser.
"""

from __future__ import annotations

__all__ = (
    "PAGE_FILE",
    "SOURCE_COLUMNS",
    "STATIC_DIR",
    "VettingPageFiles",
    "page_table",
    "write_output_vetting_page",
    "write_vetting_page",
)

import dataclasses
import functools
import hashlib
import json
import logging
import math
import tempfile
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from lsst.resources import ResourcePath, ResourcePathExpression

from ..display.annotation import BADGES, REQUESTED_COLUMNS
from ..outputs.ledger import LEDGER_EXTRA_COLUMNS, UNION_CHUNK_ROWS, read_record_csv_chunks
from ..outputs.manifests import RECORDS_FILE, SEQUENCE_EPOCHS_FILE, SEQUENCE_OBJECTS_FILE
from ..outputs.store import OutputStore
from ..records import RECORD_COLUMNS, STATUS_FAILED, STATUS_SKIPPED, STATUS_WRITTEN, id_array
from ..sources import NO_DIA_OBJECT_ID, exact_integer
from .labels import LABELLED_RECORDS_FILE, LABELS

_LOG = logging.getLogger(__name__)

PAGE_FILE = "index.html"
"""Name of the page in the output directory."""

STATIC_DIR = "vetting"
"""Sub-directory of the output directory holding the page's assets."""

_STATIC_ASSETS = ("vetting.css", "vetting.js")

_SEQUENCE_COLUMNS = ("diaObjectId", "midpointMjdTai", "frame_paths", "sequence_path")

_FLAG_COLUMNS = tuple(column for badge in BADGES for column in badge.all_columns)

SOURCE_COLUMNS: tuple[str, ...] = tuple(
    dict.fromkeys(c for c in (*REQUESTED_COLUMNS, *_FLAG_COLUMNS, *_SEQUENCE_COLUMNS) if c != "diaSourceId")
)
"""DiaSource columns the page shows when the records lack them (joined on
``diaSourceId``)."""
_LABEL_COLUMNS = ("label", "label_time")

_ID_COLUMNS = ("diaSourceId", "diaObjectId")
"""64-bit ids: sent to the browser as strings (JavaScript numbers hold 53 bits)."""

_DISPLAY_ORDER = (
    "diaSourceId",
    "status",
    "instrument",
    "visit",
    "detector",
    "band",
    "ra",
    "dec",
    "snr",
    "reliability",
    "flags",
    "psfFlux",
    "psfFluxErr",
    "apFlux",
    "apFluxErr",
    "scienceFlux",
    "scienceFluxErr",
    "psfChi2",
    "psfNdata",
    "psfFlux_flag",
    "apFlux_flag",
    "forced_PsfFlux_flag",
    "diaObjectId",
    "midpointMjdTai",
    "reason_code",
    "reason",
    "path",
    "frame_paths",
    "sequence_path",
    "label",
    "label_time",
)
"""Order of the columns in the page (others follow in record order)."""

_HIDDEN = ("output_path", "url_root", *LEDGER_EXTRA_COLUMNS, *_FLAG_COLUMNS)
"""Record columns not sent to the page (the flag columns are summarised in
``flags``; the output directory is where the page is; the record files'
own bookkeeping columns)."""


@dataclasses.dataclass(frozen=True)
class VettingPageFiles:
    """Files written by `write_vetting_page`.

    Attributes
    ----------
    page : `pathlib.Path` or `lsst.resources.ResourcePath`
        ``index.html`` (a URI for an output directory that is not local).
    data : `pathlib.Path` or `lsst.resources.ResourcePath`
        ``vetting/records.js``, the records as a script.
    assets : `tuple` [`pathlib.Path` or `lsst.resources.ResourcePath`, ...]
        Style sheet and script.
    n_records : `int`
        Number of records in the page.

    """

    page: Path | ResourcePath
    data: Path | ResourcePath
    assets: tuple[Path | ResourcePath, ...]
    n_records: int


def _truthy(column: pd.Series) -> np.ndarray:
    """Whether each value of a flag column is set; NULL, NaN and text other
    than true/1 count as not set.
    """
    if column.dtype == np.bool_:
        return column.to_numpy()
    if column.dtype.kind in "iuf" and isinstance(column.dtype, np.dtype):
        values = column.to_numpy()
        return (values != 0) & ~np.isnan(values) if column.dtype.kind == "f" else values != 0
    if pd.api.types.is_bool_dtype(column.dtype) or pd.api.types.is_numeric_dtype(column.dtype):
        return column.to_numpy(dtype=float, na_value=0.0) != 0
    text = column.astype("string").str.strip().str.lower()
    return text.isin(["true", "1", "t", "yes"]).fillna(False).to_numpy(dtype=bool)


def _flag_names(table: pd.DataFrame) -> pd.Series:
    """Badge names set for each row, space-separated ('' when none or no
    flag column is known).
    """
    names = np.full(len(table), "", dtype=object)
    wanted = set(_FLAG_COLUMNS)
    columns = {name: column for name, column in table.items() if name in wanted}
    for badge in BADGES:
        present = [columns[name] for name in badge.all_columns if name in columns]
        if not present:
            continue
        set_rows = np.logical_or.reduce([_truthy(column) for column in present])
        names[set_rows] = [f"{n} {badge.name}".strip() for n in names[set_rows]]
    return pd.Series(names, index=table.index, dtype=object)


def _source_extra(records_columns: Iterable[str], sources: pd.DataFrame | None) -> pd.DataFrame | None:
    """The DiaSource columns the page joins to records with
    ``records_columns`` (one row per diaSourceId), `None` for none.
    """
    if sources is None or "diaSourceId" not in sources.columns:
        return None
    present = set(records_columns)
    wanted = [column for column in SOURCE_COLUMNS if column in sources.columns and column not in present]
    if not wanted:
        return None
    extra = sources[["diaSourceId", *wanted]]
    if not extra["diaSourceId"].is_unique:
        extra = extra.drop_duplicates("diaSourceId", keep="last")
    return extra.assign(diaSourceId=_id_key(extra["diaSourceId"]))


def _id_key(values: pd.Series) -> np.ndarray:
    """``diaSourceId`` values as an ``int64`` join key: ids beyond
    2**63 - 1 by their 64 bits, a one-to-one map of every 64-bit id (the
    page shows the ids themselves).
    """
    ids = id_array(values)
    if ids.dtype == np.uint64:
        return ids.view(np.int64)
    if ids.dtype == object:  # negative ids with ids beyond 2**63 - 1
        return np.array([(int(v) + 2**63) % 2**64 - 2**63 for v in ids], dtype=np.int64)
    return ids.astype(np.int64, copy=False)


def _joined_dtypes(extra: pd.DataFrame, complete: bool) -> dict[str, Any]:
    """Types of the joined columns after a left join of every record:
    those of ``extra`` when each record has its source (``complete``),
    else as widened for missing values (integers to floats, ...).
    """
    if complete:
        # A left join that finds every key keeps the joined columns' types.
        return {name: dtype for name, dtype in extra.dtypes.items() if name != "diaSourceId"}
    known = extra["diaSourceId"].to_numpy()
    probe = known[:1].tolist()
    if not complete:
        # An id without a source.
        if not len(known):
            probe.append(0)
        elif known.max() < np.iinfo(np.int64).max:
            probe.append(int(known.max()) + 1)
        else:
            probe.append(int(known.min()) - 1)
    probe = pd.Series(probe, dtype="int64")
    joined = pd.DataFrame({"diaSourceId": probe}).merge(extra.iloc[:1], on="diaSourceId", how="left")
    return {name: joined[name].dtype for name in extra.columns if name != "diaSourceId"}


def page_table(
    records: pd.DataFrame,
    sources: pd.DataFrame | None = None,
    *,
    joined_dtypes: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """The table the page shows: the records, with catalog values joined
    from ``sources`` where the records lack them, and a ``flags`` column.

    Parameters
    ----------
    records : `pandas.DataFrame`
        Record table of a run (the ``records.csv`` columns, plus any
        optional column listed in the module documentation).
    sources : `pandas.DataFrame`, optional
        DiaSource table of the run (APDB column names); its annotation,
        sequence and time columns are joined on ``diaSourceId``.
    joined_dtypes : `dict` [`str`, `~typing.Any`], optional
        Types of the joined columns in the whole table, when ``records``
        is one chunk of it (a chunk whose every record has its source
        would otherwise keep narrower types).

    Returns
    -------
    table : `pandas.DataFrame`
        One row per record, columns in display order.

    """
    if "diaSourceId" not in records.columns:
        raise ValueError(f"records have no diaSourceId column (columns: {list(records.columns)})")
    return _page_table(records, _source_extra(records.columns, sources), joined_dtypes)


def _page_table(
    records: pd.DataFrame, extra: pd.DataFrame | None, joined_dtypes: dict[str, Any] | None
) -> pd.DataFrame:
    """`page_table` with the joined source columns already selected
    (`_source_extra`)."""
    table = records.reset_index(drop=True)
    if extra is not None:
        ids = table["diaSourceId"]
        # A left join on unique keys keeps the records' rows in order.
        table = table.assign(diaSourceId=_id_key(ids)).merge(extra, on="diaSourceId", how="left")
        table["diaSourceId"] = ids.to_numpy()
        if joined_dtypes is not None:
            changed = {name: dtype for name, dtype in joined_dtypes.items() if table[name].dtype != dtype}
            if changed:
                table = table.astype(changed)
    if "flags" not in table.columns:
        table["flags"] = _flag_names(table)
    shown = [c for c in _DISPLAY_ORDER if c in table.columns]
    shown += [c for c in table.columns if c not in shown and c not in _HIDDEN]
    return table[shown]


def _id_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    try:
        return str(int(value))
    except (TypeError, ValueError):
        return str(value)


def _column_kind(name: Any, dtype: Any) -> str:
    """The kind (``number``, ``text`` or ``id``) of a column of the page."""
    if name in _ID_COLUMNS:
        return "id"
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        return "number"
    return "text"


def _column_values(series: pd.Series) -> tuple[str, list]:
    """The kind (`_column_kind`) and JSON-ready values of one column;
    missing values become ``null``.
    """
    kind = _column_kind(series.name, series.dtype)
    if kind == "id":
        return kind, [_id_text(v) for v in series.tolist()]
    if pd.api.types.is_bool_dtype(series.dtype):
        return kind, [None if pd.isna(v) else int(v) for v in series.tolist()]
    if kind == "number":
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        integral = pd.api.types.is_integer_dtype(series.dtype)
        out = []
        for v in values.tolist():
            if not math.isfinite(v):
                out.append(None)
            else:
                out.append(int(v) if integral else float(f"{v:.10g}"))
        return kind, out
    values = series.tolist()
    for index in np.flatnonzero(series.isna().to_numpy()):
        values[index] = ""
    return kind, [v if type(v) is str else str(v) for v in values]


def page_data(table: pd.DataFrame, *, title: str) -> dict:
    """The records of ``table`` as the page's data object (columns of
    values, with their kinds)."""
    columns = []
    values = []
    for name in table.columns:
        kind, column = _column_values(table[name])
        columns.append({"name": str(name), "kind": kind})
        values.append(column)
    return {"title": title, "count": len(table), "columns": columns, "values": values, **_page_constants()}


def _page_constants() -> dict:
    """The entries of the page's data object after the records."""
    return {
        "labels": [{"name": label.name, "key": label.key, "color": label.color} for label in LABELS],
        "badges": [
            {"name": b.name, "color": "#{:02x}{:02x}{:02x}".format(*b.rgb), "description": b.description}
            for b in BADGES
        ],
        "statuses": [STATUS_WRITTEN, STATUS_SKIPPED, STATUS_FAILED],
    }


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


_DATA_PREFIX = "window.CUTOUT_RECORDS = "


_SPILL_MEMORY_BYTES = 1 << 18
"""Characters of one column's values `_ColumnSpill` holds in memory before
it moves them to a temporary file."""


class _ColumnSpill:
    """The page's data object built a chunk of records at a time: each
    column's values go to a temporary file of their own (held in memory
    while small), joined into the data file at the end (the bytes of
    `page_data` dumped at once).
    """

    def __init__(self) -> None:
        self._files: list[Any] = []
        self.columns: list[dict[str, str]] | None = None
        self.count = 0

    def add(self, table: pd.DataFrame) -> None:
        if self.columns is None:
            self.columns = []
            for name, dtype in table.dtypes.items():
                self.columns.append({"name": str(name), "kind": _column_kind(name, dtype)})
                self._files.append(
                    tempfile.SpooledTemporaryFile(
                        max_size=_SPILL_MEMORY_BYTES, mode="w+", encoding="utf-8", prefix="cutout-page-"
                    )
                )
        names = [c["name"] for c in self.columns]
        if [str(c) for c in table.columns] != names:
            raise ValueError(f"record chunk has columns {list(table.columns)}, not {names}")
        if len(table):
            for index, (_, column) in enumerate(table.items()):
                _, values = _column_values(column)
                if self.count:
                    self._files[index].write(",")
                self._files[index].write(_json(values)[1:-1])
        self.count += len(table)

    def write(self, stream: Any, digest: Any, title: str) -> None:
        """Write the data file to ``stream`` (bytes), hashing it."""

        def put(text: str) -> None:
            data = text.encode()
            digest.update(data)
            stream.write(data)

        head = _json({"title": title, "count": self.count, "columns": self.columns or []})
        put(_DATA_PREFIX + head[:-1] + ',"values":[')
        for index, column in enumerate(self._files):
            put(("," if index else "") + "[")
            column.seek(0)
            while piece := column.read(1 << 20):
                put(piece)
            put("]")
        put("]," + _json(_page_constants())[1:] + ";\n")

    def close(self) -> None:
        for column in self._files:
            column.close()


@functools.cache
def _page_template() -> jinja2.Template:
    """The compiled page template (compiled once per process)."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("lsst.analysis.ap.vetting", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return environment.get_template("index.html.j2")


@functools.cache
def _asset_bytes(name: str) -> bytes:
    """Content of a static asset of the page (read once per process)."""
    return resources.files("lsst.analysis.ap.vetting").joinpath("static", name).read_bytes()


def _version_tag(parts: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()[:12]


def write_vetting_page(
    output_root: OutputStore | ResourcePathExpression,
    records: pd.DataFrame,
    sources: pd.DataFrame | None = None,
    *,
    title: str | None = None,
) -> VettingPageFiles:
    """Write the vetting page of a run into its output directory.

    Parameters
    ----------
    output_root : `OutputStore` or `lsst.resources.ResourcePathExpression`
        Output directory of the run (the record paths are relative to it):
        a local path or a URI.
    records : `pandas.DataFrame`
        Record table of the run (as in ``records.csv``), every status.
    sources : `pandas.DataFrame`, optional
        DiaSource table of the run, for catalog values the records lack
        (S/N, fluxes, reliability, flags, ``diaObjectId``).
    title : `str`, optional
        Page title; defaults to the output directory's name.

    Returns
    -------
    files : `VettingPageFiles`
        Paths of the files written.

    Notes
    -----
    Every file is written atomically (no partial file), ``index.html``
    last.  The files depend only on the records, the sources and the title,
    not on where the directory is.  Labels made in the browser are kept in
    its local storage under a key made from the page's address (its
    directory), so they survive a reload and a rewrite of the page.

    """
    store = output_root if isinstance(output_root, OutputStore) else OutputStore(output_root)
    return _write_page(store, [records], sources, title=title, joined_dtypes=None)


def _write_page(
    store: OutputStore,
    chunks: Iterable[pd.DataFrame],
    sources: pd.DataFrame | None,
    *,
    title: str | None,
    joined_dtypes: dict[str, Any] | None,
    selected: tuple[Iterable[str], pd.DataFrame | None] | None = None,
) -> VettingPageFiles:
    """Write the page of the records in ``chunks`` (consecutive parts of
    one record table; ``joined_dtypes`` as `page_table` takes them), one
    chunk in memory at a time.  ``selected`` is the record columns and the
    `_source_extra` of ``sources`` already selected for them, used when
    the chunks have those columns.
    """
    title = title or f"Cutouts: {Path(store.location.rstrip('/')).name}"
    # Temporaries of a page writer that was killed.
    store.sweep_temporaries(("", STATIC_DIR), recursive=False)
    assets = {name: _asset_bytes(name) for name in _STATIC_ASSETS}
    digest = hashlib.sha256()
    for content in assets.values():
        digest.update(content)
    extra = None
    spill = _ColumnSpill()
    try:
        for chunk in chunks:
            if "diaSourceId" not in chunk.columns:
                raise ValueError(f"records have no diaSourceId column (columns: {list(chunk.columns)})")
            if spill.columns is None:
                if selected is not None and set(selected[0]) == set(chunk.columns):
                    extra = selected[1]
                else:
                    extra = _source_extra(chunk.columns, sources)
            spill.add(_page_table(chunk, extra, joined_dtypes))
        if spill.columns is None:
            raise ValueError("no record table was given")
        with store.open_write(f"{STATIC_DIR}/records.js") as stream:
            spill.write(stream, digest, title)
    finally:
        spill.close()
    version = digest.hexdigest()[:12]
    html = _page_template().render(
        title=title,
        static_dir=STATIC_DIR,
        version=version,
        count=spill.count,
        labels=LABELS,
        badges=BADGES,
    )
    for name, content in assets.items():
        store.write(f"{STATIC_DIR}/{name}", content)
    store.write(PAGE_FILE, html.encode())
    return VettingPageFiles(
        page=store.display(PAGE_FILE),
        data=store.display(f"{STATIC_DIR}/records.js"),
        assets=tuple(store.display(f"{STATIC_DIR}/{name}") for name in assets),
        n_records=spill.count,
    )


def write_output_vetting_page(
    output_root: OutputStore | ResourcePathExpression,
    sources: pd.DataFrame | None = None,
    *,
    title: str | None = None,
    chunk_rows: int = UNION_CHUNK_ROWS,
    records: pd.DataFrame | None = None,
) -> VettingPageFiles:
    """Write the vetting page of an output directory from the records of
    every run into it.

    Parameters
    ----------
    output_root : `OutputStore` or `lsst.resources.ResourcePathExpression`
        Output directory (local path or URI) holding ``records.csv`` (written with the
        manifests, `lsst.analysis.ap.outputs.manifests.write_manifests`).
    sources : `pandas.DataFrame`, optional
        DiaSources whose catalog values the page shows (see
        `write_vetting_page`); sources of earlier runs that are not in it
        are shown with their record values only.
    title : `str`, optional
        Page title.
    chunk_rows : `int`, optional
        Records read and converted at a time.
    records : `pandas.DataFrame`, optional
        The records of ``records.csv`` when the caller holds them (the
        ``records`` of `~lsst.analysis.ap.outputs.manifests.write_manifests`,
        which wrote the file): the page is built from them instead of
        reading the file back, with the same result.

    Returns
    -------
    files : `VettingPageFiles`
        Paths of the files written.

    Raises
    ------
    FileNotFoundError
        Raised when the directory has no ``records.csv``.

    Notes
    -----
    Labels merged earlier into ``records_labelled.csv``
    (``cutoutVetting merge-labels``) are shown too.

    ``records.csv`` is read ``chunk_rows`` rows at a time, and the page's
    data file is written as the chunks come: memory does not grow with
    the number of records.

    """
    store = output_root if isinstance(output_root, OutputStore) else OutputStore(output_root)
    origin = str(store.display(RECORDS_FILE))
    labels = _merged_labels(store)
    sources = _with_sequence_frames(store, sources)
    if records is not None:
        table = _with_labels(records[list(RECORD_COLUMNS)], labels)
        extra = _source_extra(table.columns, sources)
        joined_dtypes = None
        if extra is not None:
            known = np.sort(extra["diaSourceId"].to_numpy())
            joined_dtypes = _joined_dtypes(extra, _all_in(table["diaSourceId"].to_numpy(), known))
        return _write_page(
            store, [table], sources, title=title, joined_dtypes=joined_dtypes, selected=(table.columns, extra)
        )
    columns = [*RECORD_COLUMNS, *LEDGER_EXTRA_COLUMNS, *(_LABEL_COLUMNS if labels is not None else ())]
    extra = _source_extra(columns, sources)
    if store.size(RECORDS_FILE) is None:
        raise FileNotFoundError(
            f"{store.display(RECORDS_FILE)} does not exist: is {store.location} the output directory "
            "of a cutout run?"
        )
    joined_dtypes = None
    if extra is not None:
        known = np.sort(extra["diaSourceId"].to_numpy())
        complete = True
        with store.open_read(RECORDS_FILE) as stream:
            with pd.read_csv(stream, usecols=["diaSourceId"], chunksize=chunk_rows) as reader:
                for chunk in reader:
                    complete = complete and _all_in(chunk["diaSourceId"].to_numpy(), known)
        joined_dtypes = _joined_dtypes(extra, complete)
    with store.open_read(RECORDS_FILE) as stream:
        chunks = (_with_labels(chunk, labels) for chunk in read_record_csv_chunks(stream, origin, chunk_rows))
        return _write_page(
            store, chunks, sources, title=title, joined_dtypes=joined_dtypes, selected=(columns, extra)
        )


def _with_sequence_frames(store: OutputStore, sources: pd.DataFrame | None) -> pd.DataFrame | None:
    """``sources`` with the ``frame_paths`` and ``sequence_path`` of their
    objects whose sequences the directory holds (``sequences/objects.csv``,
    written by ``plotDiaObjectSequences``), so that every page written
    there shows them; the values ``sources`` has are kept for the other
    sources.  Without ``sources``, the DiaSources of the epochs drawn
    (``sequences/epochs.csv``) are those of the page.  ``sources`` as
    given when the directory holds no sequence, or when they have no
    ``diaObjectId``.
    """
    if store.size(SEQUENCE_OBJECTS_FILE) is None:
        return sources
    if sources is None:
        sources = _sequence_sources(store)
    if sources is None or "diaObjectId" not in sources.columns:
        return sources
    shown = store.display(SEQUENCE_OBJECTS_FILE)
    try:
        with store.open_read(SEQUENCE_OBJECTS_FILE) as stream:
            objects = pd.read_csv(stream, dtype=str, keep_default_na=False)
        written = objects[objects["status"] == "written"]
        drawn = {
            exact_integer(object_id): (frames, sheet)
            for object_id, frames, sheet in zip(
                written["diaObjectId"], written["frames"], written["contact_sheet"], strict=True
            )
        }
    except Exception as error:  # the page is a view: it is written without the sequences
        _LOG.warning("The vetting page shows no sequence: %s cannot be read (%s).", shown, error)
        return sources
    if None in drawn:
        unread = [value for value in written["diaObjectId"] if exact_integer(value) is None]
        _LOG.warning(
            "%s: %d written object(s) have a diaObjectId that is not an integer (%r); the page shows no "
            "frames for them.",
            shown,
            len(unread),
            unread[0],
        )
        del drawn[None]
    drawn.pop(NO_DIA_OBJECT_ID, None)
    found = [drawn.get(exact_integer(value)) for value in sources["diaObjectId"]]
    columns = {}
    for position, name in enumerate(("frame_paths", "sequence_path")):
        given = sources[name].tolist() if name in sources.columns else [""] * len(sources)
        columns[name] = [paths[position] if paths else old for paths, old in zip(found, given, strict=True)]
    # One new frame: inserting columns into a wide catalog makes pandas warn.
    kept = sources.drop(columns=list(columns), errors="ignore")
    return pd.concat([kept, pd.DataFrame(columns, index=sources.index)], axis=1)


def _sequence_sources(store: OutputStore) -> pd.DataFrame | None:
    """``diaSourceId``, ``diaObjectId`` and ``midpointMjdTai`` of the
    detections of the sequences in the directory (``sequences/epochs.csv``),
    `None` when there are none or the table cannot be read.
    """
    shown = store.display(SEQUENCE_EPOCHS_FILE)
    try:
        with store.open_read(SEQUENCE_EPOCHS_FILE) as stream:
            epochs = pd.read_csv(stream, dtype=str, keep_default_na=False)
        if "diaSourceId" not in epochs.columns:  # written before epochs named their source
            return None
        source_ids = [exact_integer(value) for value in epochs["diaSourceId"]]
        object_ids = [exact_integer(value) for value in epochs["diaObjectId"]]
        keep = [s is not None and o is not None for s, o in zip(source_ids, object_ids, strict=True)]
        if not any(keep):
            return None
        table = pd.DataFrame(
            {
                "diaSourceId": id_array([s for s, k in zip(source_ids, keep, strict=True) if k]),
                "diaObjectId": id_array([o for o, k in zip(object_ids, keep, strict=True) if k]),
                "midpointMjdTai": pd.to_numeric(epochs.loc[keep, "mjd"], errors="coerce").to_numpy(),
            }
        )
    except Exception as error:  # the page is a view: it is written without the sequences
        _LOG.warning("The vetting page shows no sequence: %s cannot be read (%s).", shown, error)
        return None
    return table.drop_duplicates("diaSourceId", keep="last")


def _all_in(ids: np.ndarray, known: np.ndarray) -> bool:
    """Whether every id of ``ids`` is in the sorted array ``known``."""
    if not len(ids):
        return True
    ids = _id_key(pd.Series(ids))
    if not len(known):
        return False
    at = np.minimum(np.searchsorted(known, ids), len(known) - 1)
    return bool((known[at] == ids).all())


def _merged_labels(store: OutputStore) -> pd.DataFrame | None:
    """``diaSourceId``, ``label``, ``label_time`` of the labels merged
    earlier (``records_labelled.csv``), `None` when there are none.
    """
    try:
        with store.open_read(LABELLED_RECORDS_FILE) as stream:
            earlier = pd.read_csv(
                stream,
                usecols=lambda name: name in ("diaSourceId", *_LABEL_COLUMNS),
                dtype={name: str for name in _LABEL_COLUMNS},
                keep_default_na=False,
            )
    except FileNotFoundError:
        return None
    if not set(_LABEL_COLUMNS) <= set(earlier.columns) or "diaSourceId" not in earlier.columns:
        return None
    earlier["diaSourceId"] = id_array(earlier["diaSourceId"])
    return earlier[["diaSourceId", *_LABEL_COLUMNS]].astype({"label": str, "label_time": str})


def _with_labels(records: pd.DataFrame, labels: pd.DataFrame | None) -> pd.DataFrame:
    if labels is None:
        return records
    return records.merge(labels, on="diaSourceId", how="left").fillna({"label": "", "label_time": ""})
