"""Naive local wall-clock times, as legacy tools stored them, to UTC and back.

The collector runs with TZ=UTC (so daylight saving never touches its schedule), so the
host's own zone is read from the system, never from the process. A local time that
occurs twice (the autumn hour) or never (the spring gap) is resolved deliberately and
counted, never guessed silently.
"""

from __future__ import annotations

import datetime
import os
import zoneinfo
from collections import Counter
from pathlib import Path

ORIGINAL_TZ = os.environ.get("TZ", "")
"""The TZ the process was started with, before the collector pins its own to UTC."""
UTC = datetime.UTC
NAIVE_EPOCH = datetime.datetime(1970, 1, 1)
MICROSECOND = datetime.timedelta(microseconds=1)


def local_zone() -> zoneinfo.ZoneInfo:
    """The host's zone: $TZ as the process got it, else /etc/timezone, else what
    /etc/localtime links to; UTC when none names a zone."""
    for name in (ORIGINAL_TZ.removeprefix(":"), _read("/etc/timezone"), _linked_zone()):
        if name:
            try:
                return zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                continue
    return zoneinfo.ZoneInfo("UTC")


def zone(name: str) -> zoneinfo.ZoneInfo:
    """``"local"`` (the host's zone), ``"UTC"`` or an IANA name; ValueError if unknown."""
    if name == "local":
        return local_zone()
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a time zone (\"local\", \"UTC\" or an IANA name "
                         "such as \"Europe/Berlin\")") from None


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _linked_zone() -> str:
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        return ""
    _, found, name = target.partition("zoneinfo/")
    return name if found else ""


class LocalTimes:
    """Converts a series of naive local times, read in the order they were written.

    In the repeated autumn hour, a clock that jumps back means the second pass: from
    there on the later (standard time) reading is taken until the hour is over. Where
    the order cannot tell (the first pass), the earlier (daylight time) reading is
    taken, which is also what a table keyed on its local time kept (the second pass's
    INSERT IGNORE lost). A time in the spring gap never existed on a local clock; it is
    read as if the clock had not yet been put forward. ``counted`` says how often each
    case came up.
    """

    def __init__(self, tz: datetime.tzinfo) -> None:
        self.tz = tz
        self.counted: Counter[str] = Counter()
        self._previous: datetime.datetime | None = None
        self._second_pass = False
        self._minutes: dict[tuple[int, int, int, int, int], tuple[str, int, int]] = {}
        """(kind, first offset, second offset) per local minute: zones change their offset
        on whole minutes, and legacy rows come many to a minute."""

    def to_utc_ns(self, naive: datetime.datetime) -> int:
        minute = (naive.year, naive.month, naive.day, naive.hour, naive.minute)
        known = self._minutes.get(minute)
        if known is None:
            known = self._minutes[minute] = self._classify(naive)
        kind, first, second = known
        offset = first
        if kind == "plain":
            self._second_pass = False
        elif kind == "nonexistent":
            self._second_pass = False  # in the gap: the offset from before the change
            self.counted["nonexistent"] += 1
        else:
            if self._previous is not None and naive < self._previous:
                self._second_pass = True
            if self._second_pass:
                offset = second
            self.counted["ambiguous_second" if self._second_pass else "ambiguous_first"] += 1
        self._previous = naive
        return (naive - NAIVE_EPOCH) // MICROSECOND * 1000 - offset

    def _classify(self, naive: datetime.datetime) -> tuple[str, int, int]:
        first = naive.replace(tzinfo=self.tz, fold=0)
        second = naive.replace(tzinfo=self.tz, fold=1)
        offsets = [round(moment.utcoffset().total_seconds()) * 10**9  # type: ignore[union-attr]
                   for moment in (first, second)]
        if offsets[0] == offsets[1]:
            kind = "plain"
        elif first.astimezone(UTC).astimezone(self.tz).replace(tzinfo=None) != naive:
            kind = "nonexistent"
        else:
            kind = "ambiguous"
        return kind, offsets[0], offsets[1]
