"""Thin transports for the SE521 frames: the Holtek HID bridge and a plain serial port.

Both offer ``exchange(command, reply_length) -> reply bytes`` with a bounded wait and
two kinds of failure: ``NoReply`` (the device is there but said nothing usable in
time) and ``DeviceGone`` (the operating system says the device is not there any more).
"""

from __future__ import annotations

import termios
import time
from typing import Any, Protocol

import serial

from plugins.inputs.se521 import bridge


class TransportError(Exception):
    """An exchange that produced no reply."""


class NoReply(TransportError):
    """Timeout, short read or stalled report: the device is present but silent."""


class DeviceGone(TransportError):
    """An I/O error: the device was unplugged or switched off its USB side."""


class Transport(Protocol):
    def exchange(self, command: bytes, reply_length: int) -> bytes: ...

    def close(self) -> None: ...


class HidDevice(Protocol):
    """The part of hidapi's ``device`` the bridge needs (the emulator has it too)."""

    def send_feature_report(self, data: bytes) -> int: ...

    def write(self, data: bytes) -> int: ...

    def read(self, max_length: int, timeout_ms: int = 0) -> list[int]: ...

    def close(self) -> None: ...


class HidBackend(Protocol):
    """Finds and opens HID devices: hidapi on a real machine, the bus emulator in tests."""

    def enumerate(self, vendor_id: int, product_id: int) -> list[dict[str, Any]]: ...

    def open_path(self, path: bytes) -> HidDevice: ...


class Hidapi:
    """The real HID backend: cython-hidapi's ``hidraw`` module. The wheel's ``hid``
    module is its libusb backend, which would need the kernel's driver detached and
    access to /dev/bus/usb; ``hidraw`` opens /dev/hidrawN, which the udev rule grants."""

    def enumerate(self, vendor_id: int, product_id: int) -> list[dict[str, Any]]:
        import hidraw

        return hidraw.enumerate(vendor_id, product_id)

    def open_path(self, path: bytes) -> HidDevice:
        import hidraw

        device = hidraw.device()
        try:
            device.open_path(path)
        except OSError as err:
            raise DeviceGone(f"cannot open {path!r}: {err}") from None
        return device


class HidTransport:
    """One exchange = announce write, OUT report, request read, collect IN reports."""

    def __init__(self, device: HidDevice, timeout: float) -> None:
        self.device = device
        self.timeout = timeout

    def exchange(self, command: bytes, reply_length: int) -> bytes:
        assembler = bridge.ReplyAssembler(reply_length)
        try:
            self._feature(bridge.announce_write(len(command)))
            self.device.write(bridge.out_report(command))
            self._feature(bridge.request_read(reply_length))
            deadline = time.monotonic() + self.timeout
            while not assembler.complete:
                remaining_ms = int((deadline - time.monotonic()) * 1000)
                if remaining_ms <= 0:
                    raise NoReply(f"short read: {assembler.received} of {reply_length} bytes")
                report = self.device.read(bridge.REPORT_SIZE, remaining_ms)
                if report:
                    assembler.feed(bytes(report))
        except bridge.BridgeError as err:
            raise NoReply(str(err)) from None
        except OSError as err:
            raise DeviceGone(str(err) or type(err).__name__) from None
        return assembler.reply

    def _feature(self, report: bytes) -> None:
        if self.device.send_feature_report(report) < 0:
            raise NoReply(f"feature report {report[:3].hex(' ')} stalled")

    def close(self) -> None:
        self.device.close()


class SerialTransport:
    """TC0521-class meters: the same commands and replies, raw on a serial port."""

    def __init__(self, port: str, baudrate: int, timeout: float) -> None:
        try:
            self.serial = serial.Serial(port, baudrate, timeout=timeout, write_timeout=timeout,
                                        exclusive=True)
        except (serial.SerialException, OSError) as err:
            raise DeviceGone(f"cannot open {port}: {err}") from None
        self.port = port

    def exchange(self, command: bytes, reply_length: int) -> bytes:
        try:
            self.serial.reset_input_buffer()
            self.serial.write(command)
            reply = self.serial.read(reply_length)
        except (serial.SerialException, OSError, termios.error) as err:
            # termios.error (from tcflush) is what a vanished pty or USB adapter raises
            # first, and it is not an OSError.
            raise DeviceGone(f"{self.port}: {err}") from None
        if len(reply) < reply_length:
            raise NoReply(f"short read: {len(reply)} of {reply_length} bytes")
        return reply

    def close(self) -> None:
        self.serial.close()
