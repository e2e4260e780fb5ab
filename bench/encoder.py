"""Encoder throughput vs influxdb_client.Point.to_line_protocol on the same metrics.

    .venv/bin/python bench/encoder.py [N]      (default 1,000,000)
"""

import sys
import time

from influxdb_client import Point, WritePrecision

from collector.lineprotocol import Encoder
from collector.metric import Metric


def workload(n: int) -> list[Metric]:
    """Instrument-like metrics: 4 probes x 2 sites, a float, an int, a bool, a string."""
    base = 1_790_000_000_000_000_000
    return [
        Metric("temperature", {"celsius": 20.0 + (i % 1000) / 100, "raw": i % 65536,
                               "open": i % 50 == 0, "unit": "C"},
               {"probe": f"T{i % 4 + 1}", "site": f"roof {i % 2}", "model": "SE521"},
               base + i * 1_000_000)
        for i in range(n)
    ]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    metrics = workload(n)
    points = []
    for m in metrics:
        point = Point(m.name).time(m.time_ns, WritePrecision.NS)
        for k, v in m.tags.items():
            point.tag(k, v)
        for k, v in m.fields.items():
            point.field(k, v)
        points.append(point)

    started = time.perf_counter()
    ours, count = Encoder("ns").encode(metrics)
    ours_s = time.perf_counter() - started

    started = time.perf_counter()
    reference = ("\n".join(p.to_line_protocol() for p in points) + "\n").encode()
    ref_s = time.perf_counter() - started

    assert count == n and ours.count(b"\n") == reference.count(b"\n") == n
    print(f"metrics: {n}")
    print(f"ours:            {n / ours_s:12,.0f} metrics/s  ({ours_s:.2f} s)")
    print(f"influxdb_client: {n / ref_s:12,.0f} metrics/s  ({ref_s:.2f} s)")
    print(f"ratio: {ref_s / ours_s:.1f}x (target >= 5x)")


if __name__ == "__main__":
    main()
