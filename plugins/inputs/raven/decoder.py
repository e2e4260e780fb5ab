"""RAVEn / EMU-2 notifications -> typed readings (rules: the plugin README, "Decoding").

Readings are named tuples: immutable like frozen dataclasses, and built several times
faster, which shows at one reading per fragment.

Children are looked up by name, never by position. A fragment whose numbers do not
parse raises ``DecodeError`` (counted and skipped by the caller); a value the device
marks as absent ("no time", an unset price) becomes None, never 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from plugins.inputs.raven.parser import Fragment

Y2K_EPOCH_S = 946_684_800
"""RAVEn time counts seconds from 2000-01-01T00:00:00Z."""
_NO_TIME = {0xFFFFFF, 0xFFFFFFFF}
_UNSET_PRICE = 0xFFFFFFFF


class DecodeError(ValueError):
    """A fragment with a missing or unreadable required child."""


class Demand(NamedTuple):
    device_mac: str
    meter_mac: str
    time_ns: int | None
    raw: int
    """Signed: sign-extended from 32 bits, so solar export stays negative."""
    multiplier: int
    divisor: int
    kw: float


class Summation(NamedTuple):
    device_mac: str
    meter_mac: str
    time_ns: int | None
    delivered_raw: int
    received_raw: int
    multiplier: int
    divisor: int
    delivered_kwh: float
    received_kwh: float


class Price(NamedTuple):
    device_mac: str
    meter_mac: str
    time_ns: int | None
    price: float | None
    """Per kWh in ``currency``; None when the meter has no price set."""
    currency: int
    """ISO 4217 numeric code (840 = USD)."""
    tier: int | None
    label: str


class MeterTime(NamedTuple):
    device_mac: str
    meter_mac: str
    utc_ns: int | None
    local_ns: int | None
    """The meter's local clock read as if it were UTC: the offset is the meter's zone."""


class Connection(NamedTuple):
    device_mac: str
    meter_mac: str
    status: str
    description: str
    link_strength: int | None
    """Percent (0x00-0x64)."""
    channel: int | None
    """Zigbee channel 11-26, sent in decimal."""


class DeviceInfo(NamedTuple):
    device_mac: str
    manufacturer: str
    model: str
    firmware: str
    hardware: str
    date_code: str


class MeterList(NamedTuple):
    device_mac: str
    meters: tuple[str, ...]


class DeviceWarning(NamedTuple):
    text: str


Reading = (Demand | Summation | Price | MeterTime | Connection | DeviceInfo | MeterList
           | DeviceWarning)


def hex_int(text: str | None, name: str = "value") -> int:
    if not text:
        raise DecodeError(f"missing {name}")
    try:
        return int(text, 16)
    except ValueError:
        raise DecodeError(f"{name} is not hex: {text!r}") from None


def signed32(value: int) -> int:
    """Sign-extend the low 32 bits (0xFFFFFFF0 is -16)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def scale(get: Callable[[str], str | None]) -> tuple[int, int]:
    """Multiplier and divisor from a fragment's ``children.get``; zero (or absent) means 1."""
    multiplier = hex_int(get("multiplier") or "0x1", "Multiplier") or 1
    divisor = hex_int(get("divisor") or "0x1", "Divisor") or 1
    return multiplier, divisor


def scaled(raw: int, multiplier: int, divisor: int) -> float:
    """raw x multiplier / divisor, rounded once: Python divides integers exactly before
    rounding to a float, so 64-bit summations lose nothing on the way."""
    return raw * multiplier / divisor


def raven_time_ns(text: str | None) -> int | None:
    """Seconds since 2000-01-01Z -> Unix ns; None for the "no time" sentinels."""
    if not text:
        return None
    seconds = hex_int(text, "time")
    if seconds in _NO_TIME:
        return None
    return (Y2K_EPOCH_S + seconds) * 1_000_000_000


def decode(fragment: Fragment) -> Reading | None:
    """The reading a fragment carries; None for kinds this collector does not use."""
    decoder = _DECODERS.get(fragment.root)
    return decoder(fragment) if decoder else None


def _macs(get: Callable[[str], str | None]) -> tuple[str, str]:
    return (get("devicemacid") or "").lower(), (get("metermacid") or "").lower()


def _demand(fragment: Fragment) -> Demand:
    get = fragment.children.get
    multiplier, divisor = scale(get)
    raw = signed32(hex_int(get("demand"), "Demand"))
    return Demand(*_macs(get), raven_time_ns(get("timestamp")), raw,
                  multiplier, divisor, scaled(raw, multiplier, divisor))


def _summation(fragment: Fragment) -> Summation:
    get = fragment.children.get
    multiplier, divisor = scale(get)
    delivered = hex_int(get("summationdelivered"), "SummationDelivered")
    received = hex_int(get("summationreceived") or "0x0", "SummationReceived")
    return Summation(*_macs(get), raven_time_ns(get("timestamp")), delivered,
                     received, multiplier, divisor, scaled(delivered, multiplier, divisor),
                     scaled(received, multiplier, divisor))


def _price(fragment: Fragment) -> Price:
    get = fragment.children.get
    raw = hex_int(get("price"), "Price")
    digits = hex_int(get("trailingdigits") or "0x0", "TrailingDigits")
    tier = get("tier")
    return Price(
        *_macs(get), raven_time_ns(get("timestamp")),
        None if raw == _UNSET_PRICE else raw / 10**digits,
        hex_int(get("currency") or "0x0", "Currency"),
        hex_int(tier, "Tier") if tier else None,
        get("tierlabel") or get("ratelabel") or "",
    )


def _time(fragment: Fragment) -> MeterTime:
    get = fragment.children.get
    return MeterTime(*_macs(get), raven_time_ns(get("utctime")),
                     raven_time_ns(get("localtime")))


def _connection(fragment: Fragment) -> Connection:
    get = fragment.children.get
    strength = get("linkstrength")
    channel = get("channel")
    meter = get("metermacid") or get("coordmacid") or ""
    try:
        channel_number = int(channel, 10) if channel else None
    except ValueError:
        raise DecodeError(f"Channel is not decimal: {channel!r}") from None
    return Connection(
        (get("devicemacid") or "").lower(), meter.lower(),
        get("status") or "", get("description") or "",
        hex_int(strength, "LinkStrength") if strength else None, channel_number,
    )


def _device_info(fragment: Fragment) -> DeviceInfo:
    get = fragment.children.get

    def text(name: str) -> str:
        value = get(name) or ""
        return "" if value and set(value) == {"\xff"} else value  # EMU-2: all 0xFF

    return DeviceInfo((get("devicemacid") or "").lower(), text("manufacturer"),
                      text("modelid"), text("fwversion"), text("hwversion"), text("datecode"))


def _meter_list(fragment: Fragment) -> MeterList:
    get = fragment.children.get
    meters = fragment.repeated.get("metermacid") or (
        [get("metermacid")] if get("metermacid") else [])
    return MeterList((get("devicemacid") or "").lower(),
                     tuple(m.lower() for m in meters))


def _warning(fragment: Fragment) -> DeviceWarning:
    get = fragment.children.get
    return DeviceWarning(get("text") or "")


_DECODERS = {
    "InstantaneousDemand": _demand, "CurrentSummationDelivered": _summation,
    "PriceCluster": _price, "TimeCluster": _time, "ConnectionStatus": _connection,
    "NetworkInfo": _connection, "DeviceInfo": _device_info, "MeterList": _meter_list,
    "Warning": _warning,
}
