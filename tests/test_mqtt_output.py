"""outputs.mqtt against a real mosquitto: layouts, formats, QoS, failures."""

from __future__ import annotations

import json
import logging
import signal

import pytest

from collector import Metric, RetryableError
from tests.fixed_input import agent_from, output_counters, register_input
from tests.helpers import output_plugin
from tests.mosquitto import (  # noqa: F401 - a fixture
    PASSWORD,
    USER,
    Mosquitto,
    Subscriber,
    mosquitto_fixture,
    retained,
)

STAMP = 1_795_236_060_000_000_000


def readings() -> list[Metric]:
    return [
        Metric("temperature", {"celsius": 21.37, "raw": 2137}, {"probe": "T1"}, STAMP),
        Metric("temperature", {"celsius": 19.5, "raw": 1950}, {"probe": "T2"}, STAMP),
        Metric("temperature", {"celsius": 21.4, "raw": 2140}, {"probe": "T1"}, STAMP + 10**9),
        Metric("status", {"state": 'ok "fine"', "on": True}, {}, STAMP),
    ]


def output_section(server: Mosquitto, extra: str = "") -> str:
    return f"""
[[outputs.mqtt]]
servers = ["{server.url}"]
username = "{USER}"
password = "{PASSWORD}"
timeout = "3s"
{extra}
"""


def mqtt_output(text: str, tmp_path):
    return output_plugin(text, tmp_path, agent='hostname = "pi"')


def deliver(tmp_path, server: Mosquitto, extra: str, produce=readings) -> bool:
    register_input("mqtt_readings", produce)
    agent = agent_from('hostname = "pi"\n[[inputs.mqtt_readings]]\n'
                       + output_section(server, extra), tmp_path)
    delivered = agent.once(wait=0)
    return delivered, output_counters(agent, "mqtt")


def test_non_batch_influx_publishes_each_line_on_its_series_topic(tmp_path, mosquitto):
    subscriber = Subscriber(mosquitto, "collector/#")
    delivered, counters = deliver(tmp_path, mosquitto,
                                  'topic = "collector/{host}/{name}/{tag.probe}"')
    assert delivered and counters["written"] == 4
    messages = subscriber.wait_for(4)
    assert [(m.topic, m.payload) for m in messages] == [
        ("collector/pi/temperature/T1",
         b"temperature,host=pi,probe=T1 celsius=21.37,raw=2137i %d\n" % STAMP),
        ("collector/pi/temperature/T2",
         b"temperature,host=pi,probe=T2 celsius=19.5,raw=1950i %d\n" % STAMP),
        ("collector/pi/temperature/T1",
         b"temperature,host=pi,probe=T1 celsius=21.4,raw=2140i %d\n" % (STAMP + 10**9)),
        ("collector/pi/status/", b'status,host=pi state="ok \\"fine\\"",on=true %d\n' % STAMP),
    ]


def test_batch_json_groups_a_batch_per_topic(tmp_path, mosquitto):
    subscriber = Subscriber(mosquitto, "collector/#")
    delivered, _ = deliver(tmp_path, mosquitto, 'layout = "batch"\ndata_format = "json"')
    assert delivered
    by_topic = {m.topic: json.loads(m.payload) for m in subscriber.wait_for(2)}
    assert list(by_topic) == ["collector/pi/temperature", "collector/pi/status"]
    temperatures = by_topic["collector/pi/temperature"]["metrics"]
    assert [m["fields"]["celsius"] for m in temperatures] == [21.37, 19.5, 21.4]
    assert temperatures[0] == {"name": "temperature", "tags": {"host": "pi", "probe": "T1"},
                               "fields": {"celsius": 21.37, "raw": 2137}, "timestamp": STAMP}
    assert by_topic["collector/pi/status"]["metrics"][0]["fields"]["state"] == 'ok "fine"'


def test_field_layout_publishes_bare_values(tmp_path, mosquitto):
    subscriber = Subscriber(mosquitto, "collector/#")
    delivered, counters = deliver(tmp_path, mosquitto, 'layout = "field"\n'
                                  'topic = "collector/{host}/{name}/{tag.probe}"')
    assert delivered and counters["written"] == 4
    received = [(m.topic, m.payload) for m in subscriber.wait_for(8)]
    assert received[:2] == [("collector/pi/temperature/T1/celsius", b"21.37"),
                            ("collector/pi/temperature/T1/raw", b"2137")]
    assert ("collector/pi/status//state", b'ok "fine"') in received
    assert ("collector/pi/status//on", b"true") in received


@pytest.mark.parametrize(("protocol", "qos"), [("3.1.1", 0), ("3.1.1", 2), ("5", 1), ("5", 2)])
def test_protocols_and_qos_levels_deliver(tmp_path, mosquitto, protocol, qos):
    subscriber = Subscriber(mosquitto, "collector/#")
    delivered, counters = deliver(tmp_path, mosquitto, f'protocol = "{protocol}"\nqos = {qos}')
    assert delivered and counters["written"] == 4
    assert len(subscriber.wait_for(4)) == 4


def test_retain_leaves_the_last_message_on_the_broker(tmp_path, mosquitto):
    delivered, _ = deliver(tmp_path, mosquitto, "retain = true")
    assert delivered
    kept = retained(mosquitto, "collector/#")
    assert kept["collector/pi/temperature"].endswith(b" %d\n" % (STAMP + 10**9))


def test_wrong_password_is_retried_with_a_clear_secret_free_reason(tmp_path, mosquitto,
                                                                    caplog):
    plugin = mqtt_output(output_section(mosquitto).replace(PASSWORD, "hunter2-wrong"),
                           tmp_path)
    with pytest.raises(RetryableError) as raised:
        plugin.write(b"m v=1 1\n", 1)
    assert "refused" in str(raised.value)
    assert "hunter2" not in str(raised.value)
    with caplog.at_level(logging.DEBUG):
        register_input("mqtt_one", lambda: [Metric("m", {"v": 1.0})])
        section = output_section(mosquitto).replace(PASSWORD, "hunter2-wrong")
        agent = agent_from('shutdown_timeout = "1s"\n[[inputs.mqtt_one]]\n' + section
                           + 'retry_max_interval = "0.1s"\n', tmp_path)
        assert not agent.once(wait=0), "nothing delivered, the metric stays spooled"
    assert "hunter2" not in caplog.text
    assert "not authori" in caplog.text.lower()


def test_broker_down_keeps_the_batch_until_it_is_back(tmp_path, mosquitto):
    mosquitto.stop()
    plugin = mqtt_output(output_section(mosquitto), tmp_path)
    with pytest.raises(RetryableError, match="connection refused"):
        plugin.write(b"m v=1 1\n", 1)
    mosquitto.start()
    subscriber = Subscriber(mosquitto, "collector/#")
    assert plugin.write(b"m v=1 1\n", 1).written == 1
    assert subscriber.wait_for(1)[0].payload == b"m v=1 1\n"
    plugin.close()


def test_a_batch_counts_as_written_only_once_the_broker_acknowledged_it(tmp_path, mosquitto):
    plugin = mqtt_output(output_section(mosquitto).replace('timeout = "3s"',
                                                             'timeout = "0.5s"'), tmp_path)
    assert plugin.write(b"m v=1 1\n", 1).written == 1
    mosquitto.process.send_signal(signal.SIGSTOP)  # alive, connected, answering nothing
    try:
        with pytest.raises(RetryableError, match=r"not acknowledged within 0\.5s"):
            plugin.write(b"m v=2 2\n", 1)
    finally:
        mosquitto.process.send_signal(signal.SIGCONT)
    subscriber = Subscriber(mosquitto, "collector/#")
    assert plugin.write(b"m v=2 2\n", 1).written == 1
    assert b"m v=2 2\n" in [m.payload for m in subscriber.wait_for(1)]
    plugin.close()


def test_a_one_megabyte_batch_goes_out_as_one_message(tmp_path, mosquitto):
    plugin = mqtt_output(output_section(mosquitto, 'layout = "batch"'), tmp_path)
    payload = b"".join(b'bulk,series=s n=%di,pad="%s" %d\n' % (i, b"p" * 80, STAMP + i)
                       for i in range(11_000))
    assert len(payload) > 2**20
    subscriber = Subscriber(mosquitto, "collector/#")
    assert plugin.write(payload, 11_000).written == 11_000
    (message,) = subscriber.wait_for(1)
    assert message.payload == payload
    plugin.close()


def test_a_line_that_cannot_be_published_is_rejected_alone(tmp_path, mosquitto):
    plugin = mqtt_output(output_section(mosquitto, 'data_format = "json"'), tmp_path)
    subscriber = Subscriber(mosquitto, "collector/#")
    result = plugin.write(b"m v=1 1\nm v=\xff 2\nm v=3 3\n", 3)
    assert (result.written, result.rejected) == (2, 1)
    assert [json.loads(m.payload)["fields"]["v"] for m in subscriber.wait_for(2)] == [1.0, 3.0]
    plugin.close()


def test_tls_with_the_brokers_ca_delivers_and_a_stranger_certificate_is_refused(tmp_path):
    (tmp_path / "broker").mkdir()
    server = Mosquitto(tmp_path / "broker", tls=True)
    server.start()
    try:
        url = f"ssl://127.0.0.1:{server.tls_port}"
        trusted = mqtt_output(output_section(server).replace(server.url, url)
                                + f'tls_ca = "{server.certificate}"\n', tmp_path)
        subscriber = Subscriber(server, "collector/#")
        assert trusted.write(b"m v=1 1\n", 1).written == 1
        assert subscriber.wait_for(1)[0].payload == b"m v=1 1\n"
        trusted.close()
        stranger = mqtt_output(output_section(server).replace(server.url, url), tmp_path)
        with pytest.raises(RetryableError, match="TLS"):
            stranger.write(b"m v=2 2\n", 1)
    finally:
        server.kill()
