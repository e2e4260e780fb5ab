"""SE521 / 52x-family frames, sans I/O: commands out as bytes, replies in as readings.

The frame layout is in the plugin README ("Protocol"). Every reply is checked (length,
STX, ETX, checksum, counter echo) and a frame failing any check raises ``FrameError``
naming the check, so that a corrupted frame can be counted and skipped but never
becomes a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

STX, ETX = 0x02, 0x03
READ, MODEL = 0x41, 0x4B  # 'A' status + temperatures, 'K' model query
READING_LENGTH = 64
MODEL_LENGTH = 32
CHANNELS = ("T1", "T2", "T3", "T4")

Unit = Literal["C", "F"]
ChannelState = Literal["ok", "unplugged", "over_limit"]
Check = Literal["length", "stx", "etx", "checksum", "counter", "model"]

_MODES = ((0, "max"), (1, "min"), (2, "avg"))
_THERMOCOUPLES = ((0, "K"), (1, "J"), (2, "E"), (3, "T"))


class FrameError(ValueError):
    """A reply that failed one of the frame checks; ``check`` says which."""

    def __init__(self, check: Check, detail: str) -> None:
        super().__init__(f"{check}: {detail}")
        self.check = check


@dataclass(frozen=True, slots=True)
class Channel:
    """One thermocouple input as the instrument reported it, in its display unit."""

    raw: int
    """Signed tenths of a degree, or whole degrees when ``whole_degrees``."""
    whole_degrees: bool = False
    over_limit: bool = False
    unplugged: bool = False

    @property
    def state(self) -> ChannelState:
        # An unplugged probe also sets its over-limit bit: unplugged wins.
        if self.unplugged:
            return "unplugged"
        return "over_limit" if self.over_limit else "ok"

    @property
    def value(self) -> float | None:
        """Degrees in the instrument's unit; None when the value means nothing."""
        if self.state != "ok":
            return None
        return float(self.raw) if self.whole_degrees else self.raw / 10


@dataclass(frozen=True, slots=True)
class Reading:
    """Everything one 'A' reply says."""

    channels: tuple[Channel, Channel, Channel, Channel]
    difference: Channel
    """T1 - T2 in the display unit; meaningful only when T1 and T2 are."""
    unit: Unit
    battery: int
    """Battery byte: 0..3 on the instruments seen, about 33 % a step."""
    hold: bool = False
    recording: bool = False
    memory_full: bool = False
    alarm: bool = False
    over: bool = False
    under: bool = False
    difference_mode: bool = False
    recall: bool = False
    bluetooth: bool = False
    min_max_mode: bool = False
    statistic: str = ""
    """Which statistic the display shows in min/max/avg mode: "max", "min", "avg" or ""."""
    thermocouple: str = "K"
    counter: int = 0

    @property
    def battery_percent(self) -> int:
        return min(100, self.battery * 33)


def command(code: int, counter: int) -> bytes:
    """A 7-byte command: ``02 CMD 00 00 00 counter 03``."""
    return bytes((STX, code, 0, 0, 0, counter & 0xFF, ETX))


def read_command(counter: int) -> bytes:
    return command(READ, counter)


def model_command(counter: int) -> bytes:
    return command(MODEL, counter)


def checksum(frame: bytes) -> int:
    """Sum of bytes 1..61, modulo 256."""
    return sum(frame[1:62]) & 0xFF


def decode_reading(frame: bytes, counter: int | None = None) -> Reading:
    """Check and decode a 64-byte 'A' reply; ``counter`` is the one the command carried."""
    if len(frame) != READING_LENGTH:
        raise FrameError("length", f"{len(frame)} bytes, expected {READING_LENGTH}")
    if frame[0] != STX:
        raise FrameError("stx", f"first byte {frame[0]:#04x}")
    if frame[63] != ETX:
        raise FrameError("etx", f"last byte {frame[63]:#04x}")
    if frame[62] != checksum(frame):
        raise FrameError("checksum", f"{frame[62]:#04x}, computed {checksum(frame):#04x}")
    if counter is not None and frame[61] != counter & 0xFF:
        raise FrameError("counter", f"echo {frame[61]}, sent {counter & 0xFF}")
    flags, status, modes, kind, limits = frame[2], frame[3], frame[4], frame[5], frame[6]
    channels = tuple(
        Channel(
            raw=int.from_bytes(frame[9 + 2 * i:11 + 2 * i], "big", signed=True),
            whole_degrees=bool(flags >> (2 + i) & 1),
            over_limit=bool(limits >> i & 1),
            unplugged=bool(limits >> (4 + i) & 1),
        )
        for i in range(4)
    )
    t1, t2 = channels[0], channels[1]
    difference = Channel(
        raw=int.from_bytes(frame[17:19], "big", signed=True),
        whole_degrees=bool(flags >> 6 & 1),
        over_limit=t1.over_limit or t2.over_limit,
        unplugged=t1.unplugged or t2.unplugged,
    )
    return Reading(
        channels=channels,  # type: ignore[arg-type]
        difference=difference,
        unit="C" if flags >> 7 & 1 else "F",
        battery=frame[1],
        difference_mode=bool(flags & 1),
        recall=bool(flags >> 1 & 1),
        alarm=bool(status & 1),
        over=bool(status >> 1 & 1),
        under=bool(status >> 2 & 1),
        recording=bool(status >> 3 & 1),
        memory_full=bool(status >> 4 & 1),
        hold=bool(status >> 5 & 1),
        min_max_mode=bool(status >> 6 & 1),
        bluetooth=bool(status >> 7 & 1),
        statistic=next((name for bit, name in _MODES if modes >> bit & 1), ""),
        thermocouple=next((name for bit, name in _THERMOCOUPLES if kind >> bit & 1), ""),
        counter=frame[61],
    )


def encode_reading(reading: Reading) -> bytes:
    """The 64-byte reply an instrument sends for ``reading`` (the emulator's half)."""
    frame = bytearray(READING_LENGTH)
    frame[0], frame[63] = STX, ETX
    frame[1] = reading.battery & 0xFF
    flags = reading.difference_mode | reading.recall << 1 | reading.difference.whole_degrees << 6
    flags |= (reading.unit == "C") << 7
    limits = 0
    for i, channel in enumerate(reading.channels):
        flags |= channel.whole_degrees << (2 + i)
        limits |= channel.over_limit << i | channel.unplugged << (4 + i)
        frame[9 + 2 * i:11 + 2 * i] = channel.raw.to_bytes(2, "big", signed=True)
    frame[17:19] = reading.difference.raw.to_bytes(2, "big", signed=True)
    frame[2] = flags
    frame[3] = (reading.alarm | reading.over << 1 | reading.under << 2 | reading.recording << 3
                | reading.memory_full << 4 | reading.hold << 5 | reading.min_max_mode << 6
                | reading.bluetooth << 7)
    frame[4] = sum(1 << bit for bit, name in _MODES if name == reading.statistic)
    frame[4] |= bool(reading.statistic) << 3
    frame[5] = sum(1 << bit for bit, name in _THERMOCOUPLES if name == reading.thermocouple)
    frame[6] = limits
    frame[61] = reading.counter & 0xFF
    frame[62] = checksum(frame)
    return bytes(frame)


def decode_model(frame: bytes) -> str:
    """The model number from a 32-byte 'K' reply ("521" for an SE521)."""
    if len(frame) != MODEL_LENGTH:
        raise FrameError("length", f"{len(frame)} bytes, expected {MODEL_LENGTH}")
    code = frame[23:26]
    if not code.isdigit():
        raise FrameError("model", f"no model number at bytes 23..25: {code!r}")
    return code.decode("ascii")


def encode_model(model: str) -> bytes:
    """A 32-byte 'K' reply carrying ``model`` (the emulator's half)."""
    frame = bytearray(MODEL_LENGTH)
    frame[0], frame[31] = STX, ETX
    frame[23:26] = model.encode("ascii")[:3].rjust(3, b"0")
    return bytes(frame)


def to_celsius(value: float, unit: Unit) -> float:
    """A temperature in °C, rounded to 0.01 (finer than the 0.1 °F the meter resolves)."""
    return round(value if unit == "C" else (value - 32) * 5 / 9, 2)


def difference_to_celsius(value: float, unit: Unit) -> float:
    """A temperature difference in °C: a difference carries no 32° offset."""
    return round(value if unit == "C" else value * 5 / 9, 2)
