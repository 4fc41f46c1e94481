"""DiaSources from an APDB: an SQLite file or an lsst-dax-apdb configuration
of an SQL APDB.
"""

from __future__ import annotations

__all__ = ("load_apdb_sources",)

from pathlib import Path
from typing import Any

import pandas as pd

from .sources import SourceTableError


def _apdb_sql_url(sqlitefile: str | Path | None, apdb_config: str | None) -> str:
    if sqlitefile is not None:
        sqlitefile = Path(sqlitefile)
        if not sqlitefile.exists():
            raise SourceTableError(f"APDB file {sqlitefile} does not exist.")
        return f"sqlite:///{sqlitefile.absolute()}"
    if apdb_config is None:
        raise SourceTableError("Give an APDB SQLite file or an APDB configuration.")
    from lsst.dax.apdb import ApdbConfig

    try:
        config = ApdbConfig.from_uri(apdb_config)
    except Exception as error:
        raise SourceTableError(f"Cannot read APDB configuration {apdb_config}: {error}") from error
    url = getattr(config, "db_url", None)
    if url is None:
        raise SourceTableError(
            f"APDB configuration {apdb_config} is not an SQL APDB; only SQL APDBs are read."
        )
    return url


def load_apdb_sources(
    *,
    sqlitefile: str | Path | None = None,
    apdb_config: str | None = None,
    limit: int | None = None,
    reliability_min: float | None = None,
    reliability_max: float | None = None,
) -> pd.DataFrame:
    """Read DiaSources from an APDB, ordered by ``diaSourceId``.

    Parameters
    ----------
    sqlitefile : `str` or `pathlib.Path`, optional
        Path of an SQLite APDB file.
    apdb_config : `str`, optional
        An lsst-dax-apdb configuration file or URI (SQL APDBs).
    limit : `int`, optional
        Return at most this many sources (after the reliability cut).
    reliability_min, reliability_max : `float`, optional
        Keep sources with reliability in this range.

    Returns
    -------
    sources : `pandas.DataFrame`
        The ``DiaSource`` rows, APDB column names.

    Raises
    ------
    SourceTableError
        Raised when the APDB cannot be found, configured or read; the message
        names it.

    """
    import sqlalchemy

    url = _apdb_sql_url(sqlitefile, apdb_config)
    where = []
    params: dict[str, Any] = {}
    if reliability_min is not None:
        where.append('"reliability" >= :rmin')
        params["rmin"] = reliability_min
    if reliability_max is not None:
        where.append('"reliability" <= :rmax')
        params["rmax"] = reliability_max
    query = 'SELECT * FROM "DiaSource"'
    if where:
        query += " WHERE " + " AND ".join(where)
    query += ' ORDER BY "diaSourceId"'
    if limit is not None:
        query += f" LIMIT {int(limit)}"
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            frame = pd.read_sql_query(sqlalchemy.text(query), connection, params=params)
    except Exception as error:
        raise SourceTableError(f"Cannot read DiaSources from APDB {url}: {error}") from error
    finally:
        engine.dispose()
    return frame
