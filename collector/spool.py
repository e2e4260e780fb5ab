"""A durable, bounded, ordered queue of line-protocol records on disk, one per output.

Layout: numbered segment files of CRC-framed records, plus a ``cursor`` file holding
the position up to which the output has acknowledged delivery. ``append`` returns only
after the record is written (and fdatasync'ed when durability is on), so what the agent
acknowledges survives ``kill -9`` and power loss. On open, a torn tail left by a crash
is cut off at the last intact record. Delivery is at-least-once: a crash between a
write and the cursor update replays that batch, which InfluxDB stores idempotently.

When full, the overflow policy drops whole segments of the oldest data
(``drop_oldest``) or refuses new records (``drop_newest``); every dropped metric is
counted and each overflow episode is logged once when it starts and once when it ends.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

_HEADER = struct.Struct("<III")  # payload length, metric count, crc32 of payload
_CURSOR = struct.Struct("<QQI")  # segment id, offset, crc32 of the two
_SUFFIX = ".seg"


@dataclass(frozen=True, order=True)
class Position:
    segment: int
    offset: int


@dataclass(frozen=True)
class Batch:
    """Records read together; ``end`` is what to acknowledge once they are delivered."""

    payload: bytes
    count: int
    end: Position


@dataclass
class _Segment:
    ident: int
    path: Path
    size: int = 0
    count: int = 0


class Spool:
    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        overflow: str = "drop_oldest",
        fsync: bool = True,
        log: logging.Logger | None = None,
        segment_bytes: int | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.overflow = overflow
        self.fsync = fsync
        self.log = log or logging.getLogger(__name__)
        self.segment_bytes = segment_bytes or max(4096, min(max_bytes // 16, 16 * 2**20))
        self.dropped = 0
        self.changed = threading.Condition()
        self._episode_drops = 0
        self._segments: list[_Segment] = []
        self._acked = Position(0, 0)
        self._read = Position(0, 0)
        self._read_count_in_segment = 0
        self._pending = 0
        self._fd: int | None = None
        self.directory.mkdir(parents=True, exist_ok=True)
        self._recover()

    # ---------------------------------------------------------------- writing
    def append(self, payload: bytes, count: int) -> bool:
        """Store one record durably; False if the overflow policy refused it."""
        record = _HEADER.pack(len(payload), count, zlib.crc32(payload)) + payload
        with self.changed:
            if not self._make_room(len(record), count):
                return False
            segment = self._segments[-1]
            if segment.size and segment.size + len(record) > self.segment_bytes:
                segment = self._rotate()
            _write_all(self._fd, record)
            if self.fsync:
                os.fdatasync(self._fd)
            segment.size += len(record)
            segment.count += count
            self._pending += count
            self._end_episode_if_over()
            self.changed.notify_all()
        return True

    def _make_room(self, size: int, count: int) -> bool:
        if size > self.max_bytes:
            self._drop(count, "a record larger than the whole spool")
            return False
        if self.bytes + size <= self.max_bytes:
            return True
        if self.overflow == "drop_newest":
            self._drop(count, "spool full, dropping newest metrics")
            return False
        if self._segments[-1].size:
            self._rotate()
        while self.bytes + size > self.max_bytes and len(self._segments) > 1:
            oldest = self._segments.pop(0)
            lost = self._unread_in(oldest)
            self._pending -= lost
            oldest.path.unlink(missing_ok=True)
            self._drop(lost, "spool full, dropping oldest metrics")
        return True

    def _unread_in(self, segment: _Segment) -> int:
        if segment.ident < self._read.segment:
            return 0
        if segment.ident == self._read.segment:
            return segment.count - self._read_count_in_segment
        return segment.count

    def _drop(self, count: int, why: str) -> None:
        if self._episode_drops == 0:
            self.log.warning("%s: %s", self.directory.name, why)
        self._episode_drops += count
        self.dropped += count

    def _end_episode_if_over(self) -> None:
        if self._episode_drops and self.bytes < self.max_bytes * 0.9:
            self.log.warning("%s: overflow ended, %d metrics dropped",
                             self.directory.name, self._episode_drops)
            self._episode_drops = 0

    def _rotate(self) -> _Segment:
        last = self._segments[-1].ident if self._segments else 0
        ident = max(last, self._acked.segment) + 1
        segment = _Segment(ident, self.directory / f"{ident:016d}{_SUFFIX}")
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(segment.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if self.fsync:
            _fsync_dir(self.directory)
        self._segments.append(segment)
        return segment

    # ---------------------------------------------------------------- reading
    def read_batch(self, max_count: int) -> Batch | None:
        """The next unread records, up to ``max_count`` metrics (at least one record)."""
        with self.changed:
            chunks: list[bytes] = []
            count = 0
            while count < max_count:
                index = self._reader_segment()
                if index is None:
                    break
                segment = self._segments[index]
                if self._read.offset >= segment.size:
                    if index + 1 == len(self._segments):
                        break
                    self._read = Position(self._segments[index + 1].ident, 0)
                    self._read_count_in_segment = 0
                    continue
                offset, got = _read_records(segment, self._read.offset, max_count - count,
                                            chunks, allow_over=not count)
                if offset == self._read.offset and got == 0:
                    if count:
                        break
                    self._skip_corrupt(segment)
                    continue
                count += got
                self._read_count_in_segment += got
                self._read = Position(segment.ident, offset)
            if not count:
                return None
            self._pending -= count
            return Batch(b"".join(chunks), count, self._read)

    def _skip_corrupt(self, segment: _Segment) -> None:
        self.log.error("%s: unreadable record in %s at %d, skipping the rest of it",
                       self.directory.name, segment.path.name, self._read.offset)
        lost = segment.count - self._read_count_in_segment
        self._pending -= lost
        self.dropped += lost
        segment.count = self._read_count_in_segment
        self._read = Position(segment.ident, segment.size)

    def ack(self, batch: Batch) -> None:
        """Delivery of ``batch`` is done: persist the cursor and free whole segments."""
        with self.changed:
            if batch.end <= self._acked:
                return
            self._acked = batch.end
            _write_cursor(self.directory, self._acked, self.fsync)
            while len(self._segments) > 1 and _fully_acked(self._segments[0], self._acked):
                self._segments.pop(0).path.unlink(missing_ok=True)
            self.changed.notify_all()

    def _reader_segment(self) -> int | None:
        """Index of the segment being read, moving on if it was freed or dropped."""
        for index, segment in enumerate(self._segments):
            if segment.ident == self._read.segment:
                return index
            if segment.ident > self._read.segment:
                self._read = Position(segment.ident, 0)
                self._read_count_in_segment = 0
                return index
        return None

    # ---------------------------------------------------------------- state
    @property
    def bytes(self) -> int:
        """Bytes on disk, acknowledged-but-not-yet-freed included."""
        return sum(segment.size for segment in self._segments)

    @property
    def pending(self) -> int:
        """Metrics stored and not yet handed out by read_batch."""
        return self._pending

    def close(self) -> None:
        with self.changed:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _recover(self) -> None:
        """Load segments, check every record, cut a torn tail, position at the cursor."""
        self._acked = _read_cursor(self.directory)
        paths = sorted(self.directory.glob(f"*{_SUFFIX}"))
        for path in paths:
            ident = int(path.stem)
            if ident < self._acked.segment:
                path.unlink()
                continue
            segment = _Segment(ident, path)
            segment.size, segment.count, skip = _scan_segment(path, self._acked, ident)
            if segment.size < path.stat().st_size:
                self.log.warning("%s: cut %d torn bytes off %s", self.directory.name,
                                 path.stat().st_size - segment.size, path.name)
                os.truncate(path, segment.size)
            self._segments.append(segment)
            self._pending += segment.count - skip
            if ident == self._acked.segment:
                self._read_count_in_segment = skip
        self._rotate()
        self._read = self._acked
        if self._acked.segment < self._segments[0].ident:
            self._read = Position(self._segments[0].ident, 0)
            self._read_count_in_segment = 0


def _fully_acked(segment: _Segment, acked: Position) -> bool:
    return segment.ident < acked.segment or (
        segment.ident == acked.segment and segment.size <= acked.offset
    )


def _scan_segment(path: Path, acked: Position, ident: int) -> tuple[int, int, int]:
    """Valid size, metric count, and metrics before the cursor in this segment."""
    data = path.read_bytes()
    offset = count = skip = 0
    while offset + _HEADER.size <= len(data):
        length, records, crc = _HEADER.unpack_from(data, offset)
        end = offset + _HEADER.size + length
        if end > len(data) or zlib.crc32(data[offset + _HEADER.size:end]) != crc:
            break
        if ident == acked.segment and end <= acked.offset:
            skip += records
        count += records
        offset = end
    return offset, count, skip


def _read_records(segment: _Segment, offset: int, max_count: int, out: list[bytes],
                  allow_over: bool) -> tuple[int, int]:
    """Append whole intact records from ``offset`` to ``out``; the new offset and count.

    ``allow_over`` lets a lone record larger than ``max_count`` through, so a batch is
    never empty while data waits.
    """
    count = 0
    with open(segment.path, "rb") as handle:
        handle.seek(offset)
        while offset < segment.size:
            header = handle.read(_HEADER.size)
            if len(header) < _HEADER.size:
                break
            length, records, crc = _HEADER.unpack(header)
            if count + records > max_count and not (allow_over and count == 0):
                break
            payload = handle.read(length)
            if len(payload) != length or zlib.crc32(payload) != crc:
                break
            out.append(payload)
            count += records
            offset += _HEADER.size + length
            if count >= max_count:
                break
    return offset, count


def _read_cursor(directory: Path) -> Position:
    try:
        raw = (directory / "cursor").read_bytes()
        segment, offset, crc = _CURSOR.unpack(raw)
    except (OSError, struct.error):
        return Position(0, 0)
    if zlib.crc32(raw[:16]) != crc:
        return Position(0, 0)
    return Position(segment, offset)


def _write_cursor(directory: Path, position: Position, fsync: bool) -> None:
    body = struct.pack("<QQ", position.segment, position.offset)
    tmp = directory / "cursor.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _write_all(fd, body + struct.pack("<I", zlib.crc32(body)))
        if fsync:
            os.fdatasync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, directory / "cursor")
    if fsync:
        _fsync_dir(directory)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
