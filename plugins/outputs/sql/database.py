"""What the layouts need from a database, whichever driver: statements, upserts that
refuse a bad row alone, introspection, and errors sorted by what the caller can do.

Each driver (``mysql``, ``sqlite``) implements ``Database``; layouts never see the
driver's own exceptions, only ``Unavailable`` (try the batch again later) and the rows
an upsert refused.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Literal

Value = None | bool | int | float | str
Row = tuple[Value, ...]
Kind = Literal["time", "timestamp", "tag", "float", "int", "bool", "string", "other"]

NS = 1_000_000_000


class Unavailable(Exception):
    """The database cannot take the batch now: down, wrong credentials, locked, full
    disk, or a table that does not fit. The message is one line and holds no secret."""


class ValueRefused(Exception):
    """The database refused a value (out of range, too long, a constraint)."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    """Lower case, as the database reports it: "datetime", "varchar(255)", "int(11)"."""
    has_default: bool
    """An INSERT may leave it out: it has a default, is nullable or auto-increments."""

    @property
    def kind(self) -> Kind:
        return kind_of(self.type)


@dataclass(frozen=True)
class Index:
    name: str
    columns: tuple[str, ...]
    unique: bool


def kind_of(declared: str) -> Kind:
    """What a column holds, from its type as either database reports it. Tags are
    VARCHAR and string fields TEXT, so the two stay apart even in SQLite, where both
    are text. A TIMESTAMP is told from a DATETIME: MySQL converts it from the session's
    zone, so it cannot hold local wall-clock time written from a UTC session."""
    text = declared.lower()
    if text.startswith("datetime"):
        return "time"
    if text.startswith("timestamp"):
        return "timestamp"
    if text.startswith(("varchar", "char")):
        return "tag"
    if text.endswith("text"):
        return "string"
    if text.startswith(("tinyint(1)", "bool")):
        return "bool"
    if "int" in text:
        return "int"
    if text.startswith(("double", "float", "real", "decimal", "numeric")):
        return "float"
    return "other"


def varchar_length(declared: str) -> int | None:
    """N of VARCHAR(N)/CHAR(N); None for other types."""
    text = declared.lower()
    if text.startswith(("varchar(", "char(")):
        return int(text[text.index("(") + 1:text.index(")")])
    return None


class TimeFormatter:
    """UTC nanoseconds as the 'YYYY-MM-DD HH:MM:SS[.fff…]' text both databases read as
    a DATETIME. Consecutive metrics share seconds, so the second's text is cached."""

    def __init__(self, digits: int) -> None:
        self.divisor = 10 ** (9 - digits)
        self.pattern = f"%s.%0{digits}d" if digits else ""
        self._second = -1
        self._text = ""

    def __call__(self, time_ns: int) -> str:
        second, fraction = divmod(time_ns, NS)
        if second != self._second:
            self._second = second
            self._text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
        if not self.pattern:
            return self._text
        return self.pattern % (self._text, fraction // self.divisor)


class Database(ABC):
    """One connection, used by one thread."""

    label: str
    """Where the data goes, for log lines: "mysql 127.0.0.1:3306/SE521"."""
    fraction_digits: int
    """Sub-second digits a DATETIME keeps: 6 in MySQL/MariaDB, 9 (as text) in SQLite."""
    name_limit: int | None
    """Longest table or column name, in characters."""
    text_limit: int | None
    """Longest TEXT value, in bytes."""
    reserved_prefixes: tuple[str, ...] = ()
    """Table names the database keeps for itself (lower case)."""

    def use_database(self, create: bool) -> list[str]:
        """Select the configured database (a server holds many), creating it when
        ``create``; the statements that created it, or would have."""
        return []

    @abstractmethod
    def quote(self, name: str) -> str: ...

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Value] = ()) -> int:
        """Run one statement; the number of rows it changed."""

    @abstractmethod
    def query(self, sql: str, params: Sequence[Value] = ()) -> list[tuple]: ...

    @abstractmethod
    def begin(self) -> None: ...

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def rollback(self) -> None: ...

    @abstractmethod
    def _insert(self, table: str, columns: Sequence[str], rows: Sequence[Row],
                key: Sequence[str] | None) -> None:
        """One multi-row INSERT; on a duplicate ``key`` the non-key columns take the new
        value unless it is NULL (fields merge as InfluxDB merges a point's fields).
        Without a key, a plain INSERT."""

    @abstractmethod
    def columns(self, table: str) -> list[Column]:
        """The table's columns in order; empty when the table does not exist."""

    @abstractmethod
    def indexes(self, table: str) -> list[Index]:
        """Its indexes, the primary key included, with lower-case column names."""

    @abstractmethod
    def tables(self) -> list[str]: ...

    @abstractmethod
    def delete_older(self, table: str, column: str, cutoff: str, limit: int) -> int:
        """Delete at most ``limit`` rows whose ``column`` is before ``cutoff``."""

    @abstractmethod
    def close(self) -> None: ...

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Commit what the block did, or undo it when the block raises (the undo may
        fail on a broken connection, which the caller learns from the first error)."""
        self.begin()
        try:
            yield
        except BaseException:
            with suppress(Unavailable):
                self.rollback()
            raise
        self.commit()

    def placeholders(self, count: int) -> str:
        return ", ".join(["%s"] * count)

    def upsert(self, table: str, columns: Sequence[str], rows: Sequence[Row],
               key: Sequence[str] | None) -> list[tuple[int, str]]:
        """Insert ``rows`` in one statement inside the open transaction. When the
        database refuses a value, the statement is undone and the rows are tried one by
        one, so only the bad ones are left out: their indexes and the reasons."""
        if not rows:
            return []
        self.execute("SAVEPOINT collector_rows")
        try:
            self._insert(table, columns, rows, key)
        except ValueRefused:
            self.execute("ROLLBACK TO SAVEPOINT collector_rows")
        else:
            self.execute("RELEASE SAVEPOINT collector_rows")
            return []
        refused = []
        for index, row in enumerate(rows):
            self.execute("SAVEPOINT collector_row")
            try:
                self._insert(table, columns, [row], key)
            except ValueRefused as err:
                self.execute("ROLLBACK TO SAVEPOINT collector_row")
                refused.append((index, str(err)))
            self.execute("RELEASE SAVEPOINT collector_row")
        self.execute("RELEASE SAVEPOINT collector_rows")
        return refused
