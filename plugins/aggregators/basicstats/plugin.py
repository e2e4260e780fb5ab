"""[[aggregators.basicstats]]: count, mean, min, max, spread of every numeric field per
period, as Telegraf's basicstats does.

Each series (measurement and tags) keeps its own statistics per field; a summary is
the measurement with fields ``<field>_<stat>`` and the series' tags, stamped at the
window's start. Strings and booleans are not numbers here and are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, get_args

from collector import Aggregator, Metric
from collector.binding import BindError

Stat = Literal["count", "min", "max", "mean", "sum", "s2", "stdev", "first", "last", "diff",
               "non_negative_diff", "rate", "non_negative_rate", "interval"]
STATS: tuple[str, ...] = get_args(Stat)


@dataclass
class BasicStatsConfig:
    stats: list[Stat] = field(default_factory=lambda: ["count", "min", "max", "mean", "s2",
                                                        "stdev"])
    """Which statistics to write (Telegraf's default set): count, min, max, mean, sum,
    s2 (sample variance), stdev (sample standard deviation), first and last (by
    timestamp), diff (last minus first), non_negative_diff, rate and non_negative_rate
    (diff per second between the first and last timestamps), interval (nanoseconds
    between them)."""

    def validate(self) -> None:
        if not self.stats:
            raise BindError("stats", "name at least one statistic")
        if len(set(self.stats)) != len(self.stats):
            raise BindError("stats", "each statistic once")


class BasicStats(Aggregator):
    Config = BasicStatsConfig

    def window(self) -> SeriesStats:
        return SeriesStats(tuple(self.config.stats))


class FieldStats:
    """Running statistics of one field: Welford's update keeps the variance exact
    enough however many values a window holds."""

    __slots__ = ("count", "first", "first_ns", "last", "last_ns", "m2", "maximum", "mean",
                 "minimum", "total")

    def __init__(self, value: float, time_ns: int) -> None:
        self.count = 1
        self.mean = self.minimum = self.maximum = self.total = value
        self.m2 = 0.0
        self.first = self.last = value
        self.first_ns = self.last_ns = time_ns

    def add(self, value: float, time_ns: int) -> None:
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (value - self.mean)
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)
        self.total += value
        if time_ns < self.first_ns:
            self.first, self.first_ns = value, time_ns
        if time_ns >= self.last_ns:
            self.last, self.last_ns = value, time_ns

    def value(self, stat: str) -> float | int | None:
        """One statistic; None where it is undefined (s2 of one value, a rate over no time)."""
        elapsed_s = (self.last_ns - self.first_ns) / 1e9
        diff = self.last - self.first
        match stat:
            case "count":
                return self.count
            case "min":
                return float(self.minimum)
            case "max":
                return float(self.maximum)
            case "mean":
                return float(self.mean)
            case "sum":
                return float(self.total)
            case "s2":
                return self.m2 / (self.count - 1) if self.count > 1 else None
            case "stdev":
                return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else None
            case "first":
                return float(self.first)
            case "last":
                return float(self.last)
            case "diff":
                return float(diff)
            case "non_negative_diff":
                return float(diff) if diff >= 0 else None
            case "rate":
                return diff / elapsed_s if elapsed_s > 0 else None
            case "non_negative_rate":
                return diff / elapsed_s if elapsed_s > 0 and diff >= 0 else None
            case "interval":
                return self.last_ns - self.first_ns
        raise ValueError(stat)


class SeriesStats:
    """One window: statistics per series and field."""

    def __init__(self, stats: tuple[str, ...]) -> None:
        self.stats = stats
        self._series: dict[tuple, tuple[str, dict[str, str], dict[str, FieldStats]]] = {}

    def add(self, metric: Metric) -> None:
        key = (metric.name, *sorted(metric.tags.items()))
        entry = self._series.get(key)
        if entry is None:
            entry = self._series[key] = (metric.name, metric.tags, {})
        fields = entry[2]
        for name, value in metric.fields.items():
            if type(value) not in (int, float) or (type(value) is float
                                                   and not math.isfinite(value)):
                continue
            stats = fields.get(name)
            if stats is None:
                fields[name] = FieldStats(value, metric.time_ns)
            else:
                stats.add(value, metric.time_ns)

    def summary(self, start_ns: int) -> list[Metric]:
        summaries = []
        for name, tags, fields in self._series.values():
            values = {f"{field_name}_{stat}": value
                      for field_name, stats in fields.items() for stat in self.stats
                      if (value := stats.value(stat)) is not None}
            if values:
                summaries.append(Metric(name, values, dict(tags), start_ns))
        return summaries
