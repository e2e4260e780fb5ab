"""The agent: builds plugins from a config and runs inputs, outputs and schedules."""

from __future__ import annotations

import datetime
import logging
import math
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import schedule

from collector.aggregation import AGGREGATOR_COUNTERS, AggregatorRunner
from collector.config import AgentConfig, Config, PluginSpec
from collector.filters import Selector
from collector.input_runner import PolledInput, StreamingRunner
from collector.output_runner import OutputRunner
from collector.pipeline import InputAccumulator, Pipeline, Router, Sink
from collector.plugin import (
    Aggregator,
    ConfiguredInput,
    Input,
    Output,
    PluginContext,
    StreamingInput,
)
from collector.spool import Spool
from collector.stats import StatsRegistry

log = logging.getLogger("collector")

INPUT_COUNTERS = ("gathered", "refused", "errors", "skipped", "gather_time_ns",
                  "metrics_invalid", "fields_invalid", "tags_invalid")
OUTPUT_COUNTERS = ("written", "rejected", "server_dropped", "retried", "errors",
                   "write_latency_ns")
HEARTBEAT_FILE = "heartbeat"
HEARTBEAT_EVERY_S = 10.0
"""The schedule loop touches ``state_dir/heartbeat`` this often: a container's or a
supervisor's health check reads its age (one inode update, no data written)."""


def build_plugin(spec: PluginSpec, config: Config, registry: StatsRegistry):
    """Instantiate one configured plugin with its context."""
    declared = {"inputs": INPUT_COUNTERS, "outputs": OUTPUT_COUNTERS,
                "aggregators": AGGREGATOR_COUNTERS}[spec.kind]
    counters = registry.counters(spec.kind[:-1], declared, **{spec.kind[:-1]: spec.instance_id})
    context = PluginContext(
        name=spec.name, alias=spec.instance_id,
        log=logging.getLogger(f"collector.{spec.kind}.{spec.instance_id}"),
        stats=counters, registry=registry, state_dir=Path(config.agent.state_dir),
        hostname="" if config.agent.omit_hostname else hostname(config.agent),
        inputs=tuple(ConfiguredInput(i.name, i.instance_id, i.config) for i in config.inputs),
    )
    return spec.cls(spec.config, context)


def hostname(agent: AgentConfig) -> str:
    """The ``host`` tag: the configured hostname, else the machine's."""
    return agent.hostname or socket.gethostname()


class Agent:
    """Owns every plugin instance of one config and the threads that drive them."""

    def __init__(self, config: Config, sinks: list[Sink] | None = None) -> None:
        """``sinks`` replaces the outputs (``collector test``: print instead of deliver)."""
        self.config = config
        self.settings: AgentConfig = config.agent
        self.registry = StatsRegistry()
        self.state_dir = Path(self.settings.state_dir)
        self.stop_event = threading.Event()
        self.hostname = hostname(self.settings)
        self.hurried = threading.Event()
        """A second stop signal: cut the last flush short (the bookkeeping still runs)."""
        self.reload_requested = threading.Event()
        """SIGHUP: check the config again; if it is good, stop and let the caller restart."""
        self.next_config: Config | None = None
        self.outputs: list[OutputRunner] = []
        selectors: list[Selector | None] | None = None
        if sinks is None:
            sinks = [self._output_runner(spec).spool for spec in config.outputs]
            selectors = [Selector.of(spec.options) for spec in config.outputs]
        self.pipeline = Pipeline(self.settings, config.global_tags, self.hostname, sinks,
                                 selectors)
        self.aggregators = [self._aggregator(spec) for spec in config.aggregators]
        self.pipeline.aggregators = list(self.aggregators)
        self._check_reload: Callable[[], Config | None] | None = None
        self.polled: list[PolledInput] = []
        self.streaming: list[StreamingRunner] = []
        self.plugins: list[Input] = []
        for spec in config.inputs:
            self._add_input(spec)

    def _output_runner(self, spec: PluginSpec) -> OutputRunner:
        plugin: Output = build_plugin(spec, self.config, self.registry)
        options, agent = spec.options, self.settings
        spool = Spool(
            self.state_dir / "spool" / spec.instance_id,
            max_bytes=options.spool_max_bytes or agent.spool_max_bytes,
            overflow=options.spool_overflow or agent.spool_overflow,
            fsync=agent.spool_fsync,
            log=plugin.context.log,
        )
        runner = OutputRunner(
            plugin, spool, plugin.context.stats, plugin.context.log,
            batch_size=options.metric_batch_size or agent.metric_batch_size,
            flush_interval=options.flush_interval or agent.flush_interval,
            flush_jitter=_first(options.flush_jitter, agent.flush_jitter),
            retry_max_interval=options.retry_max_interval,
        )
        runner.count_drops_in(self.registry)
        self.outputs.append(runner)
        return runner

    def _aggregator(self, spec: PluginSpec) -> AggregatorRunner:
        plugin: Aggregator = build_plugin(spec, self.config, self.registry)
        options = spec.options
        return AggregatorRunner(plugin, Selector.of(options), options.period, options.grace,
                                options.drop_original, plugin.context.stats,
                                plugin.context.log, Router(self.pipeline).commit)

    def _add_input(self, spec: PluginSpec) -> None:
        plugin: Input = build_plugin(spec, self.config, self.registry)
        self.plugins.append(plugin)
        context = plugin.context
        streaming = isinstance(plugin, StreamingInput)
        accumulator = InputAccumulator(self.pipeline, spec.options, context.stats,
                                       buffered=not streaming)
        if streaming:
            self.streaming.append(StreamingRunner(plugin, accumulator, context.stats,
                                                  context.log, self.stop_event))
            return
        interval = spec.options.interval or plugin.default_interval or self.settings.interval
        jitter = _first(spec.options.collection_jitter, self.settings.collection_jitter)
        self.polled.append(PolledInput(plugin, accumulator, context.stats, context.log,
                                       interval, jitter, self.stop_event))

    # ------------------------------------------------------------------ modes
    def run(self, check_reload: Callable[[], Config | None] | None = None) -> None:
        """Run until ``stop_event`` is set, then flush and close everything.

        When ``reload_requested`` is set, ``check_reload`` reads the config again; a good
        one ends the run with it in ``next_config``, a bad one (None) changes nothing.
        """
        self._check_reload = check_reload
        for output in self.outputs:
            output.start()
        for runner in [*self.aggregators, *self.streaming, *self.polled]:
            runner.start()
        log.info("started: inputs %s;%s outputs %s; state in %s; SIGTERM or Ctrl-C stops "
                 "(after a last flush)", _names(self.config.inputs),
                 f" aggregators {_names(self.config.aggregators)};"
                 if self.aggregators else "", _names(self.config.outputs), self.state_dir)
        try:
            self._schedule_loop()
        finally:
            self.shutdown()

    def once(self, wait: float) -> bool:
        """Gather once (streaming inputs for ``wait`` seconds), deliver everything;
        True when nothing is left in any spool."""
        self.gather(wait)
        deadline = time.monotonic() + self.settings.shutdown_timeout
        delivered = all([output.flush(deadline) for output in self.outputs])
        self.close()
        return delivered

    def gather(self, wait: float) -> None:
        """Gather every polled input once and let streaming inputs push for ``wait``
        seconds; then the aggregators summarise what they have."""
        for runner in self.streaming:
            runner.start()
        for polled in self.polled:
            polled.gather_once()
        self.stop_event.wait(wait)
        self.stop_event.set()
        self._wait_for([runner.thread for runner in self.streaming],
                       time.monotonic() + self.settings.shutdown_timeout)
        for aggregator in self.aggregators:
            aggregator.close_windows(all_of_them=True)

    def shutdown(self) -> None:
        """Stop within ``shutdown_timeout`` in all: inputs first, then a last flush.

        Whatever is not delivered by then stays spooled for the next start; a gather or
        a write that hangs is left behind (its thread is a daemon), never waited for.
        """
        deadline = time.monotonic() + self.settings.shutdown_timeout
        self.stop_event.set()
        for polled in self.polled:
            polled.wake()
        self._wait_for([runner.thread for runner in [*self.polled, *self.streaming]],
                       deadline)
        for aggregator in self.aggregators:
            aggregator.stop()
        for output in self.outputs:
            output.begin_stop(deadline)
        self._wait_for([output.thread for output in self.outputs], deadline)
        self.close()
        waiting = sum(output.spool.backlog for output in self.outputs)
        log.info("stopped" + (f"; {waiting} metrics stay spooled for the next start"
                              if waiting else ""))

    def hurry(self) -> None:
        """Cut the shutdown's last flush short."""
        self.hurried.set()
        for output in self.outputs:
            output.hurry()

    def _wait_for(self, threads: list[threading.Thread], deadline: float) -> None:
        for thread in threads:
            while thread.is_alive() and not self.hurried.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning("%s did not stop within shutdown_timeout; left behind",
                                thread.name)
                    break
                thread.join(min(remaining, 0.05))

    def close(self) -> None:
        for plugin in [*self.plugins, *(output.output for output in self.outputs)]:
            try:
                plugin.close()
            except Exception as err:
                plugin.context.log.warning("close failed: %s", err)
        for output in self.outputs:
            output.spool.close()

    # --------------------------------------------------------------- schedule
    def _schedule_loop(self) -> None:
        """Drive gathers with ``schedule``; realign ticks to interval boundaries.

        ``schedule`` sets the next run to "now + interval" after each run, which drifts
        by the loop's latency every tick; with round_interval we put each job back on
        its boundary, as Telegraf does, and any job the wall clock jumped away from
        (a Pi setting its clock from NTP after boot) is put back near now.
        """
        scheduler = schedule.Scheduler()
        aligned = self.settings.round_interval
        jobs = {}
        heartbeat = Heartbeat(self.state_dir / HEARTBEAT_FILE)
        for polled in self.polled:
            job = scheduler.every(polled.interval).seconds.do(polled.tick)
            job.next_run = _next_run(polled.interval, aligned)
            jobs[job] = None
        while not self.stop_event.is_set():
            scheduler.run_pending()
            now = datetime.datetime.now()
            for job, seen in jobs.items():
                interval = job.interval
                ran = job.last_run != seen
                jobs[job] = job.last_run
                if (ran and aligned) or (job.next_run - now).total_seconds() > 2 * interval:
                    job.next_run = _next_run(interval, aligned)
            if self.reload_requested.is_set():
                self._reload()
            heartbeat.beat()
            idle = scheduler.idle_seconds
            self.stop_event.wait(1.0 if idle is None else min(max(idle, 0.0), 1.0))

    def _reload(self) -> None:
        self.reload_requested.clear()
        if self._check_reload is not None and (config := self._check_reload()) is not None:
            self.next_config = config
            self.stop_event.set()


class Heartbeat:
    """Touches a file while the schedule loop runs: its age says whether the agent is
    alive, for a health check that cannot ask the process (Docker's HEALTHCHECK)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._next = 0.0
        self._failing = False

    def beat(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + HEARTBEAT_EVERY_S
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()
        except OSError as err:
            if not self._failing:
                log.warning("cannot touch the heartbeat file %s (health checks will call "
                            "the collector unhealthy): %s", self.path, err)
            self._failing = True
            return
        self._failing = False


def _next_run(interval: float, aligned: bool) -> datetime.datetime:
    now = time.time()
    at = (math.floor(now / interval) + 1) * interval if aligned else now + interval
    return datetime.datetime.fromtimestamp(at)


def _names(specs: list[PluginSpec]) -> str:
    return ", ".join(spec.instance_id for spec in specs) or "none"


def _first(value, default):
    return default if value is None else value
