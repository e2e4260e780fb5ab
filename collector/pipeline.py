"""From an input's metrics to durable bytes in every output's spool.

Fast path (no aggregator, no output filter, the common case): an input's metrics are
encoded once, with the input's renames and tags applied per series by its encoder,
and the same bytes go to every spool. Otherwise metrics are shaped first, offered to
the aggregators, and encoded once per distinct output filter ("route").
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from collector.config import AgentConfig, InputOptions
from collector.filters import Selector
from collector.lineprotocol import Encoder, EncodeStats, LineProtocolError, decode
from collector.metric import PRECISION_NS, FieldValue, Metric
from collector.plugin import Refused
from collector.shaping import Shaping
from collector.stats import Counters


class Sink(Protocol):
    def append(self, payload: bytes, count: int) -> None:
        """Store durably, or raise ``Refused`` having stored nothing."""


class Aggregating(Protocol):
    def offer(self, metric: Metric) -> bool:
        """Take the metric into the current window; True when the original must not go
        on to the outputs (the aggregator drops originals)."""


@dataclass
class Route:
    """Outputs with the same filters: they share one encoding of each batch."""

    selector: Selector | None
    sinks: list[Sink] = field(default_factory=list)


class Pipeline:
    """Appends every committed payload to every sink, in one order for all of them.

    Spools always hold nanosecond timestamps, so changing ``precision`` between runs can
    never make a replay misread old data; ``precision`` truncates timestamps instead.
    """

    def __init__(self, agent: AgentConfig, global_tags: dict[str, str], hostname: str,
                 sinks: list[Sink], selectors: list[Selector | None] | None = None) -> None:
        self.step_ns = PRECISION_NS[agent.precision]
        self.base_tags = dict(global_tags)
        if not agent.omit_hostname:
            self.base_tags.setdefault("host", hostname)
        self.sinks = sinks
        self.routes: list[Route] = []
        for sink, selector in zip(sinks, selectors or [None] * len(sinks), strict=True):
            key = selector.key if selector else None
            route = next((r for r in self.routes
                          if (r.selector.key if r.selector else None) == key), None)
            if route is None:
                route = Route(selector)
                self.routes.append(route)
            route.sinks.append(sink)
        self.aggregators: list[Aggregating] = []
        self._lock = threading.Lock()

    @property
    def direct(self) -> bool:
        """Whether every metric goes unchanged to every sink (the fast path)."""
        return not self.aggregators and all(route.selector is None for route in self.routes)

    def shaping(self, options: InputOptions) -> Shaping:
        """What one input's metrics get on their way: its renames, its and global tags."""
        return Shaping(options.name_override, options.name_prefix, options.name_suffix,
                       self.base_tags, dict(options.tags), self.step_ns)

    def commit(self, payload: bytes, count: int) -> None:
        """Store an encoded batch in every sink; raise ``Refused`` if any sink refused."""
        self.commit_routed([(self.sinks, payload, count)])

    def commit_routed(self, payloads: list[tuple[list[Sink], bytes, int]]) -> None:
        """Store each payload in its sinks, all under one lock so that every sink sees
        the same order; raise ``Refused`` if any sink refused (the most serious: a
        failing disk before a full spool).

        Every sink is tried, so one full spool does not starve the other outputs.
        """
        refusals: list[Refused] = []
        with self._lock:
            for sinks, payload, count in payloads:
                for sink in sinks:
                    try:
                        sink.append(payload, count)
                    except Refused as refusal:
                        refusals.append(refusal)
        if refusals:
            raise max(refusals, key=lambda refusal: refusal.storage_failed)


class Router:
    """Encodes already shaped metrics once per route and commits them together.

    Used by an input when the fast path does not apply, and by each aggregator.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        shaping = Shaping(step_ns=pipeline.step_ns)
        self._encoders = [Encoder("ns", shaping) for _ in pipeline.routes]

    @property
    def stats(self) -> EncodeStats:
        """What the encoders left out, summed over routes (a metric invalid for two
        outputs counts twice)."""
        total = EncodeStats()
        for encoder in self._encoders:
            total.metrics_dropped += encoder.stats.metrics_dropped
            total.fields_dropped += encoder.stats.fields_dropped
            total.tags_dropped += encoder.stats.tags_dropped
        return total

    def commit(self, metrics: list[Metric]) -> None:
        """Metrics to the outputs whose filters take them."""
        payloads = []
        for route, encoder in zip(self.pipeline.routes, self._encoders, strict=True):
            chosen = route.selector.apply(metrics) if route.selector else metrics
            payload, count = encoder.encode(chosen)
            if count:
                payloads.append((route.sinks, payload, count))
        if payloads:
            self.pipeline.commit_routed(payloads)


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
        self.selector = Selector.of(options)
        self._shaping = pipeline.shaping(options)
        self._held: list[Metric] = []
        self._encoder = Encoder("ns", self._shaping)
        self._router: Router | None = None
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

    def store_line_protocol(self, messages: list[bytes], now_ns: int,
                            precision: str = "ns") -> list[int | Exception]:
        """Store received line protocol now, in one append, or raise ``Refused``; per
        message, how many metrics it held, or why it is not line protocol (a
        LineProtocolError or UnicodeDecodeError: that message stores nothing, the others
        are stored). Lines without a timestamp get ``now_ns``.

        When nothing needs the metrics themselves (no filter on this input, no
        aggregator, no output filter), lines pass through with only their series
        renamed and tagged: a relay's lines are not decoded into objects to be encoded
        again."""
        if self.selector is not None or not self.pipeline.direct:
            return self._store_decoded(messages, now_ns, precision)
        self.store([])  # what a gather held goes first
        multiplier = PRECISION_NS[precision]
        outcome: list[int | Exception] = []
        payloads: list[bytes] = []
        with self._lock:
            for data in messages:
                try:
                    payload, count = self._encoder.reencode(data.decode(), now_ns, multiplier)
                except (LineProtocolError, UnicodeDecodeError) as err:
                    outcome.append(err)
                    continue
                outcome.append(count)
                payloads.append(payload)
            self._count_invalid()
            stored = sum(count for count in outcome if isinstance(count, int))
            if stored:
                self._commit_payload(b"".join(payloads), stored)
        self.counters.incr("gathered", stored)
        return outcome

    def _store_decoded(self, messages: list[bytes], now_ns: int,
                       precision: str) -> list[int | Exception]:
        outcome: list[int | Exception] = []
        metrics: list[Metric] = []
        for data in messages:
            try:
                decoded = decode(data, precision)
            except (LineProtocolError, UnicodeDecodeError) as err:
                outcome.append(err)
                continue
            for metric in decoded:
                metric.time_ns = metric.time_ns or now_ns
            metrics += decoded
            outcome.append(len(decoded))
        self.store(metrics)
        return outcome

    def flush(self) -> None:
        """End of a gather: commit what it held."""
        with contextlib.suppress(Refused):  # counted in _commit
            self.store([])

    def _commit(self, metrics: list[Metric]) -> None:
        if self.selector:
            metrics = self.selector.apply(metrics)
        if not metrics:
            return
        with self._lock:
            try:
                count = self._commit_direct(metrics) if self.pipeline.direct \
                    else self._commit_routed(metrics)
            except Refused:
                self.counters.incr("refused", len(metrics))
                raise
            finally:
                self._count_invalid()
        self.counters.incr("gathered", count)

    def _count_invalid(self) -> None:
        stats = self._router.stats if self._router else self._encoder.stats
        self.counters.set("metrics_invalid", stats.metrics_dropped)
        self.counters.set("fields_invalid", stats.fields_dropped)
        self.counters.set("tags_invalid", stats.tags_dropped)

    def _commit_payload(self, payload: bytes, count: int) -> None:
        try:
            self.pipeline.commit(payload, count)
        except Refused:
            self.counters.incr("refused", count)
            raise

    def _commit_direct(self, metrics: list[Metric]) -> int:
        payload, count = self._encoder.encode(metrics)
        if count:
            self.pipeline.commit(payload, count)
        return count

    def _commit_routed(self, metrics: list[Metric]) -> int:
        """Shape, let the aggregators take what they want, route the rest."""
        if self._router is None:
            self._router = Router(self.pipeline)
        shaping = self._shaping
        originals = []
        for metric in metrics:
            shaped = Metric(shaping.name(metric.name), metric.fields,
                            shaping.tags(metric.tags), metric.time_ns)
            dropped = False
            for aggregator in self.pipeline.aggregators:  # every one sees it
                dropped |= aggregator.offer(shaped)
            if not dropped:
                originals.append(shaped)
        self._router.commit(originals)
        return len(metrics)
