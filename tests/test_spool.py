"""The spool keeps order, survives restarts and torn writes, and drops only by policy."""

import logging
import os
import subprocess
import sys
import textwrap

import pytest

from collector.spool import Spool


def record(i: int, lines: int = 1) -> bytes:
    return b"".join(b"m v=%di %d\n" % (i, i * 10 + k) for k in range(lines))


def drain(spool: Spool, batch: int = 1000) -> list[bytes]:
    out = []
    while (got := spool.read_batch(batch)) is not None:
        out.extend(got.payload.splitlines())
        spool.ack(got)
    return out


def test_fifo_across_segments_and_restart(tmp_path):
    spool = Spool(tmp_path, max_bytes=10**6, segment_bytes=200)
    for i in range(50):
        assert spool.append(record(i), 1)
    first = spool.read_batch(10)
    assert first.count == 10
    spool.ack(first)
    spool.close()
    reopened = Spool(tmp_path, max_bytes=10**6, segment_bytes=200)
    assert reopened.pending == 40
    lines = drain(reopened, batch=7)
    assert lines == [record(i).strip() for i in range(10, 50)]
    assert len(list(tmp_path.glob("*.seg"))) == 1, "acknowledged segments are freed"


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
    assert spool.read_batch(6).count == 4
    assert spool.read_batch(2).count == 4, "a record larger than the batch still goes out"


def test_torn_tail_is_cut_and_intact_records_kept(tmp_path, caplog):
    spool = Spool(tmp_path, max_bytes=10**6)
    for i in range(3):
        spool.append(record(i), 1)
    spool.close()
    segment = sorted(tmp_path.glob("*.seg"))[-1]
    with open(segment, "ab") as handle:
        handle.write(b"\x20\x00\x00\x00\x01\x00")  # half a header: power cut mid-append
    with caplog.at_level(logging.WARNING):
        reopened = Spool(tmp_path, max_bytes=10**6)
    assert "torn" in caplog.text
    reopened.append(record(3), 1)
    assert drain(reopened) == [record(i).strip() for i in range(4)]


def test_corrupt_record_skips_rest_of_segment_and_counts(tmp_path):
    spool = Spool(tmp_path, max_bytes=10**6)
    for i in range(3):
        spool.append(record(i), 1)
    spool.close()
    segment = sorted(tmp_path.glob("*.seg"))[-1]
    data = bytearray(segment.read_bytes())
    data[-3] ^= 0xFF  # flip a payload byte of the last record
    segment.write_bytes(bytes(data))
    reopened = Spool(tmp_path, max_bytes=10**6)
    assert drain(reopened) == [record(0).strip(), record(1).strip()]


def test_drop_oldest_counts_every_dropped_metric(tmp_path, caplog):
    spool = Spool(tmp_path, max_bytes=64 * 1024, segment_bytes=4096)
    payload = b"x" * 500 + b"\n"
    with caplog.at_level(logging.WARNING):
        for _ in range(400):
            assert spool.append(payload, 1)
    kept = drain(spool)
    assert spool.bytes <= 64 * 1024
    assert spool.dropped > 0
    assert spool.dropped + len(kept) == 400
    assert caplog.text.count("dropping oldest") == 1, "one warning per overflow episode"


def test_drop_newest_refuses_and_counts(tmp_path):
    spool = Spool(tmp_path, max_bytes=64 * 1024, overflow="drop_newest")
    payload = b"y" * 1000 + b"\n"
    accepted = sum(spool.append(payload, 2) for _ in range(100))
    assert accepted < 100
    assert spool.dropped == (100 - accepted) * 2
    assert len(drain(spool)) == accepted


def test_drop_oldest_while_a_batch_is_in_flight(tmp_path):
    spool = Spool(tmp_path, max_bytes=64 * 1024, segment_bytes=4096)
    payload = b"z" * 500 + b"\n"
    for _ in range(20):
        spool.append(payload, 1)
    in_flight = spool.read_batch(5)
    for _ in range(400):
        spool.append(payload, 1)
    spool.ack(in_flight)
    rest = drain(spool)
    assert in_flight.count + len(rest) + spool.dropped == 420


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
