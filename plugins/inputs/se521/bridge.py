"""The Holtek HID-to-UART bridge (USB 04d9:e000) framing, sans I/O.

Per transaction (the plugin README, "Protocol"): a feature report announces the bytes
the host will write, an interrupt OUT report carries them behind a length byte, a
second feature report asks for N bytes back, and they arrive in 32-byte IN reports of
``[count, payload...]`` with count <= 31.
"""

from __future__ import annotations

VENDOR_ID, PRODUCT_ID = 0x04D9, 0xE000
REPORT_SIZE = 32
PAYLOAD_PER_REPORT = REPORT_SIZE - 1
_FEATURE = 0x43
_WRITE, _READ = 0x01, 0x04


class BridgeError(ValueError):
    """An IN report that cannot be part of a reply."""


def announce_write(length: int) -> bytes:
    """Feature report ``43 01 LEN 00 00 00 00 00``."""
    return bytes((_FEATURE, _WRITE, length, 0, 0, 0, 0, 0))


def request_read(length: int) -> bytes:
    """Feature report ``43 04 N 00 00 00 00 00``."""
    return bytes((_FEATURE, _READ, length, 0, 0, 0, 0, 0))


def out_report(payload: bytes) -> bytes:
    """The interrupt OUT report: a length byte, then the payload."""
    if len(payload) > PAYLOAD_PER_REPORT:
        raise ValueError(f"{len(payload)} bytes do not fit one OUT report")
    return bytes((len(payload),)) + payload


def parse_feature(report: bytes) -> tuple[str, int]:
    """("write", LEN) or ("read", N) from a feature report (the emulator's half)."""
    if len(report) < 3 or report[0] != _FEATURE or report[1] not in (_WRITE, _READ):
        raise BridgeError(f"not a bridge feature report: {report.hex(' ')}")
    return ("write" if report[1] == _WRITE else "read"), report[2]


def in_reports(payload: bytes) -> list[bytes]:
    """The IN reports that carry ``payload`` back to the host (the emulator's half)."""
    reports = []
    for start in range(0, len(payload), PAYLOAD_PER_REPORT):
        chunk = payload[start:start + PAYLOAD_PER_REPORT]
        reports.append(bytes((len(chunk),)) + chunk.ljust(PAYLOAD_PER_REPORT, b"\0"))
    return reports


class ReplyAssembler:
    """Collects IN reports until the ``expected`` reply bytes are in."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self._data = bytearray()

    def feed(self, report: bytes) -> None:
        if not report:
            raise BridgeError("empty IN report")
        count = report[0]
        if count > PAYLOAD_PER_REPORT or count > len(report) - 1:
            raise BridgeError(f"IN report claims {count} bytes in {len(report) - 1}")
        self._data += report[1:1 + count]

    @property
    def complete(self) -> bool:
        return len(self._data) >= self.expected

    @property
    def reply(self) -> bytes:
        return bytes(self._data[:self.expected])

    @property
    def received(self) -> int:
        return len(self._data)
