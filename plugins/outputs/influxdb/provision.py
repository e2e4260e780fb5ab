"""Retention as code: make the server's database, retention policies and continuous
queries match the config, with InfluxQL over /query.

Idempotent: what already matches produces no statement. A retention policy whose
attributes differ is ALTERed (1.x refuses to re-create it). A continuous query cannot
be altered, so each managed CQ is named after its rule and a hash of its definition:
a changed rule is a new CQ.

A start only creates or changes what this config declares: several collectors (or a
quick test config) sharing a database must not undo each other's work, and a CQ this
config does not declare may be another config's as well as an older version of one of
its own rules. Such CQs are kept and named in a warning; pruning
(``collector provision --prune``) drops them, and retention policies the config does
not list (those that hold data, i.e. have shards, only when pruning "all").
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from dataclasses import dataclass

from plugins.outputs.influxdb.settings import Downsample, InfluxDBConfig, RetentionPolicy
from plugins.outputs.influxdb.transport import V1Transport

CQ_PREFIX = "collector_"
_GO_DURATION = re.compile(r"(\d+)(h|m|s)")
_UNITS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


@dataclass(frozen=True)
class ServerPolicy:
    name: str
    duration: float
    shard_duration: float
    replication: int
    default: bool


def quote(identifier: str) -> str:
    return '"' + identifier.replace("\\", "\\\\").replace('"', '\\"') + '"'


def influxql_duration(seconds: float) -> str:
    if math.isinf(seconds):
        return "INF"
    whole = round(seconds)
    for unit, size in _UNITS:
        if whole % size == 0:
            return f"{whole // size}{unit}"
    raise AssertionError("unreachable: 's' divides every whole number")


def go_duration(text: str) -> float:
    """Seconds of a Go duration as SHOW RETENTION POLICIES prints it; 0s is infinite."""
    seconds = sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in _GO_DURATION.findall(text))
    return math.inf if seconds == 0 else float(seconds)


def continuous_query(database: str, rule: Downsample) -> tuple[str, str]:
    """Name and CREATE statement of the CQ for one downsampling rule."""
    if rule.measurements:
        sources = ", ".join(f"{quote(database)}.{quote(rule.source)}.{quote(m)}"
                            for m in rule.measurements)
    else:
        sources = f"{quote(database)}.{quote(rule.source)}./.*/"
    interval = influxql_duration(rule.interval)
    selected = rule.select or f"{rule.aggregate}(*)"
    into = quote(rule.into) if rule.into else ":MEASUREMENT"
    zone = f" tz('{rule.time_zone}')" if rule.time_zone else ""
    resample = "".join(f" {word} {influxql_duration(value)}" for word, value in (
        ("EVERY", rule.resample_every), ("FOR", rule.resample_for)) if value is not None)
    body = (f"{'RESAMPLE' + resample + ' ' if resample else ''}BEGIN SELECT {selected} INTO "
            f"{quote(database)}.{quote(rule.target)}.{into} FROM {sources} GROUP BY "
            f"time({interval}), *{zone} END")
    digest = hashlib.sha256(body.encode()).hexdigest()[:8]
    kind = rule.into or ("select" if rule.select else rule.aggregate)
    name = f"{CQ_PREFIX}{rule.source}_to_{rule.target}_{kind}_{interval}_{digest}"
    return name, f"CREATE CONTINUOUS QUERY {quote(name)} ON {quote(database)} {body}"


class Provisioner:
    def __init__(self, transport: V1Transport, config: InfluxDBConfig,
                 log: logging.Logger) -> None:
        self.transport = transport
        self.config = config
        self.log = log
        self.db = quote(config.database)

    def apply(self, dry_run: bool, prune: str = "none") -> list[str]:
        """Statements run (or, with ``dry_run``, that would run)."""
        done: list[str] = []

        def run(statement: str) -> None:
            done.append(statement)
            if not dry_run:
                self.transport.query(statement)

        if self.config.database not in self._databases():
            run(f"CREATE DATABASE {self.db}")
            policies = {} if dry_run else self._policies()
        else:
            policies = self._policies()
        for wanted in self.config.retention_policies:
            statement = self._policy_statement(wanted, policies.get(wanted.name))
            if statement:
                run(statement)
        if prune != "none" and self.config.retention_policies:
            for statement in self._prune(policies, prune):
                run(statement)
        for statement in self._continuous_queries(prune != "none"):
            run(statement)
        return done

    def _databases(self) -> set[str]:
        series = self.transport.query("SHOW DATABASES")
        return {row[0] for s in series for row in s.get("values", [])}

    def _policies(self) -> dict[str, ServerPolicy]:
        found = {}
        for series in self.transport.query(f"SHOW RETENTION POLICIES ON {self.db}"):
            for values in series.get("values", []):
                row = dict(zip(series["columns"], values, strict=True))
                found[row["name"]] = ServerPolicy(
                    row["name"], go_duration(row["duration"]),
                    go_duration(row["shardGroupDuration"]), row["replicaN"], row["default"])
        return found

    def _policy_statement(self, wanted: RetentionPolicy, have: ServerPolicy | None) -> str:
        clauses = f"DURATION {influxql_duration(wanted.duration)} REPLICATION {wanted.replication}"
        if wanted.shard_duration is not None:
            clauses += f" SHARD DURATION {influxql_duration(wanted.shard_duration)}"
        if wanted.default:
            clauses += " DEFAULT"
        target = f"{quote(wanted.name)} ON {self.db} {clauses}"
        if have is None:
            return f"CREATE RETENTION POLICY {target}"
        same = (
            have.duration == wanted.duration
            and have.replication == wanted.replication
            and (wanted.shard_duration is None or have.shard_duration == wanted.shard_duration)
            and (have.default or not wanted.default)
        )
        return "" if same else f"ALTER RETENTION POLICY {target}"

    def _prune(self, policies: dict[str, ServerPolicy], prune: str) -> list[str]:
        listed = {rp.name for rp in self.config.retention_policies}
        new_default = any(rp.default for rp in self.config.retention_policies)
        holding = self._policies_with_shards()
        statements = []
        for name, have in policies.items():
            if name in listed or (have.default and not new_default):
                continue
            if name in holding and prune != "all":
                continue
            statements.append(f"DROP RETENTION POLICY {quote(name)} ON {self.db}")
        return statements

    def _policies_with_shards(self) -> set[str]:
        found = set()
        for series in self.transport.query("SHOW SHARDS"):
            if series.get("name") != self.config.database:
                continue
            column = series["columns"].index("retention_policy")
            found.update(values[column] for values in series.get("values", []))
        return found

    def _continuous_queries(self, prune: bool) -> list[str]:
        """Create the CQs this config declares; with ``prune``, drop the managed ones it
        does not, else name them in a warning."""
        wanted = dict(continuous_query(self.config.database, rule)
                      for rule in self.config.downsampling)
        existing = set()
        for series in self.transport.query("SHOW CONTINUOUS QUERIES"):
            if series.get("name") == self.config.database:
                existing.update(values[0] for values in series.get("values", []))
        undeclared = sorted(name for name in existing
                            if name.startswith(CQ_PREFIX) and name not in wanted)
        statements = [statement for name, statement in wanted.items() if name not in existing]
        if prune:
            return [f"DROP CONTINUOUS QUERY {quote(name)} ON {self.db}"
                    for name in undeclared] + statements
        if undeclared:
            self.log.warning("kept continuous queries this config does not declare (another "
                             "config's, or an older version of a rule; `collector provision "
                             "--prune` drops them): %s", ", ".join(undeclared))
        return statements
