"""Moves one output's spool to its server: batching, flush timing, retries, backoff."""

from __future__ import annotations

import logging
import random
import threading
import time

from collector.plugin import Output, RetryableError
from collector.spool import Batch, Spool
from collector.stats import Counters

FIRST_RETRY = 0.5
LONGEST_RETRY_AFTER = 600.0


class OutputRunner:
    """Owns a thread that drains the spool: a batch goes out when ``batch_size`` metrics
    wait or the flush interval passes. A failed batch stays in the spool and is retried
    with exponential backoff and jitter, or after the server's Retry-After.
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
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"output-{log.name}", daemon=True)
        self._deadline: float | None = None
        self._failing = False
        self._started = False
        counters.gauge("spool_bytes", lambda: spool.bytes)
        counters.gauge("dropped", lambda: spool.dropped + counters.get("server_dropped"))

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Last flush within ``timeout`` seconds; what is not delivered stays spooled."""
        self._deadline = time.monotonic() + timeout
        self._stopping.set()
        with self.spool.changed:
            self.spool.changed.notify_all()
        self._thread.join(timeout + 5)

    def flush(self, deadline: float) -> bool:
        """Deliver everything spooled before ``deadline``; True when nothing is left."""
        self._deadline = deadline
        self._start_output()
        return self._drain()

    def _start_output(self) -> None:
        """The output's own start-up (e.g. provisioning), once, whichever mode runs it."""
        if self._started:
            return
        self._started = True
        try:
            self.output.start()
        except Exception as err:
            self.log.error("start-up failed, writing anyway: %s", err)

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
            self._drain()
            if time.monotonic() >= next_flush:
                next_flush = self._next_flush()
        self._drain()

    def _next_flush(self) -> float:
        return time.monotonic() + self.flush_interval + random.uniform(0, self.flush_jitter)

    def _drain(self) -> bool:
        while (batch := self.spool.read_batch(self.batch_size)) is not None:
            if not self._deliver(batch):
                return False
        return True

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
        if self._deadline is not None and time.monotonic() + seconds > self._deadline:
            return False
        if self._deadline is None:
            return not self._stopping.wait(seconds)
        time.sleep(seconds)
        return True

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

    def _note_success(self, result, latency_ns: int) -> None:
        if self._failing:
            self.log.warning("writing again after errors")
            self._failing = False
        self.counters.incr("written", result.written)
        self.counters.incr("server_dropped", result.dropped)
        self.counters.incr("rejected", result.rejected)
        self.counters.set("write_latency_ns", latency_ns)
