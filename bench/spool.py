"""Spool append + replay throughput with durability on (fdatasync per append).

    .venv/bin/python bench/spool.py
Two shapes: a polled gather (100 metrics a record) and a streaming push (1 a record).
The reference is the same bytes written with one plain write() + fdatasync per record.
"""

import os
import tempfile
import time
from pathlib import Path

from collector.spool import Spool

LINE = b"temperature,model=SE521,probe=T1,site=roof celsius=21.37,raw=2137i 1790000000000000000\n"


def run(records: int, per_record: int) -> None:
    payload = LINE * per_record
    with tempfile.TemporaryDirectory() as directory:
        spool = Spool(Path(directory) / "spool", max_bytes=2**30)
        started = time.perf_counter()
        for _ in range(records):
            spool.append(payload, per_record)
        appended = time.perf_counter() - started
        started = time.perf_counter()
        replayed = 0
        while (batch := spool.read_batch(5000)) is not None:
            spool.ack(batch)
            replayed += batch.count
        replay = time.perf_counter() - started
        fd = os.open(Path(directory) / "plain", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        started = time.perf_counter()
        for _ in range(records):
            os.write(fd, payload)
            os.fdatasync(fd)
        plain = time.perf_counter() - started
        os.close(fd)
    metrics = records * per_record
    assert replayed == metrics
    print(f"{per_record:>3} metric(s)/record: append {metrics / appended:10,.0f} metrics/s "
          f"({records / appended:,.0f} records/s), plain write+fdatasync "
          f"{records / plain:,.0f} records/s, ratio {plain / appended:.2f}; "
          f"replay {metrics / replay:10,.0f} metrics/s")


if __name__ == "__main__":
    run(records=2000, per_record=100)
    run(records=2000, per_record=1)
