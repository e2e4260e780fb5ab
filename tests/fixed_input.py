"""In-process agents for tests: a polled input that emits what a test hands it, and a
sink that keeps what the pipeline would spool."""

from __future__ import annotations

from collections.abc import Callable

from collector import Input, Metric, registry
from collector import config as config_module
from collector.agent import Agent
from collector.lineprotocol import decode


def register_input(name: str, produce: Callable[[], list[Metric]]) -> None:
    """Make ``[[inputs.NAME]]`` gather ``produce()`` each time."""

    class Produced(Input):
        def gather(self, acc) -> None:
            acc.add_metrics(produce())

    registry.register("inputs", name, Produced)


def agent_from(text: str, state_dir) -> Agent:
    return Agent(config_module.parse(f'[agent]\nstate_dir = "{state_dir}"\n' + text, "test"))


def output_counters(agent: Agent, alias: str = "influxdb") -> dict:
    return _counters(agent, "output", alias)


def input_counters(agent: Agent, alias: str) -> dict:
    return _counters(agent, "input", alias)


def _counters(agent: Agent, kind: str, alias: str) -> dict:
    for counters in agent.registry.all():
        if counters.kind == kind and counters.tags.get(kind) == alias:
            return counters.snapshot()
    raise KeyError(alias)


class ListSink:
    """Stands in for the outputs: keeps what the pipeline would spool (list appends are
    atomic, so an agent's threads may append while a test reads)."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def append(self, payload: bytes, count: int) -> None:
        self.payloads.append(payload)

    def metrics(self, name: str | None = None) -> list[Metric]:
        found = decode(b"".join(self.payloads))
        return [m for m in found if name is None or m.name == name]


def agent_with_sink(text: str, state_dir, sink: ListSink) -> Agent:
    """An agent whose outputs are replaced by ``sink``."""
    return Agent(config_module.parse(f'[agent]\nstate_dir = "{state_dir}"\n' + text, "test"),
                 sinks=[sink])
