"""SQLite through the standard library: the embedded store for a collector without a
database server.

WAL mode lets readers (the sqlite3 shell, Grafana) query while the collector writes,
and ``synchronous = FULL`` makes each commit durable before the spool lets go of the
batch, so a power cut cannot lose rows the spool no longer holds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from plugins.outputs.sql.database import (
    Column,
    Database,
    Index,
    Row,
    Unavailable,
    Value,
    ValueRefused,
)


class SQLite(Database):
    """One connection, used by one thread at a time: the output's thread writes, and the
    agent closes outputs from its own thread once that one has stopped (hence
    ``check_same_thread=False``)."""

    fraction_digits = 9
    name_limit = None
    text_limit = None
    reserved_prefixes = ("sqlite_",)

    def __init__(self, path: Path, busy_timeout: float, read_only: bool = False) -> None:
        """``read_only``: for a dry run, which must not even create the file (an absent
        file reads as an empty database)."""
        self.label = f"sqlite {path}"
        try:
            if read_only:
                target = f"file:{path}?mode=ro" if path.exists() else ":memory:"
                self._cnx = sqlite3.connect(target, uri=True, isolation_level=None)
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            self._cnx = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None,
                                        check_same_thread=False)
        except (sqlite3.Error, OSError) as err:
            raise Unavailable(f"{self.label}: {err}") from None
        try:
            self.execute("PRAGMA journal_mode = WAL")
            self.execute("PRAGMA synchronous = FULL")
        except Unavailable:
            self.close()
            raise

    def _fail(self, err: sqlite3.Error) -> Exception:
        if isinstance(err, sqlite3.IntegrityError | sqlite3.DataError):
            return ValueRefused(str(err))
        return Unavailable(f"{self.label}: {err}")

    def quote(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def placeholders(self, count: int) -> str:
        return ", ".join(["?"] * count)

    def execute(self, sql: str, params: Sequence[Value] = ()) -> int:
        try:
            return self._cnx.execute(sql, params).rowcount
        except sqlite3.Error as err:
            raise self._fail(err) from None

    def query(self, sql: str, params: Sequence[Value] = ()) -> list[tuple]:
        try:
            return self._cnx.execute(sql, params).fetchall()
        except sqlite3.Error as err:
            raise self._fail(err) from None

    def begin(self) -> None:
        """IMMEDIATE takes the write lock now, so the retention purge and a batch wait
        for each other (up to the busy timeout) instead of failing midway."""
        self.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        if self._cnx.in_transaction:
            self.execute("ROLLBACK")

    def _insert(self, table: str, columns: Sequence[str], rows: Sequence[Row],
                key: Sequence[str] | None) -> None:
        """One prepared statement run for every row (``executemany``): in-process there
        is no round trip to save, and a multi-row VALUES would hit the variable limit."""
        names = [self.quote(column) for column in columns]
        sql = (f"INSERT INTO {self.quote(table)} ({', '.join(names)}) "
               f"VALUES ({self.placeholders(len(names))})")
        if key is not None:
            keyed = {column.lower() for column in key}
            updates = [f"{name} = COALESCE(excluded.{name}, {name})"
                       for column, name in zip(columns, names, strict=True)
                       if column.lower() not in keyed]
            target = ", ".join(self.quote(column) for column in key)
            sql += (f" ON CONFLICT ({target}) DO UPDATE SET {', '.join(updates)}" if updates
                    else f" ON CONFLICT ({target}) DO NOTHING")
        try:
            self._cnx.executemany(sql, rows)
        except sqlite3.Error as err:
            raise self._fail(err) from None

    def columns(self, table: str) -> list[Column]:
        rows = self.query(f"PRAGMA table_info({self.quote(table)})")
        return [Column(name, declared.lower(), default is not None or not notnull
                       or (pk == 1 and declared.upper() == "INTEGER"))
                for _, name, declared, notnull, default, pk in rows]

    def indexes(self, table: str) -> list[Index]:
        found = []
        for _, name, unique, origin, _ in self.query(f"PRAGMA index_list({self.quote(table)})"):
            columns = tuple(column.lower() for _, _, column in
                            self.query(f"PRAGMA index_info({self.quote(name)})"))
            found.append(Index("PRIMARY" if origin == "pk" else name, columns, bool(unique)))
        if not any(index.name == "PRIMARY" for index in found):
            info = self.query(f"PRAGMA table_info({self.quote(table)})")
            primary = tuple(row[1].lower() for row in sorted(info, key=lambda row: row[5])
                            if row[5])
            if primary:
                found.append(Index("PRIMARY", primary, True))
        return found

    def tables(self) -> list[str]:
        return [name for (name,) in self.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]

    def delete_older(self, table: str, column: str, cutoff: str, limit: int) -> int:
        name, quoted = self.quote(column), self.quote(table)
        return self.execute(f"DELETE FROM {quoted} WHERE rowid IN (SELECT rowid FROM {quoted} "
                            f"WHERE {name} < ? ORDER BY {name} LIMIT ?)", (cutoff, limit))

    def close(self) -> None:
        self._cnx.close()
