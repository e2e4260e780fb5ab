"""Seeded fault injection: many rounds of a writer-deliverer that is killed at a random
point (or closes with a batch still out), random bits damaged between rounds, a disk
that fills up and empties again while the writer runs, and a spool small enough to
overflow.

The invariant: every metric whose append returned is delivered, or was in a record the
damage hit (counted as ``corrupt``), or was dropped by the overflow policy (counted as
``overflow``).
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import textwrap
from collections import Counter

import pytest

from collector.spool import SUFFIX, Spool
from collector.spool_format import HEADER, Record, scan
from tests.disk import fill, small_disk

ROUNDS = 40
SEED = int(os.environ.get("SPOOL_FAULT_SEED", "20261122"))

CHILD = textwrap.dedent("""
    import os, random, sys
    from collector import Refused
    from collector.spool import Spool

    directory, first, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    spool = Spool(directory, max_bytes=int(sys.argv[4]), segment_bytes=12288)
    out = lambda line: os.write(1, line.encode() + b"\\n")
    report = lambda: out(f"L {spool.dropped['corrupt']} {spool.dropped['overflow']}")
    report()
    n = first
    while True:
        roll = rng.random()
        if roll < 0.65:
            numbers = list(range(n, n + rng.randint(1, 4)))
            n += len(numbers)
            out("T " + " ".join(map(str, numbers)))
            try:
                spool.append(b"".join(b"m v=%di\\n" % i for i in numbers), len(numbers))
            except Refused:
                out("R")
                continue
            out("A " + " ".join(map(str, numbers)))
        elif roll < 0.77:
            batch = spool.read_batch(rng.randint(1, 20))
            if batch is not None:
                out("D " + " ".join(line.split(b"=")[1][:-1].decode()
                                    for line in batch.payload.splitlines()))
                spool.ack(batch)
        elif roll < 0.995:
            spool.read_batch(rng.randint(1, 20))  # a write that failed: not acknowledged
        else:
            spool.close()
            report()
            out("X")
            os._exit(0)
        report()
""")


class Ledger:
    """What the children said: tried, acknowledged, delivered, counted as lost."""

    def __init__(self) -> None:
        self.tried: set[int] = set()
        self.acknowledged: set[int] = set()
        self.delivered: list[int] = []
        self.hit: set[int] = set()
        """Metrics in records that a damaged bit fell into."""
        self.lost: Counter[str] = Counter()
        self.next = 0
        self.max_bytes = 0

    def read(self, output: bytes) -> None:
        last = (0, 0)
        for line in output.decode(errors="replace").splitlines():
            kind, _, rest = line.partition(" ")
            numbers = [int(word) for word in rest.split()]
            if kind == "T":
                self.tried.update(numbers)
                self.next = max(self.next, max(numbers) + 1)
            elif kind == "A":
                self.acknowledged.update(numbers)
            elif kind == "D":
                self.delivered.extend(numbers)
            elif kind == "L":
                last = (numbers[0], numbers[1])
        self.lost["corrupt"] += last[0]
        self.lost["overflow"] += last[1]


def run_child(directory, disk, ledger: Ledger, rng: random.Random) -> None:
    """One writer until a random line, with the disk full for part of its run."""
    filler = fill(disk, leave=rng.choice([0, 2048, 8192])) if rng.random() < 0.3 else None
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(directory), str(ledger.next),
                              str(rng.randrange(2**32)), str(ledger.max_bytes)],
                             stdout=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": os.getcwd()})
    lines_before_kill = rng.randint(1, 600)
    output = b""
    while output.count(b"\n") < lines_before_kill:
        chunk = child.stdout.read1(65536)
        if not chunk:
            break
        output += chunk
        if filler is not None and b"\nR\n" in output:
            filler.unlink()  # space returns while the writer runs
            filler = None
    child.send_signal(signal.SIGKILL)
    output += child.stdout.read()
    child.wait()
    if filler is not None:
        filler.unlink()
    ledger.read(output[:output.rfind(b"\n") + 1])  # a line cut by the kill does not count


def damage(directory, ledger: Ledger, rng: random.Random) -> None:
    """Flip one random bit of one random segment; note the metrics of the record hit."""
    files = [path for path in sorted(directory.glob(f"*{SUFFIX}")) if path.stat().st_size]
    if not files:
        return
    path = rng.choice(files)
    data = path.read_bytes()
    position = rng.randrange(len(data))
    for item in scan(data):
        if isinstance(item, Record) and item.start <= position < item.end:
            payload = data[item.start + HEADER.size:item.end]
            ledger.hit.update(int(n) for n in re.findall(rb"v=(\d+)i", payload))
    flipped = bytearray(data)
    flipped[position] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(flipped))


@pytest.mark.parametrize("max_bytes", [10**7, 16 * 1024], ids=["roomy", "overflowing"])
def test_every_acknowledged_metric_is_delivered_or_counted_as_lost(tmp_path, max_bytes):
    """Roomy: exactly the metrics in damaged records are lost. Overflowing: the rest of
    the losses are no more than the overflow policy counted."""
    rng = random.Random(SEED)
    ledger = Ledger()
    ledger.max_bytes = max_bytes
    with small_disk(tmp_path / "disk", "1m") as disk:
        directory = disk / "spool"
        for _ in range(ROUNDS):
            run_child(directory, disk, ledger, rng)
            if rng.random() < 0.4:
                damage(directory, ledger, rng)
        final = Spool(directory, max_bytes=max_bytes, segment_bytes=12288)
        while (batch := final.read_batch(100)) is not None:
            ledger.delivered += [int(m) for m in re.findall(rb"v=(\d+)i", batch.payload)]
            final.ack(batch)
        ledger.lost.update(final.dropped)
        final.close()
    delivered = set(ledger.delivered)
    lost = ledger.acknowledged - delivered
    assert len(ledger.acknowledged) > 2000, "the rounds did real work"
    assert delivered <= ledger.tried, "nothing delivered that was never written"
    assert ledger.lost["corrupt"], "damage was met"
    assert bool(ledger.lost["overflow"]) == (max_bytes < 10**6)
    assert len(lost - ledger.hit) <= ledger.lost["overflow"], (
        f"{len(lost - ledger.hit)} acknowledged metrics vanished where no damage hit, "
        f"with {ledger.lost['overflow']} dropped by overflow")
    assert len(lost) <= ledger.lost.total()
