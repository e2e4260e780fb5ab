"""``collector devices``: RAVEn sticks and EMU-2s are known by their USB ids alone."""

from __future__ import annotations

from collector import AttachedDevice

MODELS = {(0x0403, 0x8A28): "Rainforest RAVEn", (0x04B4, 0x0003): "Rainforest EMU-2"}


def identify(device: AttachedDevice) -> str | None:
    model = MODELS.get((device.vendor_id, device.product_id))
    if device.kind != "serial" or model is None:
        return None
    return f'inputs.raven ({model}): port = "{device.path}"'
