"""Small helpers shared by tests that drive the collector and real servers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import urllib3

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


def post(url: str, body: bytes, path: str = "/write?precision=ns") -> int:
    try:
        return HTTP.request("POST", url + path, body=body).status
    except urllib3.exceptions.HTTPError:
        return 0


def open_fds() -> int:
    """File descriptors this process holds: a leak shows as growth across a loop."""
    return len(os.listdir("/proc/self/fd"))
