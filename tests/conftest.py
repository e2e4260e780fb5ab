"""Shared fixtures: real servers, started once per session where they can be shared."""

from __future__ import annotations

import itertools

import pytest

from tests.mariadb import MariaDB, MariaDBStore, SQLiteStore
from tests.servers import InfluxDB, VictoriaMetrics

_names = itertools.count()


@pytest.fixture(scope="session")
def influxd(tmp_path_factory):
    server = InfluxDB(tmp_path_factory.mktemp("influxd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_influxd(tmp_path_factory):
    """An influxd this test may stop and restart."""
    server = InfluxDB(tmp_path_factory.mktemp("influxd-own"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def victoria(tmp_path_factory):
    server = VictoriaMetrics(tmp_path_factory.mktemp("victoria"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def database() -> str:
    """A database name no other test uses."""
    return f"test{next(_names)}"


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory):
    server = MariaDB(tmp_path_factory.mktemp("mariadb"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_mariadb(tmp_path_factory):
    """A MariaDB this test may stop and start."""
    server = MariaDB(tmp_path_factory.mktemp("mariadb-own"))
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "mysql"])
def store(request, tmp_path):
    """Each test that takes it runs against SQLite and against MariaDB."""
    if request.param == "sqlite":
        return SQLiteStore(tmp_path)
    return MariaDBStore(request.getfixturevalue("mariadb"))
