"""Commands to a RAVEn / EMU-2, as bytes. ``factory_reset`` cannot be built at all.

A factory reset decommissions the device from the utility's meter; a collector has no
business sending it, so the API refuses it rather than trusting every caller.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

COMMANDS = frozenset({
    "initialize", "restart", "get_connection_status", "get_device_info", "get_meter_list",
    "get_meter_info", "get_network_info", "get_time", "get_current_price",
    "get_instantaneous_demand", "get_current_summation_delivered",
    "get_current_period_usage", "get_last_period_usage", "get_schedule", "set_schedule",
    "set_schedule_default", "set_fast_poll", "get_profile_data",
})
REFUSED = frozenset({"factory_reset"})
SCHEDULE_EVENTS = frozenset({"time", "price", "demand", "summation", "message"})


class RefusedCommand(ValueError):
    """A command this collector never sends."""


def command(name: str, **arguments: str) -> bytes:
    """``<Command><Name>name</Name><Arg>value</Arg>...</Command>`` in code page 1252."""
    if name.lower() in REFUSED:
        raise RefusedCommand(f"{name} decommissions the device; the collector never sends it")
    if name not in COMMANDS:
        raise ValueError(f"unknown command {name!r}")
    body = "".join(f"<{key}>{escape(value)}</{key}>" for key, value in arguments.items())
    return f"<Command><Name>{name}</Name>{body}</Command>\r\n".encode("cp1252")


def set_schedule(event: str, frequency_s: int, meter_mac: str = "", enabled: bool = True) -> bytes:
    """Push ``event`` every ``frequency_s`` seconds."""
    if event not in SCHEDULE_EVENTS:
        raise ValueError(f"schedule event must be one of {sorted(SCHEDULE_EVENTS)}")
    if not 1 <= frequency_s <= 0xFFFF:
        raise ValueError("frequency must be 1..65535 s")
    arguments = {"MeterMacId": meter_mac} if meter_mac else {}
    return command("set_schedule", **arguments, Event=event, Frequency=f"0x{frequency_s:04x}",
                   Enabled="Y" if enabled else "N")


def refresh(name: str, meter_mac: str = "") -> bytes:
    """A get_* command that makes the device ask the meter now instead of its cache."""
    arguments = {"MeterMacId": meter_mac} if meter_mac else {}
    return command(name, **arguments, Refresh="Y")
