"""Spools written before records could be resynchronised (``*.seg`` files and a
``cursor`` file): what they still hold is moved into the current format once, at open,
so an upgrade delivers it instead of leaving it behind.

In that format a damaged record hides the rest of its segment; those bytes are
reported as unreadable (their metrics cannot be counted) and the files are removed
only after everything readable was stored again.
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from collector.plugin import Refused

_RECORD = struct.Struct("<III")  # payload length, metric count, crc32 of payload
_CURSOR = struct.Struct("<QQI")  # segment id, offset, crc32 of the two
_SUFFIX = ".seg"


def import_legacy(directory: Path, name: str, log: logging.Logger,
                  append: Callable[[bytes, int], None]) -> None:
    """Append every unacknowledged legacy record with ``append``, then remove the files.

    If ``append`` refuses (disk full), the legacy files stay for the next start; a crash
    half-way appends some records twice (delivery is at-least-once anyway).
    """
    segments = sorted(directory.glob(f"*{_SUFFIX}"))
    if not segments:
        return
    acked_segment, acked_offset = _cursor(directory / "cursor")
    moved = 0
    try:
        for path in segments:
            ident = int(path.stem)
            if ident < acked_segment:
                continue
            start = acked_offset if ident == acked_segment else 0
            for payload, count in _records(path, start, name, log):
                append(payload, count)
                moved += count
    except Refused as err:
        log.error("%s: cannot move the previous spool format's records yet (%s); will try "
                  "again at the next start", name, err)
        return
    for path in segments:
        path.unlink()
    for leftover in ("cursor", "cursor.tmp"):
        (directory / leftover).unlink(missing_ok=True)
    log.warning("%s: moved %d metrics from the previous spool format", name, moved)


def _cursor(path: Path) -> tuple[int, int]:
    try:
        raw = path.read_bytes()
        segment, offset, crc = _CURSOR.unpack(raw)
    except (OSError, struct.error):
        return 0, 0
    return (segment, offset) if zlib.crc32(raw[:16]) == crc else (0, 0)


def _records(path: Path, start: int, name: str, log: logging.Logger
             ) -> Iterator[tuple[bytes, int]]:
    data = path.read_bytes()
    offset = start
    while offset + _RECORD.size <= len(data):
        length, count, crc = _RECORD.unpack_from(data, offset)
        end = offset + _RECORD.size + length
        payload = data[offset + _RECORD.size:end]
        if end > len(data) or zlib.crc32(payload) != crc:
            break
        yield payload, count
        offset = end
    if offset < len(data):
        log.error("%s: %d bytes at the end of %s (previous spool format) could not be read "
                  "(an unfinished append, or damage) and were skipped",
                  name, len(data) - offset, path.name)
