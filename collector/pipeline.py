"""From an input's metrics to durable bytes in every output's spool."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Protocol

from collector.config import AgentConfig, InputOptions
from collector.lineprotocol import Encoder
from collector.metric import PRECISION_NS, FieldValue, Metric
from collector.plugin import Refused
from collector.shaping import Shaping
from collector.stats import Counters


class Sink(Protocol):
    def append(self, payload: bytes, count: int) -> None:
        """Store durably, or raise ``Refused`` having stored nothing."""


class Pipeline:
    """Appends every committed payload to every sink, in one order for all of them.

    Spools always hold nanosecond timestamps, so changing ``precision`` between runs can
    never make a replay misread old data; ``precision`` truncates timestamps instead.
    """

    def __init__(self, agent: AgentConfig, global_tags: dict[str, str], hostname: str,
                 sinks: list[Sink]) -> None:
        self.step_ns = PRECISION_NS[agent.precision]
        self.base_tags = dict(global_tags)
        if not agent.omit_hostname:
            self.base_tags.setdefault("host", hostname)
        self.sinks = sinks
        self._lock = threading.Lock()

    def shaping(self, options: InputOptions) -> Shaping:
        """What one input's metrics get on their way: its renames, its and global tags."""
        return Shaping(options.name_override, options.name_prefix, options.name_suffix,
                       self.base_tags, dict(options.tags), self.step_ns)

    def commit(self, payload: bytes, count: int) -> None:
        """Store an encoded batch in every sink; raise ``Refused`` if any sink refused.

        Every sink is tried, so one full spool does not starve the other outputs. The
        refusal raised is the most serious one: a failing disk before a full spool.
        """
        refusals: list[Refused] = []
        with self._lock:
            for sink in self.sinks:
                try:
                    sink.append(payload, count)
                except Refused as refusal:
                    refusals.append(refusal)
        if refusals:
            raise max(refusals, key=lambda refusal: refusal.storage_failed)


class InputAccumulator:
    """The Accumulator one input instance sees: encodes its metrics and commits them.

    Buffered (polled inputs): metrics are held until the gather ends and committed in
    one durable write. Unbuffered (streaming inputs): every call commits before return.
    Each input has its own encoder, so what it cannot encode is counted against it, and
    what a spool refuses is counted against it as ``refused``.
    """

    def __init__(self, pipeline: Pipeline, options: InputOptions, counters: Counters,
                 buffered: bool) -> None:
        self.pipeline = pipeline
        self.counters = counters
        self.buffered = buffered
        self._held: list[Metric] = []
        self._encoder = Encoder("ns", pipeline.shaping(options))
        self._lock = threading.Lock()

    def add(self, name: str, fields: dict[str, FieldValue],
            tags: dict[str, str] | None = None, time_ns: int | None = None) -> None:
        stamp = time.time_ns() if time_ns is None else time_ns
        self.add_metrics([Metric(name, fields, tags or {}, stamp)])

    def add_metrics(self, metrics: list[Metric]) -> None:
        if self.buffered:
            self._held.extend(metrics)
            return
        with contextlib.suppress(Refused):  # counted; an instrument cannot send again
            self._commit(metrics)

    def store(self, metrics: list[Metric]) -> None:
        """Commit now (after anything held), or raise ``Refused``."""
        held, self._held = self._held, []
        self._commit(held + metrics)

    def flush(self) -> None:
        """End of a gather: commit what it held."""
        with contextlib.suppress(Refused):  # counted in _commit
            self.store([])

    def _commit(self, metrics: list[Metric]) -> None:
        if not metrics:
            return
        with self._lock:
            stats = self._encoder.stats
            payload, count = self._encoder.encode(metrics)
            self.counters.set("metrics_invalid", stats.metrics_dropped)
            self.counters.set("fields_invalid", stats.fields_dropped)
            self.counters.set("tags_invalid", stats.tags_dropped)
            if not count:
                return
            try:
                self.pipeline.commit(payload, count)
            except Refused:
                self.counters.incr("refused", count)
                raise
        self.counters.incr("gathered", count)
