"""Naive local wall-clock times, as legacy tools stored them, to UTC and back.

The collector pins ``TZ=UTC`` for itself (so schedules and logs never see a daylight
saving jump), so ``time.localtime`` says nothing about the host. What "local" meant for
a legacy tool is what the host's clock shows: the ``TZ`` the process was started with
(containers usually set it), else ``/etc/localtime`` (what a systemd service and
``timedatectl`` use), else ``/etc/timezone`` (Debian's name for it); when none says,
that is an error, never a guess. A local time that occurs twice (the autumn hour) or
never (the spring gap) is resolved deliberately and counted.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Mapping
from datetime import tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = datetime.UTC
NAIVE_EPOCH = datetime.datetime(1970, 1, 1)
MICROSECOND = datetime.timedelta(microseconds=1)
START_ENVIRONMENT = Path("/proc/self/environ")
LOCALTIME = Path("/etc/localtime")
TIMEZONE_FILE = Path("/etc/timezone")
UTC_ZONE = ZoneInfo("UTC")
FIXED_UTC = frozenset(("UTC", "Etc/UTC", "Etc/UCT", "UCT", "Zulu", "Etc/Zulu", "GMT",
                       "Etc/GMT", "Universal", "Etc/Universal"))


class ZoneError(ValueError):
    """A zone that cannot be resolved; the message says what was tried."""


def time_zone(name: str) -> tzinfo:
    """``name`` as a zone: "local", "UTC", or an IANA name such as "Europe/Berlin"."""
    if name == "local":
        return local_zone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ZoneError(f"unknown time zone {name!r} (expected \"local\", \"UTC\" or an "
                        "IANA name such as \"Europe/Berlin\")") from None


def local_zone(start_environment: Mapping[str, str] | None = None,
               localtime: Path = LOCALTIME, timezone_file: Path = TIMEZONE_FILE) -> tzinfo:
    """The host's zone; raises ZoneError when it cannot be known for certain."""
    environment = start_environment if start_environment is not None else _start_environment()
    if "TZ" in environment:
        return _from_tz(environment["TZ"])
    if localtime.exists():
        return _from_localtime(localtime)
    if timezone_file.exists():
        return time_zone(timezone_file.read_text().strip())
    raise ZoneError(f"no TZ, {localtime} or {timezone_file} says which zone is local: set "
                    "timezone to an IANA name such as \"Europe/Berlin\", or \"UTC\"")


def _start_environment() -> dict[str, str]:
    """The environment the process was started with: the CLI has since set TZ=UTC for
    itself, which changes ``os.environ`` but not what the kernel kept from exec. Without
    /proc, TZ is not known and /etc/localtime decides."""
    try:
        raw = START_ENVIRONMENT.read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {key.decode(errors="replace"): value.decode(errors="replace") for key, value in pairs}


def _from_tz(value: str) -> tzinfo:
    """TZ as glibc reads it: empty means UTC, a leading ':' is dropped, and an absolute
    path names a zone file. POSIX rule strings ("CET-1CEST,M3.5.0,M10.5.0/3") are not
    zones zoneinfo can load, and guessing would shift every row."""
    name = value.removeprefix(":")
    if not name:
        return UTC_ZONE
    if name.startswith("/"):
        return _from_file(Path(name))
    try:
        return time_zone(name)
    except ZoneError:
        raise ZoneError(f"the TZ this process was started with ({value!r}) is not an IANA "
                        "zone name: set timezone explicitly") from None


def _from_localtime(path: Path) -> tzinfo:
    """/etc/localtime is usually a link into the zoneinfo tree, whose tail is the zone's
    name; a copied file (common in containers) is read as it is."""
    target = path.resolve()
    parts = target.parts
    if "zoneinfo" in parts:
        name = "/".join(parts[len(parts) - parts[::-1].index("zoneinfo"):])
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return _from_file(target)


def _from_file(path: Path) -> tzinfo:
    try:
        with path.open("rb") as handle:
            return ZoneInfo.from_file(handle, key=str(path))
    except (OSError, ValueError) as err:
        raise ZoneError(f"cannot read the zone file {path}: {err}") from None


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
        self._fixed: int | None = 0 if getattr(tz, "key", "") in FIXED_UTC else None
        """The offset of a zone that never changes it (UTC): no minute needs a look."""

    def to_utc_ns(self, naive: datetime.datetime) -> int:
        if self._fixed is not None:
            return (naive - NAIVE_EPOCH) // MICROSECOND * 1000 - self._fixed
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
