"""What every table layout implements, and how it reports what became of a batch."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass

from collector import Metric, PluginContext
from plugins.outputs.sql.database import Database
from plugins.outputs.sql.settings import SQLConfig

NOTICES_KEPT = 1000


@dataclass
class Outcome:
    """Metrics of one batch: stored, refused by the database or our checks, or not
    taken by the layout at all (e.g. raw readings where per-minute means are wanted)."""

    written: int = 0
    rejected: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class PurgeTarget:
    table: str
    column: str
    cutoff: str
    """The column's own text for the cut-off instant (UTC, or the layout's zone)."""


class Notices:
    """Warns once per kind of problem: a layout that skips raw readings every second
    says so once, not 86,400 times a day; the counters keep the totals."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self._seen: set[object] = set()

    def once(self, key: object, message: str, *args: object,
             level: int = logging.WARNING) -> None:
        if key in self._seen:
            return
        if len(self._seen) >= NOTICES_KEPT:
            self._seen.clear()
        self._seen.add(key)
        self.log.log(level, message, *args)


class Layout(ABC):
    """Maps metrics onto tables. ``prepare`` runs on every new connection, ``write``
    once per batch; a layout keeps no state that a reconnect would make stale."""

    def __init__(self, config: SQLConfig, context: PluginContext) -> None:
        self.config = config
        self.context = context
        self.notices = Notices(context.log)

    @abstractmethod
    def prepare(self, db: Database, dry_run: bool = False) -> list[str]:
        """Create or check the tables; the statements run (or, dry, that would run)."""

    @abstractmethod
    def write(self, db: Database, metrics: list[Metric]) -> Outcome:
        """Store one batch in one transaction; raises Unavailable to have it retried."""

    @abstractmethod
    def purge_targets(self, db: Database, cutoff_ns: int) -> list[PurgeTarget]:
        """The tables and time columns the retention purge deletes from."""
