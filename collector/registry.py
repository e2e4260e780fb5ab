"""Finds plugin classes by name: entry points, so third-party packages plug in alike.

A package adds a plugin by declaring, in its pyproject.toml::

    [project.entry-points."collector.inputs"]
    my_meter = "my_package.meter:MyMeterInput"
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Literal

Kind = Literal["inputs", "outputs"]

_registered: dict[str, dict[str, type]] = {"inputs": {}, "outputs": {}}


def register(kind: Kind, name: str, cls: type) -> None:
    """Add a plugin without packaging it (embedding, benchmarks)."""
    _registered[kind][name] = cls


def available(kind: Kind) -> list[str]:
    names = set(_registered[kind]) | {ep.name for ep in entry_points(group=f"collector.{kind}")}
    return sorted(names)


def load(kind: Kind, name: str) -> type:
    """The plugin class called ``name``; KeyError when nothing provides it."""
    if name in _registered[kind]:
        return _registered[kind][name]
    for ep in entry_points(group=f"collector.{kind}", name=name):
        return ep.load()
    raise KeyError(name)
