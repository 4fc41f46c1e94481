"""DiaSources from an APDB, through lsst-dax-apdb.

An APDB is described the way the LSST stack describes it: an
`lsst.dax.apdb.ApdbConfig` read from a file, a URI or an APDB index label
(``label:NAME`` with ``DAX_APDB_INDEX_URI``), or one built here from an SQLite
file or a PostgreSQL URL with a schema (``namespace``) and a table ``prefix``.
lsst-dax-apdb opens the database: it checks that an APDB exists in that schema
with that prefix and what schema version it has, and it makes the database
engine, which takes passwords from ``LSST_DB_AUTH`` / ``~/.lsst/db-auth.yaml``
(`lsst.utils.db_auth.DbAuth`) and the connection options of the
configuration.

lsst-dax-apdb answers questions of Prompt Processing (sources of given
DiaObjects, of a sky region); cutouts need a different selection (visit range,
time window, detectors, bands, reliability).  `ApdbDiaSourceReader` pushes that
selection into one SQL query on the APDB's ``DiaSource`` table (named and
placed as the configuration says) and reads the result page by page, in
(visit, detector, diaSourceId) order, so that no more than one page is ever in
memory.  The instrument is read from the APDB's ``metadata`` table.
"""

from __future__ import annotations

__all__ = (
    "DEFAULT_POSTGRES_URL",
    "ApdbDiaSourceReader",
    "DiaSourceSelection",
    "make_apdb_config",
    "postgres_url",
)

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .sources import SourceTableError

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

    def _bounds(self) -> list[tuple[str, str, Any]]:
        """``(column, operator, value)`` of each active condition."""
        bounds: list[tuple[str, str, Any]] = []
        # Plain Python numbers: database drivers do not all take numpy's.
        for column, kind, low, high in (
            ("visit", int, self.visit_min, self.visit_max),
            ("midpointMjdTai", float, self.mjd_min, self.mjd_max),
            ("reliability", float, self.reliability_min, self.reliability_max),
        ):
            if low is not None:
                bounds.append((column, ">=", kind(low)))
            if high is not None:
                bounds.append((column, "<=", kind(high)))
        if self.detectors:
            bounds.append(("detector", "in", tuple(int(d) for d in self.detectors)))
        if self.bands:
            bounds.append(("band", "in", tuple(str(b) for b in self.bands)))
        return bounds

    @property
    def columns(self) -> list[str]:
        """Columns the selection needs."""
        return list(dict.fromkeys(column for column, _, _ in self._bounds()))

    def describe(self) -> str:
        """The selection in words, for messages (``all`` when empty)."""
        parts = [
            f"{column} {op} {list(value) if isinstance(value, tuple) else value}"
            for column, op, value in self._bounds()
        ]
        return ", ".join(parts) if parts else "all"

    def where_clauses(self, table: Any) -> list[Any]:
        """SQLAlchemy conditions on ``table`` (a `sqlalchemy.Table`)."""
        clauses = []
        for column, op, value in self._bounds():
            col = table.columns[column]
            clauses.append(col.in_(value) if op == "in" else (col >= value if op == ">=" else col <= value))
        return clauses

    def apply(self, frame: pd.DataFrame, origin: str = "DiaSource table") -> pd.DataFrame:
        """Rows of ``frame`` inside the selection.

        Raises
        ------
        SourceTableError
            Raised when the selection needs a column ``frame`` lacks.

        """
        _require_columns(self, frame.columns, origin)
        keep = np.ones(len(frame), dtype=bool)
        for column, op, value in self._bounds():
            values = frame[column]
            if op == "in":
                keep &= values.isin(value).to_numpy()
            elif op == ">=":
                keep &= (values >= value).to_numpy()
            else:
                keep &= (values <= value).to_numpy()
        return frame[keep]


def _require_columns(selection: DiaSourceSelection, columns: Sequence[str], origin: str) -> None:
    missing = [column for column in selection.columns if column not in columns]
    if missing:
        raise SourceTableError(
            f"{origin}: cannot select on {', '.join(missing)}: no such column "
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
        PostgreSQL schema of the APDB tables (overrides the configuration's).
    prefix : `str`, optional
        Table-name prefix (overrides the configuration's).

    Returns
    -------
    config : `lsst.dax.apdb.ApdbConfig`
        The configuration (exactly one of the three sources must be given).

    Raises
    ------
    SourceTableError
        Raised when the configuration cannot be read or the SQLite file does
        not exist.

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
            raise SourceTableError(f"Cannot read APDB configuration {config_uri}: {error}") from error
        updates = {
            key: value for key, value in (("namespace", namespace), ("prefix", prefix)) if value is not None
        }
        if updates:
            if not isinstance(config, ApdbSqlConfig):
                raise SourceTableError(
                    f"APDB configuration {config_uri}: namespace and prefix apply to SQL APDBs only."
                )
            config = config.model_copy(update=updates)
        return config
    if sqlitefile:
        path = Path(sqlitefile)
        if not path.is_file():
            raise SourceTableError(f"APDB file {path} does not exist.")
        db_url = f"sqlite:///{path.absolute()}"
    assert db_url is not None
    return ApdbSqlConfig(db_url=db_url, namespace=namespace or None, prefix=prefix or "")


def _describe_config(config: Any) -> str:
    """Where an APDB is, for messages (without any password)."""
    import sqlalchemy

    url = getattr(config, "db_url", None)
    if url is None:
        hosts = ",".join(getattr(config, "contact_points", ()) or ())
        return f"Cassandra APDB {hosts}/{getattr(config, 'keyspace', '')}"
    try:
        shown = sqlalchemy.make_url(url).render_as_string(hide_password=True)
    except Exception:
        shown = url
    where = [f"schema {config.namespace!r}" if config.namespace else ""]
    if config.prefix:
        where.append(f"table prefix {config.prefix!r}")
    where = [w for w in where if w]
    return f"APDB {shown}" + (f" ({', '.join(where)})" if where else "")


class ApdbDiaSourceReader:
    """Selected DiaSources of one APDB, page by page.

    Parameters
    ----------
    config : `lsst.dax.apdb.ApdbConfig`
        Configuration of the APDB (see `make_apdb_config`).

    Raises
    ------
    SourceTableError
        Raised when the APDB cannot be opened: no APDB in that schema with
        that prefix, a refused connection or password, a Cassandra APDB
        without the Cassandra driver.  The message says where the APDB was
        looked for.

    """

    def __init__(self, config: Any) -> None:
        self.config = config
        self.description = _describe_config(config)
        if getattr(config, "db_url", None) is None:
            self._refuse_cassandra()
        self._engine, self._table, metadata = self._open_sql()
        self.instrument = metadata.get(INSTRUMENT_KEY)
        """Instrument name from the APDB ``metadata`` table (`None` if absent)."""

    @classmethod
    def from_uri(cls, uri: str, **kwargs: Any) -> ApdbDiaSourceReader:
        """Reader of the APDB configured at ``uri``.

        Parameters
        ----------
        uri : `str`
            Configuration file, URI or ``label:NAME``.
        **kwargs
            ``namespace`` and ``prefix`` overrides (see `make_apdb_config`).

        Returns
        -------
        reader : `ApdbDiaSourceReader`
            The reader.

        """
        return cls(make_apdb_config(config_uri=uri, **kwargs))

    def _refuse_cassandra(self) -> None:
        from lsst.dax.apdb.cassandra import apdbCassandra

        if not apdbCassandra.CASSANDRA_IMPORTED:
            raise SourceTableError(
                f"{self.description}: reading a Cassandra APDB needs the Python package "
                "'cassandra-driver' (module 'cassandra'), which is not installed; "
                "install it with: pip install cassandra-driver"
            )
        raise SourceTableError(
            f"{self.description}: selecting DiaSources by visit, time, detector and band is implemented "
            "for SQL APDBs (SQLite, PostgreSQL); export the sources from Cassandra to a catalog file "
            "and pass it with --catalog."
        )

    def _open_sql(self) -> tuple[Any, Any, Any]:
        import sqlalchemy
        from lsst.dax.apdb import Apdb, ApdbTables, IncompatibleVersionError
        from lsst.dax.apdb.sql import ApdbSql
        from lsst.dax.apdb.sql.apdbMetadataSql import ApdbMetadataSql

        config = self.config
        try:
            # lsst-dax-apdb checks that the APDB exists where the configuration
            # says and that its schema version is one it can use.
            Apdb.from_config(config)
        except IncompatibleVersionError as error:
            # Older APDBs are still read: DiaSource columns are reflected.
            _LOG.warning("%s: %s; reading its DiaSource table as it is.", self.description, error)
        except sqlalchemy.exc.NoSuchTableError as error:
            raise SourceTableError(
                f"{self.description}: no APDB there (table {error} not found); check the schema "
                "(namespace) and the table prefix."
            ) from None
        except sqlalchemy.exc.SQLAlchemyError as error:
            raise SourceTableError(f"{self.description}: cannot connect: {_first_line(error)}") from None
        except Exception as error:
            raise SourceTableError(f"{self.description}: cannot open: {_first_line(error)}") from error
        # The stack's engine for this configuration: credentials from the
        # db-auth file, connection options, SQLite opened read-write only.
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
        return engine, source_table, ApdbMetadataSql(engine, metadata_table)

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def __enter__(self) -> ApdbDiaSourceReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _where(self, selection: DiaSourceSelection) -> list[Any]:
        _require_columns(selection, list(self._table.columns.keys()), self.description)
        return selection.where_clauses(self._table)

    def count(self, selection: DiaSourceSelection = DiaSourceSelection()) -> int:
        """Number of DiaSources in ``selection``.

        Parameters
        ----------
        selection : `DiaSourceSelection`, optional
            Which sources (default: all).

        Returns
        -------
        count : `int`
            Number of sources, counted by the database.

        """
        import sqlalchemy

        query = sqlalchemy.select(sqlalchemy.func.count()).select_from(self._table)
        query = query.where(*self._where(selection))
        with self._engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

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
            query = query.order_by(*order).limit(page_size)
            try:
                with self._engine.connect() as connection:
                    frame = pd.read_sql_query(query, connection)
            except sqlalchemy.exc.SQLAlchemyError as error:
                raise SourceTableError(
                    f"{self.description}: cannot read DiaSources: {_first_line(error)}"
                ) from None
            if frame.empty:
                return
            if self.instrument is not None:
                frame["instrument"] = self.instrument
            tail = frame.iloc[-1]
            last = tuple(int(tail[column]) for column in ORDER_COLUMNS)
            yield frame
            if len(frame) < page_size:
                return

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
        frame = pd.DataFrame(columns=list(self._table.columns.keys()))
        if self.instrument is not None:
            frame["instrument"] = pd.Series(dtype=object)
        return frame


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
