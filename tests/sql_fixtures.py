"""Fixtures of the SQL output's tests; a test module loads them with
``pytest_plugins = ["tests.sql_fixtures"]``."""

from __future__ import annotations

import pytest

from tests.mariadb import MariaDB, MariaDBStore, SQLiteStore


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
