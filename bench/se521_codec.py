"""SE521 codec: decode throughput of checked 'A' replies (frames/s).

    .venv/bin/python bench/se521_codec.py [N]     (default 200,000)

The reference, measured in the same run, is the floor of any decoder: struct-unpacking
the five temperature words with no checks and no typed result. The ratio says what the
frame checks and the typed Reading cost on top.
"""

import struct
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent.parent)]

from plugins.inputs.se521 import codec  # noqa: E402
from plugins.inputs.se521.emulator import Instrument, InstrumentState  # noqa: E402


def frames(n: int) -> list[tuple[bytes, int]]:
    """N distinct replies: temperatures, units and open probes vary, counters roll."""
    out = []
    for i in range(n):
        state = InstrumentState(
            temperatures=[(i % 700) / 10, -(i % 300) / 10, None if i % 17 == 0 else 1000 + i % 9,
                          (i % 5000) / 10],
            unit="F" if i % 2 else "C", over_limit={3} if i % 23 == 0 else set())
        counter = i & 0xFF
        out.append((Instrument(state).respond(codec.read_command(counter)), counter))
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    workload = frames(n)

    started = time.perf_counter()
    readings = [codec.decode_reading(frame, counter) for frame, counter in workload]
    ours_s = time.perf_counter() - started

    unpack = struct.Struct(">5h").unpack_from
    started = time.perf_counter()
    floor = [unpack(frame, 9) for frame, _ in workload]
    floor_s = time.perf_counter() - started

    assert len(readings) == len(floor) == n
    print(f"frames: {n}")
    print(f"decode_reading (checked, typed): {n / ours_s:12,.0f} frames/s")
    print(f"struct.unpack floor (no checks): {n / floor_s:12,.0f} frames/s")
    print(f"ratio to the floor: {floor_s / ours_s:.3f}; one instrument needs 1 frame/s")


if __name__ == "__main__":
    main()
