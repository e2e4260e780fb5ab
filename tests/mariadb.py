"""A real MariaDB server for tests, as a plain process on a free loopback port, and the
stores (a MariaDB database or an SQLite file) the SQL output's tests read back.

Each server gets its own data directory; readiness means our process is alive and the
server answering on the port reports our data directory, so a stray server on a reused
port cannot fool a test.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import subprocess
from pathlib import Path

import mysql.connector

from tests.servers import free_port, require, stop_process, wait_ready

INNODB_LOG = "--innodb-log-file-size=8M"
"""The same on install and start, or mariadbd silently grows the redo log to 96 MiB."""

_databases = itertools.count()


class MariaDB:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        as_root = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run([require("mariadb-install-db"), "--no-defaults", *as_root,
                        f"--datadir={self.data}", "--auth-root-authentication-method=normal",
                        "--skip-test-db", INNODB_LOG],
                       check=True, capture_output=True, cwd=directory)
        self._command = [require("mariadbd"), "--no-defaults", *as_root,
                         f"--datadir={self.data}", f"--socket={directory}/sock",
                         f"--port={self.port}", "--bind-address=127.0.0.1",
                         "--skip-name-resolve", INNODB_LOG, "--performance-schema=OFF",
                         "--innodb-buffer-pool-size=32M", f"--log-error={directory}/error.log"]

    def start(self, timeout: float = 30.0) -> None:
        self.process = subprocess.Popen(self._command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, cwd=self.directory)

        def ours() -> bool:
            try:
                (datadir,) = self.query("SELECT @@datadir")[0]
            except mysql.connector.Error:
                return False
            if Path(datadir).resolve() != self.data.resolve():
                raise RuntimeError(f"another server answers on port {self.port}")
            return True

        wait_ready(self.process, ours, f"mariadbd on {self.port}",
                   self.directory / "error.log", timeout)

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def connect(self, database: str | None = None, autocommit: bool = True,
                user: str = "root", password: str = ""):
        return mysql.connector.connect(host="127.0.0.1", port=self.port, user=user,
                                       password=password, database=database,
                                       autocommit=autocommit, connection_timeout=5)

    def query(self, sql: str, database: str | None = None, params: tuple = (),
              user: str = "root", password: str = "") -> list[tuple]:
        connection = self.connect(database, user=user, password=password)
        try:
            cursor = connection.cursor()
            cursor.execute(sql, params or None)
            return cursor.fetchall() if cursor.with_rows else []
        finally:
            connection.close()


    def url(self, database: str) -> str:
        """What `collector import` is given to read a database of this server."""
        return f"mysql://root@127.0.0.1:{self.port}/{database}"

    def load_se521_legacy(self, rows: list[tuple]) -> str:
        """The legacy SE521 logger's table, filled with (DateTm, tc1..tc4) rows."""
        self.query("DROP DATABASE IF EXISTS SE521")
        self.query("CREATE DATABASE SE521")
        self.query("CREATE TABLE temperatures (DateTm DATETIME PRIMARY KEY, tc1 FLOAT NULL, "
                   "tc2 FLOAT NULL, tc3 FLOAT NULL, tc4 FLOAT NULL)", "SE521")
        self._insert("SE521", "INSERT INTO temperatures VALUES (%s, %s, %s, %s, %s)", rows)
        return self.url("SE521")

    def load_raven_legacy(self, rows: list[tuple], meter_id: str = "") -> str:
        """The legacy python-raven tables: (id, time, demand, multiplier, divisor, run,
        hash) rows, and one run_info row per hash."""
        self.query("DROP DATABASE IF EXISTS energychannel")
        self.query("CREATE DATABASE energychannel")
        self.query("CREATE TABLE instantaneous_demand (id INT AUTO_INCREMENT PRIMARY KEY, "
                   "time DATETIME DEFAULT CURRENT_TIMESTAMP, demand BIGINT, multiplier BIGINT, "
                   "divisor BIGINT, run VARCHAR(64), hash VARCHAR(64))", "energychannel")
        self.query("CREATE TABLE run_info (name VARCHAR(64), hash VARCHAR(64), "
                   "meter_id VARCHAR(64), time DATETIME DEFAULT CURRENT_TIMESTAMP)",
                   "energychannel")
        self._insert("energychannel", "INSERT INTO instantaneous_demand VALUES "
                     "(%s, %s, %s, %s, %s, %s, %s)", rows)
        for run, digest in sorted({(row[5], row[6]) for row in rows}):
            self.query("INSERT INTO run_info (name, hash, meter_id) VALUES (%s, %s, %s)",
                       "energychannel", (run, digest, meter_id))
        return self.url("energychannel")

    def _insert(self, database: str, statement: str, rows: list[tuple]) -> None:
        connection = self.connect(database, autocommit=False)
        try:
            cursor = connection.cursor()
            for start in range(0, len(rows), 10_000):
                cursor.executemany(statement, rows[start:start + 10_000])
            connection.commit()
        finally:
            connection.close()


class SQLiteStore:
    """An SQLite file in the agent's state directory, as the output sees it."""

    driver = "sqlite"

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "mirror.db"

    def toml(self) -> str:
        return 'driver = "sqlite"\npath = "mirror.db"\n'

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        connection = sqlite3.connect(self.path)
        try:
            return connection.execute(sql.replace("%s", "?"), params).fetchall()
        finally:
            connection.close()

    def execute(self, sql: str) -> None:
        connection = sqlite3.connect(self.path)
        try:
            connection.executescript(sql)
        finally:
            connection.close()


class MariaDBStore:
    """A database of its own on the shared server."""

    driver = "mysql"

    def __init__(self, server: MariaDB) -> None:
        self.server = server
        self.database = f"sqltest{next(_databases)}"

    def toml(self) -> str:
        return (f'driver = "mysql"\nport = {self.server.port}\nusername = "root"\n'
                f'database = "{self.database}"\n')

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self.server.query(sql, self.database, params)

    def execute(self, sql: str) -> None:
        self.server.query(f"CREATE DATABASE IF NOT EXISTS {self.database}")
        for statement in filter(str.strip, sql.split(";")):
            self.server.query(statement, self.database)
