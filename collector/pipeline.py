"""From an input's metrics to durable bytes in every output's spool."""

from __future__ import annotations

import threading
import time
from typing import Protocol

from collector.config import AgentConfig, InputOptions
from collector.lineprotocol import Encoder
from collector.metric import FieldValue, Metric, truncate_time
from collector.stats import Counters


class Sink(Protocol):
    def append(self, payload: bytes, count: int) -> bool: ...


class Pipeline:
    """Encodes each batch once (nanosecond precision) and appends it to every sink.

    Spools always hold nanosecond timestamps, so changing ``precision`` between runs can
    never make a replay misread old data; ``precision`` truncates timestamps instead.
    """

    def __init__(self, agent: AgentConfig, global_tags: dict[str, str], hostname: str,
                 sinks: list[Sink], counters: Counters) -> None:
        self.precision = agent.precision
        self.base_tags = dict(global_tags)
        if not agent.omit_hostname:
            self.base_tags.setdefault("host", hostname)
        self.sinks = sinks
        self.counters = counters
        self._encoder = Encoder("ns")
        self._lock = threading.Lock()

    def commit(self, metrics: list[Metric]) -> int:
        """Store metrics in every sink; returns how many were encodable."""
        if not metrics:
            return 0
        with self._lock:
            stats = self._encoder.stats
            before = stats.metrics_dropped
            payload, count = self._encoder.encode(metrics)
            if stats.metrics_dropped != before:
                self.counters.incr("metrics_invalid", stats.metrics_dropped - before)
            self.counters.set("fields_invalid", stats.fields_dropped)
            self.counters.set("tags_invalid", stats.tags_dropped)
            if count:
                for sink in self.sinks:
                    sink.append(payload, count)
        return count


class InputAccumulator:
    """The Accumulator one input instance sees: shapes names and tags, then commits.

    Buffered (polled inputs): metrics are held until the gather ends and committed in
    one durable write. Unbuffered (streaming inputs): every call commits before return.
    """

    def __init__(self, pipeline: Pipeline, options: InputOptions, counters: Counters,
                 buffered: bool) -> None:
        self.pipeline = pipeline
        self.options = options
        self.counters = counters
        self.buffered = buffered
        self._held: list[Metric] = []
        self._base_tags = pipeline.base_tags
        self._plugin_tags = options.tags

    def add(self, name: str, fields: dict[str, FieldValue],
            tags: dict[str, str] | None = None, time_ns: int | None = None) -> None:
        stamp = time.time_ns() if time_ns is None else time_ns
        self.add_metrics([Metric(name, fields, tags or {}, stamp)])

    def add_metrics(self, metrics: list[Metric]) -> None:
        shaped = [self._shape(metric) for metric in metrics]
        if self.buffered:
            self._held.extend(shaped)
        else:
            self._commit(shaped)

    def flush(self) -> None:
        held, self._held = self._held, []
        self._commit(held)

    def _commit(self, metrics: list[Metric]) -> None:
        self.counters.incr("gathered", self.pipeline.commit(metrics))

    def _shape(self, metric: Metric) -> Metric:
        options = self.options
        name = options.name_override or (options.name_prefix + metric.name + options.name_suffix)
        tags = {**self._base_tags, **metric.tags, **self._plugin_tags}
        stamp = truncate_time(metric.time_ns, self.pipeline.precision)
        return Metric(name, metric.fields, tags, stamp)
