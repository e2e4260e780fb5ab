"""outputs.sql in the running collector, and when the database is down, refuses the
credentials, or holds old rows."""

from __future__ import annotations

import itertools
import logging
import time

import pytest

from collector import Metric, RetryableError
from tests.fixed_input import agent_from, output_counters, register_input
from tests.helpers import collector, post, stop, wait_until, write_config
from tests.mariadb import SQLiteStore
from tests.se521_readings import MINUTE_NS, NS
from tests.servers import free_port
from tests.sql_helpers import Options, sql_output, write

DAY_NS = 86_400 * NS
HOUR_NS = 3_600 * NS


def test_collector_run_mirrors_into_sqlite_and_stops_cleanly(tmp_path):
    """The real process: listener, spool, the output's own thread, the purge thread,
    then SIGTERM: everything acknowledged is in the file and nothing complains."""
    port = free_port()
    path = write_config(tmp_path, f"""
[agent]
state_dir = "{tmp_path}"
flush_interval = "0.2s"
omit_hostname = true
[[inputs.influxdb_listener]]
service_address = "127.0.0.1:{port}"
[[outputs.sql]]
driver = "sqlite"
path = "mirror.db"
retention = "400d"
""")
    log_path = tmp_path / "collector.log"
    with open(log_path, "ab") as log:
        process = collector("run", "-c", str(path), stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: post(url, b"") == 204, timeout=20)
        now = time.time_ns()
        for i in range(20):
            assert post(url, b"flow,loop=a n=%di %d\n" % (i, now + i)) == 204
        store = SQLiteStore(tmp_path)
        wait_until(lambda: store.path.exists() and store.rows(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'flow'") == [(1,)]
            and store.rows("SELECT COUNT(*) FROM flow") == [(20,)], timeout=20)
    finally:
        assert stop(process) == 0
    log = log_path.read_text()
    assert "Traceback" not in log and "failed" not in log, log


def test_a_server_that_is_down_keeps_the_data_in_the_spool_until_it_is_back(
        own_mariadb, tmp_path, caplog):
    numbers = itertools.count()
    base = time.time_ns()
    register_input("sql_numbers", lambda: [Metric("flow", {"n": n}, {"loop": "a"},
                                                  base + n * 10**6)
                                           for n in itertools.islice(numbers, 100)])
    config = f"""
[[inputs.sql_numbers]]
[[outputs.sql]]
driver = "mysql"
port = {own_mariadb.port}
username = "root"
database = "outage"
retry_max_interval = "1s"
"""
    down = agent_from(config, tmp_path)
    for _ in range(3):
        down.polled[0].gather_once()
    with caplog.at_level(logging.DEBUG, logger="collector"):
        assert not down.outputs[0].flush(time.monotonic() + 3)
    down.close()
    failures = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(failures) == 1, "one line per episode"
    assert f"mysql 127.0.0.1:{own_mariadb.port}/outage" in failures[0]
    assert "(2003)" in failures[0]

    own_mariadb.start()
    back = agent_from(config, tmp_path)
    assert back.once(wait=0)
    assert output_counters(back, "sql")["written"] == 400
    stored = [n for (n,) in own_mariadb.query("SELECT n FROM flow ORDER BY n", "outage")]
    assert stored == list(range(400))


def test_wrong_credentials_are_retried_with_a_reason_that_holds_no_secret(mariadb, tmp_path,
                                                                          caplog):
    mariadb.query("CREATE USER IF NOT EXISTS 'writer'@'127.0.0.1' IDENTIFIED BY 'right-horse'")
    mariadb.query("GRANT ALL ON credentials.* TO 'writer'@'127.0.0.1'")
    head = (f'driver = "mysql"\nport = {mariadb.port}\nusername = "writer"\n'
            'database = "credentials"\n')
    wrong = Options(head + 'password = "battery-staple"\n')
    with caplog.at_level(logging.DEBUG), pytest.raises(RetryableError) as refused:
        write(sql_output(wrong, tmp_path), [f"m v=1 {time.time_ns()}"])
    assert "Access denied for user 'writer'" in str(refused.value)
    assert "(1045)" in str(refused.value)
    assert "battery-staple" not in str(refused.value) + caplog.text

    (tmp_path / "password").write_text("right-horse\n")
    right = Options(head + f'password_file = "{tmp_path}/password"\n')
    output = sql_output(right, tmp_path)
    assert write(output, [f"m v=1 {time.time_ns()}"]).written == 1
    output.close()


def test_the_purge_deletes_exactly_the_rows_older_than_the_retention(store, tmp_path, caplog):
    now = time.time_ns()
    cutoff = now - 400 * DAY_NS
    ages = [800 * DAY_NS, 401 * DAY_NS, 400 * DAY_NS + 2 * HOUR_NS, 400 * DAY_NS + 3 * HOUR_NS,
            400 * DAY_NS + HOUR_NS, 400 * DAY_NS - HOUR_NS, 30 * DAY_NS, 0]
    generic = sql_output(store, tmp_path)
    write(generic, [f"m,probe=p{i % 2} v={i} {now - age}" for i, age in enumerate(ages)])
    generic.close()
    minutes = [(now - age) // MINUTE_NS * MINUTE_NS for age in ages]
    legacy_options = 'layout = "se521"\ntimezone = "America/New_York"\n'
    legacy = sql_output(store, tmp_path, legacy_options)
    write(legacy, [f"se521,channel=T1,device=EMU celsius_mean={i} {minute}"
                   for i, minute in enumerate(minutes)])
    legacy.close()

    options = 'retention = "400d"\npurge_interval = "1h"\npurge_batch_size = 2\n'
    purging = [sql_output(store, tmp_path, options),
               sql_output(store, tmp_path, options + legacy_options)]
    with caplog.at_level(logging.INFO):
        for output in purging:
            output.start()
        wait_until(lambda: sum(o.context.stats.get("purged") for o in purging) == 10,
                   timeout=20)
    for output in purging:
        output.close()

    kept = [i for i, age in enumerate(ages) if now - age >= cutoff]
    assert [v for (v,) in store.rows("SELECT v FROM m ORDER BY v")] == kept
    assert [round(v) for (v,) in store.rows("SELECT tc1 FROM temperatures ORDER BY tc1")] == kept
    assert caplog.text.count("retention: purged 5 rows older than") == 2
