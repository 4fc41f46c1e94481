"""DiaSources asked for by sky region and time (`ApdbRegionReader`), the only
way into a Cassandra APDB.

No Cassandra server can be installed here (see doc/lsst.analysis.ap/apdb.rst,
"Cassandra"), so the reader is run on real APDBs that answer the same public
lsst-dax-apdb call (`lsst.dax.apdb.Apdb.getDiaSources`): the demo's SQLite
APDB and PostgreSQL APDBs on a server the tests start.  The Cassandra part
proper is tested as far as it goes without a server: configuration files as
``apdb-cli create-cassandra`` writes them, the real driver refused by a closed
port, the driver missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from lsst.daf.butler import Butler
from lsst.sphgeom import LonLat, UnitVector3d

from lsst.analysis.ap.apdb import (
    ApdbDiaSourceReader,
    ApdbRegionReader,
    DiaSourceReader,
    DiaSourceSelection,
    VisitDetectorFootprint,
    butler_footprints,
    make_apdb_config,
    open_apdb_reader,
    paginate,
    search_region,
    sources_of_footprint,
)
from lsst.analysis.ap.sources import SourceTableError


def _ids(frame: pd.DataFrame) -> list[int]:
    return [int(i) for i in frame["diaSourceId"]]


def _expected(sources: pd.DataFrame, selection: DiaSourceSelection) -> pd.DataFrame:
    return selection.apply(sources).sort_values(["visit", "detector", "diaSourceId"])


@pytest.fixture(scope="module")
def butler(demo_repo):
    return Butler.from_config(str(demo_repo.root))


@pytest.fixture(scope="module")
def sqlite_config(demo_repo):
    return make_apdb_config(sqlitefile=demo_repo.apdb_file)


def _selections(sources: pd.DataFrame) -> list[DiaSourceSelection]:
    visits = sorted(sources["visit"].unique())
    mjds = sorted(sources["midpointMjdTai"].unique())
    return [
        DiaSourceSelection(),
        DiaSourceSelection(visit_min=visits[1], visit_max=visits[-2]),
        DiaSourceSelection(detectors=(1,), reliability_min=0.3, reliability_max=0.9),
        DiaSourceSelection(mjd_min=mjds[1], mjd_max=mjds[2]),
        DiaSourceSelection(bands=("r",), visit_min=visits[-1]),
        DiaSourceSelection(bands=("g",)),
    ]


# The region reader on the demo's SQLite APDB and Butler -------------------------


def test_region_reader_gives_what_the_sql_selection_gives(butler, sqlite_config, demo_sources):
    """Each selection, read visit × detector by region and time, gives exactly
    the sources (and order) that the same selection in pandas gives."""
    with ApdbRegionReader(sqlite_config) as reader:
        reader.locate(butler)
        for selection in _selections(demo_sources):
            frame = reader.read(selection)
            expected = _expected(demo_sources, selection)
            assert _ids(frame) == _ids(expected), selection.describe()
            if len(frame):
                assert set(frame["instrument"]) == {reader.instrument}
                merged = frame.merge(demo_sources, on="diaSourceId", suffixes=("", "_demo"))
                assert (merged["ra"] - merged["ra_demo"]).abs().max() < 1e-9
                assert (merged["visit"] == merged["visit_demo"]).all()
    # Some selections are empty, some not: the comparison above can fail.
    counts = [len(_expected(demo_sources, s)) for s in _selections(demo_sources)]
    assert 0 in counts and len(set(counts)) > 3


def test_region_reader_pages_are_bounded(butler, sqlite_config, demo_sources):
    with ApdbRegionReader(sqlite_config) as reader:
        reader.locate(butler)
        pages = list(reader.pages(DiaSourceSelection(), 5))
        first = reader.read(limit=3)
        assert reader.count(DiaSourceSelection(detectors=(0,))) == int((demo_sources["detector"] == 0).sum())
    assert [len(page) for page in pages[:-1]] == [5] * (len(pages) - 1)
    assert 0 < len(pages[-1]) <= 5
    frame = pd.concat(pages, ignore_index=True)
    assert frame["diaSourceId"].is_unique
    assert _ids(frame) == _ids(_expected(demo_sources, DiaSourceSelection()))
    assert _ids(first) == _ids(frame)[:3]


def test_region_reader_asks_one_region_per_visit_detector(butler, sqlite_config, demo_sources):
    """The APDB is asked once per selected visit × detector, for a region
    around that detector and a time around that visit only."""
    asked = []
    with ApdbRegionReader(sqlite_config) as reader:
        reader.locate(butler)
        apdb_get = reader._apdb.getDiaSources

        def recording(region, object_ids, visit_time, start_time=None):
            asked.append((region, visit_time.tai.mjd, start_time.tai.mjd))
            return apdb_get(region, object_ids, visit_time, start_time)

        reader._apdb.getDiaSources = recording
        selection = DiaSourceSelection(detectors=(1,))
        reader.read(selection)
        read_once = list(asked)
        # Counting reads once; the count of a selection is kept.
        expected = int((demo_sources["detector"] == 1).sum())
        assert reader.count(selection) == reader.count(selection) == expected
        assert len(asked) == 2 * len(read_once)
    asked = read_once
    pairs = demo_sources[demo_sources["detector"] == 1][["visit", "midpointMjdTai"]].drop_duplicates()
    assert len(asked) == len(pairs)
    for (region, end, start), mjd in zip(asked, sorted(pairs["midpointMjdTai"]), strict=True):
        assert start < mjd <= end
        assert end - start < 0.01
        # About one detector: far smaller than the sky, holds the detector.
        assert region.getOpeningAngle().asDegrees() < 0.5


def test_region_reader_needs_the_butler(sqlite_config):
    with ApdbRegionReader(sqlite_config) as reader:
        with pytest.raises(SourceTableError, match="read by sky region and time.*Butler repository"):
            reader.read()


def test_open_apdb_reader_chooses_by_configuration(sqlite_config, demo_repo):
    with open_apdb_reader(sqlite_config) as reader:
        assert isinstance(reader, ApdbDiaSourceReader)
    with DiaSourceReader.from_uri(str(demo_repo.apdb_config)) as reader:
        assert isinstance(reader, ApdbDiaSourceReader)
    with ApdbRegionReader.from_uri(str(demo_repo.apdb_config)) as reader:
        assert isinstance(reader, ApdbRegionReader)
        assert reader.instrument == demo_repo.spec.instrument


# Footprints from the Butler --------------------------------------------------------


def test_butler_footprints_follow_the_selection(butler, demo_repo, demo_sources):
    instrument = demo_repo.spec.instrument
    for selection in _selections(demo_sources):
        footprints = butler_footprints(butler, instrument, selection)
        expected = selection.apply(demo_sources)
        if selection.reliability_min is None:
            # Every visit × detector with selected sources is there.
            pairs = set(zip(expected["visit"], expected["detector"], strict=True))
            assert {(f.visit, f.detector) for f in footprints} >= pairs
        keys = [(f.visit, f.detector) for f in footprints]
        assert keys == sorted(set(keys))
        for footprint in footprints:
            assert selection.visit_min is None or footprint.visit >= selection.visit_min
            assert not selection.detectors or footprint.detector in selection.detectors
            assert not selection.bands or footprint.band in selection.bands
    assert butler_footprints(butler, instrument, DiaSourceSelection(bands=("g",))) == []
    everything = butler_footprints(butler, instrument)
    assert len(everything) == len(demo_sources[["visit", "detector"]].drop_duplicates())


def test_every_source_lies_in_its_search_region(butler, demo_repo, demo_sources):
    footprints = {(f.visit, f.detector): f for f in butler_footprints(butler, demo_repo.spec.instrument)}
    for row in demo_sources.itertuples():
        footprint = footprints[(row.visit, row.detector)]
        point = UnitVector3d(LonLat.fromDegrees(row.ra, row.dec))
        assert search_region(footprint.region).contains(point)
        assert footprint.mjd_begin - 1e-6 <= row.midpointMjdTai <= footprint.mjd_end + 1e-6
    # The padding is what it says: a point 20" off a detector corner is out.
    footprint = next(iter(footprints.values()))
    circle = search_region(footprint.region, pad_arcsec=0.0)
    wider = search_region(footprint.region, pad_arcsec=20.0)
    difference = wider.getOpeningAngle().asDegrees() - circle.getOpeningAngle().asDegrees()
    assert difference == pytest.approx(20.0 / 3600.0, rel=1e-6)


def test_footprint_time_overlap():
    footprint = VisitDetectorFootprint(1, 2, "r", 60000.5, 60000.5004, region=None)
    assert footprint.overlaps(None, None)
    assert footprint.overlaps(60000.5002, None)
    assert footprint.overlaps(None, 60000.5)
    assert not footprint.overlaps(60000.5005, None)
    assert not footprint.overlaps(None, 60000.4999)
    assert footprint.overlaps(60000.5005, None, pad_days=0.001)


# The pure steps --------------------------------------------------------------------


def test_sources_of_footprint_keeps_that_visit_and_detector_only():
    frame = pd.DataFrame(
        {
            "diaSourceId": [5, 3, 4, 9, 1],
            "visit": [10, 10, 10, 11, 10],
            "detector": [1, 1, 2, 1, 1],
            "band": ["r", "r", "r", "r", "g"],
            "reliability": [0.9, 0.1, 0.9, 0.9, 0.9],
        }
    )
    footprint = VisitDetectorFootprint(10, 1, "r", 0.0, 0.0, region=None)
    assert _ids(sources_of_footprint(frame, footprint)) == [1, 3, 5]
    selection = DiaSourceSelection(reliability_min=0.5, bands=("r",))
    assert _ids(sources_of_footprint(frame, footprint, selection)) == [5]
    with pytest.raises(SourceTableError, match="Cassandra APDB x: cannot select on 'midpointMjdTai'"):
        sources_of_footprint(frame, footprint, DiaSourceSelection(mjd_min=1.0), "Cassandra APDB x")


@pytest.mark.parametrize("page_size", [1, 3, 4, 7, 100])
def test_paginate_regroups_without_loss(page_size):
    sizes = [0, 3, 0, 5, 1, 0, 4]
    frames, start = [], 0
    for size in sizes:
        frames.append(pd.DataFrame({"diaSourceId": range(start, start + size)}))
        start += size
    pages = list(paginate(iter(frames), page_size))
    assert all(len(page) == page_size for page in pages[:-1])
    assert 0 < len(pages[-1]) <= page_size
    assert _ids(pd.concat(pages)) == list(range(start))


def test_paginate_consumes_one_table_at_a_time():
    consumed = []

    def frames():
        for k in range(5):
            consumed.append(k)
            yield pd.DataFrame({"diaSourceId": [2 * k, 2 * k + 1]})

    pages = paginate(frames(), 2)
    next(pages)
    assert consumed == [0]
    with pytest.raises(ValueError, match="page_size must be positive"):
        next(paginate(frames(), 0))


# Cassandra configurations, the driver and the server ------------------------------


def _command_path(name: str) -> str:
    """A command of this package: next to the interpreter (pip install) or on
    PATH (EUPS: ``bin/`` made by scons)."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name) or str(beside)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def cassandra_config_file(tmp_path):
    """A Cassandra APDB configuration as ``apdb-cli create-cassandra`` saves
    it, pointing at a localhost port where no server listens."""
    from lsst.dax.apdb.cassandra import ApdbCassandraConfig
    from lsst.dax.apdb.cassandra.config import ApdbCassandraConnectionConfig, ApdbCassandraPartitioningConfig

    # Nested values are given to the constructors: ApdbConfig.save writes the
    # fields that were set, and a nested assignment does not count as set.
    config = ApdbCassandraConfig(
        contact_points=("127.0.0.1",),
        keyspace="apdb_cutouts",
        prefix="pp_",
        connection_config=ApdbCassandraConnectionConfig(port=_free_port()),
        partitioning=ApdbCassandraPartitioningConfig(time_partition_tables=True),
    )
    path = tmp_path / "apdb-cassandra.yaml"
    config.save(str(path))
    return path, config.connection_config.port


def test_cassandra_configuration_is_read_as_the_stack_writes_it(cassandra_config_file):
    from lsst.dax.apdb.cassandra import ApdbCassandraConfig

    path, port = cassandra_config_file
    config = make_apdb_config(config_uri=str(path))
    assert isinstance(config, ApdbCassandraConfig)
    assert config.contact_points == ("127.0.0.1",) and config.keyspace == "apdb_cutouts"
    assert config.connection_config.port == port
    assert config.partitioning.time_partition_tables
    assert make_apdb_config(config_uri=str(path), prefix="other_").prefix == "other_"
    with pytest.raises(SourceTableError, match="namespace .* SQL APDBs only.*keyspace"):
        make_apdb_config(config_uri=str(path), namespace="cutouts")


def test_cassandra_without_a_server_is_a_clean_error(cassandra_config_file):
    path, port = cassandra_config_file
    with pytest.raises(SourceTableError) as error:
        DiaSourceReader.from_uri(str(path))
    message = str(error.value)
    assert message.startswith(
        f"Cassandra APDB 127.0.0.1:{port}/apdb_cutouts (table prefix 'pp_'): cannot connect"
    )
    assert "Connection refused" in message


def test_cassandra_without_its_driver_names_what_is_missing(cassandra_config_file):
    """As on a machine without cassandra-driver: the module cannot be
    imported."""
    path, _ = cassandra_config_file
    code = (
        "import sys; sys.modules['cassandra'] = None\n"
        "from lsst.analysis.ap.apdb import DiaSourceReader\n"
        "from lsst.analysis.ap.sources import SourceTableError\n"
        "try:\n"
        f"    DiaSourceReader.from_uri({str(path)!r})\n"
        "except SourceTableError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "needs the Python package 'cassandra-driver'" in result.stdout
    assert "pip install cassandra-driver" in result.stdout


def test_command_with_an_unreachable_cassandra_apdb(cassandra_config_file, demo_repo, tmp_path):
    path, port = cassandra_config_file
    result = subprocess.run(
        [
            _command_path("plotImageSubtractionCutouts"),
            str(demo_repo.root),
            str(tmp_path / "out"),
            "--apdb-config",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ),
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"plotImageSubtractionCutouts: Cassandra APDB 127.0.0.1:{port}/apdb_cutouts (table prefix 'pp_'): "
        "cannot connect"
    )
    assert not (tmp_path / "out" / "images").exists()


def test_command_reads_by_region_and_draws_the_selection(demo_repo, demo_sources, tmp_path):
    """The command's Cassandra path (the reader given the Butler, visit ×
    detector queries) on the demo's SQLite APDB: the PNGs drawn are those of
    the selected sources."""
    visits = sorted(demo_sources["visit"].unique())
    expected = demo_sources[(demo_sources["visit"] >= visits[1]) & (demo_sources["detector"] == 0)]
    output = tmp_path / "out"
    result = subprocess.run(
        [
            _command_path("plotImageSubtractionCutouts"),
            str(demo_repo.root),
            str(output),
            "--sqlitefile",
            str(demo_repo.apdb_file),
            "--apdb-by-region",
            "--visit-min",
            str(visits[1]),
            "--detector",
            "0",
            "--all",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert {int(path.stem) for path in (output / "images").rglob("*.png")} == set(_ids(expected))
    assert f"{len(expected)} DiaSource(s) selected (visit >= {visits[1]}, detector in [0])" in result.stderr
    records = pd.read_csv(output / "records.csv")
    assert set(records["instrument"]) == {demo_repo.spec.instrument}
