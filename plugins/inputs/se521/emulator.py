"""A byte-exact SE521 for tests and demos: serial on a pseudo-terminal, HID at report level.

``Instrument`` is the sans-I/O heart (command bytes in, reply bytes out, with settable
temperatures, flags and faults); ``collector.emulation.PtyServer`` serves it on a pty
whose path can vanish and come back like a USB serial device; ``EmulatedBridge`` and
``EmulatedHidBus`` stand in for hidapi at the HID-report level, because the kernel here
has no uhid.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from collector.emulation import EmulatorArguments, PtyServer, serve_until_signalled
from plugins.inputs.se521 import bridge, codec
from plugins.inputs.se521.transport import DeviceGone

Fault = Literal["checksum", "etx", "short", "silence", "counter"]
FAULTS: tuple[Fault, ...] = ("checksum", "etx", "short", "silence", "counter")
_TOGGLE_UNIT, _TOGGLE_HOLD = ord("C"), ord("H")
_OPEN_PROBE_RAW = -2000
"""What an open channel's value bytes hold here: -200.0, a number that must never be used."""


@dataclass
class InstrumentState:
    """What the emulated instrument shows; tests change it between exchanges."""

    temperatures: list[float | None] = field(default_factory=lambda: [21.5, 20.0, 19.0, 18.5])
    """Per channel in the display unit; None is an unplugged probe."""
    over_limit: set[int] = field(default_factory=set)
    """Channel indexes (0..3) reading over the thermocouple's range."""
    unit: codec.Unit = "C"
    battery: int = 3
    hold: bool = False
    recording: bool = False
    thermocouple: str = "K"
    model: str = "521"
    fault: Fault | None = None


class Instrument:
    """Answers 7-byte commands the way the meter does."""

    def __init__(self, state: InstrumentState | None = None, wander: bool = False) -> None:
        """``wander``: temperatures drift slowly around their start (demos show curves)."""
        self.state = state or InstrumentState()
        self.replies = 0
        self._pending = bytearray()
        self._wander_from = list(self.state.temperatures) if wander else None
        self._started = time.monotonic()

    def feed(self, data: bytes) -> bytes:
        """Bytes from a serial line in, reply bytes out; resynchronises on STX."""
        self._pending += data
        out = bytearray()
        while True:
            start = self._pending.find(codec.STX)
            if start < 0:
                self._pending.clear()
                return bytes(out)
            del self._pending[:start]
            if len(self._pending) < 7:
                return bytes(out)
            command = bytes(self._pending[:7])
            if command[6] != codec.ETX:
                del self._pending[:1]
                continue
            del self._pending[:7]
            out += self.respond(command)

    def poll(self) -> bytes:
        """The meter only ever answers; it sends nothing on its own."""
        return b""

    def respond(self, command: bytes) -> bytes:
        code, counter = command[1], command[5]
        state = self.state
        if state.fault == "silence":
            return b""
        if code == codec.MODEL:
            return codec.encode_model(state.model)
        if code == _TOGGLE_UNIT:
            self._toggle_unit()
        elif code == _TOGGLE_HOLD:
            state.hold = not state.hold
        if code != codec.READ:
            return b""
        if self._wander_from is not None:
            state.temperatures = drift(self._wander_from, time.monotonic() - self._started)
        self.replies += 1
        return _with_fault(codec.encode_reading(self.reading(counter)), state.fault)

    def reading(self, counter: int) -> codec.Reading:
        """What the next 'A' reply carries."""
        state = self.state
        channels = tuple(
            _channel(value, unplugged=value is None, over=i in state.over_limit)
            for i, value in enumerate(state.temperatures)
        )
        t1, t2 = state.temperatures[0], state.temperatures[1]
        difference = _channel(None if t1 is None or t2 is None else t1 - t2,
                              unplugged=channels[0].unplugged or channels[1].unplugged,
                              over=channels[0].over_limit or channels[1].over_limit)
        return codec.Reading(
            channels=channels,  # type: ignore[arg-type]
            difference=difference, unit=state.unit, battery=state.battery, hold=state.hold,
            recording=state.recording, thermocouple=state.thermocouple, counter=counter & 0xFF,
        )

    def _toggle_unit(self) -> None:
        state = self.state
        to_f = state.unit == "C"
        state.temperatures = [
            None if t is None else round(t * 9 / 5 + 32 if to_f else (t - 32) * 5 / 9, 1)
            for t in state.temperatures
        ]
        state.unit = "F" if to_f else "C"


def _channel(value: float | None, unplugged: bool, over: bool) -> codec.Channel:
    if value is None:
        return codec.Channel(_OPEN_PROBE_RAW, over_limit=unplugged or over, unplugged=unplugged)
    whole = abs(value) >= 1000
    raw = round(value) if whole else round(value * 10)
    return codec.Channel(raw, whole_degrees=whole, over_limit=over, unplugged=unplugged)


def _with_fault(frame: bytes, fault: Fault | None) -> bytes:
    if fault == "checksum":
        return frame[:62] + bytes((frame[62] ^ 0x5A,)) + frame[63:]
    if fault == "etx":
        return frame[:63] + b"\0"
    if fault == "short":
        return frame[:40]
    if fault == "counter":
        wrong = bytearray(frame)
        wrong[61] = (wrong[61] + 1) & 0xFF
        wrong[62] = codec.checksum(wrong)
        return bytes(wrong)
    return frame


# ---------------------------------------------------------------- HID at report level
class EmulatedBridge:
    """The Holtek bridge as hidapi shows it: feature, OUT and IN reports.

    Faults: ``stall_on_write`` makes the n-th write-announce feature report since the
    device was opened (``writes_announced`` counts them) fail the way the chip's does
    on a second cycle; ``short_reports`` delivers only that many
    IN reports of a reply; ``removed`` makes every call fail like an unplugged device.
    """

    def __init__(self, instrument: Instrument, path: bytes = b"emulated-hid:0",
                 serial_number: str = "EMU0001") -> None:
        self.instrument = instrument
        self.path = path
        self.serial_number = serial_number
        self.removed = False
        self.stall_on_write: int | None = None
        self.short_reports: int | None = None
        self.opened = 0
        self.closed = 0
        self.writes_announced = 0
        self._reply = b""
        self._in: list[bytes] = []

    def info(self) -> dict[str, Any]:
        return {"path": self.path, "vendor_id": bridge.VENDOR_ID,
                "product_id": bridge.PRODUCT_ID, "serial_number": self.serial_number,
                "product_string": "USB-UART bridge (emulated)"}

    def send_feature_report(self, data: bytes) -> int:
        self._check_present()
        kind, length = bridge.parse_feature(bytes(data))
        if kind == "write":
            self.writes_announced += 1
            if self.writes_announced == self.stall_on_write:
                return -1
        else:
            reports = bridge.in_reports(self._reply[:length])
            self._in = reports[:self.short_reports] if self.short_reports is not None else reports
        return len(data)

    def write(self, data: bytes) -> int:
        self._check_present()
        payload = bytes(data[1:1 + data[0]])
        self._reply = self.instrument.respond(payload)
        return len(data)

    def read(self, max_length: int, timeout_ms: int = 0) -> list[int]:
        self._check_present()
        if self._in:
            return list(self._in.pop(0)[:max_length])
        time.sleep(timeout_ms / 1000)
        self._check_present()
        return []

    def close(self) -> None:
        self.closed += 1

    def _check_present(self) -> None:
        if self.removed:
            raise OSError("read error")


class EmulatedHidBus:
    """A ``HidBackend`` whose devices are emulated bridges."""

    def __init__(self, *bridges: EmulatedBridge) -> None:
        self.bridges = list(bridges)

    def enumerate(self, vendor_id: int, product_id: int) -> list[dict[str, Any]]:
        return [b.info() for b in self.bridges if not b.removed
                and (vendor_id, product_id) == (bridge.VENDOR_ID, bridge.PRODUCT_ID)]

    def open_path(self, path: bytes) -> EmulatedBridge:
        for candidate in self.bridges:
            if candidate.path == path and not candidate.removed:
                candidate.opened += 1
                candidate.writes_announced = 0
                return candidate
        raise DeviceGone(f"cannot open {path!r}")


# ---------------------------------------------------------------- collector emulate se521
TEMPERATURE_LIMIT = 9999.0
"""Largest magnitude a channel may show here: T1-T2 of two such values still fits the
frame's signed 16 bits in whole degrees."""


def main(argv: list[str]) -> int:
    """``collector emulate se521``: serve an instrument on a pty until interrupted."""
    parser = EmulatorArguments(prog="collector emulate se521",
                               description="Serve an emulated SE521 on a pty until interrupted.")
    parser.add_argument("--link", type=Path, metavar="PATH",
                        help="also serve at PATH, a symlink to the pty as a udev rule would "
                             "make; anything else already there is left alone")
    parser.add_argument("--unit", choices=["C", "F"], default="C",
                        help="the display unit, which the values are sent in (default: C)")
    parser.add_argument("--temperatures", type=temperatures, default="21.5,20.0,19.0,18.5",
                        metavar="T1,T2,T3,T4",
                        help="in the display unit, each within +-9999; 'open' for an "
                             "unplugged probe (default: 21.5,20.0,19.0,18.5)")
    parser.add_argument("--fault", choices=FAULTS,
                        help="spoil every reply this way: a wrong checksum, ETX or counter "
                             "echo, a short frame, or silence")
    parser.add_argument("--still", action="store_true",
                        help="keep the temperatures fixed (by default they drift slowly)")
    args = parser.parse_args(argv)
    state = InstrumentState(temperatures=args.temperatures, unit=args.unit, fault=args.fault)
    return serve_until_signalled(PtyServer(Instrument(state, wander=not args.still), args.link),
                                 "SE521", parser.prog)


def temperatures(text: str) -> list[float | None]:
    """``--temperatures``: four comma-separated values, each a number or 'open'."""
    values = [_temperature(part.strip()) for part in text.split(",")]
    if len(values) != len(codec.CHANNELS):
        raise argparse.ArgumentTypeError(f"needs four values (T1..T4), not {len(values)}")
    return values


def _temperature(text: str) -> float | None:
    if text == "open":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a number nor 'open'") from None
    if not -TEMPERATURE_LIMIT <= value <= TEMPERATURE_LIMIT:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"{text} is not within +-{TEMPERATURE_LIMIT:.0f}")
    return value


def drift(base: list[float | None], elapsed_s: float) -> list[float | None]:
    """Slow, smooth changes around ``base`` so a demo dashboard shows curves."""
    return [None if t is None else round(t + 2 * math.sin(elapsed_s / 60 + i), 1)
            for i, t in enumerate(base)]
