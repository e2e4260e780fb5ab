"""Every Grafana panel query and alert query of the stack, run against an influxd that
the stack's own collector config filled (with the emulators), as Grafana would send it:
macros and template variables substituted. Each must return rows with the columns the
panel or rule reads."""

from __future__ import annotations

import datetime
import random
import re
import time
from pathlib import Path

import pytest

from tests.helpers import collector, stop, wait_until
from tests.stack import (
    ALERT_LIMITS,
    STACK,
    TimeRange,
    alert_rules,
    backfill,
    dashboards,
    expected_columns,
    influxd_write,
    panels,
    regex_values,
    substitute,
)

MINUTE_NS = 60 * 10**9
HISTORY_MINUTES = 30
"""Copies of the collector's own lines, one a minute back in time: alert queries look at
up to 15 minutes and some take differences between minutes."""
METER_HOURS = 50
"""Synthetic meter counters this far back: hourly and daily roll-ups need a period
before the one they report."""

FAST = """
[agent]
interval = "1s"
flush_interval = "1s"
# What the mirror adds (mirror.toml): per-minute means, here per second, so that the
# aggregator's own metrics exist for the Collector dashboard.
[[aggregators.basicstats]]
period = "1s"
stats = ["mean", "count"]
namepass = ["se521"]
fieldpass = ["celsius"]
[[outputs.file]]
files = ["metrics.lp"]
"""


def shifted(line: bytes, by_ns: int) -> bytes:
    head, stamp = line.rsplit(b" ", 1)
    return head + b" %d" % (int(stamp) - by_ns)


def meter_history(tags: str, now_ns: int) -> bytes:
    """Counters of a meter that imports at night and exports around midday, read every
    minute, and its price pushes: what the energy roll-ups are computed from."""
    rng = random.Random(7)
    delivered, received, lines = 1000.0, 10.0, []
    start = now_ns - METER_HOURS * 60 * MINUTE_NS
    last = METER_HOURS * 60
    for minute in range(last + 1):
        stamp = min(start + minute * MINUTE_NS + rng.randrange(MINUTE_NS // 2), now_ns - 10**9)
        hour = datetime.datetime.fromtimestamp(stamp / 1e9, datetime.UTC).hour
        if 10 <= hour < 15:
            received += rng.uniform(0.01, 0.04)
        else:
            delivered += rng.uniform(0.005, 0.03)
        lines.append(b"raven_summation,%s delivered_kwh=%.3f,received_kwh=%.3f %d"
                     % (tags.encode(), delivered, received, stamp))
        if minute % 5 == 0 or minute == last:  # the hour of "now" has a price too
            lines.append(b"raven_price,%s price=0.%d,currency=840i %d"
                         % (tags.encode(), 20 + hour % 3, stamp))
    return b"\n".join(lines) + b"\n"


@pytest.fixture(scope="module")
def stack_db(influxd, tmp_path_factory) -> str:
    """The stack's collector config, run for a few seconds with the emulators; then a
    half hour of history of what it wrote and two days of meter counters; then the
    stack's continuous queries run over that history, as they would have run live."""
    directory: Path = tmp_path_factory.mktemp("stack")
    database = "stack_queries"
    (directory / "fast.toml").write_text(FAST)
    env = {"INFLUXDB_URL": influxd.url, "INFLUXDB_DB": database,
           "STATE_DIRECTORY": str(directory / "state"), "COLLECTOR_TIME_ZONE": "UTC"}
    process = collector("run", "-c", str(STACK / "collector" / "collector.toml"),
                        "-c", str(directory / "fast.toml"), env=env)
    written = directory / "state" / "metrics.lp"
    try:
        def complete() -> bool:
            text = written.read_bytes() if written.exists() else b""
            return (b"\nraven_summation," in text and b"\nraven_price," in text
                    and text.count(b"\ninternal_output,") >= 4
                    and b"\ninternal_aggregator," in text and b"\nse521_status," in text)

        wait_until(complete, timeout=40, every=0.5)
    finally:
        assert stop(process) == 0
    lines = [line for line in written.read_bytes().splitlines()
             if line and not line.startswith((b"raven_summation", b"raven_price"))]
    history = b"\n".join(shifted(line, minutes * MINUTE_NS) for minutes
                         in range(1, HISTORY_MINUTES + 1) for line in lines) + b"\n"
    influxd_write(influxd, database, history)
    summation = next(line for line in written.read_bytes().splitlines()
                     if line.startswith(b"raven_summation,"))
    tags = summation.split(b" ", 1)[0].split(b",", 1)[1].decode()
    influxd_write(influxd, database, meter_history(tags, time.time_ns()))
    (continuous_queries,) = [series for series in influxd.query("SHOW CONTINUOUS QUERIES")
                             if series["name"] == database]
    start = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=METER_HOURS + 24))
    end = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    for _name, statement in continuous_queries["values"]:
        influxd.query(backfill(statement, start.strftime("%Y-%m-%dT%H:00:00Z"),
                               end.strftime("%Y-%m-%dT%H:00:00Z")), database)
    return database


def rows(influxd, database: str, query: str) -> tuple[list[str], list[list]]:
    """Columns (without time) and rows of every series the query returns."""
    columns: list[str] = []
    values: list[list] = []
    for series in influxd.query(query, database):
        columns = [column for column in series["columns"] if column != "time"]
        values.extend(row[1:] for row in series.get("values", []))
    return columns, values


def variable_values(influxd, database: str, dashboard: dict, time_range: TimeRange) -> dict:
    """Each template variable as Grafana's "All" sends it, resolved in order from the
    variable queries themselves (so they are tested too)."""
    resolved: dict[str, str] = {}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "custom":
            resolved[variable["name"]] = variable["current"]["value"]
            continue
        query = substitute(variable["query"], resolved, time_range, "1m")
        found = [row[series["columns"].index("value")]
                 for series in influxd.query(query, database) for row in series.get("values", [])]
        tag_values = [value for value in found if value]
        assert tag_values, f"variable {variable['name']}: {query} found nothing"
        resolved[variable["name"]] = regex_values(sorted(set(tag_values)))
    return resolved


def panel_range(panel: dict, now_ns: int) -> TimeRange:
    """The dashboard's last 6 hours, or the panel's own relative time (15m, 2d, now/d,
    now/M) in UTC, the zone the test's roll-ups were computed in."""
    relative = panel.get("timeFrom")
    now = datetime.datetime.fromtimestamp(now_ns / 1e9, datetime.UTC)
    if relative == "now/d":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    elif relative == "now/M":
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    elif relative:
        amount, unit = re.fullmatch(r"(\d+)([mhd])", relative).groups()
        start = now - datetime.timedelta(**{{"m": "minutes", "h": "hours",
                                             "d": "days"}[unit]: int(amount)})
    else:
        start = now - datetime.timedelta(hours=6)
    return TimeRange(int(start.timestamp() * 1e9), now_ns)


def interval_for(panel: dict, time_range: TimeRange) -> str:
    """Grafana's $__interval: the range over about 1,000 points, at least the panel's
    (or the datasource's 10 s) minimum."""
    floor = {"1h": 3600}.get(panel.get("interval", ""), 10)
    seconds = max(floor, (time_range.end_ns - time_range.start_ns) // 10**9 // 1000)
    return f"{seconds}s"


DASHBOARD_TARGETS = [
    pytest.param(name, panel["id"], target["refId"],
                 id=f"{name}:{panel['title']}:{target['refId']}")
    for name, dashboard in dashboards().items() for panel in panels(dashboard)
    for target in panel["targets"]
]


@pytest.mark.parametrize(("dashboard_name", "panel_id", "ref"), DASHBOARD_TARGETS)
def test_panel_query_returns_its_columns(influxd, stack_db, dashboard_name, panel_id, ref):
    dashboard = dashboards()[dashboard_name]
    panel = next(p for p in panels(dashboard) if p["id"] == panel_id)
    target = next(t for t in panel["targets"] if t["refId"] == ref)
    now_ns = time.time_ns()
    time_range = panel_range(panel, now_ns)
    variables = variable_values(influxd, stack_db, dashboard,
                                TimeRange(now_ns - 6 * 3600 * 10**9, now_ns))
    query = substitute(target["query"], variables, time_range, interval_for(panel, time_range))
    columns, values = rows(influxd, stack_db, query)
    assert columns == expected_columns(target["query"]), query
    for index, column in enumerate(columns):
        assert any(row[index] is not None for row in values), f"{column} empty: {query}"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["uid"])
def test_alert_query_returns_its_columns(influxd, stack_db, rule):
    (query,) = [item for item in rule["data"] if item["datasourceUid"] != "__expr__"]
    now_ns = time.time_ns()
    seconds = query["relativeTimeRange"]["from"]
    time_range = TimeRange(now_ns - seconds * 10**9, now_ns)
    text = substitute(query["model"]["query"], {}, time_range, "1m")
    columns, values = rows(influxd, stack_db, text)
    assert columns == expected_columns(query["model"]["query"]), text
    for index, column in enumerate(columns):
        assert any(row[index] is not None for row in values), f"{column} empty: {text}"


def firing(influxd, database: str) -> set[tuple[str, str]]:
    """Each rule's (uid, series) whose condition holds now: the query over the rule's
    relative time range, reduced and compared as the rule's expressions say."""
    now_ns = time.time_ns()
    found = set()
    for rule in alert_rules():
        query, reducer, condition = rule["data"]
        seconds = query["relativeTimeRange"]["from"]
        text = substitute(query["model"]["query"], {},
                          TimeRange(now_ns - seconds * 10**9, now_ns), "1m")
        evaluator = condition["model"]["conditions"][0]["evaluator"]
        limits = [float(value) if not isinstance(value, str) else
                  float(ALERT_LIMITS[value.strip("${}")]) for value in evaluator["params"]]
        for series in influxd.query(text, database, missing_ok=True):
            reduced = reduce(reducer["model"]["reducer"],
                             [row[1] for row in series["values"] if row[1] is not None])
            if reduced is not None and fires(evaluator["type"], limits, reduced):
                found.add((rule["uid"], ",".join(f"{k}={v}" for k, v in
                                                 sorted(series.get("tags", {}).items()))))
    return found


def test_healthy_stack_fires_no_alert(influxd, stack_db):
    assert firing(influxd, stack_db) == set()


def test_absent_thermometer_stale_meter_and_hot_probe_fire(influxd, database):
    now = time.time_ns()
    points = b"".join(
        b"se521_health,device=/dev/se521,host=pi state=\"absent\",state_code=2i %d\n"
        b"raven_health,host=pi,port=/dev/raven state=\"stale\",state_code=2i,"
        b"clock_skew_s=-3600.5 %d\n"
        b"se521,channel=T2,device=/dev/se521,host=pi,label=flow celsius=101.5 %d\n"
        b"internal_input,host=pi,input=se521 gathered=%di %d\n"
        % (stamp, stamp, stamp, index, stamp)
        for index, stamp in enumerate(range(now - 55 * 10**9, now, 5 * 10**9)))
    influxd.query(f'CREATE DATABASE "{database}"')
    influxd.query(f'CREATE RETENTION POLICY "raw" ON "{database}" DURATION 1d REPLICATION 1 '
                  "DEFAULT")
    influxd_write(influxd, database, points)
    assert firing(influxd, database) == {
        ("collector-se521-silent", "device=/dev/se521,host=pi"),
        ("collector-meter-stale", "host=pi,port=/dev/raven"),
        ("collector-meter-clock-skew", "host=pi,port=/dev/raven"),
        ("collector-temperature-t2", "device=/dev/se521,host=pi,label=flow"),
    }


def test_a_silent_collector_fires_through_no_data(influxd, database):
    """No point at all: the one rule meant for it treats no data as alerting."""
    (rule,) = [rule for rule in alert_rules() if rule["noDataState"] == "Alerting"]
    assert rule["uid"] == "collector-not-reporting"
    assert firing(influxd, database) == set()
def reduce(reducer: str, values: list[float]) -> float | None:
    if not values:
        return None
    return {"last": values[-1], "mean": sum(values) / len(values), "sum": sum(values),
            "max": max(values), "min": min(values)}[reducer]


def fires(kind: str, limits: list[float], value: float) -> bool:
    if kind == "gt":
        return value > limits[0]
    if kind == "lt":
        return value < limits[0]
    if kind == "outside_range":
        return not limits[0] <= value <= limits[1]
    raise AssertionError(kind)
