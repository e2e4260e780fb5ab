"""Small helpers shared by tests that drive the collector and real servers."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import urllib3

from collector import config as config_module
from collector.agent import build_plugin
from collector.stats import StatsRegistry

HTTP = urllib3.PoolManager(retries=False, timeout=10)


def wait_until(check: Callable[[], object], timeout: float, every: float = 0.1):
    """Poll ``check`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {check}")
        time.sleep(every)


def collector(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    """Start ``collector ARGS`` as a child process with the test's interpreter."""
    return subprocess.Popen([sys.executable, "-m", "collector.cli", *args],
                            env={**os.environ, **(env or {})}, **kwargs)


def stop(process: subprocess.Popen, timeout: float = 30) -> int:
    """SIGTERM, wait; kill if it hangs so a failing test leaves no process behind."""
    process.terminate()
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


def run_collector(*args: str, env: dict | None = None, timeout: float = 60):
    return subprocess.run([sys.executable, "-m", "collector.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=timeout)


def write_config(directory: Path, text: str) -> Path:
    path = directory / "collector.toml"
    path.write_text(text)
    return path


class Sender:
    """Posts one numbered point per request to a listener, as a client that resends
    what was not acknowledged; remembers what got a 204 and every status it got."""

    def __init__(self, url: str, series: int = 3) -> None:
        self.url = url
        self.series = series
        self.acknowledged: list[int] = []
        self.statuses: Counter[int] = Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._send, daemon=True)
        self.base = time.time_ns()

    def _send(self) -> None:
        i = 0
        while not self.stop.is_set():
            body = b"flow,series=s%d n=%di %d\n" % (i % self.series, i, self.base + i)
            status = post(self.url, body)
            self.statuses[status] += 1
            if status == 204:
                self.acknowledged.append(i)
                i += 1
            else:
                time.sleep(0.05)
            time.sleep(0.01)

    def per_series(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for i in self.acknowledged:
            counts[f"s{i % self.series}"] = counts.get(f"s{i % self.series}", 0) + 1
        return counts


def post(url: str, body: bytes, path: str = "/write?precision=ns") -> int:
    try:
        return HTTP.request("POST", url + path, body=body).status
    except urllib3.exceptions.HTTPError:
        return 0


def open_fds() -> int:
    """File descriptors this process holds: a leak shows as growth across a loop."""
    return len(os.listdir("/proc/self/fd"))


def output_plugin(text: str, tmp_path: Path, agent: str = ""):
    """The first output of config ``text`` (agent section: ``agent`` and a state_dir in
    ``tmp_path``), built as the agent builds it, not started."""
    config = config_module.parse(f'[agent]\nstate_dir = "{tmp_path}"\n{agent}\n' + text, "test")
    return build_plugin(config.outputs[0], config, StatsRegistry())
