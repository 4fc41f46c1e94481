"""DiaSources from an APDB, through lsst-dax-apdb.

An APDB is described the way the LSST stack describes it: an
`lsst.dax.apdb.ApdbConfig` read from a file, a URI or an APDB index label
(``label:NAME`` with ``DAX_APDB_INDEX_URI``), or one built here from an SQLite
file or a PostgreSQL URL with a schema (``namespace``) and a table ``prefix``.
lsst-dax-apdb opens the database: it checks that an APDB exists in that schema
with that prefix and what schema version it has, and it makes the database
connection, which takes passwords from ``LSST_DB_AUTH`` / ``~/.lsst/db-auth.yaml``
(`lsst.utils.db_auth.DbAuth`) and the connection options of the
configuration.  `open_apdb_reader` gives the reader that suits the APDB:

- SQL APDBs (SQLite, PostgreSQL): `ApdbDiaSourceReader` pushes the cutout
  selection (visit range, time window, detectors, bands, reliability) into one
  SQL query on the APDB's ``DiaSource`` table (named and placed as the
  configuration says) and reads the result page by page, in (visit, detector,
  diaSourceId) order, so that no more than one page is ever in memory.
- Cassandra APDBs: Cassandra stores DiaSources in partitions of sky pixel and
  time and answers only questions asked in those terms.  `ApdbRegionReader`
  therefore asks lsst-dax-apdb's public `lsst.dax.apdb.Apdb.getDiaSources` for
  the sources of one visit × detector at a time: the sky region of the detector
  and the time span of the visit, both from the Butler's ``visit_detector_region``
  and ``visit`` records, so the selection by visit, detector, band and time
  window picks the partitions read.  The rows read are then cut exactly to the
  visit, detector and selection, and handed on in pages.  This reader works on
  any APDB (it is tested on SQL ones); it is the only one for Cassandra.

The instrument is read from the APDB's ``metadata`` table.
"""

from __future__ import annotations

__all__ = (
    "DEFAULT_POSTGRES_URL",
    "ApdbDiaSourceReader",
    "ApdbRegionReader",
    "DiaSourceReader",
    "DiaSourceSelection",
    "VisitDetectorFootprint",
    "butler_footprints",
    "make_apdb_config",
    "open_apdb_reader",
    "paginate",
    "postgres_url",
    "search_region",
    "sources_of_footprint",
)

import contextlib
import dataclasses
import functools
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .sources import (
    NO_DIA_OBJECT_ID,
    SourceTableError,
    decode_text,
    exact_integer,
    row_numbers,
    source_ids_note,
    source_ids_of,
    within_radius,
)

_LOG = logging.getLogger(__name__)


DEFAULT_POSTGRES_URL = "rubin@usdf-prompt-processing-dev.slac.stanford.edu/lsst-devl"
"""The original command's ``--postgres_url`` default, used when only
``--namespace`` is given."""

INSTRUMENT_KEY = "instrument"
"""Key of the instrument name in the APDB ``metadata`` table."""

ORDER_COLUMNS = ("visit", "detector", "diaSourceId")
"""Sort order of the pages: sources of one visit × detector stay together."""


@dataclasses.dataclass(frozen=True)
class DiaSourceSelection:
    """Which DiaSources to draw; every bound is inclusive, `None` means open.

    The same selection is applied in SQL to an APDB (`where_clauses`) and in
    pandas to a catalog (`apply`).
    """

    visit_min: int | None = None
    """Smallest visit."""
    visit_max: int | None = None
    """Largest visit."""
    mjd_min: float | None = None
    """Earliest ``midpointMjdTai`` (MJD, TAI)."""
    mjd_max: float | None = None
    """Latest ``midpointMjdTai`` (MJD, TAI)."""
    detectors: tuple[int, ...] = ()
    """Detectors to keep; empty: all."""
    bands: tuple[str, ...] = ()
    """Bands to keep (``band`` column); empty: all."""
    reliability_min: float | None = None
    """Smallest ``reliability``."""
    reliability_max: float | None = None
    """Largest ``reliability``."""
    dec_min: float | None = None
    """Smallest ``dec`` (degrees)."""
    dec_max: float | None = None
    """Largest ``dec`` (degrees)."""
    dia_object_ids: tuple[int, ...] = ()
    """DiaObjects whose sources to keep (``diaObjectId``); empty: all.  Ids
    outside the signed 64-bit range of the APDB's column match nothing."""
    visits: tuple[int, ...] = ()
    """Visits to keep; empty: all."""

    def _bounds(self) -> list[tuple[str, str, Any]]:
        """``(column, operator, value)`` of each active condition."""
        bounds: list[tuple[str, str, Any]] = []
        # Plain Python numbers: database drivers do not all take numpy's.
        for column, kind, low, high in (
            ("visit", int, self.visit_min, self.visit_max),
            ("midpointMjdTai", float, self.mjd_min, self.mjd_max),
            ("reliability", float, self.reliability_min, self.reliability_max),
            ("dec", float, self.dec_min, self.dec_max),
        ):
            if low is not None:
                bounds.append((column, ">=", kind(low)))
            if high is not None:
                bounds.append((column, "<=", kind(high)))
        if self.detectors:
            bounds.append(("detector", "in", tuple(int(d) for d in self.detectors)))
        if self.bands:
            bounds.append(("band", "in", tuple(str(b) for b in self.bands)))
        if self.dia_object_ids:
            bounds.append(("diaObjectId", "in", tuple(dict.fromkeys(int(i) for i in self.dia_object_ids))))
        if self.visits:
            bounds.append(("visit", "in", tuple(dict.fromkeys(int(v) for v in self.visits))))
        return bounds

    @property
    def columns(self) -> list[str]:
        """Columns the selection needs."""
        return list(dict.fromkeys(column for column, _, _ in self._bounds()))

    def describe(self) -> str:
        """The selection in words, for messages (``all`` when empty)."""
        parts = [f"{column} {op} {_shown(value)}" for column, op, value in self._bounds()]
        return ", ".join(parts) if parts else "all"

    def where_clauses(self, table: Any) -> list[Any]:
        """SQLAlchemy conditions on ``table`` (a `sqlalchemy.Table`)."""
        import sqlalchemy

        clauses = []
        for column, op, value in self._bounds():
            col = table.columns[column]
            if op == "in" and column in ("diaObjectId", "visit"):
                # The APDB's BIGINT holds no id beyond the signed 64 bits.  The
                # ids are written into the query as numbers: a list of any
                # length, where bound parameters are limited in number.
                value = tuple(i for i in value if -(2**63) <= i < 2**63)
                clauses.append(
                    col.in_(sqlalchemy.bindparam(column, value, expanding=True, literal_execute=True))
                )
                continue
            clauses.append(col.in_(value) if op == "in" else (col >= value if op == ">=" else col <= value))
        return clauses

    def apply(self, frame: pd.DataFrame, origin: str = "DiaSource table") -> pd.DataFrame:
        """Rows of ``frame`` inside the selection.

        Raises
        ------
        SourceTableError
            Raised when the selection needs a column ``frame`` lacks, or
            when a column it compares with numbers (``visit``,
            ``detector``, ``midpointMjdTai``, ``reliability``) holds a value
            that is not one; the message names the column and the rows.
            A null value is outside every bound.

        """
        _require_columns(self, frame.columns, origin)
        keep = np.ones(len(frame), dtype=bool)
        for column, op, value in self._bounds():
            values = frame[column]
            if column != "band":
                values = self._numbers(values, column, origin, source_ids_of(frame))
            elif values.dtype.kind in "OS":
                # Bytes values (FITS strings) match their text too.
                value = (*value, *(str(v).encode() for v in value))
            if op == "in":
                keep &= values.isin(value).to_numpy(dtype=bool, na_value=False)
            elif op == ">=":
                keep &= (values >= value).to_numpy(dtype=bool, na_value=False)
            else:
                keep &= (values <= value).to_numpy(dtype=bool, na_value=False)
        return frame[keep]

    def _numbers(self, values: pd.Series, column: str, origin: str, ids: list | None) -> pd.Series:
        """``values`` as numbers (null where null), or an error naming the
        rows that hold something else (and their ``ids``, `source_ids_note`).
        """
        if values.dtype.kind in "iuf":
            return values
        numbers = pd.to_numeric(values.map(decode_text), errors="coerce")
        unread = np.flatnonzero((numbers.isna() & values.notna()).to_numpy())
        bad = [position for position in unread if not _is_nan_text(values.iloc[position])]
        if len(bad):
            example = values.iloc[bad[0]]
            raise SourceTableError(
                f"{origin}: cannot select on {column!r}: not a number in {row_numbers(bad)}"
                f"{source_ids_note(bad, ids)} ({example!r}"
                f"{', …' if len(bad) > 1 else ''}; selection: {self.describe()})."
            )
        return numbers


def _shown(value: Any, most: int = 6) -> str:
    """A bound's value for messages: a long list by its first values and its
    length."""
    if not isinstance(value, tuple):
        return str(value)
    if len(value) <= most:
        return str(list(value))
    return f"[{', '.join(str(v) for v in value[:most])}, … ({len(value)} values)]"


def _require_columns(selection: DiaSourceSelection, columns: Sequence[str], origin: str) -> None:
    missing = [column for column in selection.columns if column not in columns]
    if missing:
        raise SourceTableError(
            f"{origin}: cannot select on {', '.join(repr(column) for column in missing)}: no such column "
            f"(selection: {selection.describe()})."
        )


def postgres_url(url: str) -> str:
    """A PostgreSQL SQLAlchemy URL from the original command's
    ``--postgres_url`` form (``user@host/database``, no scheme) or a full URL.
    """
    return url if "://" in url else f"postgresql://{url}"


def make_apdb_config(
    *,
    config_uri: str | None = None,
    sqlitefile: str | Path | None = None,
    db_url: str | None = None,
    namespace: str | None = None,
    prefix: str | None = None,
) -> Any:
    """The `lsst.dax.apdb.ApdbConfig` of an APDB.

    Parameters
    ----------
    config_uri : `str`, optional
        A configuration file or URI, or ``label:NAME`` looked up in the APDB
        index (``DAX_APDB_INDEX_URI``).
    sqlitefile : `str` or `pathlib.Path`, optional
        An SQLite APDB file.
    db_url : `str`, optional
        An SQLAlchemy URL, e.g. ``postgresql://user@host:5432/db``; no
        password needed when ``LSST_DB_AUTH`` or ``~/.lsst/db-auth.yaml`` has
        it.
    namespace : `str`, optional
        PostgreSQL schema of the APDB tables (overrides the configuration's;
        SQL APDBs only).
    prefix : `str`, optional
        Table-name prefix (overrides the configuration's, SQL or
        Cassandra).

    Returns
    -------
    config : `lsst.dax.apdb.ApdbConfig`
        The configuration (exactly one of the three sources must be given).

    Raises
    ------
    SourceTableError
        Raised when the configuration cannot be read, the SQLite file does
        not exist, or a namespace is given for a Cassandra APDB.

    """
    from lsst.dax.apdb import ApdbConfig
    from lsst.dax.apdb.sql import ApdbSqlConfig

    given = [
        name for name, value in (("config", config_uri), ("sqlite", sqlitefile), ("url", db_url)) if value
    ]
    if len(given) != 1:
        raise SourceTableError(
            "Give exactly one of an APDB configuration, an SQLite APDB file or a database URL "
            f"(got {', '.join(given) or 'none'})."
        )
    if config_uri:
        try:
            config = ApdbConfig.from_uri(config_uri)
        except Exception as error:
            raise _configuration_error(config_uri, error) from error
        for key, close, name, known in _unknown_keys(config_uri):
            # Not refused: a configuration written by a newer lsst-dax-apdb
            # may hold keys this one does not have.
            _LOG.warning(
                "APDB configuration %s: %s is ignored; the keys of %s are: %s.",
                config_uri,
                _unknown_key_text(key, close),
                name,
                ", ".join(known),
            )
        if namespace is not None and not isinstance(config, ApdbSqlConfig):
            raise SourceTableError(
                f"APDB configuration {config_uri}: a namespace (PostgreSQL schema) applies to SQL APDBs "
                "only; a Cassandra APDB's keyspace is set in its configuration."
            )
        updates = {
            key: value for key, value in (("namespace", namespace), ("prefix", prefix)) if value is not None
        }
        return config.model_copy(update=updates) if updates else config
    if sqlitefile:
        path = Path(sqlitefile)
        if not path.is_file():
            raise SourceTableError(f"APDB file {path} does not exist.")
        db_url = f"sqlite:///{path.absolute()}"
    assert db_url is not None
    return ApdbSqlConfig(db_url=db_url, namespace=namespace or None, prefix=prefix or "")


def _unknown_keys(config_uri: str) -> list[tuple[str, str, str, list[str]]]:
    """The keys of the YAML configuration ``config_uri`` that lsst-dax-apdb
    does not know (and ignores: a misspelt ``namespace`` would look for the
    APDB in the default schema).

    Returns ``(key, the known key it resembles, the name of the
    configuration class, its keys)`` for each, nested keys as
    ``connection_config.key``; none for a legacy
    (pex_config) file or one of an unknown ``implementation_type``.
    """
    import difflib

    import pydantic
    import yaml
    from lsst.dax.apdb.apdbIndex import ApdbIndex
    from lsst.dax.apdb.factory import config_type_for_name
    from lsst.resources import ResourcePath

    try:
        uri = config_uri
        if uri.startswith("label:"):
            uri = ApdbIndex().get_apdb_uri(uri.partition(":")[2], "yaml")
        data = dict(yaml.safe_load(ResourcePath(uri).read()))
        model = config_type_for_name(str(data.pop("implementation_type")))
    except Exception:  # a legacy file, or a YAML that lsst-dax-apdb reads its own way
        return []
    stack: list[tuple[str, dict, type[pydantic.BaseModel]]] = [("", data, model)]
    unknown: list[tuple[str, str, str, list[str]]] = []
    while stack:
        path, values, model = stack.pop()
        known = list(model.model_fields)
        for key, value in values.items():
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                unknown.append((f"{path}{key}", close[0] if close else "", model.__name__, known))
                continue
            nested = model.model_fields[key].annotation
            if (
                isinstance(value, dict)
                and isinstance(nested, type)
                and issubclass(nested, pydantic.BaseModel)
            ):
                stack.append((f"{path}{key}.", value, nested))
    return unknown


def _unknown_key_text(key: str, close: str) -> str:
    """The words for one unknown key of a configuration, with the known
    key it resembles (``close``, '' for none)."""
    return f"unknown key {key!r}{f' (did you mean {close!r}?)' if close else ''}"


def _configuration_error(config_uri: str, error: Exception) -> SourceTableError:
    """One line for a configuration lsst-dax-apdb cannot read: its
    problems (for a validation error: each field and what is wrong) and the
    keys it does not know."""
    import pydantic

    if isinstance(error, pydantic.ValidationError):
        problems = [
            f"{'.'.join(str(part) for part in item['loc']) or 'the configuration'}: {item['msg']}"
            for item in error.errors()
        ]
        problems += [_unknown_key_text(key, close) for key, close, _, _ in _unknown_keys(config_uri)]
        reason = "; ".join(problems)
    else:
        reason = _first_line(error)
    return SourceTableError(f"Cannot read APDB configuration {config_uri}: {reason}")


def _describe_config(config: Any) -> str:
    """Where an APDB is, for messages (without any password)."""
    import sqlalchemy

    url = getattr(config, "db_url", None)
    if url is None:
        hosts = ",".join(getattr(config, "contact_points", ()) or ())
        port = config.connection_config.port
        prefix = f" (table prefix {config.prefix!r})" if config.prefix else ""
        return f"Cassandra APDB {hosts}:{port}/{config.keyspace}{prefix}"
    try:
        shown = sqlalchemy.make_url(url).render_as_string(hide_password=True)
    except Exception:
        shown = url
    where = [f"schema {config.namespace!r}" if config.namespace else ""]
    if config.prefix:
        where.append(f"table prefix {config.prefix!r}")
    where = [w for w in where if w]
    return f"APDB {shown}" + (f" ({', '.join(where)})" if where else "")


class DiaSourceReader:
    """What every APDB reader offers: selected DiaSources page by page, the
    APDB's instrument, a description for messages.

    Use `open_apdb_reader` to get the reader that suits an APDB.
    """

    description: str
    """Where the APDB is, for messages (never with a password)."""

    instrument: str | None
    """Instrument name from the APDB ``metadata`` table (`None` if absent)."""

    @classmethod
    def from_uri(cls, uri: str, **kwargs: Any) -> DiaSourceReader:
        """Reader of the APDB configured at ``uri``.

        Parameters
        ----------
        uri : `str`
            Configuration file, URI or ``label:NAME``.
        **kwargs
            ``namespace`` and ``prefix`` overrides (see `make_apdb_config`).

        Returns
        -------
        reader : `DiaSourceReader`
            The reader.

        """
        config = make_apdb_config(config_uri=uri, **kwargs)
        return open_apdb_reader(config) if cls is DiaSourceReader else cls(config)  # type: ignore[call-arg]

    def locate(self, butler: Any, instrument: str | None = None) -> None:
        """Give the reader the Butler repository whose images will be cut.

        Parameters
        ----------
        butler : `lsst.daf.butler.Butler`
            The repository (its ``visit`` and ``visit_detector_region``
            records).
        instrument : `str`, optional
            Instrument of the sources (default: the APDB's).

        Notes
        -----
        An SQL APDB needs no Butler: this does nothing.  `ApdbRegionReader`
        finds where and when to look from the repository's records.

        """

    def pages(
        self, selection: DiaSourceSelection = DiaSourceSelection(), page_size: int = 1000
    ) -> Iterator[pd.DataFrame]:
        """DiaSources of ``selection``, ``page_size`` at a time.

        Parameters
        ----------
        selection : `DiaSourceSelection`, optional
            Which sources (default: all).
        page_size : `int`, optional
            Largest number of sources in one page.

        Yields
        ------
        page : `pandas.DataFrame`
            The next page of sources, in (visit, detector, diaSourceId)
            order.

        """
        raise NotImplementedError()

    def count(self, selection: DiaSourceSelection = DiaSourceSelection()) -> int:
        """Number of DiaSources in ``selection``.

        Parameters
        ----------
        selection : `DiaSourceSelection`, optional
            Which sources (default: all).

        Returns
        -------
        count : `int`
            Number of sources.

        """
        return sum(len(page) for page in self.pages(selection, 10_000))

    def read(self, selection: DiaSourceSelection = DiaSourceSelection(), limit: int | None = None) -> Any:
        """DiaSources of ``selection`` as one table.

        Parameters
        ----------
        selection : `DiaSourceSelection`, optional
            Which sources (default: all).
        limit : `int`, optional
            Return at most this many (the first page); `None`: all.

        Returns
        -------
        sources : `pandas.DataFrame`
            The sources, in (visit, detector, diaSourceId) order.

        """
        if limit is not None:
            return next(self.pages(selection, limit), self._empty())
        pages = list(self.pages(selection))
        return pd.concat(pages, ignore_index=True) if pages else self._empty()

    def _empty(self) -> pd.DataFrame:
        frame = pd.DataFrame(columns=list(ORDER_COLUMNS))
        if self.instrument is not None:
            frame["instrument"] = pd.Series(dtype=object)
        return frame

    def close(self) -> None:
        """Release the database connections."""

    def __enter__(self) -> DiaSourceReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_apdb_reader(config: Any) -> DiaSourceReader:
    """The reader of an APDB: `ApdbDiaSourceReader` for an SQL APDB,
    `ApdbRegionReader` for a Cassandra one.

    Parameters
    ----------
    config : `lsst.dax.apdb.ApdbConfig`
        Configuration of the APDB (see `make_apdb_config`).

    Returns
    -------
    reader : `DiaSourceReader`
        The reader, with the APDB open.

    Raises
    ------
    SourceTableError
        Raised when the APDB cannot be opened (see the readers).

    """
    if getattr(config, "db_url", None) is None:
        return ApdbRegionReader(config)
    return ApdbDiaSourceReader(config)


def _open_apdb(config: Any, description: str) -> Any:
    """`lsst.dax.apdb.Apdb.from_config`, with its failures as one-line
    `SourceTableError` messages.
    """
    import sqlalchemy
    from lsst.dax.apdb import Apdb, IncompatibleVersionError
    from lsst.dax.apdb.cassandra import CassandraMissingError

    try:
        return Apdb.from_config(config)
    except CassandraMissingError:
        raise SourceTableError(
            f"{description}: reading a Cassandra APDB needs the Python package 'cassandra-driver' "
            "(module 'cassandra'), which is not installed; install it with: pip install cassandra-driver"
        ) from None
    except IncompatibleVersionError:
        raise
    except sqlalchemy.exc.NoSuchTableError as error:
        raise SourceTableError(
            f"{description}: no APDB there (table {error} not found); check the schema "
            "(namespace) and the table prefix."
        ) from None
    except sqlalchemy.exc.SQLAlchemyError as error:
        raise SourceTableError(f"{description}: cannot connect: {_first_line(error)}") from None
    except Exception as error:
        raise SourceTableError(f"{description}: cannot open: {_first_line(error)}") from error


class ApdbDiaSourceReader(DiaSourceReader):
    """Selected DiaSources of one SQL APDB, page by page, selected in SQL.

    Parameters
    ----------
    config : `lsst.dax.apdb.sql.ApdbSqlConfig`
        Configuration of the APDB (see `make_apdb_config`).

    Raises
    ------
    SourceTableError
        Raised when the APDB cannot be opened: no APDB in that schema with
        that prefix, a refused connection or password, a configuration that
        is not of an SQL APDB.  The message says where the APDB was looked
        for.

    """

    def __init__(self, config: Any) -> None:
        self.config = config
        self.description = _describe_config(config)
        if getattr(config, "db_url", None) is None:
            raise SourceTableError(
                f"{self.description} is not an SQL APDB; read it with open_apdb_reader (ApdbRegionReader)."
            )
        self._pixelization: Any = None
        self._engine, self._table, self.instrument = self._open_sql()
        import sqlalchemy

        # Columns whose NULLs must not turn the integers around them into floats.
        self._integer_columns = {
            column.name for column in self._table.columns if isinstance(column.type, sqlalchemy.Integer)
        }

    def _open_sql(self) -> tuple[Any, Any, str | None]:
        import sqlalchemy
        from lsst.dax.apdb import ApdbTables, IncompatibleVersionError
        from lsst.dax.apdb.sql import ApdbSql

        config = self.config
        instrument = None
        try:
            # lsst-dax-apdb checks that the APDB exists where the configuration
            # says and that its schema version is one it can use.
            apdb = _open_apdb(config, self.description)
            instrument = _metadata_instrument(apdb, self.description)
            # How lsst-dax-apdb indexes positions (HTM level and column,
            # frozen in the APDB's metadata).
            self._pixelization = apdb.getConfig().pixelization
        except IncompatibleVersionError as error:
            # Older APDBs are still read: DiaSource columns are reflected.
            _LOG.warning("%s: %s; reading its DiaSource table as it is.", self.description, error)
        # The stack's engine for this configuration: credentials from the
        # db-auth file, connection options, SQLite opened read-write only.
        # lsst-dax-apdb has no public way to get it.
        engine = ApdbSql._makeEngine(config, create=False)
        tables = sqlalchemy.MetaData(schema=config.namespace)
        try:
            metadata_table, source_table = [
                sqlalchemy.Table(table.table_name(prefix=config.prefix), tables, autoload_with=engine)
                for table in (ApdbTables.metadata, ApdbTables.DiaSource)
            ]
        except sqlalchemy.exc.NoSuchTableError as error:
            engine.dispose()
            raise SourceTableError(f"{self.description}: table {error} not found.") from None
        if instrument is None:
            query = sqlalchemy.select(metadata_table.columns.value).where(
                metadata_table.columns.name == INSTRUMENT_KEY
            )
            try:
                with _sql_errors(f"{self.description}: cannot read the metadata table"):
                    with engine.connect() as connection:
                        instrument = connection.execute(query).scalar()
            except SourceTableError:
                engine.dispose()
                raise
        return engine, source_table, instrument

    def close(self) -> None:
        # Docstring inherited.
        self._engine.dispose()

    def _where(self, selection: DiaSourceSelection) -> list[Any]:
        _require_columns(selection, list(self._table.columns.keys()), self.description)
        return selection.where_clauses(self._table)

    def count(self, selection: DiaSourceSelection = DiaSourceSelection()) -> int:
        """Number of DiaSources in ``selection``, counted by the database.

        Parameters
        ----------
        selection : `DiaSourceSelection`, optional
            Which sources (default: all).

        Returns
        -------
        count : `int`
            Number of sources.

        """
        import sqlalchemy

        query = sqlalchemy.select(sqlalchemy.func.count()).select_from(self._table)
        query = query.where(*self._where(selection))
        with _sql_errors(f"{self.description}: cannot count DiaSources"):
            with self._engine.connect() as connection:
                return int(connection.execute(query).scalar_one())

    def sources_near(self, ra: float, dec: float, radius_arcsec: float) -> pd.DataFrame:
        """The DiaSources within a radius of a sky position.

        The database is asked for the DiaSources in the HTM pixels that
        cover the circle, by the DiaSource table's indexed ``pixelId`` (the
        pixels lsst-dax-apdb gives each DiaSource it stores, at the level
        and in the column its configuration names), as lsst-dax-apdb reads
        a region; the exact distance is then computed here.  An APDB whose
        schema version this lsst-dax-apdb cannot read, or whose table lacks
        that column, is asked for the declination band of the circle
        instead, which the database finds by reading the whole table.  A
        DiaSource whose ``pixelId`` is not that of its position (a damaged
        table) is not found, as lsst-dax-apdb would not find it.

        Parameters
        ----------
        ra, dec : `float`
            Centre, ICRS degrees.
        radius_arcsec : `float`
            Radius, arcseconds.

        Returns
        -------
        sources : `pandas.DataFrame`
            The DiaSources within the radius (a position that is not a
            number is within none), in (visit, detector, diaSourceId) order.

        Raises
        ------
        ValueError
            Raised when the position or the radius is not a finite number,
            the declination is beyond ±90° or the radius is negative.
        SourceTableError
            Raised when the database cannot be read.

        """
        import math

        import sqlalchemy
        from lsst.sphgeom import Angle, Circle, HtmPixelization, LonLat, UnitVector3d

        if not all(math.isfinite(v) for v in (ra, dec, radius_arcsec)) or abs(dec) > 90 or radius_arcsec < 0:
            raise ValueError(
                f"sources_near needs a finite position with |dec| <= 90 and a finite radius >= 0, not "
                f"ra={ra!r}, dec={dec!r}, radius_arcsec={radius_arcsec!r}."
            )

        column = None
        if self._pixelization is not None:
            column = self._table.columns.get(self._pixelization.htm_index_column)
        if column is None:
            # Every source within the radius is in this band of declination.
            pad = radius_arcsec / 3600.0 + 1e-9
            where = self._where(DiaSourceSelection(dec_min=dec - pad, dec_max=dec + pad))
        else:
            circle = Circle(
                UnitVector3d(LonLat.fromDegrees(ra, dec)), Angle.fromDegrees(radius_arcsec / 3600.0)
            )
            pixels = HtmPixelization(self._pixelization.htm_level).envelope(
                circle, self._pixelization.htm_max_ranges
            )
            where = [sqlalchemy.or_(*(column.between(low, high - 1) for low, high in pixels))]
        # One query without an order: ordered or cut into pages, it would be
        # answered by walking the (visit, detector) index of the whole table.
        found = self._query(sqlalchemy.select(self._table).where(*where))
        found = found[within_radius(found, ra, dec, radius_arcsec)]
        # In the order of `pages` (a value that is not a number last).
        key = functools.partial(pd.to_numeric, errors="coerce")
        return found.sort_values(list(ORDER_COLUMNS), kind="stable", key=key).reset_index(drop=True)

    def most_observed_objects(self, count: int) -> list[int]:
        """The ``count`` DiaObjects with the most DiaSources, counted by the
        database.

        Parameters
        ----------
        count : `int`
            Number of objects.

        Returns
        -------
        ids : `list` [`int`]
            Their ``diaObjectId``, most sources first (ties: smaller id
            first).  Sources of no object (``diaObjectId`` null or
            `NO_DIA_OBJECT_ID`) are not counted.

        """
        import sqlalchemy

        column = self._table.columns["diaObjectId"]
        sources = sqlalchemy.func.count().label("sources")
        query = (
            sqlalchemy.select(column, sources)
            .where(column.is_not(None), column != NO_DIA_OBJECT_ID)
            .group_by(column)
            .order_by(sources.desc(), column)
            .limit(count)
        )
        with _sql_errors(f"{self.description}: cannot count the DiaSources of each DiaObject"):
            with self._engine.connect() as connection:
                stored = [object_id for object_id, _ in connection.execute(query)]
        ids = [exact_integer(object_id) for object_id in stored]
        if None in ids:
            bad = stored[ids.index(None)]
            rows = sqlalchemy.select(self._table.columns["diaSourceId"]).where(column == bad).limit(100)
            with _sql_errors(f"{self.description}: cannot read DiaSources"):
                with self._engine.connect() as connection:
                    named = list(connection.execute(rows).scalars())
            raise SourceTableError(
                f"{self.description}: column 'diaObjectId' must hold integers (or nulls): {bad!r} is not an "
                f"integer id{source_ids_note(range(len(named)), named)}; the DiaSources of each DiaObject "
                "cannot be counted."
            )
        return ids

    def pages(
        self, selection: DiaSourceSelection = DiaSourceSelection(), page_size: int = 1000
    ) -> Iterator[pd.DataFrame]:
        """DiaSources of ``selection``, ``page_size`` at a time.

        Parameters
        ----------
        selection : `DiaSourceSelection`, optional
            Which sources (default: all).
        page_size : `int`, optional
            Largest number of sources in one page.

        Yields
        ------
        page : `pandas.DataFrame`
            The next page of sources.

        Notes
        -----
        Pages follow (visit, detector, diaSourceId) order; each is one query
        that starts after the last row of the previous page, so the APDB is
        never read whole and sources added meanwhile after the current
        position are still seen.  Each page has an ``instrument`` column when
        the APDB metadata names the instrument.

        """
        import sqlalchemy

        if page_size < 1:
            raise ValueError(f"page_size must be positive, not {page_size}.")
        order = [self._table.columns[column] for column in ORDER_COLUMNS]
        where = self._where(selection)
        last: tuple | None = None
        while True:
            query = sqlalchemy.select(self._table).where(*where)
            if last is not None:
                query = query.where(sqlalchemy.tuple_(*order) > sqlalchemy.tuple_(*last))
            frame = self._query(query.order_by(*order).limit(page_size))
            if frame.empty:
                return
            tail = frame.iloc[-1]
            # The stored values, as plain Python: a key the APDB holds as
            # text (a damaged table) still orders the next page; the
            # validation of the table then refuses it, naming the column
            # and the row.
            last = tuple(_plain(tail[column]) for column in ORDER_COLUMNS)
            yield frame
            if len(frame) < page_size:
                return

    def _query(self, query: Any) -> pd.DataFrame:
        """The DiaSources a query of the DiaSource table returns, with an
        ``instrument`` column when the APDB metadata names the instrument."""
        with _sql_errors(f"{self.description}: cannot read DiaSources"):
            with self._engine.connect() as connection:
                result = connection.execute(query)
                frame = _frame_of_rows(result.fetchall(), list(result.keys()), self._integer_columns)
        if self.instrument is not None:
            frame["instrument"] = self.instrument
        return frame

    def _empty(self) -> pd.DataFrame:
        frame = pd.DataFrame(columns=list(self._table.columns.keys()))
        if self.instrument is not None:
            frame["instrument"] = pd.Series(dtype=object)
        return frame


@contextlib.contextmanager
def _sql_errors(what: str) -> Iterator[None]:
    """Turn a database error inside the block into a `SourceTableError`
    of one line, ``what: <first line of the driver's message>``.
    """
    import sqlalchemy

    try:
        yield
    except (sqlalchemy.exc.SQLAlchemyError, pd.errors.DatabaseError) as error:
        # pandas wraps the driver's error in one that quotes the whole query.
        cause = error.__cause__ if isinstance(error, pd.errors.DatabaseError) and error.__cause__ else error
        raise SourceTableError(f"{what}: {_first_line(cause)}") from None


def _is_nan_text(value: Any) -> bool:
    """Whether ``value`` is text that reads as a NaN (``'nan'``, ``'NaN'``)."""
    try:
        return bool(np.isnan(float(decode_text(value))))
    except (TypeError, ValueError):
        return False


def _frame_of_rows(
    rows: Sequence[Sequence[Any]], columns: list[str], integer_columns: set[str]
) -> pd.DataFrame:
    """The frame of rows fetched from the database, as
    `pandas.read_sql_query` builds it, but with the columns declared integer
    (``integer_columns``) that hold nulls kept exact: pandas makes them
    float64, which rounds the ids beyond 2**53 (Rubin's ``diaObjectId``
    values are near 2**61) to other ids.  They become nullable ``Int64``
    (``object`` beyond its range).
    """
    frame = pd.DataFrame.from_records(rows, columns=columns, coerce_float=True)
    for position, name in enumerate(columns):
        column = frame.iloc[:, position]
        if name not in integer_columns or column.dtype != np.float64 or not column.isna().any():
            continue
        values = [row[position] for row in rows]
        if any(isinstance(value, float) for value in values) or all(value is None for value in values):
            continue
        if all(value is None or (type(value) is int and -(2**63) <= value < 2**63) for value in values):
            frame[name] = pd.array(values, dtype="Int64")
        elif all(value is None or type(value) is int for value in values):
            frame[name] = pd.Series(values, dtype=object)
    return frame


def _plain(value: Any) -> Any:
    """``value`` as a Python scalar (database drivers do not all take
    numpy's).
    """
    return value.item() if isinstance(value, np.generic) else value


def _metadata_instrument(apdb: Any, description: str) -> str | None:
    """The instrument named in the APDB ``metadata`` table, through
    `lsst.dax.apdb.Apdb.metadata` (for Cassandra, the first connection).
    """
    # A failed connection is reported here in one line; the Cassandra driver
    # would also log a traceback per contact point.
    driver_log = logging.getLogger("cassandra")
    level = driver_log.level
    driver_log.setLevel(logging.CRITICAL)
    try:
        return apdb.metadata.get(INSTRUMENT_KEY)
    except Exception as error:
        raise SourceTableError(f"{description}: cannot connect: {_connection_error(error)}") from None
    finally:
        driver_log.setLevel(level)


def _connection_error(error: BaseException) -> str:
    """A connection failure in one line; the Cassandra driver's
    ``NoHostAvailable`` lists the reason of each contact point.
    """
    errors = getattr(error, "errors", None)
    if isinstance(errors, dict) and errors:
        reasons = "; ".join(f"{host}: {_first_line(reason)}" for host, reason in errors.items())
        return f"no Cassandra host answered ({reasons})"
    return _first_line(error)


# Reading by sky region and time: the only way into a Cassandra APDB ----------


@dataclasses.dataclass(frozen=True)
class VisitDetectorFootprint:
    """Where and when one visit × detector looked: what a region-and-time
    APDB query needs.
    """

    visit: int
    """Visit id."""
    detector: int
    """Detector id."""
    band: str | None
    """Band of the visit."""
    mjd_begin: float
    """Start of the visit's exposure (MJD, TAI)."""
    mjd_end: float
    """End of the visit's exposure (MJD, TAI)."""
    region: Any
    """Sky region of the detector in that visit (`lsst.sphgeom.Region`)."""

    def overlaps(self, mjd_min: float | None, mjd_max: float | None, pad_days: float = 0.0) -> bool:
        """Whether the exposure (widened by ``pad_days``) meets the closed
        MJD window ``[mjd_min, mjd_max]`` (`None`: open).
        """
        if mjd_min is not None and self.mjd_end + pad_days < mjd_min:
            return False
        return not (mjd_max is not None and self.mjd_begin - pad_days > mjd_max)


SECONDS_PER_DAY = 86400.0

DEFAULT_PAD_ARCSEC = 10.0
"""Margin around a detector's region in the APDB query (sources on the edge;
the APDB's spatial partitions make the query coarser anyway)."""

DEFAULT_PAD_SECONDS = 60.0
"""Margin around a visit's exposure in the APDB query."""


def search_region(region: Any, pad_arcsec: float = DEFAULT_PAD_ARCSEC) -> Any:
    """The region given to the APDB for one detector: its bounding circle,
    widened by ``pad_arcsec``.

    Parameters
    ----------
    region : `lsst.sphgeom.Region`
        Sky region of the detector.
    pad_arcsec : `float`, optional
        Margin in arcseconds.

    Returns
    -------
    circle : `lsst.sphgeom.Circle`
        A circle that holds ``region`` and every point within ``pad_arcsec``
        of it.

    """
    from lsst.sphgeom import Angle

    return region.getBoundingCircle().dilatedBy(Angle.fromDegrees(pad_arcsec / 3600.0))


def butler_footprints(
    butler: Any, instrument: str, selection: DiaSourceSelection = DiaSourceSelection()
) -> list[VisitDetectorFootprint]:
    """The visit × detector footprints of ``selection`` in a Butler
    repository, in (visit, detector) order.

    Parameters
    ----------
    butler : `lsst.daf.butler.Butler`
        Repository with ``visit`` and ``visit_detector_region`` records.
    instrument : `str`
        Instrument name.
    selection : `DiaSourceSelection`, optional
        Visit range, detectors and bands select the visit × detector pairs
        in the registry query; the MJD window keeps those whose exposure
        meets it.  Reliability does not apply here.

    Returns
    -------
    footprints : `list` [`VisitDetectorFootprint`]
        One per visit × detector; the visit's region stands in for a
        detector without a region of its own.

    Raises
    ------
    SourceTableError
        Raised when a selected visit × detector has no sky region or no time
        span in the repository (no APDB query can be made for it).

    """
    terms = ["instrument = instrument_name"]
    bind: dict[str, Any] = {"instrument_name": instrument}
    for term, name, value in (
        ("visit >= visit_min", "visit_min", selection.visit_min),
        ("visit <= visit_max", "visit_max", selection.visit_max),
        ("detector IN (detectors)", "detectors", list(selection.detectors) or None),
        ("band IN (bands)", "bands", list(selection.bands) or None),
    ):
        if value is not None:
            terms.append(term)
            bind[name] = value
    footprints = []
    with butler.query() as query:
        data_ids = (
            query.data_ids(["visit", "detector"])
            .where(" AND ".join(terms), bind=bind)
            .with_dimension_records()
        )
        for data_id in data_ids:
            visit = data_id.records["visit"]
            region = data_id.region if data_id.region is not None else visit.region
            where = f"instrument {instrument!r} visit {data_id['visit']} detector {data_id['detector']}"
            if region is None or visit.timespan is None or visit.timespan.begin is None:
                raise SourceTableError(
                    f"Butler repository: {where} has no sky region or no time span; a Cassandra APDB "
                    "can only be asked for the sources of a region and time."
                )
            end = visit.timespan.end if visit.timespan.end is not None else visit.timespan.begin
            footprint = VisitDetectorFootprint(
                visit=int(data_id["visit"]),
                detector=int(data_id["detector"]),
                band=data_id.get("band"),
                mjd_begin=float(visit.timespan.begin.tai.mjd),
                mjd_end=float(end.tai.mjd),
                region=region,
            )
            if footprint.overlaps(selection.mjd_min, selection.mjd_max):
                footprints.append(footprint)
    return sorted(footprints, key=lambda f: (f.visit, f.detector))


def sources_of_footprint(
    frame: pd.DataFrame,
    footprint: VisitDetectorFootprint,
    selection: DiaSourceSelection = DiaSourceSelection(),
    origin: str = "APDB",
) -> pd.DataFrame:
    """The rows of an APDB answer that belong to ``footprint`` and
    ``selection``, in diaSourceId order.

    Parameters
    ----------
    frame : `pandas.DataFrame`
        DiaSources returned for the footprint's region and time (they may
        include sources of neighbouring detectors and other visits).
    footprint : `VisitDetectorFootprint`
        The visit × detector.
    selection : `DiaSourceSelection`, optional
        The rest of the selection (time window, bands, reliability).
    origin : `str`, optional
        Where ``frame`` comes from, for messages.

    Returns
    -------
    sources : `pandas.DataFrame`
        The sources of that visit and detector inside the selection.

    """
    mine = frame[(frame["visit"] == footprint.visit) & (frame["detector"] == footprint.detector)]
    return selection.apply(mine, origin).sort_values("diaSourceId", kind="stable")


def paginate(frames: Iterable[pd.DataFrame], page_size: int) -> Iterator[pd.DataFrame]:
    """Regroup a stream of tables into pages of ``page_size`` rows (the last
    may be shorter), keeping the row order.

    Parameters
    ----------
    frames : iterable [`pandas.DataFrame`]
        Tables of the same columns, consumed one at a time.
    page_size : `int`
        Rows per page.

    Yields
    ------
    page : `pandas.DataFrame`
        The next page; no more than one input table and one page are held.

    """
    if page_size < 1:
        raise ValueError(f"page_size must be positive, not {page_size}.")
    held: list[pd.DataFrame] = []
    count = 0
    for frame in frames:
        start = 0
        while start < len(frame):
            take = min(page_size - count, len(frame) - start)
            held.append(frame.iloc[start : start + take])
            count += take
            start += take
            if count == page_size:
                yield pd.concat(held, ignore_index=True)
                held, count = [], 0
    if count:
        yield pd.concat(held, ignore_index=True)


class ApdbRegionReader(DiaSourceReader):
    """Selected DiaSources of an APDB, asked for visit × detector by sky
    region and time through `lsst.dax.apdb.Apdb.getDiaSources`.

    Parameters
    ----------
    config : `lsst.dax.apdb.ApdbConfig`
        Configuration of the APDB: Cassandra (what this reader is for) or
        SQL.
    pad_arcsec : `float`, optional
        Margin around each detector's region.
    pad_seconds : `float`, optional
        Margin around each visit's exposure.

    Raises
    ------
    SourceTableError
        Raised when the APDB cannot be opened: the Cassandra driver is not
        installed, no server answers at the contact points, no APDB in the
        keyspace.  The message says where the APDB was looked for.

    Notes
    -----
    The reader needs the Butler repository (`locate`): the visit and
    detector records say where and when to look.  Each visit × detector is
    one `~lsst.dax.apdb.Apdb.getDiaSources` call (for Cassandra: the
    partitions of the detector's sky pixels in the visit's time partition),
    so memory holds one visit × detector and one page.  Visit range,
    detectors and bands choose the visit × detector pairs (in the Butler
    query), the time window chooses visits and the APDB's time partitions;
    reliability and the exact visit, detector and time are applied to the
    rows returned.

    """

    def __init__(
        self,
        config: Any,
        *,
        pad_arcsec: float = DEFAULT_PAD_ARCSEC,
        pad_seconds: float = DEFAULT_PAD_SECONDS,
    ) -> None:
        self.config = config
        self.description = _describe_config(config)
        self.pad_arcsec = pad_arcsec
        self.pad_seconds = pad_seconds
        self._apdb = _open_apdb(config, self.description)
        # The first use opens the connection (Cassandra connects lazily).
        self.instrument = _metadata_instrument(self._apdb, self.description)
        self._butler: Any = None
        self._located_instrument: str | None = None
        self._counts: dict[DiaSourceSelection, int] = {}

    def locate(self, butler: Any, instrument: str | None = None) -> None:
        # Docstring inherited.
        self._butler = butler
        self._located_instrument = instrument or self.instrument
        self._counts.clear()

    def footprints(
        self, selection: DiaSourceSelection = DiaSourceSelection()
    ) -> list[VisitDetectorFootprint]:
        """The visit × detector pairs that will be asked for.

        Parameters
        ----------
        selection : `DiaSourceSelection`, optional
            Which sources (default: all).

        Returns
        -------
        footprints : `list` [`VisitDetectorFootprint`]
            In (visit, detector) order.

        Raises
        ------
        SourceTableError
            Raised when `locate` was not called or no instrument is known.

        """
        if self._butler is None or self._located_instrument is None:
            raise SourceTableError(
                f"{self.description}: DiaSources are read by sky region and time, visit × detector; "
                "the Butler repository (and the instrument, which the APDB metadata does not name) "
                "must be given first."
            )
        return butler_footprints(self._butler, self._located_instrument, selection)

    def fetch(
        self, footprint: VisitDetectorFootprint, selection: DiaSourceSelection = DiaSourceSelection()
    ) -> pd.DataFrame:
        """The selected DiaSources of one visit × detector.

        Parameters
        ----------
        footprint : `VisitDetectorFootprint`
            The visit × detector.
        selection : `DiaSourceSelection`, optional
            Which sources (default: all).

        Returns
        -------
        sources : `pandas.DataFrame`
            The sources, in diaSourceId order.

        Raises
        ------
        SourceTableError
            Raised when the APDB query fails.

        """
        import astropy.time

        pad = self.pad_seconds / SECONDS_PER_DAY
        start, end = footprint.mjd_begin - pad, footprint.mjd_end + pad
        if selection.mjd_min is not None:
            start = max(start, selection.mjd_min)
        if selection.mjd_max is not None:
            end = min(end, selection.mjd_max)
        # getDiaSources keeps midpointMjdTai > start: step just below it.
        start = float(np.nextafter(start, -np.inf))
        try:
            frame = self._apdb.getDiaSources(
                search_region(footprint.region, self.pad_arcsec),
                None,
                astropy.time.Time(end, format="mjd", scale="tai"),
                start_time=astropy.time.Time(start, format="mjd", scale="tai"),
            )
        except Exception as error:
            raise SourceTableError(
                f"{self.description}: cannot read DiaSources of visit {footprint.visit} detector "
                f"{footprint.detector}: {_first_line(error)}"
            ) from None
        if frame is None or frame.empty:
            return self._empty()
        frame = sources_of_footprint(frame, footprint, selection, self.description)
        frame = frame.reset_index(drop=True)
        if self.instrument is not None:
            frame["instrument"] = self.instrument
        return frame

    def count(self, selection: DiaSourceSelection = DiaSourceSelection()) -> int:
        """Number of DiaSources in ``selection``.

        Parameters
        ----------
        selection : `DiaSourceSelection`, optional
            Which sources (default: all).

        Returns
        -------
        count : `int`
            Number of sources.

        Notes
        -----
        The sources are read to be counted (Cassandra has no count by
        visit or detector); the count of a selection is kept, so asking
        again does not read them again.

        """
        if selection not in self._counts:
            self._counts[selection] = super().count(selection)
        return self._counts[selection]

    def pages(
        self, selection: DiaSourceSelection = DiaSourceSelection(), page_size: int = 1000
    ) -> Iterator[pd.DataFrame]:
        # Docstring inherited.
        footprints = self.footprints(selection)
        _LOG.debug("%s: %d visit × detector quer(y/ies).", self.description, len(footprints))
        yield from paginate((self.fetch(footprint, selection) for footprint in footprints), page_size)

    def close(self) -> None:
        # Docstring inherited.
        # lsst-dax-apdb shuts its Cassandra session down when the Apdb goes.
        self._apdb = None


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
