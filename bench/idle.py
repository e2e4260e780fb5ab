"""Idle RSS and CPU of `collector run` with only the internal input (10 s interval).

    .venv/bin/python bench/idle.py [SECONDS]     (default 30)
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    with tempfile.TemporaryDirectory() as directory:
        config = Path(directory) / "idle.toml"
        config.write_text(f'[agent]\nstate_dir = "{directory}"\n[[inputs.internal]]\n'
                          '[[outputs.file]]\nfiles = ["metrics.lp"]\n')
        process = subprocess.Popen([sys.executable, "-m", "collector.cli", "run", "-c",
                                    str(config)], stderr=subprocess.DEVNULL)
        try:
            time.sleep(3)
            start_cpu = cpu_seconds(process.pid)
            time.sleep(seconds)
            used = cpu_seconds(process.pid) - start_cpu
            rss = rss_mib(process.pid)
        finally:
            process.terminate()
            process.wait(30)
    print(f"idle over {seconds:.0f} s: RSS {rss:.1f} MiB, CPU {used:.2f} s "
          f"({100 * used / seconds:.2f} % of one core)")


if __name__ == "__main__":
    main()
