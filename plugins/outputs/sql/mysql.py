"""MySQL and MariaDB through mysql-connector-python.

The session is made strict (a value that does not fit is an error, never silently
truncated or rounded into the column), UTC, and quick to give up on a lock, so a batch
either lands as sent or the database says which row it refused.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from contextlib import suppress

import mysql.connector
from mysql.connector.conversion import MySQLConverter

from plugins.outputs.sql.database import (
    Column,
    Database,
    Index,
    Row,
    Unavailable,
    Value,
    ValueRefused,
)
from plugins.outputs.sql.settings import SQLConfig

SQL_MODE = ("STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
            "NO_ENGINE_SUBSTITUTION")
VALUE_ERRORS = frozenset({
    # Values a row carries, or names a new column or table would have: retrying cannot
    # help, so they reject the metrics concerned.
    1059,  # identifier too long
    1103,  # incorrect table name
    1117,  # too many columns
    1118,  # row size too large
    1166,  # incorrect column name
    1048,  # column cannot be null
    1062,  # duplicate entry (a unique key the upsert does not name)
    1264,  # out of range
    1265,  # data truncated
    1292,  # incorrect datetime or number
    1366,  # incorrect value for the column's type or character set
    1367,  # illegal value
    1406,  # data too long
    1452,  # foreign key
    1690,  # value out of range in an expression
    3819,  # MySQL: check constraint
    4025,  # MariaDB: check constraint
})
STATEMENT_BYTES = 1 << 20
"""Rows go into one INSERT up to about this size; far below max_allowed_packet."""

REMEMBERED_CHARS = 255
REMEMBERED_TEXTS = 10_000

# The connector logs which authentication plugin it loads, at INFO, at every connect.
logging.getLogger("mysql.connector").setLevel(logging.WARNING)


class Literals:
    """Values as SQL text. A batch is one statement with its values written in, which
    is what the connector's own ``executemany`` does for INSERT; doing it here with one
    type test per value costs a fifth of the connector's generic conversion. Strings
    go through the connector's escaping, and the short ones are remembered: tag values
    repeat in every row of their series."""

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}

    def text(self, value: Value) -> str:
        kind = type(value)
        if kind is str:
            text = self._texts.get(value)
            if text is None:
                text = "'" + MySQLConverter.escape(value) + "'"
                if len(value) <= REMEMBERED_CHARS:
                    if len(self._texts) >= REMEMBERED_TEXTS:
                        self._texts.clear()
                    self._texts[value] = text
            return text
        if kind is float:
            return repr(value)
        if value is None:
            return "NULL"
        if kind is bool:
            return "1" if value else "0"
        return str(value)


class MySQL(Database):
    fraction_digits = 6
    name_limit = 64
    text_limit = 65_535

    def __init__(self, config: SQLConfig) -> None:
        where = config.socket or f"{config.host}:{config.port}"
        self.database = config.database_name
        self.label = f"mysql {where}/{self.database}"
        try:
            self._cnx = mysql.connector.connect(
                host=config.host, port=config.port, unix_socket=config.socket or None,
                user=config.username, password=config.password.reveal(),
                connection_timeout=math.ceil(config.timeout), autocommit=True,
                charset="utf8mb4", get_warnings=False, raise_on_warnings=False,
            )
        except mysql.connector.Error as err:
            raise Unavailable(f"{self.label}: {self._reason(err)}") from None
        self._cursor = self._cnx.cursor()
        self._literal = Literals().text
        """A bound method: ``map`` calls it twice as fast as an instance's __call__."""
        lock_wait = max(1, math.ceil(config.timeout))
        try:
            self.execute(f"SET SESSION sql_mode = '{SQL_MODE}', time_zone = '+00:00', "
                         f"innodb_lock_wait_timeout = {lock_wait}, "
                         f"lock_wait_timeout = {lock_wait}")
        except Unavailable:
            self.close()
            raise

    def use_database(self, create: bool) -> list[str]:
        """Select the configured database, creating it when absent (or, with ``create``
        false, leaving it absent: every table then reads as absent). Only when absent:
        CREATE … IF NOT EXISTS needs the CREATE privilege even for a database that
        exists, which a writer account may lack."""
        found = self.query("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                           (self.database,))
        if found:
            self.execute(f"USE {self.quote(self.database)}")
            return []
        statement = f"CREATE DATABASE {self.quote(self.database)} CHARACTER SET utf8mb4"
        if create:
            self.execute(statement)
            self.execute(f"USE {self.quote(self.database)}")
        return [statement]

    @staticmethod
    def _reason(err: mysql.connector.Error) -> str:
        return f"{err.msg} ({err.errno})" if err.errno else str(err)

    def _fail(self, err: mysql.connector.Error) -> Exception:
        if err.errno in VALUE_ERRORS:
            return ValueRefused(self._reason(err))
        return Unavailable(f"{self.label}: {self._reason(err)}")

    def quote(self, name: str) -> str:
        return "`" + name.replace("`", "``") + "`"

    def execute(self, sql: str, params: Sequence[Value] = ()) -> int:
        try:
            self._cursor.execute(sql, tuple(params) or None)
        except mysql.connector.Error as err:
            raise self._fail(err) from None
        return self._cursor.rowcount

    def query(self, sql: str, params: Sequence[Value] = ()) -> list[tuple]:
        try:
            self._cursor.execute(sql, tuple(params) or None)
            return self._cursor.fetchall()
        except mysql.connector.Error as err:
            raise self._fail(err) from None

    def begin(self) -> None:
        self.execute("START TRANSACTION")

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        self.execute("ROLLBACK")

    def _insert(self, table: str, columns: Sequence[str], rows: Sequence[Row],
                key: Sequence[str] | None) -> None:
        names = [self.quote(column) for column in columns]
        head = f"INSERT INTO {self.quote(table)} ({', '.join(names)}) VALUES "
        tail = ""
        if key is not None:
            keyed = {column.lower() for column in key}
            updates = [f"{name} = COALESCE(VALUES({name}), {name})"
                       for column, name in zip(columns, names, strict=True)
                       if column.lower() not in keyed]
            tail = " ON DUPLICATE KEY UPDATE " + (", ".join(updates) or
                                                  f"{names[0]} = {names[0]}")
        values: list[str] = []
        size = 0
        for row in rows:
            text = "(" + ", ".join(map(self._literal, row)) + ")"
            values.append(text)
            size += len(text)
            if size > STATEMENT_BYTES:
                self.execute(head + ", ".join(values) + tail)
                values, size = [], 0
        if values:
            self.execute(head + ", ".join(values) + tail)

    def columns(self, table: str) -> list[Column]:
        rows = self.query(
            "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA "
            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION", (table,))
        return [Column(name, str(kind).lower(), nullable == "YES" or default is not None
                       or "auto_increment" in str(extra).lower())
                for name, kind, nullable, default, extra in rows]

    def indexes(self, table: str) -> list[Index]:
        rows = self.query(
            "SELECT INDEX_NAME, COLUMN_NAME, NON_UNIQUE FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s "
            "ORDER BY INDEX_NAME, SEQ_IN_INDEX", (table,))
        found: dict[str, Index] = {}
        for name, column, non_unique in rows:
            have = found.get(name)
            columns = (*have.columns, column.lower()) if have else (column.lower(),)
            found[name] = Index(name, columns, not int(non_unique))
        return list(found.values())

    def tables(self) -> list[str]:
        return [name for (name,) in self.query(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_TYPE = 'BASE TABLE'")]

    def delete_older(self, table: str, column: str, cutoff: str, limit: int) -> int:
        name = self.quote(column)
        return self.execute(f"DELETE FROM {self.quote(table)} WHERE {name} < %s "
                            f"ORDER BY {name} LIMIT {int(limit)}", (cutoff,))

    def close(self) -> None:
        with suppress(mysql.connector.Error):
            self._cnx.close()
