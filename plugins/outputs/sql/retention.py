"""The mirror's own retention: rows older than ``retention`` are deleted on a schedule,
as an InfluxDB retention policy drops old shards, so no manual purge script is needed
and a small disk does not fill up over the years.

Deletes go in batches of ``purge_batch_size`` rows, each its own short transaction, so
a purge of a year's backlog never holds locks (or SQLite's write lock) for long and
the writer interleaves with it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from collector import PluginContext
from plugins.outputs.sql.database import NS, Database, Unavailable
from plugins.outputs.sql.layout import Layout, PurgeTarget

STOP_TIMEOUT = 5.0


class Purger:
    """A thread that purges now and then every ``interval`` seconds until stopped."""

    def __init__(self, connect: Callable[[], Database], layout: Layout, retention: float,
                 interval: float, batch_size: int, context: PluginContext) -> None:
        self.connect = connect
        self.layout = layout
        self.retention_ns = int(retention * NS)
        self.interval = interval
        self.batch_size = batch_size
        self.log = context.log
        self.stats = context.stats
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"purge-{context.alias}",
                                        daemon=True)
        self._failing = ""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ends the thread between two batches (or while it waits)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(STOP_TIMEOUT)

    def _run(self) -> None:
        delay = 0.0
        while not self._stop.wait(delay):
            self.purge()
            delay = self.interval

    def purge(self) -> int:
        """One pass over every table of the layout; the rows deleted."""
        cutoff_ns = time.time_ns() - self.retention_ns
        total = 0
        try:
            db = self.connect()
            try:
                for target in self.layout.purge_targets(db, cutoff_ns):
                    total += self._purge_table(db, target)
            finally:
                db.close()
        except Exception as err:
            reason = str(err) if isinstance(err, Unavailable) else f"{type(err).__name__}: {err}"
            if reason != self._failing:
                self.log.warning("retention purge failed, trying again in %.0f s: %s",
                                 self.interval, reason)
            self._failing = reason
            return total
        if self._failing:
            self.log.info("retention purge works again")
            self._failing = ""
        if total:
            self.log.info("retention: purged %d rows older than %s", total,
                          time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(cutoff_ns // NS)))
        return total

    def _purge_table(self, db: Database, target: PurgeTarget) -> int:
        deleted = 0
        while not self._stop.is_set():
            count = db.delete_older(target.table, target.column, target.cutoff, self.batch_size)
            deleted += count
            self.stats.incr("purged", count)
            if count < self.batch_size:
                break
        return deleted
