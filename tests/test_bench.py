"""Every benchmark still runs against the current code, on a tiny workload.

The benchmarks drive internal APIs (the output runner, the spool, the decoder) that
tests do not pin down; without this, one goes stale silently and a figure in
bench/README.md can no longer be re-measured. The numbers printed here mean nothing,
only that a figure is printed.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.stack import REPO

TINY_RUNS = {
    "encoder.py 2000": r"ratio: [\d.]+x",
    "end_to_end.py 2000 1": r"median ratio: [\d.]+",
    "idle.py 1": r"RSS [\d.]+ MiB, CPU [\d.]+ s",
    "import_legacy.py 2000 csv": r"import/direct = [\d.]+",
    "import_legacy.py 2000 mysql": r"import/direct = [\d.]+",
    "mqtt.py 2000 1": r"median publish ratio: [\d.]+[\s\S]*median consume ratio: [\d.]+",
    "raven_parser.py 200": r"ratio [\d.]+x",
    "se521_codec.py 2000": r"ratio to the floor: [\d.]+",
    "spool.py 50": r"ratio [\d.]+",
    "sql_output.py 2000 1": r"MariaDB: .*ratio median [\d.]+[\s\S]*SQLite: .*ratio median [\d.]+",
    "stack_idle.py 2": r"RSS [\d.]+x, CPU [\d.]+x",
}


def test_every_benchmark_is_covered():
    scripts = {path.name for path in (REPO / "bench").glob("*.py")}
    assert scripts == {run.split()[0] for run in TINY_RUNS}


@pytest.mark.parametrize("run", TINY_RUNS)
def test_benchmark_runs_and_prints_its_figure(run):
    script, *args = run.split()
    result = subprocess.run([sys.executable, str(REPO / "bench" / script), *args],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(TINY_RUNS[run], result.stdout), result.stdout[-2000:]
