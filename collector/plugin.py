"""What a plugin implements and what it is handed: the public API for plugin authors.

An input is either polled (``Input.gather`` runs on the agent's schedule) or streaming
(``StreamingInput.run`` owns a thread and pushes metrics when the device does). An
aggregator summarises each period's metrics (``Aggregator.window``). An output turns one
batch of line protocol into a ``WriteResult`` or raises ``RetryableError``; batching,
spooling, retries and backoff are the agent's job.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from collector.metric import FieldValue, Metric
from collector.stats import Counters, StatsRegistry
from collector.timezones import LocalTimes

Prune = Literal["none", "empty", "all"]


@dataclass
class NoOptions:
    """Config of a plugin that takes no options of its own."""


@dataclass(frozen=True)
class ConfiguredInput:
    """An input of the running config as other plugins see it: an output that announces
    devices (e.g. to Home Assistant) learns from it which inputs exist. ``config`` is
    that input's bound options; treat it as read-only."""

    name: str
    alias: str
    config: object


@dataclass
class PluginContext:
    """Everything the agent lends a plugin instance."""

    name: str
    alias: str
    log: logging.Logger
    stats: Counters
    registry: StatsRegistry
    state_dir: Path
    hostname: str = ""
    """The agent's ``host`` tag value (empty with ``omit_hostname``)."""
    inputs: tuple[ConfiguredInput, ...] = ()
    """Every input of the config, in config order."""


class Refused(Exception):
    """Metrics were not stored: an output's spool is full (``spool_overflow =
    "drop_newest"``) or its disk is full or failing. Nothing was acknowledged, so the
    source may send them again later; an output that did store them keeps them."""

    def __init__(self, reason: str, storage_failed: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.storage_failed = storage_failed
        """True when the disk failed (HTTP 507), False when a spool said no (503)."""


class Accumulator(Protocol):
    """Where inputs put metrics.

    ``add`` and ``add_metrics`` suit instruments: once they return, the metrics are on
    disk in every output's spool, or, if a spool refused them, the refusal is counted
    against the input (``refused``) and logged by the spool; there is nothing an
    instrument could do about it. A polled input's metrics are held until its gather
    returns and stored together then.

    ``store`` suits inputs whose source can send again (an HTTP client, an MQTT
    broker): it stores at once and raises ``Refused`` when any spool refused, so the
    input acknowledges to its source only what is durable. ``store_line_protocol``
    does the same for line protocol as received, relaying lines without decoding them
    where nothing needs the metrics themselves.
    """

    def add(
        self, name: str, fields: dict[str, FieldValue],
        tags: dict[str, str] | None = None, time_ns: int | None = None,
    ) -> None: ...

    def add_metrics(self, metrics: list[Metric]) -> None: ...

    def store(self, metrics: list[Metric]) -> None: ...

    def store_line_protocol(self, messages: list[bytes], now_ns: int,
                            precision: str = "ns") -> list[int | Exception]:
        """Received line protocol, each message on its own (lines without a timestamp
        get ``now_ns``), stored in one append or ``Refused``; per message, the metrics
        it held or why it is not line protocol (that message stores nothing)."""


class Input:
    """A polled input: ``gather`` is called once per interval, never concurrently."""

    Config: ClassVar[type] = NoOptions
    default_interval: ClassVar[float | None] = None

    def __init__(self, config, context: PluginContext) -> None:
        self.config = config
        self.context = context

    def gather(self, acc: Accumulator) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release devices and sockets; called once at shutdown."""


class StreamingInput(Input):
    """An input that pushes metrics as they happen, from its own thread."""

    def run(self, acc: Accumulator, stop: threading.Event) -> None:
        """Deliver metrics until ``stop`` is set. If it raises, the agent restarts it."""
        raise NotImplementedError


class Window(Protocol):
    """What one aggregator keeps of one period: every metric it takes of that period
    goes to ``add``; once the period (and the grace for late metrics) is over, the core
    asks for the ``summary``, stamps nothing itself, and forgets the window."""

    def add(self, metric: Metric) -> None: ...

    def summary(self, start_ns: int) -> list[Metric]:
        """The period's aggregates, stamped ``start_ns`` (the window's UTC start)."""


class Aggregator:
    """Summarises metrics per period: ``period`` windows aligned to UTC boundaries,
    ``grace`` for late metrics, filters and ``drop_original`` are the core's; a plugin
    says only what a window does with its metrics."""

    Config: ClassVar[type] = NoOptions

    def __init__(self, config, context: PluginContext) -> None:
        self.config = config
        self.context = context

    def window(self) -> Window:
        """A fresh, empty window."""
        raise NotImplementedError


class RowSource(Protocol):
    """Where ``collector import`` reads a legacy table: a MySQL server or a CSV export."""

    def columns(self, table: str) -> list[str]: ...

    def lookup(self, table: str) -> list[dict[str, Any]]:
        """Every row of a small side table (e.g. run_info); [] where the source has none."""


class Importer:
    """Turns the rows of one legacy table into metrics, for ``collector import``.

    The core reads the rows (in the order they were written, resumably), stores the
    metrics through the normal pipeline and spool, and counts; an importer says what a
    row means. Naive local times go through ``self.times``; what a row leaves out (a
    sentinel row, a NULL, an impossible value) is counted in ``skipped`` by reason.
    """

    table: ClassVar[str] = ""
    """The legacy table's name."""
    order_by: ClassVar[tuple[tuple[str, ...], ...]] = ()
    """Unique keys in the order rows were written; the first the table has is used."""

    def __init__(self, times: LocalTimes) -> None:
        self.times = times
        self.skipped: Counter[str] = Counter()

    def prepare(self, source: RowSource) -> None:
        """Read what conversion needs besides the rows (a side table)."""

    def convert(self, row: dict[str, Any]) -> list[Metric]:
        raise NotImplementedError


@dataclass(frozen=True)
class WriteResult:
    """What became of a batch the server answered: written, or dropped for a reason."""

    written: int
    dropped: int = 0
    rejected: int = 0


class RetryableError(Exception):
    """Nothing was stored, but trying the same batch later may succeed."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Output:
    """Writes batches of newline-terminated line protocol (nanosecond timestamps)."""

    Config: ClassVar[type] = NoOptions

    def __init__(self, config, context: PluginContext) -> None:
        self.config = config
        self.context = context

    def start(self) -> None:
        """Called from the output's own thread before the first write (may block)."""

    def write(self, payload: bytes, count: int) -> WriteResult:
        raise NotImplementedError

    def provision(self, dry_run: bool, prune: Prune = "none") -> list[str] | None:
        """Make the server match the config; the changes made (or planned). None: n/a.

        ``prune`` says what may be removed that the config no longer lists: nothing,
        only what holds no data, or everything.
        """
        return None

    def close(self) -> None:
        """Release connections; called once at shutdown."""
