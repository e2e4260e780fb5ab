"""Idle RSS and CPU of the collector running the docker compose stack's config
(deploy/stack/collector/collector.toml: the SE521 and RAVEn emulators, the internal
input, InfluxDB with its retention policies and roll-ups) against a real influxd,
beside the reference of bench/idle.py (internal input only, to a file), measured in
the same run.

    .venv/bin/python bench/stack_idle.py [SECONDS]     (default 60; needs influxd)

Both collectors run at the same time for the same SECONDS, after a 5 s warm-up, so
the machine's load affects both alike.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parent.parent)]

from idle import cpu_seconds, rss_mib  # noqa: E402

from tests.servers import InfluxDB  # noqa: E402

STACK_CONFIG = Path(__file__).parent.parent / "deploy" / "stack" / "collector" / "collector.toml"


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "collector.cli", "run", *args],
                            env={**os.environ, **env}, stderr=subprocess.DEVNULL)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        (root / "influxd").mkdir()
        influxd = InfluxDB(root / "influxd")
        influxd.start()
        reference_config = root / "idle.toml"
        reference_config.write_text(f'[agent]\nstate_dir = "{root / "reference"}"\n'
                                    '[[inputs.internal]]\n[[outputs.file]]\n'
                                    'files = ["metrics.lp"]\n')
        processes = {
            "reference": start(["-c", str(reference_config)], {}),
            "stack": start(["-c", str(STACK_CONFIG)], {
                "INFLUXDB_URL": influxd.url, "STATE_DIRECTORY": str(root / "stack"),
                "COLLECTOR_TIME_ZONE": "UTC"}),
        }
        try:
            time.sleep(5)
            before = {name: cpu_seconds(p.pid) for name, p in processes.items()}
            time.sleep(seconds)
            used = {name: cpu_seconds(p.pid) - before[name] for name, p in processes.items()}
            rss = {name: rss_mib(p.pid) for name, p in processes.items()}
        finally:
            for process in processes.values():
                process.terminate()
                process.wait(30)
            influxd.stop()
    for name in processes:
        print(f"{name:9} over {seconds:.0f} s: RSS {rss[name]:.1f} MiB, CPU {used[name]:.2f} s "
              f"({100 * used[name] / seconds:.2f} % of one core)")
    print(f"stack / reference: RSS {rss['stack'] / rss['reference']:.2f}x, "
          f"CPU {used['stack'] / max(used['reference'], 0.01):.1f}x")


if __name__ == "__main__":
    main()
