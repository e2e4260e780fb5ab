"""Runs one aggregator: windows aligned to UTC period boundaries, closed after a grace.

A metric belongs to the window holding its own timestamp (device time when the device
has a clock), not the time it arrived. A window is summarised once the host clock is
past its end plus ``grace``; a metric for a window already summarised is late: it is
counted, not aggregated, and its original still goes to the outputs.

Windows live in memory: a restart loses the summary of the window then open (with
``drop_original``, the metrics of it too). At shutdown the open windows are summarised
as they are, as Telegraf does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from collector.filters import Selector
from collector.metric import Metric
from collector.plugin import Aggregator, Refused, Window
from collector.stats import Counters

AGGREGATOR_COUNTERS = ("taken", "late", "windows", "emitted", "refused")


class AggregatorRunner:
    """One aggregator instance: its filters, its windows, and the thread that closes
    them. ``commit`` sends summaries on to the outputs."""

    def __init__(self, plugin: Aggregator, selector: Selector | None, period: float,
                 grace: float, drop_original: bool, counters: Counters,
                 log: logging.Logger, commit: Callable[[list[Metric]], None],
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.plugin = plugin
        self.selector = selector
        self.period_ns = round(period * 1e9)
        self.grace_ns = round(grace * 1e9)
        self.drop_original = drop_original
        self.counters = counters
        self.log = log
        self.commit = commit
        self.clock = clock
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"aggregator-{log.name}",
                                       daemon=True)
        self._windows: dict[int, Window] = {}
        self._closed_before = 0
        """Windows starting before this have been summarised."""
        self._lock = threading.Lock()

    def offer(self, metric: Metric) -> bool:
        """Take the metric if the filters select it; True when its original is to be
        dropped (``drop_original`` and taken)."""
        if self.selector is not None:
            chosen = self.selector.apply([metric])
            if not chosen:
                return False
            metric = chosen[0]
        start = metric.time_ns - metric.time_ns % self.period_ns
        with self._lock:
            if start < self._closed_before:
                self.counters.incr("late")
                return False
            window = self._windows.get(start)
            if window is None:
                window = self._windows[start] = self.plugin.window()
            window.add(metric)
        self.counters.incr("taken")
        return self.drop_original

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Summarise what is open and stop (the last summary goes out before the
        outputs' last flush)."""
        self.stop_event.set()
        self.thread.join()
        self.close_windows(all_of_them=True)

    def _run(self) -> None:
        while not self.stop_event.is_set():
            self.close_windows()
            self.stop_event.wait(self._seconds_to_next_close())

    def _seconds_to_next_close(self) -> float:
        with self._lock:
            first = min(self._windows, default=None)
        if first is None:
            return self.period_ns / 1e9
        due = first + self.period_ns + self.grace_ns
        return max(0.0, min((due - self.clock()) / 1e9, self.period_ns / 1e9))

    def close_windows(self, all_of_them: bool = False) -> None:
        """Summarise every window whose end plus grace has passed (or every one)."""
        now = self.clock()
        with self._lock:
            due = sorted(start for start in self._windows
                         if all_of_them or start + self.period_ns + self.grace_ns <= now)
            closing = [(start, self._windows.pop(start)) for start in due]
            if due:
                self._closed_before = max(self._closed_before, due[-1] + self.period_ns)
        for start, window in closing:
            summary = window.summary(start)
            self.counters.incr("windows")
            if not summary:
                continue
            try:
                self.commit(summary)
            except Refused:
                self.counters.incr("refused", len(summary))
                continue
            self.counters.incr("emitted", len(summary))
