"""A fleet: two collectors publish over MQTT to one broker, one collector consumes and
writes to InfluxDB. Through a broker outage and a kill -9 of a publisher, every reading
a publisher acknowledged arrives in influxd exactly once per series and timestamp."""

from __future__ import annotations

from tests.helpers import Sender, collector, post, stop, wait_until
from tests.mosquitto import PASSWORD, USER, Mosquitto, mosquitto_fixture  # noqa: F401
from tests.servers import free_port

PUBLISHER = """
[agent]
state_dir = "{state}"
hostname = "{host}"
flush_interval = "0.2s"
shutdown_timeout = "5s"
[[inputs.influxdb_listener]]
service_address = "127.0.0.1:{port}"
[[outputs.mqtt]]
servers = ["{broker}"]
username = "{user}"
password = "{password}"
layout = "batch"
qos = 1
timeout = "2s"
retry_max_interval = "1s"
"""
CONSUMER = """
[agent]
state_dir = "{state}"
omit_hostname = true
flush_interval = "0.2s"
[[inputs.mqtt_consumer]]
servers = ["{broker}"]
username = "{user}"
password = "{password}"
topics = ["collector/+/+"]
reconnect_max_interval = "1s"
[[outputs.influxdb]]
urls = ["{influx}"]
database = "fleet"
retry_max_interval = "1s"
"""


def start(tmp_path, name: str, template: str, **values) -> object:
    directory = tmp_path / name
    directory.mkdir(exist_ok=True)
    config = directory / "collector.toml"
    config.write_text(template.format(state=directory / "state", user=USER, password=PASSWORD,
                                      **values))
    with open(directory / "collector.log", "ab") as log:
        return collector("run", "-c", str(config), stderr=log)


def stored(influxd) -> dict[str, set[int]]:
    rows = influxd.rows('SELECT n FROM flow GROUP BY "host"', "fleet", missing_ok=True)
    found: dict[str, set[int]] = {}
    for row in rows:
        found.setdefault(row["host"], set()).add(row["n"])
    return found


def points(influxd) -> int:
    rows = influxd.rows("SELECT count(n) FROM flow", "fleet", missing_ok=True)
    return rows[0]["count"] if rows else 0


def test_broker_outage_and_kill_9_lose_and_duplicate_nothing(tmp_path, mosquitto, own_influxd):
    consumer = start(tmp_path, "consumer", CONSUMER, broker=mosquitto.url,
                     influx=own_influxd.url)
    ports = {"pi1": free_port(), "pi2": free_port()}
    publishers = {host: start(tmp_path, host, PUBLISHER, host=host, port=port,
                              broker=mosquitto.url) for host, port in ports.items()}
    for port in ports.values():
        wait_until(lambda port=port: post(f"http://127.0.0.1:{port}", b"") == 204, 20)
    senders = {host: Sender(f"http://127.0.0.1:{port}") for host, port in ports.items()}
    try:
        for sender in senders.values():
            sender.thread.start()
        wait_until(lambda: points(own_influxd) > 100, 30)
        mosquitto.stop()
        during = {host: len(sender.acknowledged) for host, sender in senders.items()}
        wait_until(lambda: all(len(sender.acknowledged) > during[host] + 100
                               for host, sender in senders.items()), 30)
        mosquitto.start()
        publishers["pi1"].kill()
        publishers["pi1"].wait()
        publishers["pi1"] = start(tmp_path, "pi1", PUBLISHER, host="pi1", port=ports["pi1"],
                                  broker=mosquitto.url)
        wait_until(lambda: len(senders["pi1"].acknowledged) > 0 and post(
            f"http://127.0.0.1:{ports['pi1']}", b"") == 204, 30)
        resumed = len(senders["pi1"].acknowledged)
        wait_until(lambda: len(senders["pi1"].acknowledged) > resumed + 100, 30)
    finally:
        for sender in senders.values():
            sender.stop.set()
            sender.thread.join()
    expected = {host: set(sender.acknowledged) for host, sender in senders.items()}
    assert all(len(numbers) > 200 for numbers in expected.values())
    try:
        wait_until(lambda: all(expected[host] <= stored(own_influxd).get(host, set())
                               for host in expected), timeout=60, every=0.5)
        found = stored(own_influxd)
        for host, numbers in expected.items():
            extra = found[host] - numbers
            assert extra <= {max(numbers) + 1}, "only a request cut off by the kill"
        assert points(own_influxd) == sum(len(numbers) for numbers in found.values())
    finally:
        for process in [*publishers.values(), consumer]:
            assert stop(process) == 0
