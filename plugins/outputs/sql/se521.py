"""layout = "se521": the legacy SE521 logger's table, filled from per-minute means.

``temperatures(DateTm DATETIME PRIMARY KEY, tc1 … tc4 FLOAT)``: one row per minute, each
channel's column the mean of that minute's valid readings, NULL when it had none. The
means come from ``[[aggregators.basicstats]] period = "1m"`` (field ``celsius_mean`` at
the start of each UTC minute); a batch sets only the columns it carries, so channels
may arrive in any order and a redelivered batch changes nothing.

``DateTm`` is wall-clock time in the configured zone, as the legacy logger wrote it.
When clocks go back, an hour of wall-clock minutes happens twice; each such minute
keeps, per channel, the mean of both passes (weighted by ``celsius_count`` when the
aggregator sends it). The two passes are kept apart in ``<table>_repeated_hour`` so
that the merge stays right when a batch is delivered again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from collector import Metric
from collector import time_zone as zone
from plugins.outputs.sql.database import NS, Database, Row
from plugins.outputs.sql.layout import Layout, Outcome, PurgeTarget
from plugins.outputs.sql.schema import ColumnSpec, TableSpec, ensure

MINUTE_NS = 60 * NS
MINUTES_CACHED = 10_000
WALL_CLOCK = "%Y-%m-%d %H:%M:%S"
DATETIME = frozenset({"time"})
FLOATING = frozenset({"float"})
AGGREGATOR_HINT = ('add [[aggregators.basicstats]] period = "1m" stats = ["mean", "count"] '
                   'namepass = ["se521"]')


class SE521Layout(Layout):
    def __init__(self, config, context) -> None:
        super().__init__(config, context)
        options = config.se521
        self.options = options
        self.zone = zone(config.zone_name)
        self.mean_field = f"{options.field}_mean"
        self.count_field = f"{options.field}_count"
        self.device = options.device or None
        self.channel_columns = list(options.columns.values())
        self.table = TableSpec(
            options.table,
            (ColumnSpec(options.time_column, "DATETIME NOT NULL", DATETIME, "a DATETIME"),
             *(ColumnSpec(column, "FLOAT NULL", FLOATING, "a floating-point type")
               for column in self.channel_columns)),
            primary_key=(options.time_column,), key_required=True)
        self.repeated = TableSpec(
            f"{options.table}_repeated_hour",
            (ColumnSpec(options.time_column, "DATETIME NOT NULL", DATETIME, "a DATETIME"),
             ColumnSpec("fold", "SMALLINT NOT NULL", frozenset({"int"}), "an integer"),
             ColumnSpec("column_name", "VARCHAR(64) NOT NULL", frozenset({"tag", "string"}),
                        "text", min_length=64),
             ColumnSpec("mean", "DOUBLE NOT NULL", FLOATING, "a floating-point type"),
             ColumnSpec("weight", "DOUBLE NOT NULL", FLOATING, "a floating-point type")),
            primary_key=(options.time_column, "fold", "column_name"), key_required=True)
        self._repeated_ready = False
        self._minutes: dict[int, tuple[str, bool, int]] = {}

    def prepare(self, db: Database, dry_run: bool = False) -> list[str]:
        self._repeated_ready = False
        return ensure(db, self.table, dry_run)

    def write(self, db: Database, metrics: list[Metric]) -> Outcome:
        outcome = Outcome()
        minutes: dict[str, dict[str, float]] = {}
        repeated: list[Row] = []
        for metric in metrics:
            taken = self._take(metric, outcome)
            if taken is None:
                continue
            column, mean, weight = taken
            wall, ambiguous, fold = self._minute(metric.time_ns)
            if ambiguous:
                repeated.append((wall, fold, column, mean, weight))
            else:
                minutes.setdefault(wall, {})[column] = mean
        if not minutes and not repeated:
            return outcome
        if repeated and not self._repeated_ready:
            ensure(db, self.repeated)
            self._repeated_ready = True
        with db.transaction():
            self._upsert_minutes(db, minutes, outcome)
            if repeated:
                self._merge_repeated(db, repeated, outcome)
        return outcome

    def purge_targets(self, db: Database, cutoff_ns: int) -> list[PurgeTarget]:
        cutoff = datetime.fromtimestamp(cutoff_ns // NS, self.zone).strftime(WALL_CLOCK)
        return [PurgeTarget(spec.name, self.options.time_column, cutoff)
                for spec in (self.table, self.repeated) if db.columns(spec.name)]

    def _take(self, metric: Metric, outcome: Outcome) -> tuple[str, float, float] | None:
        """The column, mean and weight a metric brings, or None when it is skipped or
        rejected (counted in ``outcome``, logged once per kind)."""
        options = self.options
        if metric.name != options.measurement:
            return self._skip(outcome, ("measurement", metric.name),
                              "skipping %s metrics: the se521 layout takes only %s",
                              metric.name, options.measurement)
        mean = metric.fields.get(self.mean_field)
        if mean is None:
            return self._skip(outcome, "no mean", "skipping %s metrics without %s (e.g. raw "
                              "readings): the table holds per-minute means; %s",
                              metric.name, self.mean_field, AGGREGATOR_HINT)
        column = options.columns.get(metric.tags.get("channel", ""))
        if column is None:
            return self._skip(outcome, ("channel", metric.tags.get("channel")),
                              "skipping channel %s: not in [outputs.sql.se521] columns",
                              metric.tags.get("channel"))
        if metric.time_ns % MINUTE_NS:
            return self._skip(outcome, "unaligned", "skipping %s means not on a whole minute: "
                              'the table needs 1-minute windows (period = "1m")', metric.name)
        if type(mean) not in (float, int):
            outcome.rejected += 1
            self.notices.once("type", "rejected %s: %s is %r, not a number", metric.name,
                              self.mean_field, mean)
            return None
        device = metric.tags.get("device", "")
        if self.device is None:
            self.device = device
            self.context.log.info("table %s holds device %r", options.table, device)
        if device != self.device:
            return self._skip(outcome, ("device", device), "skipping device %r: table %s holds "
                              "device %r (set [outputs.sql.se521] device, and use one "
                              "[[outputs.sql]] per device)", device, options.table, self.device)
        count = metric.fields.get(self.count_field)
        weight = float(count) if type(count) in (float, int) and count > 0 else 1.0
        return column, float(mean), weight

    def _skip(self, outcome: Outcome, key: object, message: str, *args: object) -> None:
        outcome.skipped += 1
        self.notices.once(key, message + " (counted in skipped)", *args)

    def _minute(self, time_ns: int) -> tuple[str, bool, int]:
        """The wall-clock minute of a UTC minute start; whether that wall-clock minute
        happens twice (clocks going back), and which pass this is (0 or 1)."""
        found = self._minutes.get(time_ns)
        if found is None:
            local = datetime.fromtimestamp(time_ns // NS, UTC).astimezone(self.zone)
            other = local.replace(fold=1 - local.fold)
            ambiguous = other.utcoffset() != local.utcoffset()
            found = (local.strftime("%Y-%m-%d %H:%M:00"), ambiguous, local.fold)
            if len(self._minutes) >= MINUTES_CACHED:
                self._minutes.clear()
            self._minutes[time_ns] = found
        return found

    def _upsert_minutes(self, db: Database, minutes: dict[str, dict[str, float]],
                        outcome: Outcome) -> None:
        columns = [self.options.time_column, *self.channel_columns]
        walls = list(minutes)
        rows = [(wall, *(minutes[wall].get(column) for column in self.channel_columns))
                for wall in walls]
        refused = db.upsert(self.table.name, columns, rows, self.table.primary_key)
        lost = sum(len(minutes[walls[index]]) for index, _ in refused)
        for _, reason in refused:
            self.notices.once(("refused", reason), "table %s refused a minute: %s",
                              self.table.name, reason)
        outcome.rejected += lost
        outcome.written += sum(map(len, minutes.values())) - lost

    def _merge_repeated(self, db: Database, parts: list[Row], outcome: Outcome) -> None:
        """Keep both passes of each repeated minute apart, then set the minute to their
        weighted mean: idempotent, whichever pass or redelivery comes first."""
        spec = self.repeated
        columns = [column.name for column in spec.columns]
        refused = db.upsert(spec.name, columns, parts, spec.primary_key)
        outcome.rejected += len(refused)
        stored = len(parts) - len(refused)
        self.context.stats.incr("repeated_hour_values", stored)
        walls = sorted({str(part[0]) for part in parts})
        for hour in sorted({wall[:13] for wall in walls}):
            self.notices.once(("repeated", hour), "%s:00 to %s:59 happened twice in %s (clocks "
                              "went back): each of its minutes holds the mean of both passes",
                              hour, hour[11:13], self.zone, level=logging.INFO)
        merged: dict[str, dict[str, float]] = {}
        for wall, column, mean in self._weighted_means(db, walls):
            merged.setdefault(wall, {})[column] = mean
        rows = [(wall, *(values.get(column) for column in self.channel_columns))
                for wall, values in merged.items()]
        for _, reason in db.upsert(self.table.name, [self.options.time_column,
                                                     *self.channel_columns],
                                   rows, self.table.primary_key):
            self.notices.once(("refused", reason), "table %s refused a minute: %s",
                              self.table.name, reason)
        outcome.written += stored

    def _weighted_means(self, db: Database,
                        walls: Iterable[str]) -> list[tuple[str, str, float]]:
        spec, time_column = self.repeated, db.quote(self.options.time_column)
        walls = list(walls)
        rows = db.query(
            f"SELECT {time_column}, column_name, SUM(mean * weight) / SUM(weight) "
            f"FROM {db.quote(spec.name)} WHERE {time_column} IN "
            f"({db.placeholders(len(walls))}) GROUP BY {time_column}, column_name", walls)
        return [(str(wall), column, float(mean)) for wall, column, mean in rows]
