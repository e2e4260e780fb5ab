"""A durable, bounded, ordered queue of line-protocol records on disk, one per output.

Layout: numbered segment files of framed records (``collector.spool_format``) and an
``ack`` file, the cursor up to which everything was delivered or dropped. ``append``
returns only after its record is written (and fdatasync'ed when durability is on), so
what the agent acknowledges survives ``kill -9`` and power loss; when it cannot write
(the disk is full or failing, or the overflow policy says no) it raises ``Refused``
and leaves the segment as it was, so the next append works as soon as space returns.

Delivery is at-least-once: a crash between a write and the cursor update replays that
batch, which InfluxDB stores idempotently. ``read_batch`` hands out one batch at a time
and hands out the same batch again until it is acknowledged.

Damage costs only what it hits. On open every record is checked: a damaged one is
skipped, its metrics counted as dropped (reason ``corrupt``) and logged, and reading
resumes at the next intact record; bytes at the end of a segment that do not make a
whole record are an append that never returned, and are cut.

Capacity: ``max_bytes`` bounds the bytes not yet delivered. When full, ``drop_oldest``
drops just enough of the oldest undelivered records (reason ``overflow``) and
``drop_newest`` refuses the new ones; each overflow episode is logged when it starts and
when it ends. Files may hold up to one more segment (``max_bytes / 32``) of delivered
data until that segment is finished.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from collector import spool_format
from collector.lineprotocol import count_lines
from collector.plugin import Refused
from collector.spool_format import HEADER, Damage, Record, Unfinished
from collector.spool_legacy import import_legacy

SUFFIX = ".rec"
CURSOR_NAME = "ack"
DRAINED_ROTATE_BYTES = 64 * 1024
"""A fully delivered active segment at least this big is replaced by a new one, so
delivered data does not sit on disk until the segment fills."""
DISK_QUIET_S = 5.0
"""A disk-full episode ends after this long without a failed append: a disk that
something else keeps filling frees and takes space all the time, and must not flood the
log with an error and a recovery line on every delivery."""
_READ_CHUNK_MIN = 64 * 1024
_READ_CHUNK_MAX = 8 * 2**20

SpoolState = Literal["ok", "full", "disk_error"]
STATE_CODES: dict[SpoolState, int] = {"ok": 0, "full": 1, "disk_error": 2}


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


@dataclass(eq=False)
class _Segment:
    ident: int
    path: Path
    size: int = 0
    """Bytes up to the end of the last whole record: what reads may cover."""
    damage: dict[int, int] = field(default_factory=dict)
    """Damaged stretches already counted as lost: start -> metrics, so they count once."""


class Spool:
    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        overflow: str = "drop_oldest",
        fsync: bool = True,
        log: logging.Logger | None = None,
        segment_bytes: int | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.overflow = overflow
        self.fsync = fsync
        self.log = log or logging.getLogger(__name__)
        self.segment_bytes = segment_bytes or max(4096, min(max_bytes // 32, 16 * 2**20))
        self.clock = clock
        self.dropped: Counter[str] = Counter()
        """Metrics that were acknowledged and then lost, by reason: overflow, corrupt."""
        self.refused: Counter[str] = Counter()
        """Metrics never acknowledged, by reason: full, too_large, disk."""
        self.changed = threading.Condition()
        self._segments: list[_Segment] = []
        self._fd: int | None = None
        self._done = Position(0, 0)
        """Everything before it was delivered or dropped."""
        self._read = Position(0, 0)
        """Where the next batch starts."""
        self._in_flight: Batch | None = None
        self._in_flight_bytes = 0
        self._pending = 0
        self._pending_bytes = 0
        self._closed = False
        self._overflow_episode = 0
        self._disk_episode_refused: int | None = None
        self._disk_failed_at = 0.0
        self._cursor = _Cursor(self.directory / CURSOR_NAME, fsync, self._name, self.log)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._recover()
        import_legacy(self.directory, self._name, self.log, self.append)

    @property
    def _name(self) -> str:
        return self.directory.name

    # ---------------------------------------------------------------- writing
    def append(self, payload: bytes, count: int) -> None:
        """Store one record durably, or raise ``Refused`` having stored nothing.

        The common case takes the short way through: every append of a streaming input
        pays for this code right after an fdatasync, on cold caches.
        """
        record = spool_format.frame(payload, count, self.clock())
        size = len(record)
        with self.changed:
            if self._closed:
                raise Refused("the output is stopping")
            if self._pending_bytes + self._in_flight_bytes + size > self.max_bytes:
                self._make_room(size, count)
            segment = self._segments[-1] if self._fd is not None else None
            try:
                if segment is None or (segment.size and
                                       segment.size + size > self.segment_bytes):
                    segment = self._rotate()
                self._write(segment, record)
            except OSError as err:
                self._refuse_disk(err, count)
            segment.size += size
            self._pending += count
            self._pending_bytes += size
            if self._disk_episode_refused is not None:
                self._end_disk_episode()
            if self._overflow_episode:
                self._end_overflow_episode_if_over()
            self.changed.notify_all()

    def _write(self, segment: _Segment, record: bytes) -> None:
        fd = self._fd
        assert fd is not None
        try:
            written = os.write(fd, record)
            while written < len(record):  # the next write says why the last one was short
                written += os.write(fd, memoryview(record)[written:])
            if self.fsync:
                os.fdatasync(fd)
        except OSError:
            self._undo_partial_write(segment)
            raise

    def _undo_partial_write(self, segment: _Segment) -> None:
        """Cut what a failed append left, so the segment stays readable; if even that
        fails, stop appending to it (the next append starts a new segment)."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, segment.size)
        except OSError:
            os.close(self._fd)
            self._fd = None

    def _rotate(self) -> _Segment:
        """Start a new segment; on failure nothing changes."""
        ident = max([s.ident for s in self._segments] + [self._done.segment]) + 1
        path = self.directory / f"{ident:016d}{SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            if self.fsync:
                _fsync_dir(self.directory)
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        if self._fd is not None:
            os.close(self._fd)
        self._fd = fd
        segment = _Segment(ident, path)
        self._segments.append(segment)
        return segment

    def _refuse_disk(self, err: OSError, count: int) -> None:
        self.refused["disk"] += count
        self._disk_failed_at = time.monotonic()
        if self._disk_episode_refused is None:
            self._disk_episode_refused = 0
            self.log.error("%s: cannot write to the spool (%s): refusing new metrics until "
                           "it can; what it already holds is kept", self._name,
                           err.strerror or err)
        self._disk_episode_refused += count
        raise Refused(f"cannot write to the spool: {err.strerror or err}",
                      storage_failed=True) from None

    def _end_disk_episode(self) -> None:
        if (self._disk_episode_refused is not None
                and time.monotonic() - self._disk_failed_at >= DISK_QUIET_S):
            self.log.warning("%s: spool writable again; %d metrics were refused meanwhile",
                             self._name, self._disk_episode_refused)
            self._disk_episode_refused = None

    def _make_room(self, size: int, count: int) -> None:
        """The spool is full: drop the oldest metrics, or refuse these."""
        if size > self.max_bytes:
            self.refused["too_large"] += count
            self.log.warning("%s: refused a record of %d bytes, larger than the whole spool "
                             "(%d bytes)", self._name, size, self.max_bytes)
            raise Refused("a record larger than the whole spool")
        if self.overflow == "drop_oldest":
            while self._used_bytes() + size > self.max_bytes and self._drop_oldest():
                pass
            if self._used_bytes() + size <= self.max_bytes:
                return
        self.refused["full"] += count
        self._overflow(count, "refusing new metrics")
        raise Refused("spool full")

    def _drop_oldest(self) -> bool:
        """Drop the oldest record not handed out yet; False when there is none."""
        located = self._locate(self._read)
        if located is None:
            return False
        segment, position = located
        item = self._item_at(segment, position.offset)
        count = self._lost_in(segment, item)
        if isinstance(item, Record):
            self.dropped["overflow"] += count
            self._overflow(count, "dropping the oldest metrics")
        self._pass(segment, item.end, count, item.end - position.offset)
        self._settle()
        self._free_segments()
        return True

    def _overflow(self, count: int, doing: str) -> None:
        if self._overflow_episode == 0:
            self.log.warning("%s: spool full (%d bytes): %s", self._name, self.max_bytes, doing)
        self._overflow_episode += count

    def _end_overflow_episode_if_over(self) -> None:
        if self._overflow_episode and self._used_bytes() < self.max_bytes * 0.9:
            self.log.warning("%s: spool no longer full; %d metrics dropped or refused meanwhile",
                             self._name, self._overflow_episode)
            self._overflow_episode = 0

    # ---------------------------------------------------------------- reading
    def read_batch(self, max_count: int) -> Batch | None:
        """The next records, up to ``max_count`` metrics (at least one record).

        Until it is acknowledged, the same batch is handed out again: a batch that
        failed is retried, never skipped. Files are read without holding the lock, so
        appends go on meanwhile; a drop that moved the reader meanwhile means reading
        again.
        """
        want = 0
        while True:
            with self.changed:
                if self._closed:
                    return None
                if self._in_flight is not None:
                    return self._in_flight
                located = self._locate(self._read)
                if located is None:
                    return None
                plan = self._plan(*located)
                want = max(want, self._chunk_bytes(max_count))
            reads = _read_planned(plan, want, max_count)
            if reads and reads[0].end == reads[0].start and reads[0].data is not None:
                want = _whole_record_bytes(reads[0].data, reads[0].limit - reads[0].start)
                continue
            with self.changed:
                if self._closed or self._locate(self._read) != located:
                    continue
                batch = self._hand_out(reads)
                if batch is not None:
                    return batch

    def _plan(self, segment: _Segment, start: Position) -> list[tuple[_Segment, int, int]]:
        """(segment, from, to) of every stretch still to read, oldest first."""
        following = self._segments[self._segments.index(segment) + 1:]
        return [(segment, start.offset, segment.size),
                *((later, 0, later.size) for later in following if later.size)]

    def _hand_out(self, reads: list[_SegmentRead]) -> Batch | None:
        """Account for what was read; the batch, or None when only damage was found."""
        payloads: list[memoryview] = []
        count = consumed = 0
        for read in reads:
            if read.data is None:
                self._lose_rest(read.segment, read.start)
                break
            lost = sum(self._lost_in(read.segment, item) for item in read.damage)
            self._pass(read.segment, read.end, read.count + lost, read.end - read.start)
            consumed += read.end - read.start
            count += read.count
            payloads += read.payloads
        if not count:
            self._settle()
            return None
        self._in_flight = Batch(b"".join(payloads), count, self._read)
        self._in_flight_bytes = consumed
        return self._in_flight

    def ack(self, batch: Batch) -> None:
        """Delivery of ``batch`` is done: record it and free what is no longer needed."""
        with self.changed:
            if self._closed or batch is not self._in_flight:
                return
            self._in_flight = None
            self._in_flight_bytes = 0
            self._done = self._read
            self._rotate_if_drained()
            self._free_segments()
            self._end_overflow_episode_if_over()
            done = self._done
            self.changed.notify_all()
        self._cursor.save(done)

    def _pass(self, segment: _Segment, end: int, count: int, size: int) -> None:
        """Move the reader to ``end`` past ``count`` metrics in ``size`` bytes."""
        self._read = Position(segment.ident, end)
        self._pending -= count
        self._pending_bytes -= size

    def _settle(self) -> None:
        """With no batch out, what the reader passed was dropped: it is done."""
        if self._in_flight is None:
            self._done = self._read

    def _rotate_if_drained(self) -> None:
        active = self._segments[-1] if self._segments else None
        if (active is not None and active.size >= DRAINED_ROTATE_BYTES
                and self._done == Position(active.ident, active.size)):
            try:
                self._rotate()
            except OSError as err:
                self.log.debug("%s: cannot start a new segment yet: %s", self._name, err)

    def _free_segments(self) -> None:
        """Delete segments wholly delivered or dropped (never the one appended to).

        While a batch is out, its segments stay (a crash must replay it), but whole
        segments dropped after it go, so an outage cannot grow the files past the limit.
        """
        dropped_from = self._in_flight.end if self._in_flight else self._done
        kept = []
        for segment in self._segments[:-1]:
            first, last = Position(segment.ident, 0), Position(segment.ident, segment.size)
            if last <= self._done or (dropped_from <= first and last <= self._read):
                segment.path.unlink(missing_ok=True)
            else:
                kept.append(segment)
        self._segments[:-1] = kept

    def _locate(self, position: Position) -> tuple[_Segment, Position] | None:
        """The segment and position of the first record at or after ``position``."""
        for segment in self._segments:
            if segment.ident == position.segment and position.offset < segment.size:
                return segment, position
            if segment.ident > position.segment and segment.size:
                return segment, Position(segment.ident, 0)
        return None

    def _chunk_bytes(self, max_count: int) -> int:
        """How much to read for ``max_count`` metrics, from the average record so far."""
        per_metric = self._pending_bytes / self._pending if self._pending > 0 else 256
        return int(min(_READ_CHUNK_MAX, max(_READ_CHUNK_MIN, per_metric * max_count * 1.25)))

    def _item_at(self, segment: _Segment, offset: int) -> Record | Damage | Unfinished:
        """The record (or damaged stretch) at ``offset``, read from the file."""
        head = _pread(segment.path, offset, HEADER.size)
        header = spool_format.header_at(head, 0) if head else None
        if header is not None and offset + HEADER.size + header[0] <= segment.size:
            length, count, appended, _ = header
            return Record(offset, offset + HEADER.size + length, count, appended)
        rest = _pread(segment.path, offset, segment.size - offset) or b""
        for item in spool_format.scan(rest, base=offset):
            return item
        return Unfinished(offset, segment.size)

    def _lose_rest(self, segment: _Segment, start: Position) -> None:
        """The segment file cannot be read any more: what it still held is lost."""
        self.log.error("%s: cannot read %s any more", self._name, segment.path.name)
        lost = self._lost_in(segment, Unfinished(start.offset, segment.size))
        self._pass(segment, segment.size, lost, segment.size - start.offset)

    def _lost_in(self, segment: _Segment, item: Record | Damage | Unfinished) -> int:
        """Metrics in ``item``; a damaged stretch is counted and logged the first time."""
        if isinstance(item, Record):
            return item.count
        if item.start not in segment.damage:
            count = self._estimate(segment, item)
            segment.damage[item.start] = count
            self.dropped["corrupt"] += count
            self.log.error("%s: damaged record in %s at bytes %d-%d: %d metrics lost",
                           self._name, segment.path.name, item.start, item.end, count)
        return segment.damage[item.start]

    def _estimate(self, segment: _Segment, item: Damage | Unfinished) -> int:
        """The header's count when it is intact, else the lines left in the payload."""
        if isinstance(item, Damage) and item.count is not None:
            return item.count
        payload = _pread(segment.path, item.start + HEADER.size,
                         item.end - item.start - HEADER.size) or b""
        return count_lines(payload)

    # ---------------------------------------------------------------- state
    def _used_bytes(self) -> int:
        return self._pending_bytes + self._in_flight_bytes

    @property
    def bytes(self) -> int:
        """Bytes not yet delivered (handed out or not): what ``max_bytes`` bounds."""
        with self.changed:
            return self._used_bytes()

    @property
    def disk_bytes(self) -> int:
        """Bytes the segment files hold, delivered ones not yet freed included."""
        with self.changed:
            return sum(segment.size for segment in self._segments)

    @property
    def pending(self) -> int:
        """Metrics stored and not yet handed out by read_batch."""
        return self._pending

    @property
    def backlog(self) -> int:
        """Metrics not yet delivered: pending plus the batch handed out."""
        with self.changed:
            return self._pending + (self._in_flight.count if self._in_flight else 0)

    @property
    def state(self) -> SpoolState:
        if self._disk_episode_refused is not None:
            return "disk_error"
        return "full" if self._overflow_episode else "ok"

    def oldest_age_ns(self) -> int:
        """How long the oldest undelivered record has waited; 0 when none waits."""
        with self.changed:
            located = self._locate(self._done)
        if located is None:
            return 0
        segment, position = located
        head = _pread(segment.path, position.offset, HEADER.size)
        header = spool_format.header_at(head, 0) if head else None
        return max(0, self.clock() - header[2]) if header else 0

    def close(self) -> None:
        """Stop appending and reading; record how far delivery got."""
        with self.changed:
            if self._closed:
                return
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            done = self._done
            self.changed.notify_all()
        self._cursor.save(done)
        self._cursor.close()

    # ---------------------------------------------------------------- recovery
    def _recover(self) -> None:
        """Load segments, check every record, cut unfinished appends, find the cursor."""
        done = self._cursor.load()
        appendable = False
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            ident = int(path.stem)
            if ident < done.segment:
                path.unlink()
                continue
            segment = _Segment(ident, path)
            appendable = self._recover_segment(segment, done.offset if ident == done.segment
                                               else 0)
            self._segments.append(segment)
        self._done = self._read = done
        active = self._segments[-1] if self._segments else None
        if active is not None and appendable and active.size < self.segment_bytes:
            try:
                self._fd = os.open(active.path, os.O_WRONLY | os.O_APPEND)
            except OSError as err:
                self.log.warning("%s: cannot append to %s (%s): starting a new segment",
                                 self._name, active.path.name, err.strerror)

    def _recover_segment(self, segment: _Segment, start: int) -> bool:
        """Check one segment from ``start``; True when it ends with a whole record."""
        data = segment.path.read_bytes()
        segment.size = min(start, len(data))
        for item in spool_format.scan(data, segment.size):
            if isinstance(item, Unfinished):
                return self._cut_unfinished(segment, item)
            self._pending += self._lost_in(segment, item)
            self._pending_bytes += item.end - item.start
            segment.size = item.end
        return True

    def _cut_unfinished(self, segment: _Segment, item: Unfinished) -> bool:
        self.log.warning("%s: cut %d bytes off %s: an append that never finished "
                         "(crash or full disk), so never acknowledged", self._name,
                         item.end - item.start, segment.path.name)
        try:
            os.truncate(segment.path, item.start)
        except OSError as err:
            self.log.error("%s: cannot cut %s: %s", self._name, segment.path.name, err.strerror)
            return False
        return True


class _Cursor:
    """The ``ack`` file: two alternating slots written in place, so recording progress
    needs no new disk space once the file exists, and a torn write loses one slot."""

    def __init__(self, path: Path, fsync: bool, name: str, log: logging.Logger) -> None:
        self.path = path
        self.fsync = fsync
        self.name = name
        self.log = log
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._sequence = 0
        self._saved = Position(0, 0)
        self._failing = False

    def load(self) -> Position:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return Position(0, 0)
        except OSError as err:
            self.log.error("%s: cannot read the delivery cursor (%s): every record still on "
                           "disk will be delivered again (some for a second time)", self.name,
                           err.strerror or err)
            return Position(0, 0)
        found = spool_format.read_cursor(data)
        if found is None:
            if any(data):
                self.log.error("%s: the delivery cursor is damaged: every record still on "
                               "disk will be delivered again (some for a second time)",
                               self.name)
            return Position(0, 0)
        self._sequence, segment, offset = found
        self._saved = Position(segment, offset)
        return self._saved

    def save(self, position: Position) -> None:
        """Persist ``position``; a failure is logged once and retried by the next save."""
        with self._lock:
            if position <= self._saved:
                return
            try:
                fd = self._open()
                offset, slot = spool_format.cursor_slot(self._sequence + 1, position.segment,
                                                        position.offset)
                os.pwrite(fd, slot, offset)
                if self.fsync:
                    os.fdatasync(fd)
            except OSError as err:
                if not self._failing:
                    self.log.error("%s: cannot record delivery progress (%s): after a restart "
                                   "some delivered metrics may be sent again", self.name,
                                   err.strerror or err)
                self._failing = True
                return
            if self._failing:
                self.log.warning("%s: recording delivery progress again", self.name)
                self._failing = False
            self._sequence += 1
            self._saved = position

    def _open(self) -> int:
        """The cursor file, created with both slots allocated (so later writes need no
        new blocks)."""
        if self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size < spool_format.CURSOR_FILE_SIZE:
                    current = os.pread(fd, spool_format.CURSOR_FILE_SIZE, 0)
                    os.pwrite(fd, current.ljust(spool_format.CURSOR_FILE_SIZE, b"\0"), 0)
                    os.fsync(fd)
                    if self.fsync:
                        _fsync_dir(self.path.parent)
            except OSError:
                os.close(fd)
                raise
            self._fd = fd
        return self._fd

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


@dataclass
class _SegmentRead:
    """What one read of a segment stretch found (file offsets)."""

    segment: _Segment
    start: int
    limit: int
    data: bytes | None
    payloads: list[memoryview] = field(default_factory=list)
    count: int = 0
    damage: list[Damage | Unfinished] = field(default_factory=list)
    end: int = 0
    """Where the next read starts: after the records and damage taken."""


def _read_planned(plan: list[tuple[_Segment, int, int]], want: int, max_count: int
                  ) -> list[_SegmentRead]:
    """Read stretches in order until ``max_count`` metrics (at least one record) or
    ``want`` bytes are reached; a stretch read only in part ends the batch."""
    reads = []
    count = 0
    for segment, start, limit in plan:
        data = _pread(segment.path, start, min(limit - start, max(want, HEADER.size)))
        read = _SegmentRead(segment, start, limit, data, end=start)
        reads.append(read)
        if data is None:
            break
        count += _take(read, max_count, count)
        want -= len(data)
        if count >= max_count or read.end < limit or want <= 0:
            break
    return reads


def _take(read: _SegmentRead, max_count: int, taken: int) -> int:
    """Records from ``read.data`` into ``read`` (intact runs, with the damage between
    them set aside) for a batch already holding ``taken`` metrics; the metrics added.
    A record cut off by the end of what was read is left for the next read, unless the
    read reached the end of the segment's data."""
    assert read.data is not None
    data, offset = read.data, 0
    reaches_limit = read.start + len(data) >= read.limit
    while offset < len(data) and taken + read.count < max_count:
        offset, added = spool_format.intact_run(data, offset, max_count, taken + read.count,
                                                read.payloads)
        read.count += added
        if offset >= len(data) or taken + read.count >= max_count:
            break
        item = next(spool_format.scan(data, offset, base=read.start))
        if type(item) is Record or (type(item) is Unfinished and not reaches_limit):
            break  # over the batch size, or cut off by the end of this read
        read.damage.append(item)
        offset = item.end - read.start
    read.end = read.start + offset
    return read.count


def _whole_record_bytes(data: bytes, available: int) -> int:
    """How much to read so that the record starting ``data`` fits whole."""
    header = spool_format.header_at(data, 0)
    return min(available, HEADER.size + header[0]) if header else available


def _pread(path: Path, offset: int, size: int) -> bytes | None:
    """``size`` bytes at ``offset``; None when the file cannot be read or is shorter."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.pread(fd, size, offset)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) == size else None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
