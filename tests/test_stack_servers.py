"""The stack's server-side files against real servers: MariaDB's init script (the
mirror's databases, the collector's rights, Grafana's read-only user) and mosquitto's
config with the password file its start script writes."""

from __future__ import annotations

import os
import subprocess

import mysql.connector
import pytest

from tests.helpers import collector, stop, wait_until, write_config
from tests.stack import STACK
from tests.stack_servers import MariaDB, Mosquitto

GRAFANA_PASSWORD = "it's a \"quoted\" \\ secret"


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory):
    server = MariaDB(tmp_path_factory.mktemp("mariadb"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def initialised(mariadb):
    """What the mariadb image does on a fresh volume: MARIADB_USER, then the init files."""
    mariadb.query("CREATE USER 'collector'@'%' IDENTIFIED BY 'collector-pw'")
    env = {"PATH": os.environ["PATH"], "MYSQL_HOST": "127.0.0.1",
           "MYSQL_TCP_PORT": str(mariadb.port), "MARIADB_ROOT_PASSWORD": "",
           "MARIADB_USER": "collector", "MARIADB_GRAFANA_USER": "grafana",
           "MARIADB_GRAFANA_PASSWORD": GRAFANA_PASSWORD}
    for script in sorted((STACK / "mariadb" / "init").glob("*.sh")):
        result = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    return mariadb


def test_collector_may_create_the_legacy_tables_and_nothing_else(initialised):
    for database in ("SE521", "raven"):
        initialised.query("CREATE TABLE probe (id INT PRIMARY KEY)", "collector",
                          "collector-pw", database)
        initialised.query("INSERT INTO probe VALUES (1)", "collector", "collector-pw", database)
    with pytest.raises(mysql.connector.errors.ProgrammingError, match="denied"):
        initialised.query("CREATE DATABASE elsewhere", "collector", "collector-pw")


def test_grafana_reads_the_mirror_and_cannot_write_it(initialised):
    assert initialised.query("SELECT id FROM probe", "grafana", GRAFANA_PASSWORD,
                             "SE521") == [(1,)]
    with pytest.raises(mysql.connector.errors.ProgrammingError, match="denied"):
        initialised.query("INSERT INTO probe VALUES (2)", "grafana", GRAFANA_PASSWORD, "raven")
    with pytest.raises(mysql.connector.errors.ProgrammingError, match="denied"):
        initialised.query("SELECT 1 FROM mysql.user", "grafana", GRAFANA_PASSWORD)


@pytest.fixture
def mosquitto(tmp_path):
    broker = Mosquitto(tmp_path, STACK / "mosquitto" / "mosquitto.conf",
                       STACK / "mosquitto" / "start.sh")
    broker.start("collector", "mqtt-pw")
    yield broker
    broker.stop()


def test_mosquitto_listens_and_lets_in_only_the_configured_user(mosquitto):
    assert mosquitto.publish("collector", "mqtt-pw", "collector/test", "1").returncode == 0
    anonymous = mosquitto.publish(None, None, "collector/test", "1")
    assert anonymous.returncode != 0 and "not authori" in anonymous.stderr.lower()
    wrong = mosquitto.publish("collector", "guess", "collector/test", "1")
    assert wrong.returncode != 0
    passwords = mosquitto.directory / "passwd"
    assert passwords.stat().st_mode & 0o077 == 0, "readable by the broker only"
    assert b"mqtt-pw" not in passwords.read_bytes(), "hashed"


def test_mirror_fills_the_legacy_raven_tables(initialised, influxd, tmp_path):
    """The stack's collector with the mirror part against the initialised MariaDB.
    Needs outputs.sql (its own branch): fails until it is merged."""
    env = {"INFLUXDB_URL": influxd.url, "INFLUXDB_DB": "stack_mirror",
           "STATE_DIRECTORY": str(tmp_path / "state"), "MARIADB_HOST": "127.0.0.1",
           "MARIADB_PORT": str(initialised.port), "MARIADB_USER": "collector",
           "MARIADB_PASSWORD": "collector-pw"}
    fast = write_config(tmp_path, '[agent]\nflush_interval = "1s"\n')
    process = collector("run", "-c", str(STACK / "collector" / "collector.toml"),
                        "-c", str(STACK / "collector" / "mirror.toml"), "-c", str(fast),
                        env=env)
    try:
        def demand_rows() -> int:
            try:
                return initialised.query("SELECT COUNT(*) FROM instantaneous_demand",
                                         database="raven")[0][0]
            except mysql.connector.Error:
                return 0

        wait_until(lambda: process.poll() is not None or demand_rows(), timeout=30, every=0.5)
        assert process.poll() is None, "the collector exited (is outputs.sql installed?)"
    finally:
        assert stop(process) == 0
    assert initialised.query("SELECT COUNT(*) FROM run_info", database="raven")[0][0] >= 1
