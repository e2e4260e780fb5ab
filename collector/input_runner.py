"""Runs inputs: polled gathers that never overlap, streaming inputs that get restarted."""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import Executor

from collector.pipeline import InputAccumulator
from collector.plugin import Input, StreamingInput
from collector.stats import Counters

RESTART_FIRST = 1.0
RESTART_LONGEST = 60.0


class ErrorReporter:
    """Logs an error when it first appears or changes, not on every interval."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self._last: str | None = None

    def failed(self, err: BaseException) -> None:
        message = f"{type(err).__name__}: {err}"
        if message != self._last:
            self.log.error("%s", message)
        self._last = message

    def succeeded(self) -> None:
        if self._last is not None:
            self.log.warning("recovered")
            self._last = None


class PolledInput:
    """Schedules ``gather`` on a pool; a tick that finds the last gather running is skipped."""

    def __init__(self, plugin: Input, accumulator: InputAccumulator, counters: Counters,
                 log: logging.Logger, interval: float, jitter: float, pool: Executor,
                 stop: threading.Event) -> None:
        self.plugin = plugin
        self.accumulator = accumulator
        self.counters = counters
        self.interval = interval
        self.jitter = jitter
        self.pool = pool
        self.stop = stop
        self.errors = ErrorReporter(log)
        self._busy = threading.Lock()

    def tick(self) -> None:
        if not self._busy.acquire(blocking=False):
            self.counters.incr("skipped")
            return
        self.pool.submit(self._gather_releasing)

    def _gather_releasing(self) -> None:
        try:
            if self.jitter and self.stop.wait(random.uniform(0, self.jitter)):
                return
            self.gather_once()
        finally:
            self._busy.release()

    def gather_once(self) -> None:
        started = time.perf_counter_ns()
        try:
            self.plugin.gather(self.accumulator)
        except Exception as err:
            self.counters.incr("errors")
            self.errors.failed(err)
        else:
            self.errors.succeeded()
        finally:
            self.accumulator.flush()
            self.counters.set("gather_time_ns", time.perf_counter_ns() - started)


class StreamingRunner:
    """Runs a streaming input in its own thread; restarts it with backoff if it fails."""

    def __init__(self, plugin: StreamingInput, accumulator: InputAccumulator,
                 counters: Counters, log: logging.Logger, stop: threading.Event) -> None:
        self.plugin = plugin
        self.accumulator = accumulator
        self.counters = counters
        self.log = log
        self.stop = stop
        self.errors = ErrorReporter(log)
        self.thread = threading.Thread(target=self._supervise, name=f"input-{log.name}",
                                       daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _supervise(self) -> None:
        delay = RESTART_FIRST
        while not self.stop.is_set():
            try:
                self.plugin.run(self.accumulator, self.stop)
            except Exception as err:
                self.counters.incr("errors")
                self.errors.failed(err)
            if self.stop.wait(delay):
                break
            delay = min(delay * 2, RESTART_LONGEST)
