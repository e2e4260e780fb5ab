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
import time
from pathlib import Path

import mysql.connector

from tests.servers import free_port, require

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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.directory / "error.log").read_text()[-2000:]
                raise RuntimeError(f"mariadbd exited: {log}")
            try:
                (datadir,) = self.query("SELECT @@datadir")[0]
            except mysql.connector.Error:
                time.sleep(0.05)
                continue
            if Path(datadir).resolve() != self.data.resolve():
                raise RuntimeError(f"another server answers on port {self.port}")
            return
        raise RuntimeError(f"mariadbd did not become ready on {self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def connect(self, database: str | None = None, autocommit: bool = True):
        return mysql.connector.connect(host="127.0.0.1", port=self.port, user="root",
                                       database=database, autocommit=autocommit,
                                       connection_timeout=5)

    def query(self, sql: str, database: str | None = None, params: tuple = ()) -> list[tuple]:
        connection = self.connect(database)
        try:
            cursor = connection.cursor()
            cursor.execute(sql, params or None)
            return cursor.fetchall() if cursor.with_rows else []
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
