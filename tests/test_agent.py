"""The agent: schedules, no overlapping gathers, isolation of failing plugins, CLI modes."""

import math
import threading
import time
from typing import ClassVar

from collector import Input, Metric, StreamingInput, registry
from collector import config as config_module
from collector.agent import Agent
from tests.fixed_input import ListSink, agent_from, input_counters, register_input
from tests.helpers import run_collector, write_config


def run_for(agent, seconds: float) -> None:
    thread = threading.Thread(target=agent.run)
    thread.start()
    time.sleep(seconds)
    agent.stop_event.set()
    thread.join(30)
    assert not thread.is_alive()


class Slow(Input):
    active = 0
    most_active = 0

    def gather(self, acc) -> None:
        Slow.active += 1
        Slow.most_active = max(Slow.most_active, Slow.active)
        time.sleep(1.2)
        Slow.active -= 1
        acc.add("slow", {"v": 1.0})


class Broken(Input):
    def gather(self, acc) -> None:
        raise OSError("device unplugged")


class Stamped(Input):
    times: ClassVar[list[float]] = []

    def gather(self, acc) -> None:
        Stamped.times.append(time.time())
        acc.add("stamped", {"v": 1.0})


class Crashing(StreamingInput):
    starts = 0

    def run(self, acc, stop) -> None:
        Crashing.starts += 1
        acc.add("crashing", {"start": Crashing.starts})
        raise RuntimeError("lost the device")


registry.register("inputs", "slow", Slow)
registry.register("inputs", "broken", Broken)
registry.register("inputs", "stamped", Stamped)
registry.register("inputs", "crashing", Crashing)


def test_gathers_of_one_input_never_overlap_and_skips_are_counted(tmp_path):
    agent = agent_from('[[inputs.slow]]\ninterval = "0.3s"\n', tmp_path)
    run_for(agent, 3.5)
    counters = input_counters(agent, "slow")
    assert Slow.most_active == 1
    assert counters["skipped"] >= 4
    assert counters["gathered"] >= 2


def test_a_failing_input_neither_stops_others_nor_floods_the_log(tmp_path, caplog):
    agent = agent_from('[[inputs.broken]]\ninterval = "0.2s"\n'
                       '[[inputs.stamped]]\ninterval = "0.2s"\n', tmp_path)
    run_for(agent, 1.5)
    assert input_counters(agent, "broken")["errors"] >= 4
    assert input_counters(agent, "stamped")["gathered"] >= 4
    assert caplog.text.count("device unplugged") == 1


def test_round_interval_aligns_gathers_to_boundaries(tmp_path):
    Stamped.times.clear()
    agent = agent_from('[[inputs.stamped]]\ninterval = "0.5s"\n', tmp_path)
    run_for(agent, 3.2)
    offsets = [t % 0.5 for t in Stamped.times]
    assert len(offsets) >= 5
    assert max(offsets) < 0.1, offsets


def test_crashing_streaming_input_is_restarted_with_backoff(tmp_path):
    agent = agent_from("[[inputs.crashing]]\n", tmp_path)
    run_for(agent, 3.5)
    counters = input_counters(agent, "crashing")
    assert 2 <= Crashing.starts <= 3, "restarted after 1s, then 2s"
    assert counters["errors"] == Crashing.starts
    assert counters["gathered"] == Crashing.starts


def test_global_and_plugin_tags_and_name_override(tmp_path):
    result = run_collector("test", "-c", str(write_config(tmp_path, f"""
[agent]
state_dir = "{tmp_path}"
hostname = "pi"
[global_tags]
site = "lab"
[[inputs.internal]]
name_override = "self"
collect_process = false
tags = {{ room = "b12" }}
""")))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines and all(line.startswith("self,") for line in lines)
    assert all(",host=pi," in line and ",room=b12," in line and ",site=lab" in line
               for line in lines)


def test_shaping_applies_to_every_metric_of_a_series_and_invalid_ones_are_counted(tmp_path):
    stamp = 1_700_000_000_987_654_321
    register_input("shaped", lambda: [
        Metric("m", {"v": 1.0}, {"site": "own", "room": "own"}, stamp),
        Metric("m", {"v": 2.0}, {"site": "own", "room": "own"}, stamp + 1),
        Metric("m", {"v": math.nan}, {"site": "own", "room": "own"}, stamp + 2),
        Metric("m", {"v": 3.0, "bad": math.inf}, {"site": "own", "room": "own"}, stamp + 3),
    ])
    sink = ListSink()
    agent = Agent(config_module.parse(f"""
[agent]
state_dir = "{tmp_path}"
hostname = "pi"
precision = "ms"
[global_tags]
site = "lab"
[[inputs.shaped]]
name_prefix = "pre_"
name_suffix = "_post"
tags = {{ room = "b12" }}
""", "test"), sinks=[sink])
    agent.polled[0].gather_once()
    agent.close()
    truncated = stamp - stamp % 1_000_000
    assert b"".join(sink.payloads).decode().splitlines() == [
        f"pre_m_post,host=pi,room=b12,site=own v={value} {truncated}"
        for value in (1.0, 2.0, 3.0)]
    counters = input_counters(agent, "shaped")
    assert (counters["gathered"], counters["metrics_invalid"], counters["fields_invalid"]) == (
        3, 1, 2)


def test_once_gathers_and_delivers_to_a_file(tmp_path):
    result = run_collector("once", "-c", str(write_config(tmp_path, f"""
[agent]
state_dir = "{tmp_path}"
[[inputs.internal]]
[[outputs.file]]
files = ["out.lp"]
""")))
    assert result.returncode == 0, result.stderr
    written = (tmp_path / "out.lp").read_text().splitlines()
    assert any(line.startswith("internal_process,") for line in written)
