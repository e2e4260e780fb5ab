"""The collector's own health as metrics: what each input gathered and each output wrote."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

from collector import Accumulator, Input


@dataclass
class InternalConfig:
    collect_process: bool = True
    """Also report the process's memory, CPU time, threads and open files."""


class InternalInput(Input):
    Config = InternalConfig

    def gather(self, acc: Accumulator) -> None:
        now = time.time_ns()
        for counters in self.context.registry.all():
            fields = counters.snapshot()
            if fields:
                acc.add(f"internal_{counters.kind}", fields, dict(counters.tags), now)
        if self.config.collect_process:
            acc.add("internal_process", process_fields(), {}, now)


def process_fields() -> dict[str, int | float]:
    """Resident memory, CPU seconds, threads and file descriptors of this process."""
    rss_kib = 0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
                break
    return {
        "rss_bytes": rss_kib * 1024,
        "cpu_seconds": time.process_time(),
        "threads": threading.active_count(),
        "open_fds": len(os.listdir("/proc/self/fd")),
    }
