"""Options of [[outputs.sql]]: which database, which table layout, how long rows stay."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

from collector import Duration, Secret, ZoneError
from collector import time_zone as zone
from collector.binding import BindError

Driver = Literal["mysql", "sqlite"]
Layout = Literal["generic", "se521", "raven"]

DEFAULT_DATABASE: dict[str, str] = {"generic": "collector", "se521": "SE521", "raven": "raven"}
SE521_CHANNELS = ("T1", "T2", "T3", "T4")
HOUR = 3600.0
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,63}")
RUN_NAME_MAX = 64
TABLE_CHARS = 50


def check_identifier(key: str, name: str) -> None:
    """Names we put into DDL: plain identifiers, so no quoting rule of either database
    can surprise a reader of the legacy tables."""
    if not _IDENTIFIER.fullmatch(name):
        raise BindError(key, f"{name!r} is not a plain SQL name (letters, digits, _ and $, "
                             "at most 64, not starting with a digit)")


@dataclass
class SE521Options:
    """The legacy SE521 logger's table: one row per minute, one column per channel."""

    table: str = "temperatures"
    time_column: str = "DateTm"
    columns: dict[str, str] = field(
        default_factory=lambda: {channel: f"tc{i}" for i, channel in enumerate(SE521_CHANNELS, 1)})
    """Channel (the ``channel`` tag) to column."""
    measurement: str = "se521"
    field: str = "celsius"
    """The per-minute aggregate fields read are ``<field>_mean`` (and ``<field>_count``
    when present, to weigh the two passes of a repeated autumn hour)."""
    device: str = ""
    """The ``device`` tag to take; empty: the first device seen (the table has no room
    for a second one)."""

    def validate(self) -> None:
        check_identifier("table", self.table)
        if len(self.table) > TABLE_CHARS:
            raise BindError("table", f"at most {TABLE_CHARS} characters (the table of "
                                     "repeated autumn minutes adds \"_repeated_hour\")")
        check_identifier("time_column", self.time_column)
        if not self.columns:
            raise BindError("columns", "needs at least one channel")
        for channel, column in self.columns.items():
            if channel not in SE521_CHANNELS:
                raise BindError(f"columns.{channel}", f"unknown channel (known: "
                                                      f"{', '.join(SE521_CHANNELS)})")
            check_identifier(f"columns.{channel}", column)
        names = [name.lower() for name in [self.time_column, *self.columns.values()]]
        if len(set(names)) != len(names):
            raise BindError("columns", "column names must differ from each other and from "
                                       "time_column")


@dataclass
class RavenOptions:
    """The legacy python-raven tables: instantaneous_demand and run_info."""

    run: str = "collector"
    """The run name written to both tables."""
    measurement: str = "raven_demand"

    def validate(self) -> None:
        if not 0 < len(self.run) <= RUN_NAME_MAX:
            raise BindError("run", f"must be 1 to {RUN_NAME_MAX} characters")


@dataclass
class SQLConfig:
    driver: Driver = field(metadata={"example": "sqlite"})
    layout: Layout = "generic"
    host: str = "127.0.0.1"
    port: int = 3306
    socket: str = ""
    """mysql: a Unix socket path, used instead of host and port."""
    username: str = ""
    password: Secret = field(default_factory=Secret)
    database: str = ""
    """mysql: default "collector", "SE521" or "raven" by layout; created when absent."""
    timeout: Duration = Duration(10)
    """mysql: longest wait to connect and for any one answer."""
    path: str = "collector.db"
    """sqlite: the database file; relative paths are in the agent's state_dir."""
    timezone: str = ""
    """se521 layout: "local" (the default), "UTC" or an IANA zone. The other layouts
    always write UTC."""
    retention: Duration = Duration(math.inf)
    """Rows older than this are deleted; "INF" keeps them."""
    purge_interval: Duration = Duration(HOUR)
    purge_batch_size: int = 10_000
    se521: SE521Options = field(default_factory=SE521Options)
    raven: RavenOptions = field(default_factory=RavenOptions)

    @property
    def database_name(self) -> str:
        return self.database or DEFAULT_DATABASE[self.layout]

    @property
    def zone_name(self) -> str:
        return self.timezone or ("local" if self.layout == "se521" else "UTC")

    def validate(self) -> None:
        if self.driver == "mysql":
            if not self.username:
                raise BindError("username", 'required with driver = "mysql"')
            if not 0 < self.port < 65536:
                raise BindError("port", "must be between 1 and 65535")
            check_identifier("database", self.database_name)
            if not 0 < self.timeout < math.inf:
                raise BindError("timeout", "must be positive and finite")
        elif not self.path:
            raise BindError("path", 'required with driver = "sqlite"')
        if self.layout != "se521" and self.zone_name != "UTC":
            raise BindError("timezone", 'only layout = "se521" writes local time; the '
                                        f'{self.layout} layout always writes UTC')
        try:
            zone(self.zone_name)
        except ZoneError as err:
            raise BindError("timezone", str(err)) from None
        if self.retention < HOUR:
            raise BindError("retention", 'must be at least 1h (or "INF")')
        if not 1 <= self.purge_interval < math.inf:
            raise BindError("purge_interval", "must be at least 1s and finite")
        if self.purge_batch_size < 1:
            raise BindError("purge_batch_size", "must be at least 1")
