"""The spool's bytes on disk: record frames that can be found again after damage, and
the two-slot acknowledgement cursor. Pure code (bytes in, items out), so it can be
fuzzed; ``collector.spool`` does the file I/O.

A record is a 28-byte header and its payload::

    magic "\\xffCS2" | payload length u32 | metrics u32 | appended at, ns u64
    | crc32 of payload u32 | crc32 of the header's first 24 bytes u32

The magic starts with 0xFF, a byte UTF-8 text never contains, so it cannot occur inside
a line-protocol payload; the header's own CRC tells a real header from a chance match
in binary fields. A damaged record therefore costs that record alone: a bad payload
CRC under a good header skips exactly that record (its metric count is known), and a
bad header is skipped by searching for the next valid header.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import NamedTuple

MAGIC = b"\xffCS2"
HEADER = struct.Struct("<4sIIQII")
_CHECKED = HEADER.size - 4
"""Bytes of the header its CRC covers: all but the CRC itself."""


_HEAD = struct.Struct("<4sIIQI")
_CRC = struct.Struct("<I")


def frame(payload: bytes, count: int, appended_ns: int) -> bytes:
    """One record, ready to append."""
    head = _HEAD.pack(MAGIC, len(payload), count, appended_ns, zlib.crc32(payload))
    return head + _CRC.pack(zlib.crc32(head)) + payload


class Record(NamedTuple):
    """An intact record at ``start``; its payload is the bytes from ``start +
    HEADER.size`` to ``end``. (Named tuples: one is made per record read.)"""

    start: int
    end: int
    count: int
    appended_ns: int


class Damage(NamedTuple):
    """Bytes that held a record but fail their checks, followed by an intact record.

    ``count`` comes from the header when the header is intact (exact), else it is None
    and the caller may estimate it from the payload bytes after the header's place.
    """

    start: int
    end: int
    count: int | None


class Unfinished(NamedTuple):
    """Bytes at the end that do not make a whole record: an append cut off by a crash or
    a full disk, which therefore never returned, so nothing in it was acknowledged."""

    start: int
    end: int


Item = Record | Damage | Unfinished


def header_at(data: bytes, offset: int) -> tuple[int, int, int, int] | None:
    """(payload length, metrics, appended ns, payload crc) of a valid header, else None."""
    if len(data) - offset < HEADER.size:
        return None
    magic, length, count, appended, payload_crc, crc = HEADER.unpack_from(data, offset)
    if magic != MAGIC or zlib.crc32(memoryview(data)[offset:offset + _CHECKED]) != crc:
        return None
    return length, count, appended, payload_crc


def scan(data: bytes, offset: int = 0, base: int = 0) -> Iterator[Item]:
    """Every record from ``offset`` to the end of ``data``, damaged stretches included.

    The items cover ``[offset, len(data))`` without gaps or overlap, in order; their
    offsets are shifted by ``base`` (where ``data`` was read from in its file).
    """
    view = memoryview(data)
    end = len(data)
    unpack = HEADER.unpack_from
    crc32 = zlib.crc32
    size = HEADER.size
    while offset < end:
        if end - offset >= size:
            magic, length, count, appended, payload_crc, crc = unpack(data, offset)
            valid = magic == MAGIC and crc32(view[offset:offset + _CHECKED]) == crc
        else:
            valid = False
        if not valid:
            following = _next_header(data, offset + 1)
            if following is None:
                yield Unfinished(base + offset, base + end)
                return
            yield Damage(base + offset, base + following, None)
            offset = following
            continue
        record_end = offset + size + length
        if record_end > end:
            yield Unfinished(base + offset, base + end)
            return
        if crc32(view[offset + size:record_end]) != payload_crc:
            yield Damage(base + offset, base + record_end, count)
        else:
            yield Record(base + offset, base + record_end, count, appended)
        offset = record_end


def intact_run(data: bytes, offset: int, max_count: int, taken: int,
               payloads: list[memoryview]) -> tuple[int, int]:
    """Whole intact records from ``offset`` while a batch already holding ``taken``
    metrics stays within ``max_count`` (its first record goes in whatever its size):
    their payloads go to ``payloads``; returns where the run ends and its metrics. It
    stops before anything else, which ``scan`` then says what it is.

    The reader's fast path: no object per record, which is what replaying a backlog of
    one-metric records (a streaming input's pushes) costs most.
    """
    view = memoryview(data)
    end = len(data)
    unpack = HEADER.unpack_from
    crc32 = zlib.crc32
    size = HEADER.size
    count = taken
    while offset + size <= end:
        magic, length, metrics, _, payload_crc, crc = unpack(data, offset)
        record_end = offset + size + length
        if (magic != MAGIC or record_end > end or (count and count + metrics > max_count)
                or crc32(view[offset:offset + _CHECKED]) != crc
                or crc32(view[offset + size:record_end]) != payload_crc):
            break
        payloads.append(view[offset + size:record_end])
        count += metrics
        offset = record_end
        if count >= max_count:
            break
    return offset, count - taken


def _next_header(data: bytes, start: int) -> int | None:
    """Offset of the next valid header at or after ``start``."""
    position = data.find(MAGIC, start)
    while position >= 0:
        if header_at(data, position) is not None:
            return position
        position = data.find(MAGIC, position + 1)
    return None


# ---------------------------------------------------------------- cursor
CURSOR_MAGIC = b"\xffCC2"
CURSOR_SLOT = struct.Struct("<4sQQQI")
"""magic | sequence u64 | segment u64 | offset u64 | crc32 of the rest."""
CURSOR_FILE_SIZE = 2 * CURSOR_SLOT.size


def cursor_slot(sequence: int, segment: int, offset: int) -> tuple[int, bytes]:
    """Where in the cursor file to write this sequence number, and the bytes.

    Writes alternate between two slots, so a write torn by a power cut damages at most
    the slot being written and the other still holds the previous position.
    """
    body = struct.pack("<4sQQQ", CURSOR_MAGIC, sequence, segment, offset)
    return (sequence % 2) * CURSOR_SLOT.size, body + struct.pack("<I", zlib.crc32(body))


def read_cursor(data: bytes) -> tuple[int, int, int] | None:
    """(sequence, segment, offset) of the newest valid slot; None when neither is valid."""
    best = None
    for start in range(0, len(data) - CURSOR_SLOT.size + 1, CURSOR_SLOT.size):
        magic, sequence, segment, offset, crc = CURSOR_SLOT.unpack_from(data, start)
        if magic != CURSOR_MAGIC:
            continue
        if zlib.crc32(data[start:start + CURSOR_SLOT.size - 4]) != crc:
            continue
        if best is None or sequence > best[0]:
            best = (sequence, segment, offset)
    return best
