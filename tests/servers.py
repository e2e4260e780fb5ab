"""Real servers for tests: influxd 1.x and VictoriaMetrics as plain processes.

Each instance gets its own temp directory and free loopback ports. Readiness means our
process is alive *and* answers, so a stray server on a reused port cannot fool us.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import urllib3

HTTP = urllib3.PoolManager(retries=False, timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise RuntimeError(f"{binary} is not installed: run deploy/test.sh (it installs it)")
    return path


def wait_ready(process: subprocess.Popen, ready: Callable[[], bool], what: str, log: Path,
               timeout: float = 30.0) -> None:
    """Until ``ready()`` says yes; fails with the log's tail if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text()[-2000:]}")
        if ready():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready")


def stop_process(process: subprocess.Popen | None, timeout: float = 30.0) -> None:
    """SIGTERM, so the server shuts down cleanly; SIGKILL if it does not in time."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Server:
    ready_path = "/ping"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 20.0) -> None:
        log = open(self.directory / "server.log", "ab")  # noqa: SIM115 - child owns it
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=log,
                                        cwd=self.directory)

        def answers() -> bool:
            try:
                return HTTP.request("GET", self.url + self.ready_path, timeout=1).status < 300
            except urllib3.exceptions.HTTPError:
                return False

        wait_ready(self.process, answers, f"{self.command()[0]} on {self.port}",
                   self.directory / "server.log", timeout)

    def stop(self) -> None:
        stop_process(self.process, timeout=15)
        self.process = None


class InfluxDB(Server):
    """influxd 1.x with continuous queries evaluated every second."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.rpc_port = free_port()
        (directory / "influxd.conf").write_text(f"""
reporting-enabled = false
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{directory}/meta"
[data]
  dir = "{directory}/data"
  wal-dir = "{directory}/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  run-interval = "1s"
  log-enabled = false
""")

    def command(self) -> list[str]:
        return [require("influxd"), "run", "-config", str(self.directory / "influxd.conf")]

    def query(self, q: str, db: str = "", epoch: str = "ns",
              missing_ok: bool = False) -> list[dict]:
        """Run InfluxQL; returns the series of the first statement's result.

        ``missing_ok``: a database not created yet (an output provisions it when it
        starts) reads as empty instead of failing.
        """
        body = urlencode({"q": q, "db": db, "epoch": epoch})
        response = HTTP.request("POST", self.url + "/query", body=body,
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
        answer = json.loads(response.data)
        if "results" not in answer:
            raise RuntimeError(answer.get("error", answer))
        result = answer["results"][0]
        if "error" in result:
            if missing_ok and result["error"].startswith("database not found"):
                return []
            raise RuntimeError(result["error"])
        return result.get("series", [])

    def rows(self, q: str, db: str, missing_ok: bool = False) -> list[dict]:
        """Rows of every series as dicts, tags included."""
        out = []
        for series in self.query(q, db, missing_ok=missing_ok):
            for values in series["values"]:
                row = dict(zip(series["columns"], values, strict=True))
                row.update(series.get("tags", {}))
                row["_measurement"] = series["name"]
                out.append(row)
        return out


class VictoriaMetrics(Server):
    ready_path = "/health"

    def command(self) -> list[str]:
        return [require("victoria-metrics"), f"-storageDataPath={self.directory}/data",
                f"-httpListenAddr=127.0.0.1:{self.port}", "-retentionPeriod=100y",
                "-search.latencyOffset=0s", "-loggerLevel=ERROR"]

    def export(self, match: str) -> list[dict]:
        HTTP.request("GET", self.url + "/internal/force_flush")
        response = HTTP.request("GET", self.url + "/api/v1/export?" + urlencode({"match[]": match}))
        return [json.loads(line) for line in response.data.splitlines() if line.strip()]
