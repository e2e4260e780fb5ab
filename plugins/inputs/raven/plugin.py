"""[[inputs.raven]]: Rainforest RAVEn and EMU-2 smart-meter bridges (XML over serial).

A streaming input: every push the meter sends becomes a metric at the meter's own
timestamp. On connect it sends ``initialize``, ``get_device_info``, ``get_meter_list``
and the configured ``set_schedule`` commands, then only reads. Every read waits at most
``READ_TIMEOUT_S``; a USB error or a vanished port closes the port and reopens it with
backoff; nothing is ever zero-filled: a gap stays a gap, and the health point says why.
"""

from __future__ import annotations

import os
import termios
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Literal

import serial

from collector import Accumulator, Duration, HealthLog, StreamingInput
from collector.binding import BindError
from collector.emulation import PtyServer
from plugins.inputs.raven import commands, decoder
from plugins.inputs.raven.emulated_energy import DEMO_DAY
from plugins.inputs.raven.emulator import Meter
from plugins.inputs.raven.parser import StreamParser

READ_TIMEOUT_S = 0.1
"""Longest a read blocks; about three fragments' worth of bytes at 115200 baud."""

Health = Literal["connected", "joining", "stale", "absent"]
HEALTH_CODES: dict[Health, int] = {"connected": 0, "joining": 1, "stale": 2, "absent": 3}


@dataclass
class RavenConfig:
    port: str = field(default="", metadata={"example": "/dev/raven"})
    """Serial port, e.g. "/dev/raven" (see the udev rule) or /dev/serial/by-id/..."""
    baudrate: int = 115200
    schedule: dict[str, Duration] = field(default_factory=dict)
    """Push intervals to ask for on connect, e.g. { demand = "10s", summation = "60s" };
    events: demand, summation, price, time, message. Empty: the device's own schedule."""
    expected_interval: Duration = Duration(30)
    """How often demand is expected; the device is "stale" after ``stale_after`` times it
    without a push."""
    stale_after: float = 3.0
    max_clock_skew: Duration = Duration(300)
    """Warn when the meter's clock differs from the host's by more than this."""
    health_interval: Duration = Duration(10)
    reconnect_max_interval: Duration = Duration(30)
    emulate_when_absent: bool = False
    """With nothing at ``port`` at start-up, read the built-in RAVEn emulator instead and
    tag every point ``emulated=true``. The embedded defaults use it so that a fresh
    install shows data; leave it off wherever a missing meter must be noticed."""

    def validate(self) -> None:
        if not self.port:
            raise BindError("port", 'required, e.g. port = "/dev/ttyUSB0"')
        unknown = sorted(set(self.schedule) - commands.SCHEDULE_EVENTS)
        if unknown:
            raise BindError(f"schedule.{unknown[0]}",
                            f"events are {', '.join(sorted(commands.SCHEDULE_EVENTS))}")
        for event, interval in self.schedule.items():
            if not 1 <= interval <= 0xFFFF:
                raise BindError(f"schedule.{event}", "must be between 1s and 65535s")
        if self.stale_after <= 0:
            raise BindError("stale_after", "must be positive")


class RavenInput(StreamingInput):
    Config = RavenConfig

    def __init__(self, config: RavenConfig, context) -> None:
        super().__init__(config, context)
        self.log = context.log
        self.parser = StreamParser()
        self._health = HealthLog(context.log, "absent", normal=("connected", "joining"))
        self.status = ""
        self.link_strength: int | None = None
        self.clock_skew_s: float | None = None
        self.reconnects = 0
        self.decode_errors = 0
        self.warnings = 0
        self._last_push: float | None = None
        """Monotonic time of the latest push; None until the first one."""
        self._silent_since = time.monotonic()
        """Start of the current silence: the latest push, or the session's start if later."""
        self._next_health = 0.0
        self._skew_warned = False
        self._connections = 0
        self._emulator: PtyServer | None = None
        self._extra_tags: dict[str, str] = {}
        if config.emulate_when_absent and not os.path.exists(config.port):
            self._emulator = PtyServer(Meter(wander=DEMO_DAY)).start()
            self.log.warning("nothing at %s: reading the built-in RAVEn emulator at %s "
                             "(emulate_when_absent = true)", config.port, self._emulator.path)
            self.config = replace(config, port=self._emulator.path)
            self._extra_tags = {"emulated": "true"}

    def close(self) -> None:
        if self._emulator is not None:
            self._emulator.close()

    # ---------------------------------------------------------------- supervision
    def run(self, acc: Accumulator, stop: threading.Event) -> None:
        failures = 0
        while not stop.is_set():
            port = self._open()
            if port is None:
                self._maybe_emit_health(acc)
                # An absent port is looked for every second (a stat); a present one
                # that fails to open is retried with backoff.
                if os.path.exists(self.config.port):
                    stop.wait(min(float(self.config.reconnect_max_interval), 2.0 ** failures))
                    failures += 1
                else:
                    stop.wait(1.0)
                continue
            failures = 0
            try:
                self._session(port, acc, stop)
            except (serial.SerialException, OSError, termios.error) as err:
                # termios.error (tcflush on a vanished port) is not an OSError.
                self.log.warning("%s: lost (%s); reopening", self.config.port, err)
            finally:
                port.close()
                self.parser.reset()
            if stop.is_set():
                return
            if os.path.exists(self.config.port):
                self._set_health("stale")
            else:
                self._set_health("absent", "the port is gone")
            self._emit_health(acc)
            stop.wait(0.5)  # a port that fails right after opening must not spin

    def _open(self) -> serial.Serial | None:
        try:
            port = serial.Serial(self.config.port, self.config.baudrate, timeout=READ_TIMEOUT_S,
                                 write_timeout=1.0, exclusive=True)
        except (serial.SerialException, OSError) as err:
            present = os.path.exists(self.config.port)
            self._set_health("absent", f"cannot open: {err}" if present else "no such port")
            return None
        self._connections += 1
        if self._connections > 1:
            self.reconnects += 1
        self.log.info("%s: open", self.config.port)
        return port

    def _session(self, port: serial.Serial, acc: Accumulator, stop: threading.Event) -> None:
        port.reset_input_buffer()
        for command in (commands.command("initialize"), commands.command("get_device_info"),
                        commands.command("get_meter_list")):
            port.write(command)
        self._silent_since = time.monotonic()
        self._set_health("joining", "waiting for a push")  # or a "Connected" status
        while not stop.is_set():
            data = port.read(4096)
            now_ns = time.time_ns()
            for fragment in self.parser.feed(data):
                self._handle(fragment, port, acc, now_ns)
            self._update_staleness()
            self._maybe_emit_health(acc)

    # ---------------------------------------------------------------- fragments
    def _handle(self, fragment, port: serial.Serial, acc: Accumulator, now_ns: int) -> None:
        try:
            reading = decoder.decode(fragment)
        except decoder.DecodeError as err:
            self.decode_errors += 1
            self.log.debug("undecodable %s: %s", fragment.root, err)
            return
        if reading is None:
            return
        self.log.debug("%s: %r", self.config.port, reading)
        if isinstance(reading, decoder.Demand | decoder.Summation | decoder.Price):
            self._pushed(reading.time_ns, now_ns)
        match reading:
            case decoder.Demand():
                acc.add("raven_demand", {"kw": reading.kw, "raw": reading.raw,
                                         "multiplier": reading.multiplier,
                                         "divisor": reading.divisor},
                        self._tags(reading.device_mac, reading.meter_mac),
                        reading.time_ns or now_ns)
            case decoder.Summation():
                acc.add("raven_summation", {
                    "delivered_kwh": reading.delivered_kwh, "received_kwh": reading.received_kwh,
                    "delivered_raw": reading.delivered_raw, "received_raw": reading.received_raw,
                    "multiplier": reading.multiplier, "divisor": reading.divisor,
                }, self._tags(reading.device_mac, reading.meter_mac), reading.time_ns or now_ns)
            case decoder.Price():
                fields: dict = {"currency": reading.currency}
                if reading.price is not None:
                    fields["price"] = reading.price
                if reading.tier is not None:
                    fields["tier"] = reading.tier
                if reading.label:
                    fields["label"] = reading.label
                acc.add("raven_price", fields, self._tags(reading.device_mac, reading.meter_mac),
                        reading.time_ns or now_ns)
            case decoder.MeterTime():
                if reading.utc_ns is not None:
                    self._record_skew(reading.utc_ns, now_ns)
            case decoder.Connection():
                self._connection(reading, acc, now_ns)
            case decoder.DeviceInfo():
                self.log.info("%s: %s %s, firmware %s", self.config.port, reading.manufacturer,
                              reading.model, reading.firmware)
                acc.add("raven_device", {"model": reading.model, "firmware": reading.firmware,
                                         "hardware": reading.hardware or "unknown",
                                         "manufacturer": reading.manufacturer or "unknown"},
                        self._tags(reading.device_mac, ""), now_ns)
            case decoder.MeterList():
                self._schedule(port, reading.meters)
            case decoder.DeviceWarning():
                self.warnings += 1
                self.log.warning("%s: device warning: %s", self.config.port, reading.text)

    def _pushed(self, meter_ns: int | None, now_ns: int) -> None:
        self._last_push = self._silent_since = time.monotonic()
        if meter_ns is not None:
            self._record_skew(meter_ns, now_ns)
        self._set_health("connected")

    def _record_skew(self, meter_ns: int, now_ns: int) -> None:
        self.clock_skew_s = (meter_ns - now_ns) / 1e9
        too_far = abs(self.clock_skew_s) > self.config.max_clock_skew
        if too_far and not self._skew_warned:
            self.log.warning("%s: meter clock is %+.0f s from the host's (limit %.0f s); "
                             "points carry the meter's time", self.config.port,
                             self.clock_skew_s, self.config.max_clock_skew)
        self._skew_warned = too_far

    def _connection(self, reading: decoder.Connection, acc: Accumulator, now_ns: int) -> None:
        if reading.status != self.status:
            self.log.info("%s: %s", self.config.port, reading.status)
        self.status = reading.status
        self.link_strength = reading.link_strength
        self._set_health("connected" if reading.status == "Connected" else "joining")
        fields: dict = {"status": reading.status}
        if reading.link_strength is not None:
            fields["link_strength"] = reading.link_strength
        if reading.channel is not None:
            fields["channel"] = reading.channel
        acc.add("raven_connection", fields, self._tags(reading.device_mac, reading.meter_mac),
                now_ns)

    def _schedule(self, port: serial.Serial, meters: tuple[str, ...]) -> None:
        for meter in meters or ("",):
            for event, interval in self.config.schedule.items():
                port.write(commands.set_schedule(event, round(interval), meter))

    # ---------------------------------------------------------------- health
    def _update_staleness(self) -> None:
        silent = time.monotonic() - self._silent_since
        if self.health == "connected" and (
                silent > self.config.stale_after * self.config.expected_interval):
            self._set_health("stale", f"no push for {silent:.0f} s")

    @property
    def health(self) -> Health:
        return self._health.state  # type: ignore[return-value]

    def _set_health(self, health: Health, detail: str = "") -> None:
        self._health.set(self.config.port, health, detail)

    def _maybe_emit_health(self, acc: Accumulator) -> None:
        if time.monotonic() >= self._next_health:
            self._emit_health(acc)

    def _emit_health(self, acc: Accumulator) -> None:
        self._next_health = time.monotonic() + self.config.health_interval
        stats = self.parser.stats
        fields: dict = {
            "state": self.health, "state_code": HEALTH_CODES[self.health],
            "fragments": stats.fragments, "malformed": stats.malformed + stats.truncated,
            "oversized": stats.oversized, "garbage_bytes": stats.garbage_bytes,
            "decode_errors": self.decode_errors, "warnings": self.warnings,
            "reconnects": self.reconnects,
        }
        if self._last_push is not None:
            fields["seconds_since_push"] = round(time.monotonic() - self._last_push, 3)
        if self.clock_skew_s is not None:
            fields["clock_skew_s"] = self.clock_skew_s
        if self.link_strength is not None:
            fields["link_strength"] = self.link_strength
        acc.add("raven_health", fields, {"port": self.config.port, **self._extra_tags})

    def _tags(self, device_mac: str, meter_mac: str) -> dict[str, str]:
        tags = dict(self._extra_tags)
        if device_mac:
            tags["device_mac"] = device_mac
        if meter_mac:
            tags["meter_mac"] = meter_mac
        return tags
