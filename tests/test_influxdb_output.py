"""outputs.influxdb against a real influxd (v1) and VictoriaMetrics (v2 write API)."""

import logging
import time

import pytest

from collector import Metric, RetryableError
from tests.fixed_input import agent_from, output_counters, register_input
from tests.helpers import output_plugin, wait_until

HOUR_NS = 3600 * 10**9


def count(influxd, db: str, rp: str = "") -> int:
    source = f'"{db}"."{rp}"./.*/' if rp else "/.*/"
    rows = influxd.rows(f"SELECT count(*) FROM {source}", db)
    return sum(v for row in rows for k, v in row.items() if k.startswith("count_"))


def test_point_beyond_retention_is_dropped_and_counted_rest_lands(influxd, database, tmp_path):
    now = time.time_ns()
    register_input("retention_mix", lambda: [Metric("m", {"v": 1.0}, {"old": "yes"},
                                                    now - 3 * HOUR_NS)]
                   + [Metric("m", {"v": float(i)}, {}, now - i) for i in range(5)])
    agent = agent_from(f"""
[[inputs.retention_mix]]
[[outputs.influxdb]]
urls = ["{influxd.url}"]
database = "{database}"
[[outputs.influxdb.retention_policies]]
name = "hour"
duration = "1h"
default = true
""", tmp_path)
    assert agent.once(wait=0)
    counters = output_counters(agent)
    assert counters["written"] == 5
    assert counters["dropped"] == 1
    assert count(influxd, database) == 5


def test_unparseable_line_is_isolated_and_rejected_alone(influxd, database, tmp_path):
    plugin = output_plugin(f'[[outputs.influxdb]]\nurls = ["{influxd.url}"]\n'
                           f'database = "{database}"\n', tmp_path)
    plugin.start()
    good = [b"m v=%di %d\n" % (i, i) for i in range(1, 8)]
    payload = b"".join(good[:3]) + b"m v=1i,w=zz 99\n" + b"".join(good[3:])
    result = plugin.write(payload, 8)
    assert (result.written, result.rejected, result.dropped) == (7, 1, 0)
    assert count(influxd, database) == 7


def test_field_type_conflict_is_rejected_not_retried(influxd, database, tmp_path):
    plugin = output_plugin(f'[[outputs.influxdb]]\nurls = ["{influxd.url}"]\n'
                           f'database = "{database}"\n', tmp_path)
    plugin.start()
    assert plugin.write(b"m v=1.5 1\n", 1).written == 1
    result = plugin.write(b"m v=2i 2\nm v=2.5 3\n", 2)
    assert (result.written, result.rejected) == (1, 1)


def test_missing_database_without_provisioning_is_retried(influxd, tmp_path):
    plugin = output_plugin(f'[[outputs.influxdb]]\nurls = ["{influxd.url}"]\n'
                           'database = "never_created"\nprovision = false\n', tmp_path)
    with pytest.raises(RetryableError, match="404"):
        plugin.write(b"m v=1 1\n", 1)


def test_unreachable_server_is_retried(tmp_path):
    plugin = output_plugin('[[outputs.influxdb]]\nurls = ["http://127.0.0.1:9"]\n', tmp_path)
    with pytest.raises(RetryableError):
        plugin.write(b"m v=1 1\n", 1)


RPS = """
[[outputs.influxdb.retention_policies]]
name = "raw"
duration = "{raw}"
shard_duration = "1h"
default = true
[[outputs.influxdb.retention_policies]]
name = "year"
duration = "365d"
"""


def test_provisioning_is_idempotent_alters_and_creates_cqs_that_fill(influxd, database,
                                                                     tmp_path):
    head = f'[[outputs.influxdb]]\nurls = ["{influxd.url}"]\ndatabase = "{database}"\n'
    first = output_plugin(head + RPS.format(raw="2d"), tmp_path)
    assert len(first.provision(dry_run=False)) == 3
    assert first.provision(dry_run=False) == []

    longer = output_plugin(head + RPS.format(raw="7d"), tmp_path)
    planned = longer.provision(dry_run=True)
    assert planned == [f'ALTER RETENTION POLICY "raw" ON "{database}" DURATION 1w REPLICATION 1 '
                       "SHARD DURATION 1h DEFAULT"]
    assert longer.provision(dry_run=False) == planned
    (policies,) = influxd.query(f'SHOW RETENTION POLICIES ON "{database}"')
    assert ["raw", "168h0m0s", "1h0m0s", 1, True] in policies["values"]

    rule = '[[outputs.influxdb.downsampling]]\nsource = "raw"\ntarget = "year"\ninterval = "1s"\n'
    downsampled = output_plugin(head + RPS.format(raw="7d") + rule, tmp_path)
    (create_cq,) = downsampled.provision(dry_run=False)
    assert create_cq.startswith('CREATE CONTINUOUS QUERY "collector_raw_to_year_mean_1s_')
    assert downsampled.provision(dry_run=False) == []

    def written_and_downsampled():
        stamp = time.time_ns()
        downsampled.write(b"temp,probe=a v=%d.5 %d\n" % (stamp % 100, stamp), 1)
        return influxd.rows('SELECT mean_v FROM "year"."temp" GROUP BY *', database)

    rows = wait_until(written_and_downsampled, timeout=20, every=0.2)
    assert rows[0]["probe"] == "a"
    # JSON writes a whole-valued float mean (38.5 and 39.5 -> 39) as 39: ask for the type.
    (keys,) = influxd.query('SHOW FIELD KEYS FROM "year"."temp"', database)
    assert keys["values"] == [["mean_v", "float"]]


def test_a_start_never_drops_another_configs_cq_prune_does(influxd, database, tmp_path,
                                                           caplog):
    head = f'[[outputs.influxdb]]\nurls = ["{influxd.url}"]\ndatabase = "{database}"\n'
    rule = '[[outputs.influxdb.downsampling]]\nsource = "raw"\ntarget = "year"\ninterval = "{}"\n'
    production = output_plugin(head + RPS.format(raw="2d") + rule.format("1m"), tmp_path)
    production.provision(False)
    minimal = output_plugin(head, tmp_path)
    with caplog.at_level(logging.WARNING):
        assert minimal.provision(False) == []
    assert "collector_raw_to_year_mean_1m_" in caplog.text, "named, not silently kept"
    changed = output_plugin(head + RPS.format(raw="2d") + rule.format("5m"), tmp_path)
    assert [c.split('"')[0] for c in changed.provision(False)] == ["CREATE CONTINUOUS QUERY "]
    pruned = changed.provision(False, prune="empty")
    assert [c.split('"')[0] for c in pruned] == ["DROP RETENTION POLICY ",  # empty autogen
                                                 "DROP CONTINUOUS QUERY "]
    (cqs,) = [s for s in influxd.query("SHOW CONTINUOUS QUERIES") if s["name"] == database]
    assert len(cqs["values"]) == 1 and "_5m_" in cqs["values"][0][0]


def test_prune_keeps_policies_holding_data_unless_told(influxd, database, tmp_path):
    head = f'[[outputs.influxdb]]\nurls = ["{influxd.url}"]\ndatabase = "{database}"\n'
    both = output_plugin(head + RPS.format(raw="2d"), tmp_path)
    both.provision(False)
    both.write(b"m v=1 %d\n" % time.time_ns(), 1)  # "raw" now holds data
    only_year = output_plugin(head + '[[outputs.influxdb.retention_policies]]\nname = "year"\n'
                              'duration = "365d"\ndefault = true\n', tmp_path)
    assert not any("DROP" in c for c in only_year.provision(False))
    pruned = only_year.provision(False, prune="empty")
    assert pruned == [f'DROP RETENTION POLICY "autogen" ON "{database}"']
    assert only_year.provision(False, prune="all") == [
        f'DROP RETENTION POLICY "raw" ON "{database}"']


def test_v2_api_writes_through_influxdb_client(victoria, tmp_path):
    stamp = (time.time_ns() // 10**6) * 10**6
    register_input("v2_source", lambda: [Metric("solar", {"power": 1.25}, {"site": "roof"},
                                                stamp)])
    agent = agent_from(f"""
[[inputs.v2_source]]
[[outputs.influxdb]]
api = "v2"
urls = ["{victoria.url}"]
org = "home"
bucket = "instruments"
token = "not-checked-by-victoria"
""", tmp_path)
    assert agent.once(wait=0)
    assert output_counters(agent)["written"] == 1
    series = wait_until(lambda: victoria.export('solar_power{site="roof"}'), timeout=10)
    assert series[0]["values"] == [1.25]
    assert series[0]["timestamps"] == [stamp // 10**6]


def test_a_custom_select_with_resample_rolls_a_counter_up(influxd, database, tmp_path):
    """Energy per interval from a cumulative counter, recomputed over the last intervals
    so that a late point is folded in: what the stack's kWh roll-ups rely on."""
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
measurements = ["meter"]
select = "spread(kwh) AS kwh"
into = "meter_rollup"
resample_for = "10s"
time_zone = "Europe/Berlin"
""", tmp_path)
    (*_, create) = plugin.provision(dry_run=False)
    assert "RESAMPLE FOR 10s" in create and "tz('Europe/Berlin')" in create
    start = (time.time_ns() // (2 * 10**9) - 1) * 2 * 10**9
    plugin.write(b"".join(b"meter kwh=%d %d\n" % (100 + i, start + i * 10**8)
                          for i in range(5)), 5)

    def rolled_up():
        rows = influxd.rows('SELECT kwh FROM "energy"."meter_rollup"', database,
                            missing_ok=True)
        return [row for row in rows if row["kwh"] == 4.0]

    wait_until(rolled_up, timeout=20, every=0.3)
