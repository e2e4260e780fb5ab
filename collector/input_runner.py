"""Runs inputs: polled gathers that never overlap, streaming inputs that get restarted."""

from __future__ import annotations

import logging
import random
import threading
import time

from collector.episodes import ErrorReporter
from collector.pipeline import InputAccumulator
from collector.plugin import Input, StreamingInput
from collector.stats import Counters

RESTART_FIRST = 1.0
RESTART_LONGEST = 60.0


class PolledInput:
    """Gathers on its own worker thread when ticked; a tick that finds the last gather
    still running is skipped and counted.

    The worker is a daemon thread, not a pool's: a gather that hangs in a driver must
    not keep the process from stopping within ``shutdown_timeout``.
    """

    def __init__(self, plugin: Input, accumulator: InputAccumulator, counters: Counters,
                 log: logging.Logger, interval: float, jitter: float,
                 stop: threading.Event) -> None:
        self.plugin = plugin
        self.accumulator = accumulator
        self.counters = counters
        self.interval = interval
        self.jitter = jitter
        self.stop = stop
        self.errors = ErrorReporter(log)
        self.thread = threading.Thread(target=self._work, name=f"gather-{log.name}",
                                       daemon=True)
        self._busy = threading.Lock()
        self._due = threading.Event()

    def start(self) -> None:
        self.thread.start()

    def tick(self) -> None:
        if not self._busy.acquire(blocking=False):
            self.counters.incr("skipped")
            return
        self._due.set()

    def wake(self) -> None:
        """Let the worker see ``stop`` (it waits for the next tick otherwise)."""
        self._due.set()

    def _work(self) -> None:
        while True:
            self._due.wait()
            self._due.clear()
            if self.stop.is_set():
                return
            try:
                if not (self.jitter and self.stop.wait(random.uniform(0, self.jitter))):
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
