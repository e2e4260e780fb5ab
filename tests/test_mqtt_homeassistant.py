"""Home Assistant discovery from outputs.mqtt, with the SE521 and RAVEn emulators
producing the metrics, checked against Home Assistant's documented rules."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from pathlib import Path

import pytest

from collector import config as config_module
from collector.agent import build_plugin
from collector.stats import StatsRegistry
from tests.fixed_input import agent_from
from tests.helpers import wait_until
from tests.homeassistant import Invalid, validate_device_discovery
from tests.mosquitto import (  # noqa: F401 - a fixture
    PASSWORD,
    USER,
    Mosquitto,
    Subscriber,
    mosquitto_fixture,
    retained,
)

SE521 = """
[[inputs.se521]]
alias = "{se521_alias}"
interval = "0.5s"
emulate_when_absent = true
labels = {{ T1 = "panel" }}
"""
RAVEN = """
[[inputs.raven]]
port = "/nonexistent/raven"
emulate_when_absent = true
health_interval = "0.5s"
"""
OUTPUT = """
[[outputs.mqtt]]
servers = ["{url}"]
username = "{user}"
password = "{password}"
flush_interval = "0.3s"
[outputs.mqtt.homeassistant]
enabled = true
"""


@contextlib.contextmanager
def running(tmp_path, server: Mosquitto, inputs: str, se521_alias: str = "se521"):
    agent = agent_from('hostname = "pi"\nshutdown_timeout = "3s"\n'
                       + inputs.format(se521_alias=se521_alias)
                       + OUTPUT.format(url=server.url, user=USER, password=PASSWORD), tmp_path)
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        yield agent
    finally:
        agent.stop_event.set()
        thread.join(15)


def announced(server: Mosquitto) -> dict[str, dict]:
    return {topic: validate_device_discovery(topic, payload)
            for topic, payload in retained(server, "homeassistant/device/#").items() if payload}


def state_of(states: dict[str, bytes], component: dict) -> object:
    """What Home Assistant's template ``{{ value_json.KEY }}`` would read."""
    key = re.fullmatch(r"\{\{ value_json\.(\w+) \}\}", component["value_template"]).group(1)
    return json.loads(states[component["state_topic"]])[key]


def test_se521_and_raven_are_announced_valid_with_states_and_availability(tmp_path,
                                                                          mosquitto):
    states = Subscriber(mosquitto, "collector-ha/#")
    with running(tmp_path, mosquitto, SE521 + RAVEN):
        wait_until(lambda: {"collector-ha/pi/se521/t1", "collector-ha/pi/raven/demand",
                            "collector-ha/pi/raven/summation", "collector-ha/pi/raven/price",
                            "collector-ha/pi/raven/health"} <= set(states.latest()), 30)
        discovery = announced(mosquitto)
    latest = states.latest()
    thermometer = discovery["homeassistant/device/pi_se521/config"]
    meter = discovery["homeassistant/device/pi_raven/config"]
    assert thermometer["device"]["identifiers"] == ["pi_se521"]
    assert thermometer["origin"]["name"] == "instrument-collector"
    channels = thermometer["components"]
    assert [channels[k]["name"] for k in ("t1", "t2", "t3", "t4")] == ["panel", "T2", "T3", "T4"]
    assert channels["t1"]["device_class"] == "temperature"
    assert channels["t1"]["default_entity_id"] == "sensor.pi_se521_t1"
    assert isinstance(state_of(latest, channels["t1"]), float)
    assert state_of(latest, channels["battery"]) in (0, 33, 66, 99)
    assert channels["health"]["entity_category"] == "diagnostic"
    assert state_of(latest, channels["health"]) == "up"

    parts = meter["components"]
    assert (parts["power"]["device_class"], parts["power"]["unit_of_measurement"]) == (
        "power", "kW")
    assert isinstance(state_of(latest, parts["power"]), float)
    for energy in ("energy_imported", "energy_exported"):
        assert parts[energy]["state_class"] == "total_increasing"
        assert state_of(latest, parts[energy]) >= 0
    assert state_of(latest, parts["price"]) == pytest.approx(0.2)
    assert parts["price"]["unit_of_measurement"] == "USD/kWh", "the currency was learned"
    assert state_of(latest, parts["link_strength"]) == 100
    assert state_of(latest, parts["last_push"]).endswith("+00:00")
    assert state_of(latest, parts["health"]) == "connected"

    status = "collector-ha/pi/status"
    assert channels["t1"]["availability"] == [
        {"topic": status}, {"topic": "collector-ha/pi/se521/availability"}]
    assert parts["health"]["availability"] == [{"topic": status}]
    assert latest["collector-ha/pi/se521/availability"] == b"online"
    assert latest["collector-ha/pi/raven/availability"] == b"online"
    kept = retained(mosquitto, "collector-ha/#")
    assert kept[status] == b"offline", "a clean stop says offline"


def test_last_will_makes_everything_unavailable_when_the_collector_vanishes(tmp_path,
                                                                            mosquitto):
    status = Subscriber(mosquitto, "collector-ha/pi/status")
    with running(tmp_path, mosquitto, SE521) as agent:
        wait_until(lambda: status.on("collector-ha/pi/status") == [b"online"], 20)
        connection = agent.outputs[0].output._connection
        connection.close(graceful=False)  # the network dies: no DISCONNECT is sent
        wait_until(lambda: b"offline" in status.on("collector-ha/pi/status"), 20)


def test_devices_that_leave_the_config_are_removed_and_ha_restarts_get_discovery(tmp_path,
                                                                                 mosquitto):
    with running(tmp_path, mosquitto, SE521 + RAVEN):
        wait_until(lambda: len(announced(mosquitto)) == 2, 20)
    renamed = "roof"
    watcher = Subscriber(mosquitto, "homeassistant/device/#")
    with running(tmp_path, mosquitto, SE521, se521_alias=renamed):
        wait_until(lambda: set(announced(mosquitto)) == {
            "homeassistant/device/pi_roof/config"}, 20)
        assert not retained(mosquitto, "collector-ha/pi/raven/#"), "its states are gone too"
        before = len(watcher.on("homeassistant/device/pi_roof/config"))
        Subscriber(mosquitto, "x").client.publish("homeassistant/status", b"online", qos=1)
        wait_until(lambda: len(watcher.on("homeassistant/device/pi_roof/config")) > before, 10)


def test_the_validator_refuses_what_home_assistant_refuses():
    good = {"dev": {"ids": ["x"]}, "o": {"name": "c"}, "cmps": {"e": {
        "p": "sensor", "unique_id": "x_e", "state_topic": "t", "device_class": "energy",
        "state_class": "total_increasing", "unit_of_measurement": "kWh"}}}
    validate_device_discovery("homeassistant/device/x/config", json.dumps(good).encode())
    for breaks in ({"state_class": "measurement"}, {"unit_of_measurement": "W"},
                   {"object_id": "x"}, {"unique_id": None}):
        bad = json.loads(json.dumps(good))
        bad["cmps"]["e"].update(breaks)
        bad["cmps"]["e"] = {k: v for k, v in bad["cmps"]["e"].items() if v is not None}
        with pytest.raises(Invalid):
            validate_device_discovery("homeassistant/device/x/config", json.dumps(bad).encode())
    with pytest.raises(Invalid):
        validate_device_discovery("homeassistant/device/x.y/config", json.dumps(good).encode())


README = Path(__file__).parent.parent / "plugins" / "outputs" / "mqtt" / "README.md"
README_CONFIG = """
[[inputs.se521]]
emulate_when_absent = true
labels = { T1 = "panel" }
[[inputs.raven]]
port = "/dev/raven"
emulate_when_absent = true
[[outputs.mqtt]]
[outputs.mqtt.homeassistant]
enabled = true
"""
PRICE = (b'raven_price,device_mac=0xd8d5b9000000abcd,host=pi,meter_mac=0x00135003007c1a2b '
         b'currency=840i,price=0.2,tier=1i,label="Block 1" 1795240263000000000')


def test_the_readme_shows_the_discovery_messages_as_published(tmp_path):
    shown = dict(re.findall(r"<!-- discovery: (\S+) -->\n```json\n(.*?)\n```", README.read_text(),
                            re.DOTALL))
    config = config_module.parse(f'[agent]\nstate_dir = "{tmp_path}"\nhostname = "pi"\n'
                                 + README_CONFIG, "test")
    homeassistant = build_plugin(config.outputs[0], config, StatsRegistry()).homeassistant
    homeassistant.states([PRICE])  # the meter's currency, as the emulator sends it
    published = {message.topic: json.loads(message.payload)
                 for message in map(homeassistant.discovery, homeassistant.devices)}
    assert set(shown) == set(published) == {"homeassistant/device/pi_se521/config",
                                            "homeassistant/device/pi_raven/config"}
    for topic, payload in published.items():
        validate_device_discovery(topic, json.dumps(payload).encode())
        readme = json.loads(shown[topic])
        readme["o"].pop("sw"), payload["o"].pop("sw")
        assert readme == payload, f"{topic} in the README is not what is published"
