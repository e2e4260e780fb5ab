"""Self-monitoring counters: what inputs.internal reports and what tests assert on."""

from __future__ import annotations

import threading
from collections.abc import Callable

Value = int | float | str


class Counters:
    """Named numbers for one plugin instance, safe to bump from any thread."""

    def __init__(self, kind: str, tags: dict[str, str]) -> None:
        self.kind = kind
        self.tags = tags
        self._values: dict[str, int] = {}
        self._gauges: dict[str, Callable[[], Value]] = {}
        self._lock = threading.Lock()

    def gauge(self, name: str, read: Callable[[], Value]) -> None:
        """Report ``read()`` under ``name``: for values owned elsewhere (spool size)."""
        with self._lock:
            self._gauges[name] = read

    def incr(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] = self._values.get(name, 0) + amount

    def set(self, name: str, value: int) -> None:
        with self._lock:
            self._values[name] = value

    def get(self, name: str) -> int:
        with self._lock:
            return self._values.get(name, 0)

    def snapshot(self) -> dict[str, Value]:
        with self._lock:
            values: dict[str, Value] = dict(self._values)
            gauges = list(self._gauges.items())
        values.update((name, read()) for name, read in gauges)
        return values


class StatsRegistry:
    """Every Counters object of one agent, in creation order."""

    def __init__(self) -> None:
        self._all: list[Counters] = []
        self._lock = threading.Lock()

    def counters(self, kind: str, declared: tuple[str, ...] = (), **tags: str) -> Counters:
        """A new Counters; ``declared`` names start at zero so they are reported at once."""
        counters = Counters(kind, tags)
        for name in declared:
            counters.set(name, 0)
        with self._lock:
            self._all.append(counters)
        return counters

    def all(self) -> list[Counters]:
        with self._lock:
            return list(self._all)
