"""Value types a config file speaks in: durations, byte sizes and secrets."""

from __future__ import annotations

import re

_DURATION_UNITS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0,
    "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w)")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}


class Duration(float):
    """Seconds, written as a number or Go/Telegraf style: "10s", "1m30s", "30d", "500ms"."""

    @classmethod
    def parse(cls, value: object) -> Duration:
        if isinstance(value, bool):
            raise ValueError("expected a duration such as \"10s\"")
        if isinstance(value, int | float):
            return cls(value)
        if not isinstance(value, str):
            raise ValueError("expected a duration such as \"10s\"")
        text = value.strip()
        if text.upper() == "INF":
            return cls(float("inf"))
        pos, total = 0, 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            if text.replace(".", "", 1).isdigit():
                return cls(float(text))
            raise ValueError(f"{value!r} is not a duration (e.g. \"10s\", \"1m30s\", \"30d\")")
        return cls(total)


class ByteSize(int):
    """Bytes, written as a number or with a unit: "64MiB", "500KB"."""

    @classmethod
    def parse(cls, value: object) -> ByteSize:
        if isinstance(value, bool):
            raise ValueError("expected a size such as \"64MiB\"")
        if isinstance(value, int):
            return cls(value)
        match = _SIZE.fullmatch(value.strip()) if isinstance(value, str) else None
        if not match:
            raise ValueError(f"{value!r} is not a size (e.g. \"64MiB\", \"500KB\")")
        unit = (match.group(2) or "B").lower()
        return cls(int(float(match.group(1)) * _SIZE_UNITS[unit]))


class Secret:
    """A credential. Prints as '***' so that it cannot reach a log line by accident."""

    __slots__ = ("_value",)

    def __init__(self, value: str = "") -> None:
        self._value = value

    def reveal(self) -> str:
        """The clear text, for the one place that must send it."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__
