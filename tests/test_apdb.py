"""DiaSources from APDBs through lsst-dax-apdb: a real PostgreSQL server with
an APDB in a named schema with a table prefix next to another APDB in
``public``, passwords from db-auth files, the demo's SQLite APDB, selection in
SQL and bounded pages.
"""

from __future__ import annotations

import math
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy

from lsst.analysis.ap.apdb import (
    ApdbDiaSourceReader,
    ApdbRegionReader,
    DiaSourceSelection,
    make_apdb_config,
    postgres_url,
)
from lsst.analysis.ap.demo import store_apdb_sources
from lsst.analysis.ap.sources import SourceTableError
from postgres_server import postgres_server

SCHEMA = "cutouts"
PREFIX = "cut_"
DECOY_OFFSET = 10**12
DECOY_INSTRUMENT = "DecoyCam"


def _write_db_auth(path: Path, url: str, password: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"- url: {url}\n  password: {password}\n")
    path.chmod(0o600)
    return path


def _apdb_cli(*args: str, env: dict[str, str]) -> None:
    cli = Path(sys.executable).parent / "apdb-cli"
    result = subprocess.run([str(cli), *args], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def postgres():
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def db_auth(postgres, tmp_path_factory):
    """A db-auth file with the server's password, named by LSST_DB_AUTH for
    the tests of this module."""
    path = _write_db_auth(tmp_path_factory.mktemp("auth") / "db-auth.yaml", postgres.url(), postgres.password)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LSST_DB_AUTH", str(path))
        yield path


@pytest.fixture(scope="module")
def pg_apdbs(postgres, db_auth, demo_repo, demo_sources, tmp_path_factory):
    """Two APDBs made by ``apdb-cli create-sql`` in one database: the demo's
    sources in schema ``cutouts`` with prefix ``cut_``, other sources (other
    ids, another instrument) in ``public``.  The configuration files hold no
    password: it comes from the db-auth file.
    """
    from lsst.dax.apdb import Apdb

    root = tmp_path_factory.mktemp("apdb-configs")
    env = dict(os.environ, LSST_DB_AUTH=str(db_auth))
    named = root / "named.yaml"
    public = root / "public.yaml"
    # The stack writes through psycopg2 (with psycopg 3, lsst-dax-apdb's
    # DiaObject insert sends NULL validity ends as text under pandas 3).
    url = postgres.url().replace("postgresql://", "postgresql+psycopg2://")
    _apdb_cli("create-sql", url, str(named), "--namespace", SCHEMA, "--prefix", PREFIX, env=env)
    _apdb_cli("create-sql", url, str(public), env=env)
    store_apdb_sources(Apdb.from_uri(named), demo_sources, demo_repo.spec.instrument)
    decoys = demo_sources[demo_sources["visit"] == demo_sources["visit"].min()].copy()
    decoys["diaSourceId"] += DECOY_OFFSET
    decoys["diaObjectId"] += DECOY_OFFSET
    decoys["band"] = "g"
    store_apdb_sources(Apdb.from_uri(public), decoys, DECOY_INSTRUMENT)
    return {"named": named, "public": public, "decoy_ids": set(decoys["diaSourceId"])}


def _ids(frame: pd.DataFrame) -> set[int]:
    return set(frame["diaSourceId"].astype(int))


def test_named_schema_and_prefix_give_that_apdbs_sources(pg_apdbs, demo_sources, demo_repo):
    with ApdbDiaSourceReader.from_uri(str(pg_apdbs["named"])) as reader:
        frame = reader.read()
        assert reader.count() == len(demo_sources)
        assert reader.instrument == demo_repo.spec.instrument
    assert _ids(frame) == _ids(demo_sources)
    assert set(frame["instrument"]) == {demo_repo.spec.instrument}
    # The APDB columns come back with their values.
    merged = frame.merge(demo_sources, on="diaSourceId", suffixes=("", "_demo"))
    assert (merged["visit"] == merged["visit_demo"]).all()
    assert (merged["ra"] - merged["ra_demo"]).abs().max() < 1e-9


def test_public_apdb_is_the_other_one(pg_apdbs):
    with ApdbDiaSourceReader.from_uri(str(pg_apdbs["public"])) as reader:
        frame = reader.read()
        assert reader.instrument == DECOY_INSTRUMENT
    assert _ids(frame) == pg_apdbs["decoy_ids"]


def test_namespace_and_prefix_from_the_command_line_options(postgres, pg_apdbs, demo_sources):
    config = make_apdb_config(db_url=postgres_url(postgres.url()), namespace=SCHEMA, prefix=PREFIX)
    with ApdbDiaSourceReader(config) as reader:
        assert _ids(reader.read()) == _ids(demo_sources)
    # The original command's form of the URL: no scheme.
    bare = postgres.url().removeprefix("postgresql://")
    assert postgres_url(bare) == postgres.url()


@pytest.mark.parametrize(
    ("namespace", "prefix"),
    [("nowhere", PREFIX), (SCHEMA, ""), (None, PREFIX)],
)
def test_no_apdb_where_looked_is_an_error_not_another_apdb(postgres, pg_apdbs, namespace, prefix):
    config = make_apdb_config(db_url=postgres.url(), namespace=namespace, prefix=prefix)
    with pytest.raises(SourceTableError) as error:
        ApdbDiaSourceReader(config)
    message = str(error.value)
    assert "no APDB there" in message
    assert postgres.password not in message
    if namespace:
        assert f"schema {namespace!r}" in message
    if prefix:
        assert f"prefix {prefix!r}" in message


def test_password_comes_from_the_db_auth_file(postgres, pg_apdbs, demo_sources, tmp_path, monkeypatch):
    # No credentials anywhere: the server refuses, and the error says where.
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("LSST_DB_AUTH", raising=False)
    monkeypatch.delenv("LSST_DB_AUTH_CREDENTIALS", raising=False)
    with pytest.raises(SourceTableError, match="cannot connect.*password"):
        ApdbDiaSourceReader.from_uri(str(pg_apdbs["named"]))
    # A wrong password in the file is used, and refused.
    wrong = _write_db_auth(tmp_path / "wrong.yaml", postgres.url(), "not-the-password")
    monkeypatch.setenv("LSST_DB_AUTH", str(wrong))
    with pytest.raises(SourceTableError, match="password authentication failed"):
        ApdbDiaSourceReader.from_uri(str(pg_apdbs["named"]))
    # The stack's default place, ~/.lsst/db-auth.yaml.
    monkeypatch.delenv("LSST_DB_AUTH")
    _write_db_auth(home / ".lsst" / "db-auth.yaml", postgres.url(), postgres.password)
    with ApdbDiaSourceReader.from_uri(str(pg_apdbs["named"])) as reader:
        assert _ids(reader.read()) == _ids(demo_sources)


def _statements(engine: sqlalchemy.engine.Engine) -> list[str]:
    seen: list[str] = []
    sqlalchemy.event.listen(
        engine, "before_cursor_execute", lambda conn, cursor, statement, *args: seen.append(statement)
    )
    return seen


def test_selection_is_done_by_the_database(pg_apdbs, demo_sources):
    visits = sorted(demo_sources["visit"].unique())
    mjds = sorted(demo_sources["midpointMjdTai"].unique())
    selection = DiaSourceSelection(
        visit_min=visits[0],
        visit_max=visits[1],
        mjd_min=mjds[1] - 1e-6,
        mjd_max=mjds[-1],
        detectors=(1,),
        bands=("r", "i"),
        reliability_min=0.3,
        reliability_max=0.9,
    )
    expected = demo_sources[
        (demo_sources["visit"] >= visits[0])
        & (demo_sources["visit"] <= visits[1])
        & (demo_sources["midpointMjdTai"] >= mjds[1] - 1e-6)
        & (demo_sources["detector"] == 1)
        & (demo_sources["reliability"] >= 0.3)
        & (demo_sources["reliability"] <= 0.9)
    ]
    assert 0 < len(expected) < len(demo_sources) / 4
    with ApdbDiaSourceReader.from_uri(str(pg_apdbs["named"])) as reader:
        statements = _statements(reader._engine)
        frame = reader.read(selection)
        assert reader.count(selection) == len(expected)
    assert _ids(frame) == _ids(expected)
    select = next(s for s in statements if s.lstrip().upper().startswith("SELECT") and "LIMIT" in s)
    assert f'"{SCHEMA}"."{PREFIX}DiaSource"' in select or f'{SCHEMA}."{PREFIX}DiaSource"' in select
    for column in ("visit", "detector", "midpointMjdTai", "band", "reliability"):
        assert f'"{column}"' in select.split("WHERE", 1)[1] or f"{column} " in select.split("WHERE", 1)[1]
    # The same selection on a table in memory gives the same rows.
    assert _ids(selection.apply(demo_sources)) == _ids(expected)


def test_band_selection(pg_apdbs, demo_sources):
    with ApdbDiaSourceReader.from_uri(str(pg_apdbs["named"])) as reader:
        assert reader.count(DiaSourceSelection(bands=("g",))) == 0
        assert reader.count(DiaSourceSelection(bands=("r",))) == len(demo_sources)
    with ApdbDiaSourceReader.from_uri(str(pg_apdbs["public"])) as reader:
        assert _ids(reader.read(DiaSourceSelection(bands=("g",)))) == pg_apdbs["decoy_ids"]


def test_pages_are_bounded_and_cover_everything_once(pg_apdbs, demo_sources):
    page_size = 7
    with ApdbDiaSourceReader.from_uri(str(pg_apdbs["named"])) as reader:
        statements = _statements(reader._engine)
        pages = list(reader.pages(DiaSourceSelection(), page_size))
    assert len(pages) == math.ceil(len(demo_sources) / page_size)
    assert all(len(page) <= page_size for page in pages)
    assert all(f"LIMIT {page_size}" in s or "LIMIT %(param" in s for s in statements if "LIMIT" in s)
    frame = pd.concat(pages, ignore_index=True)
    assert frame["diaSourceId"].is_unique
    assert _ids(frame) == _ids(demo_sources)
    keys = list(zip(frame["visit"], frame["detector"], frame["diaSourceId"], strict=True))
    assert keys == sorted(keys)


def test_limit_is_the_first_page(pg_apdbs, demo_sources):
    with ApdbDiaSourceReader.from_uri(str(pg_apdbs["named"])) as reader:
        frame = reader.read(limit=5)
    first = demo_sources.sort_values(["visit", "detector", "diaSourceId"]).iloc[:5]
    assert list(frame["diaSourceId"]) == list(first["diaSourceId"])


def test_demo_sqlite_apdb(demo_repo, demo_sources):
    with ApdbDiaSourceReader(make_apdb_config(sqlitefile=demo_repo.apdb_file)) as reader:
        assert reader.instrument == demo_repo.spec.instrument
        assert _ids(reader.read()) == _ids(demo_sources)
    with ApdbDiaSourceReader.from_uri(str(demo_repo.apdb_config)) as reader:
        assert reader.count(DiaSourceSelection(detectors=(0,))) == int((demo_sources["detector"] == 0).sum())


def test_rubin_sized_object_ids_with_nulls_are_read_exactly(demo_repo, tmp_path):
    """diaObjectId values near 2**61 in a column with some nulls: read as
    the same integers (pandas alone reads such a column as float64, which
    rounds neighbouring ids to one)."""
    path = tmp_path / "apdb.sqlite3"
    shutil.copy(demo_repo.apdb_file, path)
    base = 2**61 + 1
    with sqlite3.connect(path) as connection:
        connection.execute('UPDATE "DiaSource" SET "diaObjectId" = "diaObjectId" + ?', (base,))
        connection.execute(
            'UPDATE "DiaSource" SET "diaObjectId" = NULL WHERE "diaSourceId" IN '
            '(SELECT "diaSourceId" FROM "DiaSource" ORDER BY "diaSourceId" LIMIT 3)'
        )
        stored = dict(connection.execute('SELECT "diaSourceId", "diaObjectId" FROM "DiaSource"').fetchall())
    with ApdbDiaSourceReader(make_apdb_config(sqlitefile=path)) as reader:
        frame = reader.read()
    read = {
        int(k): (None if pd.isna(v) else int(v))
        for k, v in zip(frame["diaSourceId"], frame["diaObjectId"], strict=True)
    }
    assert read == stored
    assert sum(value is None for value in read.values()) == 3
    assert len({value for value in read.values() if value is not None}) > 1


def test_missing_sqlite_file(tmp_path):
    with pytest.raises(SourceTableError, match=r"APDB file .*nothing\.sqlite3 does not exist"):
        make_apdb_config(sqlitefile=tmp_path / "nothing.sqlite3")


def test_selection_on_a_column_the_table_lacks():
    frame = pd.DataFrame({"diaSourceId": [1], "visit": [1], "detector": [0], "ra": [0.0], "dec": [0.0]})
    with pytest.raises(SourceTableError, match="cannot select on 'reliability': no such column"):
        DiaSourceSelection(reliability_min=0.5).apply(frame, "catalog x.csv")


def test_region_reader_on_the_named_postgres_apdb(pg_apdbs, demo_repo, demo_sources):
    """lsst-dax-apdb's public region-and-time query (what a Cassandra APDB
    answers) on the APDB in schema ``cutouts`` with prefix ``cut_``: the
    demo's sources visit × detector, none of the decoys in ``public``."""
    from lsst.daf.butler import Butler

    butler = Butler.from_config(str(demo_repo.root))
    with ApdbRegionReader.from_uri(str(pg_apdbs["named"])) as reader:
        reader.locate(butler)
        pages = list(reader.pages(DiaSourceSelection(), 10))
        selected = reader.read(DiaSourceSelection(detectors=(0,), reliability_min=0.5))
    frame = pd.concat(pages, ignore_index=True)
    assert _ids(frame) == _ids(demo_sources)
    assert not _ids(frame) & pg_apdbs["decoy_ids"]
    keys = list(zip(frame["visit"], frame["detector"], frame["diaSourceId"], strict=True))
    assert keys == sorted(keys)
    assert all(len(page) <= 10 for page in pages)
    expected = demo_sources[(demo_sources["detector"] == 0) & (demo_sources["reliability"] >= 0.5)]
    assert 0 < len(expected) < len(demo_sources)
    assert _ids(selected) == _ids(expected)


# The command on PostgreSQL APDBs: cutouts from the demo Butler --------------------


def _command(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "plotImageSubtractionCutouts"
    if not script.exists():  # EUPS: bin/ made by scons, on PATH
        script = Path(shutil.which(script.name) or script)
    return subprocess.run(
        [str(script), *map(str, args)], capture_output=True, text=True, timeout=600, env=env
    )


def _pngs(output: Path) -> set[int]:
    return {int(path.stem) for path in (output / "images").rglob("*.png")}


def test_command_postgres_options_select_and_draw(
    postgres, pg_apdbs, db_auth, demo_repo, demo_sources, tmp_path
):
    """--postgres_url, --namespace and --apdb-prefix name the APDB; the
    selection options choose its sources; the password comes from
    LSST_DB_AUTH; the PNGs drawn are those of the selected sources."""
    visits = sorted(demo_sources["visit"].unique())
    expected = demo_sources[(demo_sources["visit"] >= visits[1]) & (demo_sources["detector"] == 0)]
    output = tmp_path / "out"
    process = _command(
        demo_repo.root,
        output,
        "--postgres_url",
        postgres.url().removeprefix("postgresql://"),
        "--namespace",
        SCHEMA,
        "--apdb-prefix",
        PREFIX,
        "--visit-min",
        visits[1],
        "--detector",
        0,
        "--limit",
        100,
        "-c",
        "whole_read_min_sources=1",
        env=dict(os.environ, LSST_DB_AUTH=str(db_auth)),
    )
    assert process.returncode == 0, process.stderr
    assert _pngs(output) == _ids(expected)
    assert f"{len(expected)} DiaSource(s) selected (visit >= {visits[1]}, detector in [0])" in process.stderr
    records = pd.read_csv(output / "records.csv")
    assert set(records["instrument"]) == {demo_repo.spec.instrument}


def test_command_refuses_an_apdb_of_another_instrument(pg_apdbs, db_auth, demo_repo, tmp_path):
    process = _command(
        demo_repo.root,
        tmp_path / "out",
        "--apdb-config",
        pg_apdbs["public"],
        env=dict(os.environ, LSST_DB_AUTH=str(db_auth)),
    )
    assert process.returncode == 2
    lines = process.stderr.strip().splitlines()
    assert "Traceback" not in process.stderr
    assert lines[-1] == (
        f"plotImageSubtractionCutouts: {ApdbDiaSourceReader.from_uri(str(pg_apdbs['public'])).description} "
        f"holds DiaSources of instrument {DECOY_INSTRUMENT!r}, which Butler repository {demo_repo.root} "
        f"does not have (it has: {demo_repo.spec.instrument})."
    )
    assert not (tmp_path / "out" / "images").exists()


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_objects_are_selected_and_counted_by_the_database(
    database, postgres, db_auth, demo_repo, demo_sources, tmp_path
):
    """The sources of a list of DiaObjects and of a declination band, and
    the objects with the most sources, are asked of the database.  A list
    of 40,000 ids, ids beyond the column's signed 64 bits and sources of no
    object (``diaObjectId`` 0 or null) are handled."""
    from lsst.dax.apdb import Apdb

    if database == "postgres":
        config_file = tmp_path / "objects.yaml"
        url = postgres.url().replace("postgresql://", "postgresql+psycopg2://")
        env = dict(os.environ, LSST_DB_AUTH=str(db_auth))
        _apdb_cli("create-sql", url, str(config_file), "--namespace", "objects", env=env)
        store_apdb_sources(Apdb.from_uri(config_file), demo_sources, demo_repo.spec.instrument)
        config = make_apdb_config(config_uri=str(config_file))
    else:
        path = tmp_path / "apdb.sqlite3"
        shutil.copy(demo_repo.apdb_file, path)
        config = make_apdb_config(sqlitefile=path)
    counts = demo_sources.groupby("diaObjectId").size()
    # Three objects lose their sources to "no object" (0 and one null): more
    # than any object has.
    top = [int(i) for i in counts.sort_values(ascending=False, kind="stable").index[:4]]
    lost = [top[0], top[2], top[3]]
    table = demo_sources.copy()
    table.loc[table["diaObjectId"].isin(lost), "diaObjectId"] = 0
    assert (table["diaObjectId"] == 0).sum() - 1 > counts.max()
    wanted = [top[1], int(counts.index[-1])]
    listed = (*wanted, *range(10**12, 10**12 + 40_000), 2**64 - 1, -(2**63))
    with ApdbDiaSourceReader(config) as reader:
        column = reader._table.columns
        with reader._engine.begin() as connection:
            query = sqlalchemy.select(column.diaSourceId).where(column.diaObjectId.in_(lost))
            first, *rest = connection.execute(query).scalars().all()
            for ids, value in (([first], None), (rest, 0)):
                update = sqlalchemy.update(reader._table).where(column.diaSourceId.in_(ids))
                connection.execute(update.values(diaObjectId=value))
        statements = _statements(reader._engine)
        frame = reader.read(DiaSourceSelection(dia_object_ids=listed))
        near = reader.read(DiaSourceSelection(dec_min=2.5, dec_max=2.51))
        most = reader.most_observed_objects(3)
    assert _ids(frame) == _ids(table[table["diaObjectId"].isin(wanted)])
    assert _ids(near) == _ids(table[table["dec"].between(2.5, 2.51)]) and 0 < len(near) < len(table)
    ordered = (
        table[table["diaObjectId"] != 0]
        .groupby("diaObjectId")
        .size()
        .sort_values(ascending=False, kind="stable")
    )
    assert most == [int(i) for i in ordered.index[:3]]
    assert all("WHERE" in s for s in statements if "SELECT" in s and "DiaSource" in s)


def test_misspelt_configuration_keys_are_named(pg_apdbs, tmp_path, monkeypatch, caplog):
    """lsst-dax-apdb ignores a key it does not know: with ``namespase:``
    the APDB of the default schema was looked for in silence.
    Each such key is now named, with the key it resembles, for a file and
    for an index label; a correct file gives no warning."""
    import logging

    import yaml

    text = Path(pg_apdbs["named"]).read_text()
    data = yaml.safe_load(text)
    schema = data.pop("namespace")
    data["namespase"] = schema
    data["connection_config"] = {**data.get("connection_config", {}), "connection_timout": 5}
    misspelt = tmp_path / "apdb.yaml"
    misspelt.write_text(yaml.safe_dump(data))
    index = tmp_path / "index.yaml"
    index.write_text(yaml.safe_dump({"survey": str(misspelt)}))
    monkeypatch.setenv("DAX_APDB_INDEX_URI", str(index))
    for uri in (str(misspelt), "label:survey"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="lsst.analysis.ap.apdb"):
            assert make_apdb_config(config_uri=uri).namespace is None  # the default schema
        warned = [record.getMessage() for record in caplog.records]
        assert len(warned) == 2, warned
        assert warned[0].startswith(
            f"APDB configuration {uri}: unknown key 'namespase' (did you mean 'namespace'?) is ignored; "
            "the keys of ApdbSqlConfig are: "
        )
        assert warned[1].startswith(
            f"APDB configuration {uri}: unknown key 'connection_config.connection_timout' (did you mean "
            "'connection_timeout'?) is ignored"
        )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lsst.analysis.ap.apdb"):
        make_apdb_config(config_uri=str(pg_apdbs["named"]))
    assert not caplog.records
    # A misspelt key that the configuration needs: one line, not pydantic's
    # report of several.
    data["db_urll"] = data.pop("db_url")
    misspelt.write_text(yaml.safe_dump(data))
    with pytest.raises(SourceTableError) as caught:
        make_apdb_config(config_uri=str(misspelt))
    assert str(caught.value) == (
        f"Cannot read APDB configuration {misspelt}: db_url: Field required; unknown key 'db_urll' (did "
        "you mean 'db_url'?); unknown key 'namespase' (did you mean 'namespace'?); unknown key "
        "'connection_config.connection_timout' (did you mean 'connection_timeout'?)"
    )


def test_a_damaged_apdb_row_is_named_by_its_id(demo_repo, tmp_path, capsys):
    """A value that is not an integer in an id column of an APDB row names
    the row's diaSourceId: its position in the rows read (ordered by visit
    and detector) says nothing to a user of the database."""
    from lsst.analysis.ap.cli import main

    path = tmp_path / "apdb.sqlite3"
    shutil.copy(demo_repo.apdb_file, path)
    with sqlite3.connect(path) as connection:
        (damaged,) = connection.execute('SELECT "diaSourceId" FROM "DiaSource" LIMIT 1 OFFSET 40').fetchone()
        connection.execute('UPDATE "DiaSource" SET detector = \'one\' WHERE "diaSourceId" = ?', (damaged,))
    argv = [str(demo_repo.root), str(tmp_path / "out"), "--collections", demo_repo.collection, "--all"]
    assert main([*argv, "--sqlitefile", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    (line,) = [line for line in err if line.startswith("plotImageSubtractionCutouts:")]
    assert line.startswith(
        f"plotImageSubtractionCutouts: APDB sqlite:///{path}: column 'detector' must hold integers: row "
    )
    assert line.endswith(f": 'one' is not an integer (diaSourceId {damaged}).")


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_sources_near_a_position_are_read_through_the_pixel_index(
    database, pg_apdbs, demo_repo, demo_sources
):
    """``plotDiaObjectSequences --ra/--dec`` on an APDB asks for the
    DiaSources in the sky pixels that cover the circle, by the indexed
    ``pixelId`` lsst-dax-apdb gives each DiaSource: the DiaSource table is
    not scanned.  The sources found are those within the radius, at
    objects' positions, between two objects and where there is none."""
    from lsst.analysis.ap.geometry import sky_separation_arcsec

    if database == "postgres":
        config = make_apdb_config(config_uri=str(pg_apdbs["named"]))
    else:
        config = make_apdb_config(sqlitefile=demo_repo.apdb_file)
    first = demo_sources.drop_duplicates("diaObjectId").sort_values("diaObjectId")
    a, b = first.iloc[0], first.iloc[1]
    positions = [(float(r["ra"]), float(r["dec"]), 0.5) for _, r in first.head(6).iterrows()]
    # Midway between two objects, a radius that reaches both.
    gap = float(sky_separation_arcsec(a["ra"], a["dec"], float(b["ra"]), float(b["dec"])))
    positions.append(((a["ra"] + b["ra"]) / 2, (a["dec"] + b["dec"]) / 2, gap / 2 + 1.0))
    positions.append((float(a["ra"]) + 1.0, float(a["dec"]), 1.0))  # nothing there
    seen: list[tuple[str, object]] = []

    def listen(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", listen)
    try:
        with ApdbDiaSourceReader(config) as reader:
            for ra, dec, radius in positions:
                found = reader.sources_near(ra, dec, radius)
                distance = sky_separation_arcsec(demo_sources["ra"], demo_sources["dec"], ra, dec)
                assert _ids(found) == _ids(demo_sources[distance <= radius]), (ra, dec, radius)
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", listen)
    assert len(found) == 0 and len(_ids(demo_sources[distance <= 1e9])) > 2
    reads = [(s, p) for s, p in seen if s.lstrip().upper().startswith("SELECT") and 'DiaSource"' in s]
    assert len(reads) == len(positions)
    for statement, _ in reads:
        where = statement.split("WHERE", 1)[1]
        assert '"pixelId" BETWEEN' in where and "ORDER BY" not in where, statement
    if database == "sqlite":
        # The plans of the statements sent: the table is read by its index.
        with sqlite3.connect(demo_repo.apdb_file) as connection:
            for statement, parameters in reads:
                plan = [row[-1] for row in connection.execute("EXPLAIN QUERY PLAN " + statement, parameters)]
                assert not any(step.startswith("SCAN") for step in plan), plan
                assert any("USING INDEX IDX_DiaSource_pixelId" in step for step in plan), plan


def test_sources_near_a_position_across_ra_zero_and_at_a_pole(demo_repo, tmp_path):
    """Sources on both sides of RA 0/360 and around a pole, with the
    ``pixelId`` lsst-dax-apdb would give them, are all found, and the
    database reads the table by its index."""
    from lsst.sphgeom import HtmPixelization, LonLat, UnitVector3d

    path = tmp_path / "apdb.sqlite3"
    shutil.copy(demo_repo.apdb_file, path)
    pixels = HtmPixelization(20)
    moved = {0: (359.99995, 1.0), 1: (0.00005, 1.0), 2: (10.0, 89.99999), 3: (190.0, 89.99999)}
    with sqlite3.connect(path) as connection:
        ids = [row[0] for row in connection.execute('SELECT "diaSourceId" FROM "DiaSource" ORDER BY 1')]
        for k, (ra, dec) in moved.items():
            pixel = pixels.index(UnitVector3d(LonLat.fromDegrees(ra, dec)))
            connection.execute(
                'UPDATE "DiaSource" SET ra = ?, dec = ?, "pixelId" = ? WHERE "diaSourceId" = ?',
                (ra, dec, pixel, ids[k]),
            )
    with ApdbDiaSourceReader(make_apdb_config(sqlitefile=path)) as reader:
        sent: list[tuple[str, object]] = []
        sqlalchemy.event.listen(
            reader._engine, "before_cursor_execute", lambda c, cur, st, params, *a: sent.append((st, params))
        )
        assert _ids(reader.sources_near(0.0, 1.0, 0.5)) == {ids[0], ids[1]}
        assert _ids(reader.sources_near(359.99999, 1.0, 0.5)) == {ids[0], ids[1]}
        assert _ids(reader.sources_near(0.0, 90.0, 0.1)) == {ids[2], ids[3]}
        assert _ids(reader.sources_near(0.0, 1.0, 0.1)) == set()
    with sqlite3.connect(path) as connection:
        plan = [row[-1] for row in connection.execute("EXPLAIN QUERY PLAN " + sent[-1][0], sent[-1][1])]
    assert not any(step.startswith("SCAN") for step in plan), plan


def test_sources_near_a_position_in_an_apdb_of_an_older_schema(demo_repo, demo_sources, tmp_path, caplog):
    """An APDB whose schema version lsst-dax-apdb refuses is still read
    (its DiaSource table as it is): ``--ra/--dec`` then asks for the
    declination band of the radius, and finds the same sources."""
    from lsst.analysis.ap.geometry import sky_separation_arcsec

    path = tmp_path / "old.sqlite3"
    shutil.copy(demo_repo.apdb_file, path)
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE metadata SET value = '0.1.0' WHERE name = 'version:schema'")
    target = demo_sources.iloc[3]
    ra, dec = float(target["ra"]), float(target["dec"])
    with ApdbDiaSourceReader(make_apdb_config(sqlitefile=path)) as reader:
        statements = _statements(reader._engine)
        found = reader.sources_near(ra, dec, 0.5)
    distance = sky_separation_arcsec(demo_sources["ra"], demo_sources["dec"], ra, dec)
    assert _ids(found) == _ids(demo_sources[distance <= 0.5]) and len(found)
    (read,) = [s for s in statements if s.lstrip().upper().startswith("SELECT") and 'DiaSource"' in s]
    where = read.split("WHERE", 1)[1]
    assert "dec >=" in where and "pixelId" not in where
    assert "reading its DiaSource table as it is" in caplog.text


@pytest.mark.parametrize(
    "ra, dec, radius", [(150.0, 2.5, -1.0), (150.0, 2.5, math.nan), (math.inf, 2.5, 1.0), (150.0, 91.0, 1.0)]
)
def test_sources_near_refuses_a_radius_or_position_that_selects_nothing(demo_repo, ra, dec, radius):
    """A negative or NaN radius covers no sky pixel: the query had no
    condition left and read the whole table.  Such arguments are refused
    before any query."""
    with ApdbDiaSourceReader(make_apdb_config(sqlitefile=demo_repo.apdb_file)) as reader:
        statements = _statements(reader._engine)
        with pytest.raises(ValueError, match="sources_near needs a finite position"):
            reader.sources_near(ra, dec, radius)
    assert not statements
