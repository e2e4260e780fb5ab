"""Nothing acknowledged is lost: through an InfluxDB outage, kill -9, SIGTERM, full spool."""

import itertools
import time

import pytest

from collector import Metric
from tests.fixed_input import agent_from, input_counters, output_counters, register_input
from tests.helpers import Sender, collector, post, stop, wait_until, write_config
from tests.servers import free_port

CONFIG = """
[agent]
state_dir = "{state}"
flush_interval = "{flush}"
omit_hostname = true
shutdown_timeout = "10s"
[[inputs.influxdb_listener]]
service_address = "127.0.0.1:{port}"
[[outputs.influxdb]]
urls = ["{url}"]
database = "delivery"
timeout = "2s"
retry_max_interval = "2s"
"""


def stored_per_series(influxd) -> dict[str, int]:
    rows = influxd.rows("SELECT count(n) FROM flow GROUP BY \"series\"", "delivery",
                        missing_ok=True)
    return {row["series"]: row["count"] for row in rows}


def stored_numbers(influxd) -> set[int]:
    return {row["n"] for row in influxd.rows("SELECT n FROM flow", "delivery", missing_ok=True)}


def start_collector(tmp_path, influxd, port, flush="0.5s"):
    path = write_config(tmp_path, CONFIG.format(state=tmp_path / "state", flush=flush,
                                                port=port, url=influxd.url))
    process = collector("run", "-c", str(path))
    wait_until(lambda: post(f"http://127.0.0.1:{port}", b"") == 204, timeout=20)
    return process


def test_influxdb_outage_of_20s_loses_and_duplicates_nothing(tmp_path, own_influxd):
    port = free_port()
    process = start_collector(tmp_path, own_influxd, port)
    sender = Sender(f"http://127.0.0.1:{port}")
    sender.thread.start()
    try:
        time.sleep(3)
        own_influxd.stop()
        time.sleep(20)
        own_influxd.start()
        time.sleep(3)
        sender.stop.set()
        sender.thread.join()
        expected = sender.per_series()
        assert sum(expected.values()) > 1000
        wait_until(lambda: stored_per_series(own_influxd) == expected, timeout=60, every=0.5)
    finally:
        assert stop(process) == 0


def test_kill_9_loses_nothing_acknowledged(tmp_path, own_influxd):
    port = free_port()
    process = start_collector(tmp_path, own_influxd, port, flush="1h")
    sender = Sender(f"http://127.0.0.1:{port}")
    sender.thread.start()
    time.sleep(3.3)
    process.kill()
    process.wait()
    sender.stop.set()
    sender.thread.join()
    acknowledged = set(sender.acknowledged)
    assert len(acknowledged) > 100
    assert not stored_numbers(own_influxd), "all of it was only in the spool at the kill"
    restarted = start_collector(tmp_path, own_influxd, port)
    try:
        wait_until(lambda: acknowledged <= stored_numbers(own_influxd), timeout=30)
        extra = stored_numbers(own_influxd) - acknowledged
        assert extra <= {max(acknowledged) + 1}, "only the request cut off by the kill"
    finally:
        assert stop(restarted) == 0


def test_sigterm_flushes_before_exit(tmp_path, influxd):
    port = free_port()
    influxd.query("DROP DATABASE delivery")
    process = start_collector(tmp_path, influxd, port, flush="1h")
    for i in range(50):
        assert post(f"http://127.0.0.1:{port}", b"flow,series=t n=%di %d\n" % (i, i + 1)) == 204
    assert stop(process) == 0
    assert stored_per_series(influxd) == {"t": 50}


@pytest.mark.parametrize("overflow", ["drop_oldest", "drop_newest"])
def test_full_spool_drops_by_its_policy_and_counts(tmp_path, overflow):
    gathers = itertools.count()

    def burst() -> list[Metric]:
        gather = next(gathers)
        return [Metric("burst", {"pad": "x" * 200, "gather": gather}) for _ in range(100)]

    register_input(f"burst_{overflow}", burst)
    agent = agent_from(f"""
[[inputs.burst_{overflow}]]
[[outputs.influxdb]]
urls = ["http://127.0.0.1:9"]
spool_max_bytes = "64KiB"
spool_overflow = "{overflow}"
""", tmp_path)
    (polled,) = agent.polled
    for _ in range(20):
        polled.gather_once()
    spool = agent.outputs[0].spool
    counters = output_counters(agent)
    lost = counters["dropped"] if overflow == "drop_oldest" else counters["refused"]
    assert lost > 0
    assert lost + spool.pending == 2000
    assert counters["dropped" if overflow == "drop_newest" else "refused"] == 0
    assert input_counters(agent, f"burst_{overflow}")["refused"] == counters["refused"]
    assert counters["spool_bytes"] <= 64 * 1024
    oldest_kept = spool.read_batch(1).payload
    assert (b"gather=0i" in oldest_kept) == (overflow == "drop_newest")
    agent.close()
