"""Finding, opening and reading one SE521: a transport plus the command counter.

Opening tells "absent" (nothing there to open: ``DeviceAbsent``) from "present but
not answering" (``TransportError``), which is what the health signal reports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from plugins.inputs.se521 import bridge, codec
from plugins.inputs.se521.transport import (
    HidBackend,
    HidTransport,
    NoReply,
    SerialTransport,
    Transport,
    TransportError,
)


class DeviceAbsent(Exception):
    """No device matching the configuration is attached."""


@dataclass
class Link:
    """An open instrument."""

    transport: Transport
    device: str
    """What the ``device`` tag says: the HID serial number or path, or the serial port."""
    path: str
    """The hidraw path or serial port, to look for the device after an I/O error."""
    model: str
    counter: int = 0

    def read(self) -> codec.Reading:
        """One 'A' exchange; raises TransportError or codec.FrameError."""
        self.counter = (self.counter + 1) & 0xFF
        reply = self.transport.exchange(codec.read_command(self.counter), codec.READING_LENGTH)
        return codec.decode_reading(reply, self.counter)

    def ask_model(self) -> str:
        self.counter = (self.counter + 1) & 0xFF
        reply = self.transport.exchange(codec.model_command(self.counter), codec.MODEL_LENGTH)
        return codec.decode_model(reply)

    def close(self) -> None:
        self.transport.close()


def open_serial(port: str, baudrate: int, timeout: float) -> Link:
    """Open a serial meter; its model is asked but not required (not every one answers)."""
    if not os.path.exists(port):
        raise DeviceAbsent(port)
    link = Link(SerialTransport(port, baudrate, timeout), port, port, "")
    try:
        link.model = link.ask_model()
    except (NoReply, codec.FrameError):
        link.model = "unknown"
    except TransportError:
        link.close()
        raise
    return link


def hid_candidates(backend: HidBackend, path: str = "", serial_number: str = "") -> list[dict]:
    """Attached 04d9:e000 bridges, narrowed to the configured path or serial number."""
    found = backend.enumerate(bridge.VENDOR_ID, bridge.PRODUCT_ID)
    wanted = os.path.realpath(path) if path else ""  # a udev symlink names the hidraw node
    return [
        info for info in found
        if (not wanted or os.path.realpath(_text(info.get("path"))) == wanted)
        and (not serial_number or info.get("serial_number") == serial_number)
    ]


def open_hid(backend: HidBackend, timeout: float, path: str = "",
             serial_number: str = "") -> Link:
    """Open the first matching bridge whose instrument answers the 'K' model query.

    The USB id is generic (other Holtek-bridged products share it), so a device is
    only taken once 'K' names a model.
    """
    candidates = hid_candidates(backend, path, serial_number)
    if not candidates:
        raise DeviceAbsent(path or serial_number or "04d9:e000")
    failures = []
    for info in candidates:
        path = _text(info.get("path"))
        name = info.get("serial_number") or path
        try:
            link = Link(HidTransport(backend.open_path(info["path"]), timeout), name, path, "")
        except TransportError as err:
            failures.append(f"{name}: {err}")
            continue
        try:
            link.model = link.ask_model()
        except (TransportError, codec.FrameError) as err:
            link.close()
            failures.append(f"{name}: no model reply ({err})")
            continue
        return link
    raise NoReply("; ".join(failures))


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")
