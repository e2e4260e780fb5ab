"""``collector devices``: is this HID device an SE521? Only its answer to 'K' tells.

The bridge's USB id 04d9:e000 is generic (other Holtek-bridged products use it), so
the device is opened and asked for its model.
"""

from __future__ import annotations

from collector import AttachedDevice
from plugins.inputs.se521 import bridge
from plugins.inputs.se521.device import DeviceAbsent, open_hid
from plugins.inputs.se521.transport import Hidapi, HidBackend, TransportError


def identify(device: AttachedDevice, backend: HidBackend | None = None) -> str | None:
    if device.kind != "hid" or (device.vendor_id, device.product_id) != (
            bridge.VENDOR_ID, bridge.PRODUCT_ID):
        return None
    try:
        link = open_hid(backend or Hidapi(), timeout=0.5, path=device.path)
    except (DeviceAbsent, TransportError):
        return ("04d9:e000 without an SE521 answer to 'K': another Holtek-bridged product, "
                "switched off, or no permission (see the se521 README's udev rule)")
    link.close()
    return f'inputs.se521, model {link.model}: hid_path = "{device.path}"'
