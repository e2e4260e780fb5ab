"""mosquitto and influxd as the stack configures them (its start script, its config,
authentication on), as plain processes on free loopback ports."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlencode

import urllib3

from tests.servers import HTTP, InfluxDB, free_port, require, stop_process, wait_ready


class Mosquitto:
    """mosquitto started by the stack's start.sh on the stack's config, moved to a
    free loopback port and a temporary directory: only the listener address and the
    paths change."""

    def __init__(self, directory: Path, config: Path, start_script: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.start_script = start_script
        text = config.read_text().replace("/mosquitto/data/", f"{directory}/")
        lines = [f"listener {self.port} 127.0.0.1" if line == "listener 1883" else line
                 for line in text.splitlines()]
        assert f"listener {self.port} 127.0.0.1" in lines, "the stack's config has a listener"
        if os.geteuid() == 0:
            lines.append("user root")  # as root, mosquitto would drop to user mosquitto
        self.config = directory / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen | None = None

    def start(self, username: str, password: str) -> None:
        log = self.directory / "mosquitto.log"
        self.process = subprocess.Popen(
            ["sh", str(self.start_script)],
            env={"PATH": os.environ["PATH"], "MQTT_USERNAME": username,
                 "MQTT_PASSWORD": password, "MOSQUITTO_CONFIG": str(self.config)},
            stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=self.directory)
        wait_ready(self.process, self._accepting, "mosquitto", log)

    def _accepting(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def publish(self, username: str | None, password: str | None, topic: str,
                message: str) -> subprocess.CompletedProcess:
        credentials = ["-u", username, "-P", password] if username and password else []
        return subprocess.run([require("mosquitto_pub"), "-h", "127.0.0.1", "-p",
                               str(self.port), *credentials, "-t", topic, "-m", message,
                               "-q", "1"], capture_output=True, text=True, timeout=20)


class InfluxDBWithAuth(InfluxDB):
    """influxd with authentication on, as the stack runs it; ``as_user`` queries with
    basic auth."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        config = directory / "influxd.conf"
        config.write_text(config.read_text().replace("[http]\n", "[http]\n  auth-enabled = true\n"))

    def as_user(self, user: str, password: str, statement: str, db: str = "") -> dict:
        """The first result of a statement run as ``user``: its series or its error."""
        response = HTTP.request(
            "POST", self.url + "/query", body=urlencode({"q": statement, "db": db}),
            headers={**urllib3.make_headers(basic_auth=f"{user}:{password}"),
                     "Content-Type": "application/x-www-form-urlencoded"})
        answer = json.loads(response.data)
        return answer["results"][0] if "results" in answer else answer

    def write_as(self, user: str, password: str, db: str, line: bytes) -> int:
        return HTTP.request("POST", f"{self.url}/write?db={db}", body=line,
                            headers=urllib3.make_headers(basic_auth=f"{user}:{password}")).status
