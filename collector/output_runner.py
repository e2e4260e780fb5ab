"""Moves one output's spool to its server: batching, flush timing, retries, backoff."""

from __future__ import annotations

import logging
import random
import threading
import time

from collector.episodes import ErrorReporter
from collector.plugin import Output, RetryableError, WriteResult
from collector.spool import STATE_CODES, Batch, Spool
from collector.stats import Counters, StatsRegistry

FIRST_RETRY = 0.5
LONGEST_RETRY_AFTER = 600.0
DROP_REASONS = ("overflow", "corrupt", "server")
"""Why acknowledged metrics were lost: the spool was full (drop_oldest), a record on
disk was damaged, or the server discarded them (e.g. beyond its retention)."""


class OutputRunner:
    """Owns a thread that drains the spool: a batch goes out when ``batch_size`` metrics
    wait or the flush interval passes. A failed batch stays in the spool and is retried
    with exponential backoff and jitter, or after the server's Retry-After.

    Nothing stops the thread but ``stop``: an error from the output or the spool (a
    full or failing disk included) is logged once per episode and retried.
    """

    def __init__(self, output: Output, spool: Spool, counters: Counters, log: logging.Logger,
                 batch_size: int, flush_interval: float, flush_jitter: float,
                 retry_max_interval: float) -> None:
        self.output = output
        self.spool = spool
        self.counters = counters
        self.log = log
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.flush_jitter = flush_jitter
        self.retry_max_interval = retry_max_interval
        self.errors = ErrorReporter(log)
        self._stopping = threading.Event()
        self._hurry = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"output-{log.name}", daemon=True)
        self._deadline: float | None = None
        self._failing = False
        self._stalls = 0
        self._started = False
        counters.gauge("spool_bytes", lambda: spool.bytes)
        counters.gauge("spool_disk_bytes", lambda: spool.disk_bytes)
        counters.gauge("spool_metrics", lambda: spool.backlog)
        counters.gauge("spool_age_ns", spool.oldest_age_ns)
        counters.gauge("spool_state", lambda: spool.state)
        counters.gauge("spool_state_code", lambda: STATE_CODES[spool.state])
        counters.gauge("refused", lambda: sum(spool.refused.values()))
        counters.gauge("dropped", lambda: sum(spool.dropped.values())
                       + counters.get("server_dropped"))

    def count_drops_in(self, registry: StatsRegistry) -> None:
        """Report drops by reason: ``internal_dropped,output=…,reason=… metrics=N``."""
        for reason in DROP_REASONS:
            by_reason = registry.counters("dropped", (), **self.counters.tags, reason=reason)
            if reason == "server":
                by_reason.gauge("metrics", lambda: self.counters.get("server_dropped"))
            else:
                by_reason.gauge("metrics", lambda reason=reason: self.spool.dropped[reason])

    # ---------------------------------------------------------------- control
    def start(self) -> None:
        self.thread.start()

    def begin_stop(self, deadline: float) -> None:
        """Deliver what is spooled until ``deadline`` (monotonic), then stop."""
        self._deadline = deadline
        self._stopping.set()
        with self.spool.changed:
            self.spool.changed.notify_all()

    def hurry(self) -> None:
        """Cut the last flush short: no new write and no more waiting."""
        self._hurry.set()

    def flush(self, deadline: float) -> bool:
        """Deliver everything spooled before ``deadline``; True when nothing is left."""
        self._deadline = deadline
        self._start_output()
        return self._drain_guarded() and self.spool.backlog == 0

    # ---------------------------------------------------------------- thread
    def _start_output(self) -> None:
        """The output's own start-up (e.g. provisioning), once, whichever mode runs it."""
        if self._started:
            return
        self._started = True
        try:
            self.output.start()
        except Exception as err:
            self.log.warning("%s; writing anyway", err)

    def _run(self) -> None:
        self._start_output()
        next_flush = self._next_flush()
        while not self._stopping.is_set():
            with self.spool.changed:
                self.spool.changed.wait_for(
                    lambda due=next_flush: self._stopping.is_set()
                    or self.spool.pending >= self.batch_size or time.monotonic() >= due,
                    timeout=max(0.0, next_flush - time.monotonic()),
                )
            if self._stopping.is_set():
                break
            if not self._drain_guarded():
                self._stopping.wait(self._backoff(self._stalls - 1, None))
            if time.monotonic() >= next_flush:
                next_flush = self._next_flush()
        self._drain_guarded()

    def _next_flush(self) -> float:
        return time.monotonic() + self.flush_interval + random.uniform(0, self.flush_jitter)

    def _drain_guarded(self) -> bool:
        """``_drain``; False when an error (the spool's disk, a bug) stopped it, which is
        logged once per episode."""
        try:
            self._drain()
        except Exception as err:
            self.counters.incr("errors")
            self._stalls += 1
            self.errors.failed(err, "delivery stalled: ")
            return False
        self._stalls = 0
        self.errors.succeeded("delivering again")
        return True

    def _drain(self) -> None:
        while not self._out_of_time() and (batch := self.spool.read_batch(self.batch_size)):
            if not self._deliver(batch):
                return

    def _out_of_time(self) -> bool:
        return self._hurry.is_set() or (
            self._deadline is not None and time.monotonic() >= self._deadline)

    def _deliver(self, batch: Batch) -> bool:
        attempt = 0
        while True:
            started = time.perf_counter_ns()
            try:
                result = self.output.write(batch.payload, batch.count)
            except RetryableError as err:
                wait = self._backoff(attempt, err.retry_after)
                self._note_failure(str(err), wait)
            except Exception as err:
                wait = self._backoff(attempt, None)
                self._note_failure(f"{type(err).__name__}: {err}", wait)
            else:
                self._note_success(result, time.perf_counter_ns() - started)
                self.spool.ack(batch)
                return True
            attempt += 1
            self.counters.incr("retried")
            if not self._wait(wait):
                return False

    def _wait(self, seconds: float) -> bool:
        """Sleep before a retry; False when shutdown or the flush deadline forbids it."""
        if self._deadline is None:
            return not self._stopping.wait(seconds)
        if time.monotonic() + seconds > self._deadline:
            return False
        return not self._hurry.wait(seconds)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), LONGEST_RETRY_AFTER)
        ceiling = min(self.retry_max_interval, FIRST_RETRY * 2**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _note_failure(self, message: str, wait: float) -> None:
        self.counters.incr("errors")
        log = self.log.debug if self._failing else self.log.warning
        log("write failed, retrying in %.1fs: %s", wait, message)
        self._failing = True

    def _note_success(self, result: WriteResult, latency_ns: int) -> None:
        if self._failing:
            self.log.info("writing again after errors")
            self._failing = False
        self.counters.incr("written", result.written)
        self.counters.incr("server_dropped", result.dropped)
        self.counters.incr("rejected", result.rejected)
        self.counters.set("write_latency_ns", latency_ns)
        self.log.debug("wrote %d metrics in %.1f ms; %d waiting in the spool", result.written,
                       latency_ns / 1e6, self.spool.backlog)
