"""inputs.se521 through the real agent pipeline: serial on a pty, HID at report level."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from collector import AttachedDevice
from collector.agent import Agent
from collector.emulation import PtyServer
from collector.lineprotocol import decode
from collector.metric import Metric
from plugins.inputs.se521 import codec
from plugins.inputs.se521.emulator import (
    EmulatedBridge,
    EmulatedHidBus,
    Instrument,
    InstrumentState,
)
from plugins.inputs.se521.identify import identify
from plugins.inputs.se521.transport import DeviceGone, Hidapi, HidTransport, NoReply
from tests.fixed_input import ListSink, agent_with_sink
from tests.helpers import collector, open_fds, run_collector, stop, wait_until, write_config


def se521_agent(tmp_path: Path, options: str, sink: ListSink, interval: str = "1s") -> Agent:
    return agent_with_sink(f"""omit_hostname = true
[[inputs.se521]]
interval = "{interval}"
{options}
""", tmp_path / "state", sink)


@pytest.fixture
def emulator(tmp_path):
    served = PtyServer(Instrument(), tmp_path / "se521").start()
    yield served
    served.close()


def gather(agent: Agent, sink: ListSink) -> dict[str, list[Metric]]:
    """One gather; the metrics it produced, by measurement."""
    before = len(sink.payloads)
    agent.polled[0].gather_once()
    by_name: dict[str, list[Metric]] = {}
    for metric in decode(b"".join(sink.payloads[before:])):
        by_name.setdefault(metric.name, []).append(metric)
    return by_name


def channels(metrics: dict[str, list[Metric]]) -> dict[str, dict]:
    return {m.tags["channel"]: m.fields for m in metrics.get("se521", [])}


def health(metrics: dict[str, list[Metric]]) -> str:
    (point,) = metrics["se521_health"]
    return point.fields["state"]


def test_serial_reading_in_celsius_with_states_labels_and_tags(tmp_path, emulator):
    emulator.device.state = InstrumentState(
        temperatures=[72.0, 68.5, -20.0, None], over_limit={2}, unit="F")
    sink = ListSink()
    agent = se521_agent(tmp_path, f'port = "{emulator.path}"\n'
                                  'labels = { T1 = "panel", T2 = "air_in_roof" }', sink)
    try:
        got = gather(agent, sink)
    finally:
        agent.close()
    assert channels(got) == {
        "T1": {"state": "ok", "celsius": 22.22}, "T2": {"state": "ok", "celsius": 20.28},
        "T3": {"state": "over_limit"}, "T4": {"state": "unplugged"}}
    labels = {m.tags["channel"]: m.tags.get("label") for m in got["se521"]}
    assert labels == {"T1": "panel", "T2": "air_in_roof", "T3": None, "T4": None}
    assert got["se521"][0].tags == {"device": emulator.path, "model": "521", "raw_unit": "F",
                                    "channel": "T1", "label": "panel"}
    (status,) = got["se521_status"]
    assert status.fields["t1_minus_t2_celsius"] == 1.94
    assert status.fields["battery_percent"] == 99 and status.fields["mode"] == "live"
    assert health(got) == "up"


def test_same_values_whatever_the_display_unit(tmp_path, emulator):
    sink = ListSink()
    agent = se521_agent(tmp_path, f'port = "{emulator.path}"', sink)
    try:
        emulator.device.state = InstrumentState(temperatures=[72.0, 68.5, -20.0, 451.3],
                                                    unit="F")
        in_f = channels(gather(agent, sink))
        emulator.device.state = InstrumentState(temperatures=[22.2, 20.3, -28.9, 232.9],
                                                    unit="C")
        in_c = channels(gather(agent, sink))
    finally:
        agent.close()
    assert [in_f[c]["celsius"] for c in codec.CHANNELS] == [22.22, 20.28, -28.89, 232.94]
    for channel in codec.CHANNELS:
        assert in_c[channel]["celsius"] == pytest.approx(in_f[channel]["celsius"], abs=0.05)


def test_unit_override_is_applied_and_visible_as_a_tag(tmp_path, emulator):
    emulator.device.state = InstrumentState(temperatures=[72.0, 68.5, 50.0, 32.0],
                                                unit="C")
    sink = ListSink()
    agent = se521_agent(tmp_path, f'port = "{emulator.path}"\nunit = "F"', sink)
    try:
        got = gather(agent, sink)
    finally:
        agent.close()
    assert channels(got)["T4"]["celsius"] == 0.0
    assert {m.tags["raw_unit"] for m in got["se521"]} == {"F"}


@pytest.mark.parametrize("fault, check", [
    ("checksum", "checksum"), ("etx", "etx"), ("counter", "counter"), ("short", None),
    ("silence", None)])
def test_faulty_replies_never_become_numbers_and_health_says_silent(tmp_path, emulator,
                                                                    fault, check):
    sink = ListSink()
    agent = se521_agent(tmp_path, f'port = "{emulator.path}"\ntimeout = "0.2s"', sink)
    plugin = agent.plugins[0]
    try:
        assert health(gather(agent, sink)) == "up"
        emulator.device.state.fault = fault
        faulty = gather(agent, sink)
        assert "se521" not in faulty and "se521_status" not in faulty
        assert health(faulty) == "silent"
        if check:
            assert plugin.rejected[check] == 1
        emulator.device.state.fault = None
        recovered = gather(agent, sink)
    finally:
        agent.close()
    assert health(recovered) == "up" and channels(recovered)["T1"]["celsius"] == 21.5


# ---------------------------------------------------------------- HID at report level
@pytest.fixture
def bridge_device():
    return EmulatedBridge(Instrument())


def test_hid_transport_full_read(bridge_device):
    transport = HidTransport(bridge_device, timeout=0.3)
    reply = transport.exchange(codec.read_command(3), codec.READING_LENGTH)
    assert codec.decode_reading(reply, counter=3).channels[0].value == 21.5


def test_hid_transport_short_read_is_no_reply(bridge_device):
    bridge_device.short_reports = 2
    with pytest.raises(NoReply, match="62 of 64"):
        HidTransport(bridge_device, timeout=0.2).exchange(codec.read_command(1), 64)


def test_hid_transport_stall_on_second_cycle_is_no_reply(bridge_device):
    bridge_device.stall_on_write = 2
    transport = HidTransport(bridge_device, timeout=0.2)
    transport.exchange(codec.read_command(1), 64)
    with pytest.raises(NoReply, match="stalled"):
        transport.exchange(codec.read_command(2), 64)


def test_hid_transport_removal_is_device_gone(bridge_device):
    transport = HidTransport(bridge_device, timeout=0.2)
    bridge_device.removed = True
    with pytest.raises(DeviceGone):
        transport.exchange(codec.read_command(1), 64)


def test_hid_plugin_recovers_from_stall_and_removal(tmp_path, bridge_device):
    sink = ListSink()
    agent = se521_agent(tmp_path, 'timeout = "0.2s"\nreopen_after = 1', sink)
    plugin = agent.plugins[0]
    plugin.hid_backend = EmulatedHidBus(EmulatedBridge(Instrument(), b"other", "X1"),
                                        bridge_device)
    try:
        first = gather(agent, sink)
        assert health(first) == "up" and channels(first)["T2"]["celsius"] == 20.0
        assert first["se521"][0].tags["device"] == "X1", "first bridge answering 'K'"
        plugin.hid_backend.bridges[0].removed = True
        assert health(gather(agent, sink)) == "absent"
        moved = gather(agent, sink)
        assert health(moved) == "up" and moved["se521"][0].tags["device"] == "EMU0001"
        bridge_device.stall_on_write = bridge_device.writes_announced + 1
        assert health(gather(agent, sink)) == "silent", "stalled: closed, reopened later"
        assert bridge_device.closed == 1
        plugin._next_open = 0.0  # skip the 1 s backoff instead of sleeping through it
        assert health(gather(agent, sink)) == "up"
        assert bridge_device.opened == 2 and plugin.reconnects == 2
    finally:
        agent.close()


def test_hid_device_that_does_not_answer_k_is_not_taken(tmp_path):
    sink = ListSink()
    agent = se521_agent(tmp_path, 'timeout = "0.1s"', sink)
    mute = EmulatedBridge(Instrument(InstrumentState(fault="silence")))
    agent.plugins[0].hid_backend = EmulatedHidBus(mute)
    try:
        got = gather(agent, sink)
    finally:
        agent.close()
    assert health(got) == "silent" and "se521" not in got
    assert mute.closed == 1


# ---------------------------------------------------------------- hot-plug and end to end
def test_hot_plug_20_times_resumes_within_two_intervals_without_leaks(tmp_path, emulator):
    interval = 0.3
    sink = ListSink()
    agent = se521_agent(tmp_path, f'port = "{emulator.path}"\ntimeout = "0.1s"', sink,
                        interval=f"{interval}s")
    runner = threading.Thread(target=agent.run)
    runner.start()

    def readings_since(moment_ns: int) -> list[Metric]:
        return [m for m in sink.metrics("se521") if m.time_ns > moment_ns]

    def health_since(moment_ns: int) -> set[str]:
        return {m.fields["state"] for m in sink.metrics("se521_health") if m.time_ns > moment_ns}

    try:
        wait_until(lambda: readings_since(0), timeout=5)
        fds, threads = open_fds(), threading.active_count()
        for _ in range(20):
            emulator.disconnect()
            gone = time.time_ns()
            wait_until(lambda gone=gone: "absent" in health_since(gone), timeout=5, every=0.02)
            emulator.reconnect()
            back = time.time_ns()
            resumed = wait_until(lambda back=back: readings_since(back), timeout=5, every=0.02)
            assert (resumed[0].time_ns - back) / 1e9 <= 2 * interval
        assert open_fds() == fds and threading.active_count() == threads
    finally:
        agent.stop_event.set()
        runner.join(30)
    temperatures = [m.fields["celsius"] for m in sink.metrics("se521") if "celsius" in m.fields]
    assert set(temperatures) == {21.5, 20.0, 19.0, 18.5}, "nothing but the real values"
    assert agent.plugins[0].reconnects == 20


def test_end_to_end_collector_run_to_influxd(tmp_path, emulator, influxd, database):
    emulator.device.state = InstrumentState(temperatures=[72.0, 68.5, -20.0, None], unit="F")
    config = write_config(tmp_path, f"""
[agent]
state_dir = "{tmp_path / 'state'}"
hostname = "pi"
flush_interval = "0.5s"
[[inputs.se521]]
port = "{emulator.path}"
labels = {{ T1 = "panel" }}
[[outputs.influxdb]]
urls = ["{influxd.url}"]
database = "{database}"
""")
    process = collector("run", "-c", str(config))
    try:
        rows = wait_until(lambda: influxd.query(
            'SELECT last(celsius) FROM se521 GROUP BY "channel", "label", "device", "host"',
            database, missing_ok=True), timeout=30)
    finally:
        assert stop(process) == 0
    stored = {(s["tags"]["channel"], s["tags"]["label"]): s["values"][0][1] for s in rows}
    assert stored == {("T1", "panel"): 22.22, ("T2", ""): 20.28, ("T3", ""): -28.89}
    assert {s["tags"]["device"] for s in rows} == {emulator.path}
    assert {s["tags"]["host"] for s in rows} == {"pi"}
    states = influxd.query("SELECT last(state) FROM se521 WHERE channel = 'T4'", database)
    assert states[0]["values"][0][1] == "unplugged"
    health_rows = influxd.query("SELECT last(state) FROM se521_health", database)
    assert health_rows[0]["values"][0][1] == "up"


# ---------------------------------------------------------------- CLI
def test_collector_emulate_serves_what_collector_test_reads(tmp_path):
    link = tmp_path / "meter"
    served = collector("emulate", "se521", "--link", str(link), "--still",
                       "--temperatures", "30,open,10,1500", stdout=subprocess.PIPE, text=True)
    try:
        assert f"serving {link}" in served.stdout.readline()
        config = write_config(tmp_path, f'[agent]\nomit_hostname = true\n'
                                        f'[[inputs.se521]]\nport = "{link}"\n')
        result = run_collector("test", "-c", str(config))
    finally:
        assert stop(served) == 0
    assert result.returncode == 0, result.stderr
    got = {m.tags["channel"]: m.fields for m in decode(result.stdout) if m.name == "se521"}
    assert got == {"T1": {"state": "ok", "celsius": 30.0}, "T2": {"state": "unplugged"},
                   "T3": {"state": "ok", "celsius": 10.0},
                   "T4": {"state": "ok", "celsius": 1500.0}}


def test_collector_emulate_without_a_name_lists_the_installed_emulators():
    result = run_collector("emulate")
    assert result.returncode == 0 and result.stdout.split() == ["emu2,", "raven,", "se521"]


def test_collector_devices_lists_and_exits_cleanly():
    result = run_collector("devices")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(("kind", "no serial ports"))


def test_identify_confirms_an_se521_by_its_model_reply():
    answering = EmulatedBridge(Instrument(), b"/dev/hidraw3")
    mute = EmulatedBridge(Instrument(InstrumentState(fault="silence")), b"/dev/hidraw4")
    bus = EmulatedHidBus(answering, mute)

    def device(path: str, usb: tuple[int, int] = (0x04D9, 0xE000)) -> AttachedDevice:
        return AttachedDevice("hid", path, *usb, "", "USB-UART bridge")

    assert identify(device("/dev/hidraw3"), bus) == (
        'inputs.se521, model 521: hid_path = "/dev/hidraw3"')
    assert "without an SE521 answer" in identify(device("/dev/hidraw4"), bus)
    assert identify(device("/dev/hidraw5", (0x0403, 0x6001)), bus) is None
    assert answering.closed == 1 and mute.closed == 1


def test_hid_path_may_be_a_udev_symlink(tmp_path):
    (tmp_path / "se521").symlink_to(tmp_path / "hidraw7")
    chosen = EmulatedBridge(Instrument(InstrumentState(temperatures=[1.0, 2.0, 3.0, 4.0])),
                            str(tmp_path / "hidraw7").encode(), "CHOSEN")
    sink = ListSink()
    agent = se521_agent(tmp_path, f'hid_path = "{tmp_path / "se521"}"', sink)
    agent.plugins[0].hid_backend = EmulatedHidBus(EmulatedBridge(Instrument()), chosen)
    try:
        got = gather(agent, sink)
    finally:
        agent.close()
    assert channels(got)["T1"]["celsius"] == 1.0 and chosen.opened == 1


def test_embedded_defaults_read_the_emulator_when_no_se521_is_attached():
    attached = Hidapi().enumerate(0x04D9, 0xE000)
    result = run_collector("test", env={"COLLECTOR_CONFIG": ""})
    assert result.returncode == 0, result.stderr
    readings = [m for m in decode(result.stdout) if m.name == "se521"]
    assert {m.tags["channel"] for m in readings} == set(codec.CHANNELS)
    assert all("celsius" in m.fields for m in readings)
    assert all(m.tags.get("emulated") == ("true" if not attached else None) for m in readings)
