"""inputs.raven through the real agent: the emulator on a pty, and into a real influxd."""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from pathlib import Path

import pytest

from collector import AttachedDevice
from collector.agent import Agent
from collector.emulation import PtyServer
from collector.lineprotocol import decode
from plugins.inputs.raven import commands, decoder
from plugins.inputs.raven.emulated_energy import DEMO_DAY, DemandWander
from plugins.inputs.raven.emulator import JOIN_SEQUENCE, MALFORMED, Meter, MeterState
from plugins.inputs.raven.identify import identify
from plugins.inputs.raven.parser import StreamParser
from tests.fixed_input import ListSink, agent_with_sink
from tests.helpers import (
    collector,
    open_fds,
    run_collector,
    stop,
    wait_until,
    write_config,
)

FAST = {"demand": 1.0, "summation": 1.5, "price": 2.0, "time": 2.0}
"""Push intervals for tests: demand every second, the resolution of the meter's clock."""
HOUR_NS = 3600 * 10**9


@pytest.fixture
def meter() -> Meter:
    return Meter(MeterState(intervals=dict(FAST), join_step_s=0.4))


@pytest.fixture
def served(tmp_path, meter):
    server = PtyServer(meter, tmp_path / "raven").start()
    yield server
    server.close()


def raven_agent(tmp_path: Path, port: str, sink: ListSink, extra: str = "",
                health_interval: str = "0.5s") -> Agent:
    return agent_with_sink(f"""omit_hostname = true
[[inputs.raven]]
port = "{port}"
expected_interval = "1s"
health_interval = "{health_interval}"
{extra}
""", tmp_path / "state", sink)


class Running:
    """The agent's run loop in a thread, stopped and joined on exit."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.thread = threading.Thread(target=agent.run)

    def __enter__(self) -> Agent:
        self.thread.start()
        return self.agent

    def __exit__(self, *exc) -> None:
        self.agent.stop_event.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


def test_pushes_land_at_the_meters_timestamps_with_sign_and_raw_values(tmp_path, meter, served):
    meter.state.clock_skew_s = -3600
    meter.state.demand_w = -1500
    sink = ListSink()
    agent = raven_agent(tmp_path, served.path, sink, 'schedule = { demand = "1s" }')
    with Running(agent):
        wait_until(lambda: len(sink.metrics("raven_demand")) >= 2
                   and sink.metrics("raven_summation"), timeout=10)
    now = time.time_ns()
    demand = sink.metrics("raven_demand")
    assert {(m.fields["kw"], m.fields["raw"]) for m in demand} == {(-1.5, -1500)}
    assert all(abs(m.time_ns - (now - HOUR_NS)) < 15 * 10**9 for m in demand), "meter time"
    assert demand[0].tags == {"device_mac": "0xd8d5b9000000abcd",
                              "meter_mac": "0x00135003007c1a2b"}
    summation = sink.metrics("raven_summation")[0]
    assert summation.fields["delivered_kwh"] == 113007.485
    assert summation.fields["delivered_raw"] == 113_007_485
    assert meter.commands[:3] == ["initialize", "get_device_info", "get_meter_list"]
    assert "set_schedule" in meter.commands and "factory_reset" not in meter.commands
    assert meter.state.intervals["demand"] == 1.0
    health = sink.metrics("raven_health")
    assert any(m.fields["state"] == "connected" for m in health)
    assert any(abs(m.fields.get("clock_skew_s", 0) + 3600) < 2 for m in health)


def test_each_meter_of_a_device_is_its_own_series(tmp_path, meter, served):
    meter.state.meters = ["0x00135003007c1a2b", "0x00135003007c9999"]
    sink = ListSink()
    agent = raven_agent(tmp_path, served.path, sink, 'schedule = { demand = "1s" }')
    with Running(agent):
        wait_until(lambda: {m.tags["meter_mac"] for m in sink.metrics("raven_demand")} == {
            "0x00135003007c1a2b", "0x00135003007c9999"}, timeout=10)
    assert meter.commands.count("set_schedule") == 2, "one per meter"


def test_an_absent_port_is_logged_once_and_so_is_its_return(tmp_path, meter, caplog):
    caplog.set_level(logging.INFO, logger="collector.inputs.raven")
    port = tmp_path / "raven"
    sink = ListSink()
    agent = raven_agent(tmp_path, str(port), sink)

    def logged(start: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if r.getMessage().startswith(start)]

    def absent_points() -> list:
        return [m for m in sink.metrics("raven_health") if m.fields["state"] == "absent"]

    server = PtyServer(meter, port)
    try:
        with Running(agent):
            wait_until(lambda: len(absent_points()) >= 3, timeout=10)
            assert logged(f"{port}: absent") == [f"{port}: absent: no such port"]
            assert all("seconds_since_push" not in m.fields for m in absent_points()), \
                "nothing was ever pushed"
            server.start()
            wait_until(lambda: sink.metrics("raven_demand"), timeout=10)
            since_push = wait_until(lambda: [m.fields["seconds_since_push"]
                                             for m in sink.metrics("raven_health")
                                             if "seconds_since_push" in m.fields], timeout=5)
    finally:
        server.close()
    assert 0 <= since_push[0] < 2
    assert len(logged(f"{port}: absent")) == 1, "not once per look at the missing port"
    assert len(logged(f"{port}: open")) == 1


def test_malformed_stream_pieces_are_skipped_and_counted(tmp_path, meter, served):
    sink = ListSink()
    agent = raven_agent(tmp_path, served.path, sink)
    with Running(agent):
        wait_until(lambda: sink.metrics("raven_demand"), timeout=10)
        for _ in range(3):
            meter.inject(*MALFORMED)
            time.sleep(0.4)
        before = len(sink.metrics("raven_demand"))
        wait_until(lambda: len(sink.metrics("raven_demand")) > before + 2, timeout=10)
    assert {m.fields["kw"] for m in sink.metrics("raven_demand")} == {0.864}
    last = sink.metrics("raven_health")[-1].fields
    assert last["malformed"] >= 3 and last["garbage_bytes"] > 100


def test_emulator_answers_from_cache_refreshes_on_request_and_warns():
    meter = Meter(MeterState())
    parser = StreamParser()
    first = parser.feed(meter.feed(commands.command("get_instantaneous_demand")))
    meter.state.demand_w = 2000
    cached = parser.feed(meter.feed(commands.command("get_instantaneous_demand")))
    fresh = parser.feed(meter.feed(commands.refresh("get_instantaneous_demand")))
    assert first == cached and first[0].children["demand"] == "0x00000360"
    assert fresh[0].children["demand"] == "0x000007d0"
    warning = parser.feed(meter.feed(commands.command("get_profile_data")))
    assert warning[0].root == "Warning" and warning[0].children["text"] == "Unknown command"


class EmulatedTime:
    """A monotonic clock (ns) that only the test moves: hours of a meter in no time."""

    def __init__(self) -> None:
        self.ns = 0

    def __call__(self) -> int:
        return self.ns

    def advance(self, seconds: float) -> None:
        self.ns += round(seconds * 1e9)


def ask(meter: Meter, name: str) -> decoder.Reading:
    """The reading a fresh ``get_*`` command returns, through the real parser and decoder."""
    (fragment,) = StreamParser().feed(meter.feed(commands.refresh(name)))
    return decoder.decode(fragment)


def summation(meter: Meter) -> decoder.Summation:
    return ask(meter, "get_current_summation_delivered")


def test_summation_grows_by_demand_times_time_in_the_direction_of_flow():
    clock = EmulatedTime()
    meter = Meter(MeterState(demand_w=864), clock=clock)
    start = summation(meter)
    clock.advance(130)
    importing = summation(meter)
    assert importing.delivered_raw - start.delivered_raw == 31, "864 W x 130 s = 31.2 Wh"
    assert importing.received_raw == start.received_raw
    meter.state.demand_w = -1500
    clock.advance(3600)
    exporting = summation(meter)
    assert exporting.received_raw - start.received_raw == 1500
    assert exporting.delivered_raw == importing.delivered_raw
    meter.state.demand_w = 864
    clock.advance(3600)
    assert summation(meter).delivered_raw - start.delivered_raw == 895, (
        "31.2 + 864 Wh: the 0.2 Wh left over from the first step is not lost")


def test_wandering_demand_exports_at_midday_and_the_registers_integrate_it():
    clock = EmulatedTime()
    meter = Meter(MeterState(), wander=DemandWander(base_w=864, solar_peak_w=2500),
                  clock=clock)
    start = summation(meter)
    demands = []
    for _ in range(600):
        demands.append(ask(meter, "get_instantaneous_demand").raw)
        clock.advance(1)
    end = summation(meter)
    assert min(demands) < 0 < max(demands), "import at night, export at midday"
    assert len(set(demands)) > 100, "a curve, not a constant"
    imported_ws = sum(w for w in demands if w > 0)
    exported_ws = sum(-w for w in demands if w < 0)
    assert end.delivered_raw - start.delivered_raw == imported_ws // 3600
    assert end.received_raw - start.received_raw == exported_ws // 3600


def test_a_joined_meter_pushes_its_connection_status_now_and_then():
    clock = EmulatedTime()
    meter = Meter(MeterState(join_step_s=1, connection_interval=60), clock=clock)
    parser = StreamParser()

    def statuses_pushed_within(seconds: int) -> list[str]:
        pushed = []
        for _ in range(seconds):
            pushed += [f.children["status"] for f in parser.feed(meter.poll())
                       if f.root == "ConnectionStatus"]
            clock.advance(1)
        return pushed

    meter.rejoin(JOIN_SEQUENCE)
    assert statuses_pushed_within(len(JOIN_SEQUENCE)) == list(JOIN_SEQUENCE)
    assert statuses_pushed_within(59) == []
    assert statuses_pushed_within(60) == ["Connected"]


def test_identify_names_raven_and_emu2_ports():
    def port(vid: int, pid: int) -> AttachedDevice:
        return AttachedDevice("serial", "/dev/ttyUSB0", vid, pid, "", "")

    assert identify(port(0x0403, 0x8A28)) == (
        'inputs.raven (Rainforest RAVEn): port = "/dev/ttyUSB0"')
    assert "EMU-2" in identify(port(0x04B4, 0x0003))
    assert identify(port(0x0403, 0x6001)) is None


def test_disconnect_20_times_resumes_after_rejoin_with_an_honest_gap(tmp_path, meter, served):
    meter.state.join_step_s = 0.1
    sink = ListSink()
    agent = raven_agent(tmp_path, served.path, sink, health_interval="0.1s")

    def health_since(moment_ns: int) -> set[str]:
        return {m.fields["state"] for m in sink.metrics("raven_health") if m.time_ns > moment_ns}

    with Running(agent):
        wait_until(lambda: sink.metrics("raven_demand"), timeout=10)
        fds, threads = open_fds(), threading.active_count()
        for cycle in range(1, 21):
            pushed = len(sink.metrics("raven_demand"))
            served.disconnect()
            gone = time.time_ns()
            wait_until(lambda gone=gone: "absent" in health_since(gone), timeout=5, every=0.02)
            served.reconnect()
            # The stick joins the meter's network once the host has the port open (it
            # sends initialize first), so every step of the rejoin reaches the host.
            wait_until(lambda cycle=cycle: meter.commands.count("initialize") > cycle,
                       timeout=5, every=0.02)
            meter.rejoin()
            wait_until(lambda pushed=pushed: len(sink.metrics("raven_demand")) > pushed,
                       timeout=5, every=0.02)
        assert open_fds() == fds and threading.active_count() == threads
    demand = sink.metrics("raven_demand")
    assert {m.fields["kw"] for m in demand} == {0.864}, "no zero-filled points"
    stamps = [m.time_ns for m in demand]
    assert all(b > a for a, b in itertools.pairwise(stamps)), "in order, no duplicates"
    connection = [m.fields["status"] for m in sink.metrics("raven_connection")]
    assert connection.count("Connected") >= 20, "each rejoin seen through to Connected"
    health = [m.fields["state"] for m in sink.metrics("raven_health")]
    assert health.count("joining") >= 20
    assert agent.plugins[0].reconnects == 20


def test_end_to_end_collector_run_to_influxd(tmp_path, meter, served, influxd, database):
    meter.state.clock_skew_s = -7200
    config = write_config(tmp_path, f"""
[agent]
state_dir = "{tmp_path / 'state'}"
hostname = "pi"
flush_interval = "0.5s"
[[inputs.raven]]
port = "{served.path}"
[[outputs.influxdb]]
urls = ["{influxd.url}"]
database = "{database}"
""")

    def stored(q: str) -> list[dict]:
        return influxd.rows(q, database, missing_ok=True)

    started = time.time_ns()
    process = collector("run", "-c", str(config))
    try:
        demand = wait_until(lambda: stored("SELECT * FROM raven_demand"), timeout=30)
        summation = wait_until(lambda: stored("SELECT * FROM raven_summation"), timeout=30)
    finally:
        assert stop(process) == 0
    for rows in (demand, summation):
        assert all(abs(row["time"] - (started - 2 * HOUR_NS)) < 60 * 10**9 for row in rows)
        assert {row["meter_mac"] for row in rows} == {"0x00135003007c1a2b"}
        assert {row["host"] for row in rows} == {"pi"}
    assert {(row["kw"], row["raw"]) for row in demand} == {(0.864, 864)}
    delivered = [row["delivered_kwh"] for row in summation]
    assert delivered == sorted(delivered), "energy only ever grows"
    assert 113007.485 <= delivered[0] <= delivered[-1] <= meter.state.delivered_wh / 1000


def test_embedded_defaults_read_the_emulator_when_no_meter_is_attached():
    assert not os.path.exists("/dev/raven"), "this test is for machines without a RAVEn"
    result = run_collector("test", "--wait", "3", env={"COLLECTOR_CONFIG": ""})
    assert result.returncode == 0, result.stderr
    demand = [m for m in decode(result.stdout) if m.name == "raven_demand"]
    assert demand and all(m.tags["emulated"] == "true" for m in demand)
    assert demand[0].fields["kw"] == pytest.approx(DEMO_DAY.demand_w(0) / 1000, abs=0.1), \
        "the demo day, which wanders and exports at midday"
