"""What is attached (serial ports, HID devices) and which input plugin fits each.

The core only lists; plugins recognise their devices through identifiers registered
under the ``collector.devices`` entry-point group, so a third-party plugin shows up in
``collector devices`` the same way. An identifier may talk to the device (the SE521's
generic USB id is only confirmed by its answer to a model query).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from serial.tools import list_ports

from collector import registry


@dataclass(frozen=True)
class AttachedDevice:
    kind: Literal["serial", "hid"]
    path: str
    vendor_id: int | None
    product_id: int | None
    serial_number: str
    description: str

    @property
    def usb_id(self) -> str:
        if self.vendor_id is None or self.product_id is None:
            return "-"
        return f"{self.vendor_id:04x}:{self.product_id:04x}"


Identifier = Callable[[AttachedDevice], "str | None"]
"""Says what a device is to its plugin (e.g. 'inputs.se521, model 521'), or None."""


def attached() -> list[AttachedDevice]:
    """Serial ports with a real device behind them, then every HID device."""
    found = [
        AttachedDevice("serial", port.device, port.vid, port.pid, port.serial_number or "",
                       port.description or "")
        for port in list_ports.comports()
    ]
    try:
        import hidraw
    except ImportError:
        return found
    for info in hidraw.enumerate():
        path = info.get("path", b"")
        found.append(AttachedDevice(
            "hid", path.decode(errors="replace") if isinstance(path, bytes) else str(path),
            info.get("vendor_id"), info.get("product_id"), info.get("serial_number") or "",
            " ".join(filter(None, (info.get("manufacturer_string"),
                                   info.get("product_string")))),
        ))
    return found


def identifiers() -> list[Identifier]:
    """Every registered identifier, loaded once for a whole listing."""
    return [registry.load("devices", name) for name in registry.available("devices")]


def report(devices: list[AttachedDevice]) -> str:
    """The table ``collector devices`` prints."""
    if not devices:
        return "no serial ports or HID devices found"
    known = identifiers()
    rows = [("kind", "path", "usb id", "serial", "description", "plugin")]
    for device in devices:
        verdicts = [verdict for identify in known if (verdict := identify(device))]
        rows.append((device.kind, device.path, device.usb_id, device.serial_number or "-",
                     device.description or "-", "; ".join(verdicts) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True))
        + "  " + row[-1]
        for row in rows
    )
