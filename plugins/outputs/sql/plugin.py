"""[[outputs.sql]]: a MySQL/MariaDB or SQLite mirror of what InfluxDB receives, in a
generic table-per-measurement layout or in the tables legacy tools wrote.

Each batch is one transaction. A database that is down, refuses the credentials, is
locked or holds a table that does not fit raises RetryableError: the batch waits in
the spool and nothing is lost. A value the database cannot store rejects its own
metric, never the batch.
"""

from __future__ import annotations

import math
from pathlib import Path

from collector import Output, RetryableError, WriteResult, decode_line_protocol
from plugins.outputs.sql.database import Database, Unavailable
from plugins.outputs.sql.generic import GenericLayout
from plugins.outputs.sql.layout import Layout
from plugins.outputs.sql.mysql import MySQL
from plugins.outputs.sql.raven import RavenLayout
from plugins.outputs.sql.retention import Purger
from plugins.outputs.sql.se521 import SE521Layout
from plugins.outputs.sql.settings import SQLConfig
from plugins.outputs.sql.sqlite import SQLite

LAYOUTS: dict[str, type[Layout]] = {"generic": GenericLayout, "se521": SE521Layout,
                                    "raven": RavenLayout}
COUNTERS = ("skipped", "purged", "columns_added", "already_stored", "repeated_hour_values")


class SQLOutput(Output):
    Config = SQLConfig

    def __init__(self, config: SQLConfig, context) -> None:
        super().__init__(config, context)
        self.layout = LAYOUTS[config.layout](config, context)
        self._db: Database | None = None
        self._purger: Purger | None = None
        for name in COUNTERS:
            context.stats.incr(name, 0)

    def start(self) -> None:
        """Only the purge starts here: the first write connects, so that a database
        that is down is reported (and retried) by the agent like any failed write."""
        config = self.config
        where = (str(self.context.state_dir / Path(config.path)) if config.driver == "sqlite"
                 else f"{config.socket or f'{config.host}:{config.port}'}, database "
                      f"{config.database_name}")
        self.context.log.info("writing the %s layout to %s %s", config.layout, config.driver,
                              where)
        if not math.isinf(self.config.retention):
            self._purger = Purger(self._purge_connection, self.layout,
                                  self.config.retention, self.config.purge_interval,
                                  self.config.purge_batch_size, self.context)
            self._purger.start()

    def write(self, payload: bytes, count: int) -> WriteResult:
        metrics = decode_line_protocol(payload)
        try:
            outcome = self.layout.write(self._database(), metrics)
        except Unavailable as err:
            self._disconnect()
            raise RetryableError(str(err)) from None
        except BaseException:
            self._disconnect()
            raise
        self.context.stats.incr("skipped", outcome.skipped)
        return WriteResult(written=outcome.written + outcome.skipped, rejected=outcome.rejected)

    def provision(self, dry_run: bool, prune: str = "none") -> list[str] | None:
        """Create (or, dry, list) the database and the layout's tables; checks tables
        that exist. Nothing is ever dropped, whatever ``prune`` says."""
        try:
            db = self._open(read_only=dry_run)
            try:
                return db.use_database(create=not dry_run) + self.layout.prepare(db, dry_run)
            finally:
                db.close()
        except Unavailable as err:
            raise RuntimeError(str(err)) from None

    def close(self) -> None:
        if self._purger is not None:
            self._purger.stop()
        self._disconnect()

    def _database(self) -> Database:
        if self._db is None:
            db = self._open()
            try:
                db.use_database(create=True)
                self.layout.prepare(db)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def _purge_connection(self) -> Database:
        """The purge's own connection (connections are not shared between threads); it
        never creates the database."""
        db = self._open()
        try:
            db.use_database(create=False)
        except BaseException:
            db.close()
            raise
        return db

    def _open(self, read_only: bool = False) -> Database:
        config = self.config
        if config.driver == "sqlite":
            return SQLite(self.context.state_dir / Path(config.path), config.timeout,
                          read_only=read_only)
        return MySQL(config)

    def _disconnect(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
