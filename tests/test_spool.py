"""The spool keeps order, survives restarts and damage, and drops only by policy:
a damaged record costs that record alone, and every loss is counted with its reason."""

import logging
import os
import struct
import subprocess
import sys
import textwrap
import zlib

import pytest

from collector import Refused
from collector.spool import SUFFIX, Spool
from collector.spool_format import HEADER
from tests.disk import fill, small_disk


def record(i: int, lines: int = 1) -> bytes:
    return b"".join(b"m v=%di %d\n" % (i, i * 10 + k) for k in range(lines))


def drain(spool: Spool, batch: int = 1000) -> list[bytes]:
    out = []
    while (got := spool.read_batch(batch)) is not None:
        out.extend(got.payload.splitlines())
        spool.ack(got)
    return out


def segments(directory) -> list:
    return sorted(directory.glob(f"*{SUFFIX}"))


def record_offsets(path) -> list[int]:
    """Start of every record in a segment file, read with the documented layout."""
    data, offsets, offset = path.read_bytes(), [], 0
    while offset < len(data):
        offsets.append(offset)
        offset += HEADER.size + struct.unpack_from("<I", data, offset + 4)[0]
    return offsets


def flip(path, position: int, mask: int = 0x01) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= mask
    path.write_bytes(bytes(data))


def test_fifo_across_segments_and_restart(tmp_path):
    spool = Spool(tmp_path, max_bytes=10**6, segment_bytes=200)
    for i in range(50):
        spool.append(record(i), 1)
    first = spool.read_batch(10)
    assert first.count == 10, "a batch spans segments"
    spool.ack(first)
    spool.close()
    reopened = Spool(tmp_path, max_bytes=10**6, segment_bytes=200)
    assert reopened.pending == 40
    lines = drain(reopened, batch=7)
    assert lines == [record(i).strip() for i in range(10, 50)]
    assert len(segments(tmp_path)) == 1, "acknowledged segments are freed"


def test_a_batch_is_handed_out_again_until_acknowledged(tmp_path):
    spool = Spool(tmp_path, max_bytes=10**6)
    for i in range(5):
        spool.append(record(i), 1)
    failed = spool.read_batch(3)
    assert spool.read_batch(3) is failed, "a failed batch is retried, never skipped"
    spool.ack(failed)
    assert spool.read_batch(3).payload == record(3) + record(4)


def test_unacknowledged_batch_is_replayed_after_restart(tmp_path):
    spool = Spool(tmp_path, max_bytes=10**6)
    for i in range(5):
        spool.append(record(i), 1)
    assert spool.read_batch(3).count == 3  # read, never acknowledged: a crash mid-write
    spool.close()
    assert len(drain(Spool(tmp_path, max_bytes=10**6))) == 5


def test_batches_respect_max_count_but_never_split_records(tmp_path):
    spool = Spool(tmp_path, max_bytes=10**6)
    spool.append(record(1, lines=4), 4)
    spool.append(record(2, lines=4), 4)
    first = spool.read_batch(6)
    assert first.count == 4
    spool.ack(first)
    assert spool.read_batch(2).count == 4, "a record larger than the batch still goes out"


def test_a_record_larger_than_a_read_chunk_is_read_whole(tmp_path):
    spool = Spool(tmp_path, max_bytes=10**7)
    big = b"big s=\"" + b"x" * 300_000 + b"\" 1\n"
    spool.append(big, 1)
    assert spool.read_batch(1).payload == big


def test_restarts_append_to_the_same_segment(tmp_path):
    for i in range(20):
        spool = Spool(tmp_path, max_bytes=10**6)
        spool.append(record(i), 1)
        spool.close()
    assert len(segments(tmp_path)) == 1
    assert drain(Spool(tmp_path, max_bytes=10**6)) == [record(i).strip() for i in range(20)]


def test_unfinished_append_is_cut_and_intact_records_kept(tmp_path, caplog):
    spool = Spool(tmp_path, max_bytes=10**6)
    for i in range(3):
        spool.append(record(i), 1)
    spool.close()
    with open(segments(tmp_path)[-1], "ab") as handle:
        handle.write(b"\xffCS2\x20\x00\x00\x00\x01")  # half a header: power cut mid-append
    with caplog.at_level(logging.WARNING):
        reopened = Spool(tmp_path, max_bytes=10**6)
    assert "never finished" in caplog.text
    assert reopened.dropped.total() == 0, "never acknowledged, so not a loss"
    reopened.append(record(3), 1)
    assert drain(reopened) == [record(i).strip() for i in range(4)]


@pytest.mark.parametrize("where", ["payload", "magic", "length", "count", "header crc"])
def test_one_damaged_record_loses_that_record_alone_and_is_counted(tmp_path, caplog, where):
    """A flipped bit in the 101st of 500 ten-metric records costs exactly 10 metrics."""
    spool = Spool(tmp_path, max_bytes=10**7)
    for i in range(500):
        spool.append(record(i, lines=10), 10)
    spool.close()
    (path,) = segments(tmp_path)
    start = record_offsets(path)[100]
    offset = {"payload": HEADER.size + 5, "magic": 1, "length": 6, "count": 8,
              "header crc": 25}[where]
    flip(path, start + offset, 0x40)
    with caplog.at_level(logging.ERROR):
        reopened = Spool(tmp_path, max_bytes=10**7)
    assert reopened.dropped == {"corrupt": 10}, "counted at open, with its reason"
    assert "10 metrics lost" in caplog.text
    lines = drain(reopened)
    assert lines == [line for i in range(500) if i != 100 for line in record(i, 10).splitlines()]
    assert reopened.dropped == {"corrupt": 10}, "reading past it does not count it again"


def test_a_bogus_length_in_one_segment_spares_the_other_segments(tmp_path):
    spool = Spool(tmp_path, max_bytes=10**7, segment_bytes=20_000)
    for i in range(300):
        spool.append(record(i, lines=5), 5)
    spool.close()
    damaged = segments(tmp_path)[1]
    start = record_offsets(damaged)[3]
    data = bytearray(damaged.read_bytes())
    data[start + 4:start + 8] = struct.pack("<I", 0x7FFF_FFFF)
    damaged.write_bytes(bytes(data))
    reopened = Spool(tmp_path, max_bytes=10**7, segment_bytes=20_000)
    lines = drain(reopened)
    assert reopened.dropped == {"corrupt": 5}
    assert len(lines) == 300 * 5 - 5


def test_damage_that_appears_while_running_is_counted_once(tmp_path):
    spool = Spool(tmp_path, max_bytes=10**6)
    for i in range(10):
        spool.append(record(i, lines=2), 2)
    (path,) = segments(tmp_path)
    flip(path, record_offsets(path)[4] + HEADER.size + 3)
    lines = drain(spool, batch=3)
    assert spool.dropped == {"corrupt": 2}
    assert len(lines) == 18 and spool.pending == 0 and spool.backlog == 0


def test_a_damaged_cursor_replays_everything_loudly(tmp_path, caplog):
    spool = Spool(tmp_path, max_bytes=10**6)
    for i in range(6):
        spool.append(record(i), 1)
    spool.ack(spool.read_batch(4))
    spool.close()
    (tmp_path / "ack").write_bytes(b"\x55" * 64)
    with caplog.at_level(logging.ERROR):
        reopened = Spool(tmp_path, max_bytes=10**6)
    assert "delivery cursor is damaged" in caplog.text
    assert len(drain(reopened)) == 6, "at-least-once: replayed, never lost"


def test_a_torn_cursor_write_falls_back_to_the_previous_position(tmp_path):
    spool = Spool(tmp_path, max_bytes=10**6)
    for i in range(6):
        spool.append(record(i), 1)
    spool.ack(spool.read_batch(2))
    spool.ack(spool.read_batch(2))
    spool.close()
    cursor = tmp_path / "ack"
    data = bytearray(cursor.read_bytes())
    newest = max((0, 32), key=lambda slot: struct.unpack_from("<Q", data, slot + 4)[0])
    data[newest + 12] ^= 0xFF  # the newest slot torn: its CRC no longer matches
    cursor.write_bytes(bytes(data))
    assert drain(Spool(tmp_path, max_bytes=10**6)) == [record(i).strip() for i in range(2, 6)]


def test_drop_oldest_drops_just_enough_and_counts_every_metric(tmp_path, caplog):
    spool = Spool(tmp_path, max_bytes=64 * 1024, segment_bytes=4096)
    payload = b"x" * 500 + b"\n"
    with caplog.at_level(logging.WARNING):
        for _ in range(400):
            spool.append(payload, 1)
    assert spool.bytes <= 64 * 1024
    assert spool.bytes > 64 * 1024 - 2 * (len(payload) + HEADER.size), "record by record"
    kept = drain(spool)
    assert spool.dropped == {"overflow": 400 - len(kept)}
    assert caplog.text.count("dropping the oldest") == 1, "one warning per overflow episode"


def test_drop_newest_refuses_and_counts_refusals_not_drops(tmp_path):
    spool = Spool(tmp_path, max_bytes=64 * 1024, overflow="drop_newest")
    payload = b"y" * 1000 + b"\n"
    accepted = 0
    for _ in range(100):
        try:
            spool.append(payload, 2)
            accepted += 1
        except Refused as refusal:
            assert refusal.reason == "spool full" and not refusal.storage_failed
    assert accepted < 100
    assert spool.refused == {"full": (100 - accepted) * 2}
    assert spool.dropped.total() == 0
    assert len(drain(spool)) == accepted


def test_drop_oldest_while_a_batch_is_in_flight_keeps_files_bounded(tmp_path):
    spool = Spool(tmp_path, max_bytes=64 * 1024, segment_bytes=4096)
    payload = b"z" * 500 + b"\n"
    for _ in range(20):
        spool.append(payload, 1)
    in_flight = spool.read_batch(5)
    for _ in range(2000):
        spool.append(payload, 1)
        assert spool.disk_bytes <= 64 * 1024 + 3 * 4096, "an outage cannot grow the files"
    spool.ack(in_flight)
    rest = drain(spool)
    assert in_flight.count + len(rest) + spool.dropped["overflow"] == 2020


def test_delivered_data_does_not_stay_on_disk(tmp_path):
    spool = Spool(tmp_path, max_bytes=10**7)
    for i in range(2000):
        spool.append(record(i, lines=5), 5)
    drain(spool)
    assert spool.bytes == 0
    assert spool.disk_bytes == 0, "a drained segment of 64 KiB or more is replaced"


def test_refused_when_the_record_is_larger_than_the_spool(tmp_path):
    spool = Spool(tmp_path, max_bytes=64 * 1024)
    with pytest.raises(Refused):
        spool.append(b"x" * 70_000 + b"\n", 3)
    assert spool.refused == {"too_large": 3}


def test_a_spool_in_the_previous_format_is_moved_not_lost(tmp_path, caplog):
    def old_record(payload: bytes, count: int) -> bytes:
        return struct.pack("<III", len(payload), count, zlib.crc32(payload)) + payload

    (tmp_path / "0000000000000001.seg").write_bytes(
        b"".join(old_record(record(i), 1) for i in range(3)))
    (tmp_path / "0000000000000002.seg").write_bytes(
        b"".join(old_record(record(i), 1) for i in range(3, 5)))
    body = struct.pack("<QQ", 1, len(old_record(record(0), 1)))
    (tmp_path / "cursor").write_bytes(body + struct.pack("<I", zlib.crc32(body)))
    with caplog.at_level(logging.WARNING):
        spool = Spool(tmp_path, max_bytes=10**6)
    assert "moved 4 metrics from the previous spool format" in caplog.text
    assert not list(tmp_path.glob("*.seg")) and not (tmp_path / "cursor").exists()
    assert drain(spool) == [record(i).strip() for i in range(1, 5)]


@pytest.mark.parametrize("kill_after", [50, 400])
def test_kill_9_loses_nothing_that_append_returned(tmp_path, kill_after):
    """A child appends and reports each success; we SIGKILL it mid-stream."""
    script = textwrap.dedent(f"""
        import os, sys
        from collector.spool import Spool
        spool = Spool(sys.argv[1], max_bytes=10**7)
        i = 0
        while True:
            spool.append(b"m v=%di\\n" % i, 1)
            os.write(1, b"%d\\n" % i)
            i += 1
            if i == {kill_after}:
                os.kill(os.getpid(), 9)
    """)
    child = subprocess.run([sys.executable, "-c", script, str(tmp_path)],
                           capture_output=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert child.returncode == -9
    acknowledged = len(child.stdout.split())
    assert acknowledged == kill_after
    lines = drain(Spool(tmp_path, max_bytes=10**7))
    assert lines[:acknowledged] == [b"m v=%di" % i for i in range(acknowledged)]


def test_an_append_cut_short_by_a_full_disk_leaves_the_segment_readable(tmp_path, caplog):
    """The write that runs out of space is undone; once space returns, appends to the
    same segment are readable, and nothing is reported damaged."""
    with small_disk(tmp_path / "disk", "1m") as disk:
        spool = Spool(disk / "spool", max_bytes=10**6, segment_bytes=256 * 1024)
        spool.append(record(0), 1)
        filler = fill(disk, leave=1500)
        stored, refused = [0], 0
        for i in range(1, 40):
            try:
                spool.append(record(i, lines=10), 10)
                stored.append(i)
            except Refused as refusal:
                assert refusal.storage_failed
                refused += 1
        assert refused and len(stored) > 1, "some fitted, then the disk was full"
        filler.unlink()
        for i in range(40, 50):
            spool.append(record(i, lines=10), 10)
            stored.append(i)
        assert len(segments(disk / "spool")) == 1
        with caplog.at_level(logging.ERROR):
            lines = drain(spool)
            spool.close()
            lines += drain(Spool(disk / "spool", max_bytes=10**6, segment_bytes=256 * 1024))
    assert lines == [line for i in stored for line in record(i, 1 if i == 0 else 10).splitlines()]
    assert "damaged" not in caplog.text
