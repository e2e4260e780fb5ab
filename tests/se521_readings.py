"""SE521 readings as the input emits them, and the per-minute means the aggregator
(``[[aggregators.basicstats]] period = "1m" stats = ["mean", "count"]``) makes of them,
computed here independently of the code under test."""

from __future__ import annotations

import datetime
import random
from collections import defaultdict
from dataclasses import dataclass
from zoneinfo import ZoneInfo

NS = 1_000_000_000
MINUTE_NS = 60 * NS
TAGS = "device=EMU0001,model=521,raw_unit=C"


@dataclass(frozen=True)
class Reading:
    time_ns: int
    channel: str
    celsius: float | None
    """None: open or over-range probe (no ``celsius`` field, only a state)."""

    def line(self) -> str:
        if self.celsius is None:
            return f'se521,channel={self.channel},{TAGS} state="unplugged" {self.time_ns}'
        return (f'se521,channel={self.channel},{TAGS} celsius={self.celsius},state="ok" '
                f"{self.time_ns}")


def readings(start_ns: int, end_ns: int, every_s: float, channel: str, level: float,
             valid: float = 1.0, seed: int = 0) -> list[Reading]:
    """A probe read every ``every_s`` seconds around ``level`` °C; a share ``1 - valid``
    of the readings are invalid."""
    rng = random.Random(f"{seed}{channel}")
    step = int(every_s * NS)
    return [Reading(t, channel, round(level + rng.uniform(-2, 2), 2)
                    if rng.random() < valid else None)
            for t in range(start_ns, end_ns, step)]


def aggregated(readings: list[Reading]) -> list[str]:
    """basicstats' output: per channel and UTC minute, the mean and count of the valid
    readings, stamped at the window's start; no point for a window without one."""
    windows: dict[tuple[str, int], list[float]] = defaultdict(list)
    for reading in readings:
        if reading.celsius is not None:
            windows[reading.channel, reading.time_ns // MINUTE_NS].append(reading.celsius)
    return [f"se521,channel={channel},{TAGS} celsius_mean={sum(values) / len(values)!r},"
            f"celsius_count={len(values)}i {minute * MINUTE_NS}"
            for (channel, minute), values in sorted(windows.items(), key=lambda item: item[0][1])]


def wall_minute_means(readings: list[Reading], zone: str) -> dict[str, dict[str, float]]:
    """The legacy table's content: per wall-clock minute in ``zone`` and channel, the
    mean of every valid reading whose local time falls in that minute."""
    tz = ZoneInfo(zone)
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for reading in readings:
        local = datetime.datetime.fromtimestamp(reading.time_ns / NS, tz)
        wall = local.strftime("%Y-%m-%d %H:%M:00")
        if reading.celsius is not None:
            values[wall][reading.channel].append(reading.celsius)
        else:
            values[wall].setdefault(reading.channel, [])
    return {wall: {channel: sum(found) / len(found) for channel, found in channels.items()
                   if found}
            for wall, channels in values.items()}
