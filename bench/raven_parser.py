"""RAVEn stream: our parser + decoder vs aioraven's parsing of the same recorded stream.

    .venv/bin/python bench/raven_parser.py [FRAGMENTS]   (default 50,000)

The stream mixes demand, summation and price fragments (5:2:1), one element per line as real
devices send them. It is fed two ways: one fragment per read, which is what the plugin
gets (its read(4096) returns whatever arrived within 0.1 s; a ~400-byte fragment takes
35 ms at 115200 baud and pushes are seconds apart), and 64-byte reads (one full-speed
USB packet each), the worst case a different reader could create. The reference is
aioraven's RAVEnReaderProtocol and RAVEnReader turning the same bytes into its RAVEnData
dicts; ours includes decoding into typed readings. Each side runs three times,
alternating, and its best time counts (as timeit does). Target >= 3x.
"""

import asyncio
import re
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent.parent)]

from aioraven.protocols import RAVEnReaderProtocol  # noqa: E402
from aioraven.reader import RAVEnReader  # noqa: E402

from plugins.inputs.raven import decoder  # noqa: E402
from plugins.inputs.raven.parser import ROOTS, StreamParser  # noqa: E402


def element(root: str, **children: str) -> bytes:
    body = "".join(f"  <{k}>{v}</{k}>\r\n" for k, v in children.items())
    return f"<{root}>\r\n{body}</{root}>\r\n".encode("cp1252")


def recorded_stream(count: int) -> bytes:
    macs = {"DeviceMacId": "0xd8d5b9000000abcd", "MeterMacId": "0x00135003007c1a2b"}
    out = []
    for i in range(count):
        stamp = f"0x{0x29f39ed6 + i * 8:08x}"
        kind = i % 8
        if kind < 5:
            out.append(element("InstantaneousDemand", **macs, TimeStamp=stamp,
                               Demand=f"0x{(i * 37) % 5000 - 1000 & 0xFFFFFFFF:08x}",
                               Multiplier="0x00000001", Divisor="0x000003e8",
                               DigitsRight="0x03", DigitsLeft="0x06", SuppressLeadingZero="Y"))
        elif kind < 7:
            out.append(element("CurrentSummationDelivered", **macs, TimeStamp=stamp,
                               SummationDelivered=f"0x{113007485 + i:016x}",
                               SummationReceived="0x0000000000000000", Multiplier="0x00000001",
                               Divisor="0x000003e8", DigitsRight="0x03", DigitsLeft="0x0f",
                               SuppressLeadingZero="Y"))
        else:
            out.append(element("PriceCluster", **macs, TimeStamp=stamp, Price="0x000000c8",
                               Currency="0x0348", TrailingDigits="0x03", Tier="0x01"))
    return b"".join(out)


class CountingReader(RAVEnReader):
    """aioraven's own reader (it turns every element into its RAVEnData dict), counting
    the fragments it delivers."""

    def __init__(self, loop) -> None:
        super().__init__(loop=loop)
        self.count = 0

    def feed_element(self, data) -> None:
        super().feed_element(data)
        self.count += data.tag in ROOTS


def ours(chunks: list[bytes]) -> int:
    parser = StreamParser()
    readings = 0
    for chunk in chunks:
        for fragment in parser.feed(chunk):
            readings += decoder.decode(fragment) is not None
    return readings


def aioraven(chunks: list[bytes]) -> int:
    loop = asyncio.new_event_loop()
    try:
        reader = CountingReader(loop)
        protocol = RAVEnReaderProtocol(reader, loop=loop)
        protocol.connection_made(None)
        for chunk in chunks:
            protocol.data_received(chunk)
        return reader.count
    finally:
        loop.close()


def best_of_three(chunks: list[bytes], count: int) -> tuple[float, float]:
    times: dict = {ours: [], aioraven: []}
    for _ in range(3):
        for side, runs in times.items():
            started = time.perf_counter()
            delivered = side(chunks)
            runs.append(time.perf_counter() - started)
            assert delivered == count, (side.__name__, delivered)
    return min(times[ours]), min(times[aioraven])


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    stream = recorded_stream(count)
    fragments = re.split(rb"(?<=>\r\n)(?=<[A-Z])", stream)
    packets = [stream[i:i + 64] for i in range(0, len(stream), 64)]
    print(f"fragments: {count}, {len(stream):,} bytes")
    for label, chunks in (("one fragment per read", fragments), ("64-byte reads", packets)):
        ours_s, theirs_s = best_of_three(chunks, count)
        print(f"{label}: ours {count / ours_s:10,.0f} fragments/s, "
              f"aioraven {count / theirs_s:10,.0f} fragments/s, "
              f"ratio {theirs_s / ours_s:.2f}x (target >= 3x)")


if __name__ == "__main__":
    main()
