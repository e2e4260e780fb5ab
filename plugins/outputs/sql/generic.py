"""layout = "generic": one table per measurement, as Telegraf's outputs.sql makes them,
but safe to write twice and open to new tags and fields.

- Columns: ``time`` (UTC), ``tag_hash``, one per tag (VARCHAR(255)) and one per field
  (DOUBLE, BIGINT, BOOLEAN or TEXT, from the first value seen).
- The primary key is (time, tag_hash): ``tag_hash`` is a 64-bit hash of the whole tag
  set, so a redelivered batch updates its rows instead of adding copies, whatever the
  number or length of the tags (an index over the tag columns themselves would hit
  InnoDB's 3072-byte key limit at three utf8mb4 tags, and treats NULLs as distinct).
- A point written again merges its fields into the row, as InfluxDB merges a point.
- A tag or field that appears later adds a column; a table this layout did not make is
  never touched.
- A value that cannot be stored rejects its own metric only.
"""

from __future__ import annotations

import hashlib
import json
from itertools import chain

from collector import Metric
from plugins.outputs.sql.database import (
    Database,
    Kind,
    TimeFormatter,
    Value,
    ValueRefused,
)
from plugins.outputs.sql.layout import Layout, Outcome, PurgeTarget
from plugins.outputs.sql.schema import has_unique_key

TIME = "time"
TAG_HASH = "tag_hash"
KEY = (TIME, TAG_HASH)
TAG_CHARS = 255
TAG_TYPE = "VARCHAR(255)"
FIELD_TYPES: dict[Kind, str] = {"float": "DOUBLE", "int": "BIGINT", "bool": "BOOLEAN",
                                "string": "TEXT"}
TIME_TYPES = {6: "DATETIME(6)", 9: "DATETIME"}
"""MySQL keeps microseconds; SQLite keeps the nanoseconds, as text."""
PYTHON_TYPES: dict[Kind, tuple[type, ...]] = {
    "float": (float, int), "int": (int,), "bool": (bool,), "string": (str,)}
"""What a field column takes without a second look (an int goes into a DOUBLE)."""
ACCEPTS: dict[Kind, frozenset[Kind]] = {
    "float": frozenset({"float", "int"}), "int": frozenset({"int"}),
    "bool": frozenset({"bool"}), "string": frozenset({"string"}), "tag": frozenset({"tag"}),
}
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
SERIES_CACHED = 10_000


class Refusal(Exception):
    """This metric cannot be stored; the message says why, for the log."""


def value_kind(value: Value) -> Kind:
    kind = type(value)
    if kind is bool:
        return "bool"
    if kind is int:
        return "int"
    if kind is float:
        return "float"
    return "string"


def tag_hash(tags: dict[str, str]) -> int:
    """The series' identity within its table: a signed 64-bit blake2b of the sorted
    tags, JSON-encoded so that no two tag sets can encode alike."""
    encoded = json.dumps(sorted(tags.items()), ensure_ascii=False).encode()
    return int.from_bytes(hashlib.blake2b(encoded, digest_size=8).digest(), "big", signed=True)


class KnownTable:
    """What we know of one table on this connection."""

    def __init__(self, name: str, exists: bool, columns: dict[str, tuple[str, Kind]],
                 refused: str = "") -> None:
        self.name = name
        self.exists = exists
        self.columns = columns
        """Lower-case name (both databases compare column names so) to name and kind."""
        self.refused = refused
        """Why none of its metrics can be stored; empty for a table of ours."""
        self.series: dict[tuple[tuple[str, str], ...], dict[str, Value]] = {}
        """Tag sets whose columns all exist, to the start of their rows (tag_hash and
        the tag columns): instruments repeat a few series millions of times."""
        self.fields: dict[str, tuple[str, tuple[type, ...]]] = {}
        """Field keys with an existing column: its name and the Python types it takes."""


class TableBatch:
    """One table's rows of one batch, and the columns they need that it lacks."""

    def __init__(self, known: KnownTable, name_limit: int | None,
                 text_limit: int | None) -> None:
        self.known = known
        self.name_limit = name_limit
        self.text_limit = text_limit
        self.new_columns: dict[str, tuple[str, Kind]] = {}
        self.rows: list[dict[str, Value]] = []

    def add(self, metric: Metric, time_text: str) -> None:
        """Check every tag and field against the table and queue the row; raises Refusal
        without changing anything when one does not fit."""
        known = self.known
        pending: dict[str, tuple[str, Kind]] = {}
        start = known.series.get(tuple(metric.tags.items()))
        if start is None:
            start = self._series(metric.tags, pending)
        row: dict[str, Value] = {TIME: time_text, **start}
        for key, value in metric.fields.items():
            kind = type(value)
            if kind is int and not INT64_MIN <= value <= INT64_MAX:
                raise Refusal(f"field {key} does not fit a signed 64-bit integer")
            if (kind is str and self.text_limit is not None
                    and len(value) * 4 > self.text_limit
                    and len(value.encode()) > self.text_limit):
                raise Refusal(f"field {key} is longer than {self.text_limit} bytes")
            column = known.fields.get(key)
            if column is not None and kind in column[1]:
                row[column[0]] = value
            else:
                row[self._column(key, value_kind(value), pending)] = value
        self.new_columns.update(pending)
        self.rows.append(row)

    def _series(self, tags: dict[str, str],
                pending: dict[str, tuple[str, Kind]]) -> dict[str, Value]:
        start: dict[str, Value] = {TAG_HASH: tag_hash(tags)}
        for key, value in tags.items():
            if len(value) > TAG_CHARS:
                raise Refusal(f"tag {key} is longer than {TAG_CHARS} characters")
            start[self._column(key, "tag", pending)] = value
        if not pending:
            if len(self.known.series) >= SERIES_CACHED:
                self.known.series.clear()
            self.known.series[tuple(tags.items())] = start
        return start

    def _column(self, key: str, kind: Kind, pending: dict[str, tuple[str, Kind]]) -> str:
        lower = key.lower()
        known = (self.known.columns.get(lower) or self.new_columns.get(lower)
                 or pending.get(lower))
        if known is None:
            if lower in KEY:
                raise Refusal(f"{key} is a column this layout keeps for itself")
            if self.name_limit is not None and len(key) > self.name_limit:
                raise Refusal(f"name {key} is longer than {self.name_limit} characters")
            pending[lower] = (key, kind)
            return key
        name, have = known
        if kind not in ACCEPTS.get(have, frozenset()):
            what = "tag" if kind == "tag" else f"{kind} field"
            raise Refusal(f"column {name} holds {have} values, got a {what} {key}")
        if kind != "tag" and lower in self.known.columns:
            self.known.fields[key] = (name, PYTHON_TYPES[have])
        return name


class GenericLayout(Layout):
    def __init__(self, config, context) -> None:
        super().__init__(config, context)
        self._tables: dict[str, KnownTable] = {}

    def prepare(self, db: Database, dry_run: bool = False) -> list[str]:
        """Tables are made as measurements arrive; a new connection re-reads them."""
        self._tables.clear()
        return []

    def write(self, db: Database, metrics: list[Metric]) -> Outcome:
        outcome = Outcome()
        batches: dict[str, TableBatch] = {}
        formatter = TimeFormatter(db.fraction_digits)
        for metric in metrics:
            batch = batches.get(metric.name)
            if batch is None:
                batch = batches[metric.name] = TableBatch(
                    self._known(db, metric.name), db.name_limit, db.text_limit)
            if batch.known.refused:
                self._reject(outcome, metric.name, batch.known.refused)
                continue
            try:
                batch.add(metric, formatter(metric.time_ns))
            except Refusal as refusal:
                self._reject(outcome, metric.name, str(refusal))
        for batch in batches.values():
            self._add_columns(db, batch, outcome)
        with db.transaction():
            for batch in batches.values():
                self._upsert(db, batch, outcome)
        return outcome

    def purge_targets(self, db: Database, cutoff_ns: int) -> list[PurgeTarget]:
        cutoff = TimeFormatter(db.fraction_digits)(cutoff_ns)
        return [PurgeTarget(table, TIME, cutoff) for table in db.tables()
                if not self._inspect(db, table).refused]

    def _known(self, db: Database, table: str) -> KnownTable:
        known = self._tables.get(table)
        if known is None:
            known = self._tables[table] = self._inspect(db, table)
        return known

    def _inspect(self, db: Database, table: str) -> KnownTable:
        if db.name_limit is not None and len(table) > db.name_limit:
            return KnownTable(table, False, {}, f"the name is longer than {db.name_limit} "
                                                "characters")
        if table.lower().startswith(db.reserved_prefixes):
            return KnownTable(table, False, {}, "the name is reserved by the database")
        columns = db.columns(table)
        if not columns:
            return KnownTable(table, False, {})
        known = {column.name.lower(): (column.name, column.kind) for column in columns}
        if (known.get(TIME, ("", ""))[1] != "time" or known.get(TAG_HASH, ("", ""))[1] != "int"
                or not has_unique_key(db.indexes(table), KEY)):
            return KnownTable(table, True, known, "a table of that name exists that this "
                                                  "output did not make (no primary key on "
                                                  "time, tag_hash); it is left as it is")
        return KnownTable(table, True, known)

    def _add_columns(self, db: Database, batch: TableBatch, outcome: Outcome) -> None:
        """DDL before the batch's transaction (MySQL commits at every DDL). A name the
        database will not take rejects the metrics that use it, not the batch."""
        known = batch.known
        if not batch.rows:
            return
        if not known.exists:
            quoted = db.quote(known.name)
            try:
                db.execute(f"CREATE TABLE IF NOT EXISTS {quoted} ("
                           f"{db.quote(TIME)} {TIME_TYPES[db.fraction_digits]} NOT NULL, "
                           f"{db.quote(TAG_HASH)} BIGINT NOT NULL, "
                           f"PRIMARY KEY ({db.quote(TIME)}, {db.quote(TAG_HASH)}))")
            except ValueRefused as err:
                known.refused = str(err)
            else:
                self._tables[known.name] = known = batch.known = self._inspect(db, known.name)
            if known.refused:
                self._reject(outcome, known.name, known.refused, len(batch.rows))
                batch.rows.clear()
                return
            created = True
        else:
            created = False
        added: list[str] = []
        refused: dict[str, str] = {}
        for lower, (name, kind) in batch.new_columns.items():
            if lower in known.columns:
                continue
            column_type = TAG_TYPE if kind == "tag" else FIELD_TYPES[kind]
            try:
                db.execute(f"ALTER TABLE {db.quote(known.name)} ADD COLUMN {db.quote(name)} "
                           f"{column_type} NULL")
            except ValueRefused as err:
                refused[name] = str(err)
                continue
            known.columns[lower] = (name, kind)
            added.append(f"{name} {column_type}")
        self.context.stats.incr("columns_added", len(added))
        if created or added:
            self.context.log.info("%s table %s: %s", "created" if created else "extended",
                                  known.name, ", ".join(added) or "no columns yet")
        if refused:
            kept = []
            for row in batch.rows:
                bad = next((name for name in row if name in refused), None)
                if bad is None:
                    kept.append(row)
                else:
                    self._reject(outcome, known.name, f"column {bad}: {refused[bad]}")
            batch.rows = kept

    def _upsert(self, db: Database, batch: TableBatch, outcome: Outcome) -> None:
        if not batch.rows:
            return
        columns = list(dict.fromkeys(chain.from_iterable(batch.rows)))
        rows = [tuple(map(row.get, columns)) for row in batch.rows]
        refused = db.upsert(batch.known.name, columns, rows, KEY)
        for _, reason in refused:
            self._reject(outcome, batch.known.name, reason)
        outcome.written += len(rows) - len(refused)

    def _reject(self, outcome: Outcome, table: str, reason: str, count: int = 1) -> None:
        outcome.rejected += count
        self.notices.once((table, reason), "table %s: rejected a metric: %s (further "
                          "rejections like it are only counted)", table, reason)
