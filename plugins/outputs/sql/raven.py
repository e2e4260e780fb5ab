"""layout = "raven": the legacy python-raven tables, filled from ``raven_demand``.

- ``instantaneous_demand(time, demand, multiplier, divisor, run, hash)``: one row per
  demand push, at the meter's own timestamp (UTC), with the raw integers as the meter
  sent them (kW = demand * multiplier / divisor; export stays negative).
- ``run_info(name, hash, meter_id, time)``: one row per collector start and meter,
  written with that meter's first demand row; ``hash`` (a fresh UUID per start) ties
  the two tables together.

At-least-once delivery may bring a batch again after a restart, under a new hash: a
push already stored for the same meter and second (whatever its run) is not stored
again.
"""

from __future__ import annotations

import time
import uuid

from collector import Metric
from plugins.outputs.sql.database import Database, TimeFormatter
from plugins.outputs.sql.layout import Layout, Outcome, PurgeTarget
from plugins.outputs.sql.schema import ColumnSpec, TableSpec, ensure, has_unique_key

DATETIME = frozenset({"time", "timestamp"})
"""The session is UTC, so a TIMESTAMP column stores the meter's instant right too."""
NUMBER = frozenset({"int", "float", "bool"})
TEXT = frozenset({"tag", "string"})
HASH_CHARS = 36
METER_ID_CHARS = 18
"""A meter's MAC as the RAVEn writes it: "0x" and 16 hex digits."""
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
UINT32_MAX = 2**32 - 1


def demand_table(run: str) -> TableSpec:
    return TableSpec("instantaneous_demand", (
        ColumnSpec("time", "DATETIME NOT NULL", DATETIME, "a DATETIME or TIMESTAMP"),
        ColumnSpec("demand", "INT NOT NULL", NUMBER, "a number"),
        ColumnSpec("multiplier", "INT UNSIGNED NOT NULL", NUMBER, "a number"),
        ColumnSpec("divisor", "INT UNSIGNED NOT NULL", NUMBER, "a number"),
        ColumnSpec("run", "VARCHAR(64) NOT NULL", TEXT, "text", min_length=len(run)),
        ColumnSpec("hash", f"CHAR({HASH_CHARS}) NOT NULL", TEXT, "text", HASH_CHARS),
    ), primary_key=("time", "hash"), key_required=False)


def run_info_table(run: str) -> TableSpec:
    return TableSpec("run_info", (
        ColumnSpec("name", "VARCHAR(64) NOT NULL", TEXT, "text", min_length=len(run)),
        ColumnSpec("hash", f"CHAR({HASH_CHARS}) NOT NULL", TEXT, "text", HASH_CHARS),
        ColumnSpec("meter_id", "VARCHAR(32) NOT NULL", TEXT, "text", METER_ID_CHARS),
        ColumnSpec("time", "DATETIME NOT NULL", DATETIME, "a DATETIME or TIMESTAMP"),
    ), primary_key=("hash",), key_required=False)


class RavenLayout(Layout):
    def __init__(self, config, context) -> None:
        super().__init__(config, context)
        self.run = config.raven.run
        self.measurement = config.raven.measurement
        self.demand = demand_table(self.run)
        self.run_info = run_info_table(self.run)
        self.started = TimeFormatter(0)(time.time_ns())
        self._hashes: dict[str, str] = {}
        """This run's hash per meter: one run_info row each."""
        self._announced: set[str] = set()
        self._demand_key: tuple[str, ...] | None = None

    def prepare(self, db: Database, dry_run: bool = False) -> list[str]:
        changes = ensure(db, self.demand, dry_run) + ensure(db, self.run_info, dry_run)
        if dry_run:
            return changes
        indexes = db.indexes(self.demand.name)
        self._demand_key = (self.demand.primary_key
                            if has_unique_key(indexes, self.demand.primary_key) else None)
        if not any(index.columns[:1] == ("time",) for index in indexes):
            self.notices.once("index", "table %s has no index starting with time: the check "
                              "for pushes already stored and the retention purge read the "
                              "whole table; consider CREATE INDEX demand_time ON %s (time)",
                              self.demand.name, self.demand.name)
        return changes

    def write(self, db: Database, metrics: list[Metric]) -> Outcome:
        outcome = Outcome()
        formatter = TimeFormatter(0)
        pushes: dict[str, dict[str, tuple[int, int, int]]] = {}
        for metric in metrics:
            if metric.name != self.measurement:
                outcome.skipped += 1
                self.notices.once(("measurement", metric.name), "skipping %s metrics: the raven "
                                  "layout takes only %s (counted in skipped)", metric.name,
                                  self.measurement)
                continue
            values = self._raw_values(metric)
            if values is None:
                outcome.rejected += 1
                continue
            meter = metric.tags.get("meter_mac", "")
            pushes.setdefault(meter, {})[formatter(metric.time_ns)] = values
            outcome.written += 1
        if not pushes:
            return outcome
        with db.transaction():
            for meter, by_time in pushes.items():
                self._store(db, meter, by_time, outcome)
        self._announced.update(pushes)
        return outcome

    def purge_targets(self, db: Database, cutoff_ns: int) -> list[PurgeTarget]:
        if not db.columns(self.demand.name):
            return []
        return [PurgeTarget(self.demand.name, "time", TimeFormatter(0)(cutoff_ns))]

    def _raw_values(self, metric: Metric) -> tuple[int, int, int] | None:
        """demand, multiplier, divisor as integers that fit the columns, else None
        (logged once)."""
        fields = metric.fields
        values = (fields.get("raw"), fields.get("multiplier"), fields.get("divisor"))
        if any(type(value) is not int for value in values):
            self.notices.once("fields", "rejected %s without integer raw, multiplier and "
                              "divisor fields: %r", metric.name, fields)
            return None
        raw, multiplier, divisor = values
        if not INT32_MIN <= raw <= INT32_MAX or not (0 <= multiplier <= UINT32_MAX
                                                       and 0 <= divisor <= UINT32_MAX):
            self.notices.once("range", "rejected %s: raw %d, multiplier %d or divisor %d is "
                              "beyond what the meter sends (32 bits)", metric.name, raw,
                              multiplier, divisor)
            return None
        return values

    def _store(self, db: Database, meter: str, by_time: dict[str, tuple[int, int, int]],
               outcome: Outcome) -> None:
        run_hash = self._hashes.setdefault(meter, str(uuid.uuid4()))
        stored = self._stored_times(db, meter, min(by_time), max(by_time))
        fresh = {stamp: values for stamp, values in by_time.items() if stamp not in stored}
        self.context.stats.incr("already_stored", len(by_time) - len(fresh))
        if meter not in self._announced:
            self._announce(db, meter, run_hash)
        rows = [(stamp, *values, self.run, run_hash) for stamp, values in fresh.items()]
        columns = [column.name for column in self.demand.columns]
        refused = db.upsert(self.demand.name, columns, rows, self._demand_key)
        for _, reason in refused:
            self.notices.once(("refused", reason), "table %s refused a push: %s",
                              self.demand.name, reason)
        outcome.written -= len(refused)
        outcome.rejected += len(refused)

    def _stored_times(self, db: Database, meter: str, first: str, last: str) -> set[str]:
        """Seconds of this meter already stored, under any run's hash."""
        demand, run_info = db.quote(self.demand.name), db.quote(self.run_info.name)
        stamp, run_hash, value = db.quote("time"), db.quote("hash"), db.placeholders(1)
        rows = db.query(
            f"SELECT d.{stamp} FROM {demand} d JOIN {run_info} r ON r.{run_hash} = d.{run_hash} "
            f"WHERE r.meter_id = {value} AND d.{stamp} BETWEEN {value} AND {value}",
            (meter, first, last))
        return {str(stamp) for (stamp,) in rows}

    def _announce(self, db: Database, meter: str, run_hash: str) -> None:
        """This run's row for the meter, once (also when a batch is retried)."""
        table = db.quote(self.run_info.name)
        if db.query(f"SELECT 1 FROM {table} WHERE {db.quote('hash')} = {db.placeholders(1)}",
                    (run_hash,)):
            return
        db.upsert(self.run_info.name, [column.name for column in self.run_info.columns],
                  [(self.run, run_hash, meter, self.started)], None)
        self.context.log.info("run %r, meter %s: hash %s", self.run, meter or "(no MAC)",
                              run_hash)
