"""inputs.mqtt_consumer against a real mosquitto: formats, topic parsing, bad input,
persistent sessions, and acknowledging only what was stored."""

from __future__ import annotations

import contextlib
import json
import logging

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from collector import Refused
from plugins.inputs.mqtt_consumer import plugin as consumer_plugin
from tests.fixed_input import ListSink, agent_with_sink, input_counters
from tests.helpers import wait_until
from tests.mosquitto import (  # noqa: F401 - a fixture
    PASSWORD,
    USER,
    Mosquitto,
    mosquitto_fixture,
)

STAMP = 1_795_236_060_000_000_000


def consumer_section(server: Mosquitto, extra: str = "", topics: str = '["lab/#"]',
                     alias: str = "mqtt_consumer") -> str:
    return f"""
[[inputs.mqtt_consumer]]
alias = "{alias}"
servers = ["{server.url}"]
username = "{USER}"
password = "{PASSWORD}"
topics = {topics}
client_id = "test-{alias}"
{extra}
"""


def publisher(server: Mosquitto) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.username_pw_set(USER, PASSWORD)
    client.connect("127.0.0.1", server.port)
    client.loop_start()
    return client


def publish(server: Mosquitto, *messages: tuple[str, bytes], retain: bool = False) -> None:
    client = publisher(server)
    for topic, payload in messages:
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


@contextlib.contextmanager
def consuming(tmp_path, text: str, sink: ListSink | None = None):
    """An agent whose consumers run in their threads, subscribed; yields the sink and
    the agent."""
    sink = sink if sink is not None else ListSink()
    agent = agent_with_sink('omit_hostname = true\n' + text, tmp_path, sink)
    for runner in agent.streaming:
        runner.start()
    aliases = [plugin.context.alias for plugin in agent.plugins]
    try:
        wait_until(lambda: all(input_counters(agent, alias).get("subscribed") == 1
                               for alias in aliases), timeout=15)
        yield sink, agent
    finally:
        agent.stop_event.set()
        for runner in agent.streaming:
            runner.thread.join(10)
        agent.close()


def test_line_protocol_json_and_bare_values_become_metrics(tmp_path, mosquitto):
    rules = """
[[inputs.mqtt_consumer.topic_parsing]]
topic = "lab/+/+/value"
measurement = "_/_/measurement/_"
tags = "_/room/_/_"
"""
    with consuming(tmp_path, consumer_section(mosquitto, 'data_format = "value"\n' + rules)
                   + consumer_section(mosquitto, 'data_format = "json"', '["json/#"]', "json")
                   + consumer_section(mosquitto, "", '["lp/#"]', "lp")) as (sink, _):
        publish(mosquitto,
                ("lp/pi/temperature", b"temperature,probe=T1 celsius=21.5 %d\n" % STAMP),
                ("lab/b12/humidity/value", b"41.5"),
                ("json/pi/power", json.dumps({"name": "power", "tags": {"phase": "L1"},
                                              "fields": {"w": 230.5},
                                              "timestamp": STAMP}).encode()),
                ("json/pi/flat", b'{"volts": 3.3, "label": "x", "nested": {"a": 1}}'))
        wait_until(lambda: len(sink.metrics()) >= 4, timeout=15)
    by_name = {m.name: m for m in sink.metrics()}
    assert by_name["temperature"].fields == {"celsius": 21.5}
    assert by_name["temperature"].time_ns == STAMP
    assert (by_name["humidity"].tags, by_name["humidity"].fields) == ({"room": "b12"},
                                                                     {"value": 41.5})
    assert (by_name["power"].tags, by_name["power"].fields, by_name["power"].time_ns) == (
        {"phase": "L1"}, {"w": 230.5}, STAMP)
    assert by_name["mqtt_consumer"].fields == {"volts": 3.3, "label": "x"}


def test_garbage_is_counted_and_logged_once_and_never_stops_consumption(tmp_path, mosquitto,
                                                                         caplog):
    publish(mosquitto, ("lab/retained", b"\xff\xfe not line protocol"), retain=True)
    with caplog.at_level(logging.INFO), consuming(tmp_path, consumer_section(mosquitto)) as (
            sink, agent):
        wait_until(lambda: input_counters(agent, "mqtt_consumer").get("messages_invalid"), 15)
        publish(mosquitto, *[("lab/bad", b"m value=%d garbage" % i) for i in range(5)],
                ("lab/big-garbage", b"x" * 2**20),
                ("lab/good", b"m v=1i %d\n" % STAMP))
        wait_until(lambda: sink.metrics("m"), timeout=15)
        counters = input_counters(agent, "mqtt_consumer")
    assert counters["messages_invalid"] == 7
    assert caplog.text.count("does not parse") == 1
    assert "messages parse again" in caplog.text
    assert "Traceback" not in caplog.text


def test_a_one_megabyte_message_is_stored_whole(tmp_path, mosquitto):
    lines = b"".join(b"bulk,series=s%d n=%di,pad=\"%s\" %d\n" % (i % 7, i, b"p" * 60, STAMP + i)
                     for i in range(12_000))
    assert len(lines) > 2**20
    with consuming(tmp_path, consumer_section(mosquitto)) as (sink, _):
        publish(mosquitto, ("lab/bulk", lines))
        wait_until(lambda: len(sink.metrics("bulk")) >= 12_000, timeout=20)
    assert sorted(m.fields["n"] for m in sink.metrics("bulk")) == list(range(12_000))


def test_persistent_session_keeps_what_was_published_while_the_consumer_was_down(
        tmp_path, mosquitto):
    with consuming(tmp_path, consumer_section(mosquitto)) as (sink, _):
        publish(mosquitto, ("lab/first", b"m n=0i %d\n" % STAMP))
        wait_until(lambda: sink.metrics("m"), timeout=15)
    publish(mosquitto, *[("lab/while-down", b"m n=%di %d\n" % (i, STAMP + i))
                         for i in range(1, 51)])
    sink = ListSink()
    with consuming(tmp_path, consumer_section(mosquitto), sink):
        wait_until(lambda: len(sink.metrics("m")) >= 50, timeout=15)
    assert sorted(m.fields["n"] for m in sink.metrics("m")) == list(range(1, 51))


class RefusingSink(ListSink):
    """Refuses the first ``refusals`` appends, as a full spool under drop_newest does."""

    def __init__(self, refusals: int) -> None:
        super().__init__()
        self.refusals = refusals

    def append(self, payload: bytes, count: int) -> None:
        if self.refusals > 0:
            self.refusals -= 1
            raise Refused("spool full")
        super().append(payload, count)


def test_refused_metrics_are_not_acknowledged_and_come_again(tmp_path, mosquitto,
                                                             monkeypatch, caplog):
    monkeypatch.setattr(consumer_plugin, "REFUSED_PAUSE_S", 0.2)
    sink = RefusingSink(refusals=3)
    with caplog.at_level(logging.INFO), consuming(tmp_path, consumer_section(mosquitto),
                                                  sink) as (_, agent):
        publish(mosquitto, *[("lab/n", b"m n=%di %d\n" % (i, STAMP + i)) for i in range(20)])
        wait_until(lambda: {m.fields["n"] for m in sink.metrics("m")} == set(range(20)),
                   timeout=20)
        refused = input_counters(agent, "mqtt_consumer")["refused"]
    assert sink.refusals == 0 and refused > 0
    assert caplog.text.count("not acknowledged, the broker keeps them") == 1


def test_broker_down_at_start_and_a_wrong_password_are_logged_once_and_retried(
        tmp_path, mosquitto, caplog):
    mosquitto.stop()
    wrong = consumer_section(mosquitto, 'reconnect_max_interval = "0.2s"',
                             alias="wrong").replace(PASSWORD, "hunter2-wrong")
    text = consumer_section(mosquitto, 'reconnect_max_interval = "0.2s"') + wrong
    sink = ListSink()
    agent = agent_with_sink("omit_hostname = true\n" + text, tmp_path, sink)
    with caplog.at_level(logging.INFO):
        for runner in agent.streaming:
            runner.start()
        try:
            wait_until(lambda: caplog.text.count("connection refused") >= 2, timeout=10)
            mosquitto.start()
            wait_until(lambda: input_counters(agent, "mqtt_consumer").get("subscribed") == 1, 15)
            publish(mosquitto, ("lab/after", b"m n=1i %d\n" % STAMP))
            wait_until(lambda: sink.metrics("m"), timeout=15)
            wait_until(lambda: "Not authorized" in caplog.text
                       or "Bad user name or password" in caplog.text, timeout=10)
            assert input_counters(agent, "wrong").get("subscribed", 0) == 0
        finally:
            agent.stop_event.set()
            for runner in agent.streaming:
                runner.thread.join(10)
            agent.close()
    assert caplog.text.count("connection refused") == 2, "once per input and episode"
    assert "hunter2" not in caplog.text
    assert "Traceback" not in caplog.text
