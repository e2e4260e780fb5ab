"""The host's local time zone, found without trusting the process's own TZ.

The collector pins ``TZ=UTC`` for itself (so schedules and logs never see a daylight
saving jump), so ``time.localtime`` says nothing about the host. What "local" meant for
the legacy logger is what the host's clock shows: the ``TZ`` the process was started
with (containers usually set it), else ``/etc/localtime`` (what a systemd service and
``timedatectl`` use), else ``/etc/timezone`` (Debian's name for it).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

START_ENVIRONMENT = Path("/proc/self/environ")
LOCALTIME = Path("/etc/localtime")
TIMEZONE_FILE = Path("/etc/timezone")
UTC = ZoneInfo("UTC")


class ZoneError(ValueError):
    """A zone that cannot be resolved; the message says what was tried."""


def zone(name: str) -> tzinfo:
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
        return zone(timezone_file.read_text().strip())
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
        return UTC
    if name.startswith("/"):
        return _from_file(Path(name))
    try:
        return zone(name)
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
