"""Options of [[outputs.influxdb]], including retention policies and downsampling."""

from __future__ import annotations

import math
import re
import zoneinfo
from dataclasses import dataclass, field
from typing import Literal

from collector.binding import BindError
from collector.units import Duration, Secret

Aggregate = Literal["mean", "median", "min", "max", "sum", "count", "first", "last",
                    "spread", "stddev", "mode"]
HOUR = 3600.0


@dataclass
class RetentionPolicy:
    name: str = field(metadata={"example": "raw"})
    duration: Duration = field(metadata={"example": Duration(30 * 86400)})
    """How long data is kept; "INF" keeps it forever. At least 1h."""
    shard_duration: Duration | None = None
    replication: int = 1
    default: bool = False

    def validate(self) -> None:
        if not self.name:
            raise BindError("name", "must not be empty")
        if self.duration < HOUR:
            raise BindError("duration", "must be at least 1h (or \"INF\")")
        if self.shard_duration is not None and not HOUR <= self.shard_duration < math.inf:
            raise BindError("shard_duration", "must be at least 1h and finite")


@dataclass
class Downsample:
    """A continuous query: aggregate ``source`` into ``target`` every ``interval``."""

    source: str = field(metadata={"example": "raw"})
    target: str = field(metadata={"example": "long"})
    interval: Duration = field(metadata={"example": Duration(300)})
    aggregate: Aggregate = "mean"
    """Applied to every field: mean(*) writes mean_<field>."""
    measurements: list[str] = field(default_factory=list)
    """Measurements to downsample; empty means all."""
    select: str = ""
    """Instead of `aggregate`, the InfluxQL SELECT list, e.g. "spread(delivered_kwh) AS
    delivered_kwh" (energy in an interval from a cumulative counter)."""
    into: str = ""
    """The measurement to write; default: the source measurement's own name."""
    resample_every: Duration | None = None
    """How often the CQ runs; default: every `interval`."""
    resample_for: Duration | None = None
    """How far back each run recomputes; default: the last interval only. Longer folds
    late pushes and a spool's replay after an outage into the roll-up."""
    time_zone: str = ""
    """Whole days and hours of this IANA zone (tz() in the GROUP BY), e.g. for daily kWh
    that start at local midnight; default UTC."""

    def validate(self) -> None:
        if not 1 <= self.interval < math.inf:
            raise BindError("interval", "must be at least 1s")
        if self.source == self.target:
            raise BindError("target", f"is the source {self.source!r}: a continuous query "
                            "into its own source would read what it writes")
        if self.resample_for is not None and not (
                self.interval <= self.resample_for < math.inf):
            raise BindError("resample_for", "must be at least the interval, and finite")
        if self.resample_every is not None and not 1 <= self.resample_every < math.inf:
            raise BindError("resample_every", "must be at least 1s")
        if self.time_zone:
            try:
                zoneinfo.ZoneInfo(self.time_zone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise BindError("time_zone", f"{self.time_zone!r} is not an IANA time zone "
                                "(e.g. \"Europe/Berlin\")") from None


@dataclass
class InfluxDBConfig:
    urls: list[str] = field(default_factory=lambda: ["http://127.0.0.1:8086"])
    api: Literal["v1", "v2"] = "v1"
    database: str = "collector"
    retention_policy: str = ""
    """RP to write into; empty: the database's default RP."""
    username: str = ""
    password: Secret = field(default_factory=Secret)
    token: Secret = field(default_factory=Secret)
    org: str = ""
    bucket: str = ""
    timeout: Duration = Duration(10)
    content_encoding: Literal["gzip", "identity"] = "gzip"
    provision: bool = True
    """Create/alter the database, retention policies and CQs when the output starts."""
    retention_policies: list[RetentionPolicy] = field(default_factory=list)
    downsampling: list[Downsample] = field(default_factory=list)

    def validate(self) -> None:
        if not self.urls:
            raise BindError("urls", "needs at least one URL")
        for index, url in enumerate(self.urls):
            if not re.match(r"https?://[^/\s]+", url):
                raise BindError(f"urls[{index}]", "must start with http:// or https://")
            if re.match(r"https?://[^/@]*@", url):
                raise BindError(f"urls[{index}]", "put credentials in username/password or "
                                "token, not in the URL (they would end up in logs)")
        if self.api == "v2":
            if not self.bucket:
                raise BindError("bucket", "required when api = \"v2\"")
            if self.retention_policies or self.downsampling:
                raise BindError("retention_policies", "retention as code needs api = \"v1\"")
        elif not self.database:
            raise BindError("database", "must not be empty")
        names = [rp.name for rp in self.retention_policies]
        if len(set(names)) != len(names):
            raise BindError("retention_policies", "names must be unique")
        if sum(rp.default for rp in self.retention_policies) > 1:
            raise BindError("retention_policies", "only one can be the default")
        for index, rule in enumerate(self.downsampling):
            for key in ("source", "target"):
                if names and getattr(rule, key) not in names:
                    raise BindError(f"downsampling[{index}].{key}",
                                    f"{getattr(rule, key)!r} is not in retention_policies")
