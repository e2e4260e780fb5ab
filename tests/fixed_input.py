"""A polled input for in-process tests: emits the metrics a test hands it."""

from __future__ import annotations

from collections.abc import Callable

from collector import Input, Metric, registry
from collector import config as config_module
from collector.agent import Agent


def register_input(name: str, produce: Callable[[], list[Metric]]) -> None:
    """Make ``[[inputs.NAME]]`` gather ``produce()`` each time."""

    class Produced(Input):
        def gather(self, acc) -> None:
            acc.add_metrics(produce())

    registry.register("inputs", name, Produced)


def agent_from(text: str, state_dir) -> Agent:
    return Agent(config_module.parse(f'[agent]\nstate_dir = "{state_dir}"\n' + text, "test"))


def output_counters(agent: Agent, alias: str = "influxdb") -> dict[str, int]:
    for counters in agent.registry.all():
        if counters.tags.get("output") == alias:
            return counters.snapshot()
    raise KeyError(alias)
