"""[[inputs.se521]]: Center SE521 (USB HID) and 52x serial thermocouple thermometers.

Every interval: one 'A' exchange, then per-channel temperatures in °C, the instrument's
status, and a health point saying whether the instrument is up, silent (present but
not answering validly) or absent (not attached). A failed exchange never blocks the
agent for longer than ``timeout`` and never produces a number.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Literal

from collector import Accumulator, Duration, HealthLog, Input
from collector.binding import BindError
from collector.emulation import PtyServer
from plugins.inputs.se521 import codec
from plugins.inputs.se521.device import DeviceAbsent, Link, hid_candidates, open_hid, open_serial
from plugins.inputs.se521.emulator import Instrument
from plugins.inputs.se521.transport import DeviceGone, Hidapi, HidBackend, TransportError

Health = Literal["up", "silent", "absent"]
HEALTH_CODES: dict[Health, int] = {"up": 0, "silent": 1, "absent": 2}


@dataclass
class SE521Config:
    transport: Literal["auto", "hid", "serial"] = "auto"
    """"auto": the serial port when ``port`` is set, else USB HID."""
    port: str = ""
    """Serial port of a 52x serial meter, e.g. "/dev/se521" (see the udev rule)."""
    baudrate: int = 9600
    hid_path: str = ""
    """Pick one HID instrument by its hidraw path (``collector devices`` lists them)."""
    serial_number: str = ""
    """Pick one HID instrument by its USB serial number."""
    unit: Literal["auto", "C", "F"] = "auto"
    """Unit of the raw values: "auto" trusts the instrument's unit bit; "C" or "F" overrides
    it, for firmware said to send °F whatever the display shows."""
    labels: dict[str, str] = field(default_factory=dict)
    """Names for channels, e.g. { T1 = "panel", T3 = "air_in_roof" }: the ``label`` tag."""
    timeout: Duration = Duration(0.5)
    """Longest wait for one reply."""
    reopen_after: int = 3
    """Consecutive failed exchanges before the device is closed and opened again."""
    reconnect_max_interval: Duration = Duration(30)
    """Cap of the backoff between reopen attempts of a present but failing device."""
    emulate_when_absent: bool = False
    """With no instrument attached at start-up, read the built-in emulator instead and tag
    every point ``emulated=true``. The embedded defaults use it so that a fresh install
    shows data; leave it off wherever a missing instrument must be noticed."""

    def validate(self) -> None:
        if self.transport == "serial" and not self.port:
            raise BindError("port", 'required with transport = "serial"')
        unknown = sorted(set(self.labels) - set(codec.CHANNELS))
        if unknown:
            raise BindError(f"labels.{unknown[0]}", "channels are T1, T2, T3 and T4")
        if self.timeout <= 0:
            raise BindError("timeout", "must be positive")
        if self.reopen_after < 1:
            raise BindError("reopen_after", "must be at least 1")


class SE521Input(Input):
    Config = SE521Config
    default_interval = 1.0

    def __init__(self, config: SE521Config, context) -> None:
        super().__init__(config, context)
        self.hid_backend: HidBackend = Hidapi()
        self.log = context.log
        self._health = HealthLog(context.log, "absent", normal=("up",))
        self.rejected: Counter[str] = Counter()
        self.reconnects = 0
        self._link: Link | None = None
        self._device = config.port if self._serial else (config.serial_number
                                                         or config.hid_path or "se521")
        self._model = ""
        self._failures = 0
        self._reopen_failures = 0
        self._next_open = 0.0
        self._opened_before = False
        self._emulator: PtyServer | None = None
        self._extra_tags: dict[str, str] = {}
        if config.emulate_when_absent and not self._serial and not hid_candidates(
                self.hid_backend, config.hid_path, config.serial_number):
            self._start_emulator()

    def _start_emulator(self) -> None:
        self._emulator = PtyServer(Instrument(wander=True)).start()
        self.config = replace(self.config, transport="serial", port=self._emulator.path)
        self._device, self._extra_tags = "emulated", {"emulated": "true"}
        self.log.warning("no SE521 attached: reading the built-in emulator at %s "
                         "(emulate_when_absent = true)", self._emulator.path)

    @property
    def _serial(self) -> bool:
        return self.config.transport == "serial" or (
            self.config.transport == "auto" and bool(self.config.port))

    # ---------------------------------------------------------------- gather
    def gather(self, acc: Accumulator) -> None:
        reading = self._poll()
        now = time.time_ns()
        if reading is not None:
            self._emit_reading(acc, reading, now)
        acc.add("se521_health", {
            "state": self.health, "state_code": HEALTH_CODES[self.health],
            "consecutive_failures": self._failures,
            "frames_rejected": sum(self.rejected.values()), "reconnects": self.reconnects,
        }, {"device": self._device, **self._extra_tags}, now)

    def _poll(self) -> codec.Reading | None:
        if self._link is None and not self._open():
            return None
        assert self._link is not None
        try:
            reading = self._link.read()
        except codec.FrameError as err:
            self.rejected[err.check] += 1
            self.log.debug("%s: rejected a frame: %s", self._device, err)
            self._exchange_failed(f"rejected frame ({err})")
            return None
        except DeviceGone as err:
            path = self._link.path
            self._close_link()
            self._next_open = 0.0
            self._set_health("silent" if self._present(path) else "absent", str(err))
            return None
        except TransportError as err:
            self._exchange_failed(str(err))
            return None
        self._failures = self._reopen_failures = 0
        self._set_health("up", "")
        self.log.debug("%s: read %s %s", self._device, " ".join(
            "-" if c.value is None else str(c.value) for c in reading.channels), reading.unit)
        return reading

    def _open(self) -> bool:
        if time.monotonic() < self._next_open:
            return False
        config = self.config
        try:
            if self._serial:
                link = open_serial(config.port, config.baudrate, config.timeout)
            else:
                link = open_hid(self.hid_backend, config.timeout, config.hid_path,
                                config.serial_number)
        except DeviceAbsent as err:
            # Looking again is cheap (a stat or an enumeration), so it happens every
            # interval: data resumes on the first tick after the device is back.
            self._set_health("absent", f"nothing at {err}")
            return False
        except TransportError as err:
            self._set_health("silent", str(err))
            self._schedule_reopen()
            return False
        self._link, self._model = link, link.model
        if not (config.port or config.serial_number or config.hid_path or self._emulator):
            self._device = link.device
        if self._opened_before:
            self.reconnects += 1
        self._opened_before = True
        return True

    def _exchange_failed(self, why: str) -> None:
        self._failures += 1
        self._set_health("silent", why)
        if self._failures % self.config.reopen_after == 0:
            # The bridge chip sometimes only recovers when the device is reopened.
            self._close_link()
            self._schedule_reopen()

    def _schedule_reopen(self) -> None:
        delay = min(float(self.config.reconnect_max_interval), 2.0 ** self._reopen_failures)
        self._reopen_failures += 1
        self._next_open = time.monotonic() + delay

    def _present(self, path: str) -> bool:
        """Whether the device that failed is still attached (so merely silent)."""
        if self._serial:
            return os.path.exists(path)
        return bool(hid_candidates(self.hid_backend, path=path))

    @property
    def health(self) -> Health:
        return self._health.state  # type: ignore[return-value]

    def _set_health(self, health: Health, detail: str) -> None:
        self._health.set(self._device, health,
                         f"model {self._model}" if health == "up" else detail)

    # ---------------------------------------------------------------- metrics
    def _emit_reading(self, acc: Accumulator, reading: codec.Reading, now: int) -> None:
        unit = reading.unit if self.config.unit == "auto" else self.config.unit
        tags = {"device": self._device, "model": self._model, "raw_unit": unit,
                **self._extra_tags}
        for name, channel in zip(codec.CHANNELS, reading.channels, strict=True):
            fields: dict = {"state": channel.state}
            if channel.value is not None:
                fields["celsius"] = codec.to_celsius(channel.value, unit)
            label = self.config.labels.get(name)
            acc.add("se521", fields,
                    {**tags, "channel": name, **({"label": label} if label else {})}, now)
        status: dict = {
            "battery_percent": reading.battery_percent, "hold": reading.hold,
            "recording": reading.recording, "memory_full": reading.memory_full,
            "alarm": reading.alarm, "mode": reading.statistic or "live",
            "thermocouple": reading.thermocouple or "unknown", "display_unit": reading.unit,
        }
        if reading.difference.value is not None:
            status["t1_minus_t2_celsius"] = codec.difference_to_celsius(
                reading.difference.value, unit)
        acc.add("se521_status", status, tags, now)

    def close(self) -> None:
        self._close_link()
        if self._emulator is not None:
            self._emulator.close()

    def _close_link(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None
