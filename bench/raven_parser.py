"""RAVEn stream: our parser + decoder vs aioraven's parsing of the same recorded stream.

    .venv/bin/python bench/raven_parser.py [FRAGMENTS] [READ]   (defaults 50,000 and 64)

The stream mixes demand, summation, price and time fragments, one element per line as
real devices send them, fed in READ-byte chunks (a serial read's typical size). The
reference is aioraven's RAVEnReaderProtocol (XMLPullParser) delivering elements, without
its conversions; ours includes decoding into typed readings. Target >= 3x.
"""

import asyncio
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
    def __init__(self, loop) -> None:
        super().__init__(loop=loop)
        self.count = 0

    def feed_element(self, data) -> None:
        if data.tag in ROOTS:
            self.count += 1


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


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    read = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    stream = recorded_stream(count)
    chunks = [stream[i:i + read] for i in range(0, len(stream), read)]

    started = time.perf_counter()
    ours_count = ours(chunks)
    ours_s = time.perf_counter() - started
    started = time.perf_counter()
    theirs_count = aioraven(chunks)
    theirs_s = time.perf_counter() - started

    assert ours_count == theirs_count == count, (ours_count, theirs_count)
    print(f"fragments: {count}, {len(stream):,} bytes in {read}-byte reads")
    print(f"ours (parse + decode): {count / ours_s:10,.0f} fragments/s")
    print(f"aioraven (parse):      {count / theirs_s:10,.0f} fragments/s")
    print(f"ratio: {theirs_s / ours_s:.2f}x (target >= 3x)")


if __name__ == "__main__":
    main()
