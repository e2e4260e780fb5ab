"""Spool append + replay throughput with durability on (fdatasync per append).

    .venv/bin/python bench/spool.py [ROUNDS]

Two shapes: a polled gather (100 metrics a record) and a streaming push (1 a record).
The reference is the same bytes written with one plain write() + fdatasync per record,
to a file in the same directory. fdatasync on a shared disk drifts by tens of percent
within a second, so the two sides alternate record by record (each timed on its own, each going
first every other record)
and the ratio of the summed times is reported, with the median of 20 slices of it.
"""

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from collector import spool_format
from collector.spool import Spool

LINE = b"temperature,model=SE521,probe=T1,site=roof celsius=21.37,raw=2137i 1790000000000000000\n"
SLICES = 20


def run(records: int, per_record: int, plain_bytes: str) -> None:
    """``plain_bytes``: "payload" (the lines alone) or "record" (the framed record the
    spool writes, so only the spool's own work differs)."""
    payload = LINE * per_record
    written = payload if plain_bytes == "payload" else spool_format.frame(payload, per_record, 0)
    spooled = [0.0] * records
    plain = [0.0] * records
    clock = time.perf_counter
    with tempfile.TemporaryDirectory(dir=Path.home()) as directory:
        spool = Spool(Path(directory) / "spool", max_bytes=2**31)
        fd = os.open(Path(directory) / "plain", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        for index in range(records):
            if index % 2:
                started = clock()
                os.write(fd, written)
                os.fdatasync(fd)
                middle = clock()
                spool.append(payload, per_record)
                plain[index], spooled[index] = middle - started, clock() - middle
            else:
                started = clock()
                spool.append(payload, per_record)
                middle = clock()
                os.write(fd, written)
                os.fdatasync(fd)
                plain[index], spooled[index] = clock() - middle, middle - started
        os.close(fd)
        started = clock()
        replayed = 0
        while (batch := spool.read_batch(5000)) is not None:
            spool.ack(batch)
            replayed += batch.count
        replay = clock() - started
    assert replayed == records * per_record
    size = records // SLICES
    slices = [sum(plain[i:i + size]) / sum(spooled[i:i + size])
              for i in range(0, size * SLICES, size)]
    print(f"{per_record:>3} metric(s)/record vs plain {plain_bytes:7}: append "
          f"{records / sum(spooled):,.0f} records/s, plain write+fdatasync "
          f"{records / sum(plain):,.0f} records/s; ratio "
          f"{sum(plain) / sum(spooled):.3f} (slices: median {statistics.median(slices):.3f}, "
          f"{min(slices):.2f}-{max(slices):.2f}); replay {replayed / replay:,.0f} metrics/s")


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    for per_record in (100, 1):
        for plain_bytes in ("payload", "record"):
            run(count, per_record, plain_bytes)
