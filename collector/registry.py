"""Finds plugin classes by name: entry points, so third-party packages plug in alike.

A package adds a plugin by declaring, in its pyproject.toml::

    [project.entry-points."collector.inputs"]
    my_meter = "my_package.meter:MyMeterInput"
"""

from __future__ import annotations

import typing
from importlib.metadata import entry_points
from typing import Any, Literal

Kind = Literal["inputs", "aggregators", "outputs", "emulators", "devices", "importers"]
"""Plugin classes, ``collector emulate NAME`` entry functions, device identifiers, and
readers of legacy data for ``collector import``."""

_registered: dict[str, dict[str, object]] = {kind: {} for kind in typing.get_args(Kind)}


def register(kind: Kind, name: str, provided: object) -> None:
    """Add a plugin without packaging it (embedding, benchmarks)."""
    _registered[kind][name] = provided


def available(kind: Kind) -> list[str]:
    names = set(_registered[kind]) | {ep.name for ep in entry_points(group=f"collector.{kind}")}
    return sorted(names)


def load(kind: Kind, name: str) -> Any:
    """What ``name`` provides (a plugin class, a function); KeyError when nothing does."""
    if name in _registered[kind]:
        return _registered[kind][name]
    for ep in entry_points(group=f"collector.{kind}", name=name):
        return ep.load()
    raise KeyError(name)
