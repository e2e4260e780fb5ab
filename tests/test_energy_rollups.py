"""The stack's kWh roll-ups, checked against real influxd: the hourly energy from a
meter's cumulative counter, as the stack's continuous query computes it
(non_negative_difference of each hour's highest reading), adds up to what the counter
says, where spread() within each hour misses what was used between two hours'
readings; and a reading that arrives late is folded into its hour by RESAMPLE FOR."""

from __future__ import annotations

import datetime
import random
import time
import tomllib

from collector.binding import bind
from plugins.outputs.influxdb.provision import continuous_query
from plugins.outputs.influxdb.settings import Downsample
from tests.helpers import output_plugin, wait_until
from tests.stack import STACK, backfill, influxd_write

HOUR_NS = 3600 * 10**9
STACK_CONFIG = STACK / "collector" / "collector.toml"


def stack_rule(into: str, measurement: str = "raven_summation") -> dict:
    """The stack's downsampling rule that writes ``into`` from ``measurement``."""
    rules = tomllib.loads(STACK_CONFIG.read_text())["outputs"]["influxdb"][0]["downsampling"]
    (rule,) = [rule for rule in rules
               if rule.get("into") == into and rule["measurements"] == [measurement]]
    return rule


def readings(start_ns: int, hours: int, rng: random.Random) -> list[tuple[int, float]]:
    """A counter read every 40 to 200 s: the meter's pace varies, so readings fall
    anywhere relative to the hour."""
    stamp, kwh, out = start_ns + rng.randrange(60 * 10**9), 5000.0, []
    while stamp < start_ns + hours * HOUR_NS:
        out.append((stamp, round(kwh, 3)))
        step = rng.randrange(40, 200)
        kwh += step * rng.uniform(0.0001, 0.0006)
        stamp += step * 10**9
    return out


def test_hourly_energy_adds_up_where_spread_loses_the_gaps(influxd, database):
    rule = stack_rule("energy_hourly")
    rng = random.Random(1)
    start = (time.time_ns() // HOUR_NS - 8) * HOUR_NS
    points = readings(start, 6, rng)
    influxd.query(f'CREATE DATABASE "{database}"')
    for policy in ("raw", "energy"):
        influxd.query(f'CREATE RETENTION POLICY "{policy}" ON "{database}" DURATION INF '
                      f'REPLICATION 1{" DEFAULT" if policy == "raw" else ""}')
    influxd_write(influxd, database, b"".join(
        b"raven_summation,meter_mac=0x01 delivered_kwh=%.3f,received_kwh=0 %d\n"
        % (kwh, stamp) for stamp, kwh in points))
    _name, statement = continuous_query(database, bind(Downsample, {**rule, "time_zone": "UTC"}))
    window = [datetime.datetime.fromtimestamp(ns / 1e9, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
              for ns in (start, start + 7 * HOUR_NS)]
    influxd.query(backfill(statement, *window), database)

    hourly = influxd.rows('SELECT delivered_kwh FROM "energy"."energy_hourly"', database)
    spread = influxd.rows(f'SELECT spread(delivered_kwh) FROM "raw"."raven_summation" WHERE '
                          f"time >= {start} AND time < {start + 6 * HOUR_NS} GROUP BY time(1h)",
                          database)
    last_of_first_hour = max(kwh for stamp, kwh in points if stamp < start + HOUR_NS)
    used_since = points[-1][1] - last_of_first_hour
    assert len(hourly) == 5, "every hour but the first has the hour before it"
    assert abs(sum(row["delivered_kwh"] for row in hourly) - used_since) < 1e-6
    between_hours = sum(
        min(kwh for stamp, kwh in points if stamp >= hour)
        - max(kwh for stamp, kwh in points if stamp < hour)
        for hour in range(start + HOUR_NS, start + 6 * HOUR_NS, HOUR_NS))
    spread_total = sum(row["spread"] for row in spread[1:])
    assert between_hours > 0
    assert abs(used_since - spread_total - between_hours) < 1e-6, "spread loses exactly the gaps"


def test_a_late_reading_is_folded_into_its_period(influxd, database, tmp_path):
    """The stack's hourly rule scaled down to 2 s periods, recomputing the last 20 s
    every second: a reading that reaches InfluxDB after its period was first rolled up
    (a late push, or the spool's replay after an outage) moves the energy between that
    period and the next, and the total stays what the counter says."""
    rule = stack_rule("energy_hourly")
    plugin = output_plugin(f"""
[[outputs.influxdb]]
urls = ["{influxd.url}"]
database = "{database}"
[[outputs.influxdb.retention_policies]]
name = "raw"
duration = "1d"
default = true
[[outputs.influxdb.retention_policies]]
name = "energy"
duration = "INF"
[[outputs.influxdb.downsampling]]
source = "raw"
target = "energy"
interval = "2s"
measurements = ["raven_summation"]
select = "{rule['select']}"
into = "energy_hourly"
resample_every = "1s"
resample_for = "20s"
""", tmp_path)
    plugin.provision(dry_run=False)
    period = 2 * 10**9
    base = (time.time_ns() // period - 4) * period
    # Two readings a period, at 0.2 s and 1.2 s into it; the 1.8 s one comes late.
    early = [(base + k * period + offset, 100.0 + 2 * k + step)
             for k in range(4) for step, offset in ((0, 200_000_000), (1, 1_200_000_000))]
    plugin.write(b"".join(b"raven_summation,meter_mac=0x01 delivered_kwh=%.1f %d\n"
                          % (kwh, stamp) for stamp, kwh in early), len(early))

    def energy() -> dict[int, float]:
        rows = influxd.rows('SELECT delivered_kwh FROM "energy"."energy_hourly"', database,
                            missing_ok=True)
        return {row["time"]: row["delivered_kwh"] for row in rows}

    wait_until(lambda: energy().get(base + 2 * period) == 2.0, timeout=10, every=0.2)
    late_stamp, late_kwh = base + period + 1_800_000_000, 103.5
    plugin.write(b"raven_summation,meter_mac=0x01 delivered_kwh=%.1f %d\n"
                 % (late_kwh, late_stamp), 1)
    folded = wait_until(lambda: (rows := energy()).get(base + period) == 2.5 and rows,
                        timeout=10, every=0.2)
    assert folded[base + 2 * period] == 1.5, "the next period starts from the late reading"
    assert sum(folded[base + k * period] for k in (1, 2, 3)) == 107.0 - 101.0
