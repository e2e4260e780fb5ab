"""A real mosquitto for tests: a plain process with a listener on a free loopback port,
a password file and persistence in its own temp directory; plus a subscriber that
remembers what it received."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.helpers import wait_until
from tests.servers import free_port, require, wait_ready


def sbin(binary: str) -> str:
    """Debian installs the broker in /usr/sbin, which a normal user's PATH lacks."""
    return shutil.which(binary, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin") or \
        require(binary)


USER = "collector"
PASSWORD = "correct horse battery"


class Mosquitto:
    def __init__(self, directory: Path, extra: str = "", tls: bool = False) -> None:
        self.directory = directory
        self.port = free_port()
        self.tls_port = free_port()
        if tls:
            self.certificate = directory / "broker.crt"
            subprocess.run([require("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-days", "1", "-subj", "/CN=127.0.0.1",
                            "-addext", "subjectAltName=IP:127.0.0.1",
                            "-keyout", str(directory / "broker.key"),
                            "-out", str(self.certificate)], check=True, capture_output=True)
            extra += (f"\nlistener {self.tls_port} 127.0.0.1\ncafile {self.certificate}\n"
                      f"certfile {self.certificate}\nkeyfile {directory / 'broker.key'}\n")
        self.extra = extra
        self.process: subprocess.Popen | None = None
        self.log = directory / "mosquitto.log"
        passwords = directory / "passwd"
        subprocess.run([require("mosquitto_passwd"), "-b", "-c", str(passwords), USER, PASSWORD],
                       check=True, capture_output=True)
        (directory / "mosquitto.conf").write_text(f"""
listener {self.port} 127.0.0.1
allow_anonymous false
password_file {passwords}
persistence true
persistence_location {directory}/
max_queued_messages 0
max_inflight_messages 100
user root
log_dest stderr
log_type error
log_type warning
log_type notice
{extra}
""")

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sbin("mosquitto"), "-c", str(self.directory / "mosquitto.conf")],
                stdout=log, stderr=log, cwd=self.directory)
        wait_ready(self.process, self._accepts_login, f"mosquitto on {self.port}", self.log,
                   timeout)

    def _accepts_login(self) -> bool:
        """Ours answers a CONNECT with our credentials (a stranger on the port would not)."""
        def text(value: str) -> bytes:
            return struct.pack("!H", len(value)) + value.encode()

        body = (text("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 10)
                + text("ready-check") + text(USER) + text(PASSWORD))
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(bytes([0x10, len(body)]) + body)
                return sock.recv(4) == b"\x20\x02\x00\x00"
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its persistence file and exits."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(15)
        self.process = None

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


@pytest.fixture(name="mosquitto")
def mosquitto_fixture(tmp_path_factory):
    """A broker of its own for each test (tests stop, kill and restart it)."""
    server = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    server.start()
    yield server
    server.kill()


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


class Subscriber:
    """Subscribes to ``topics`` at QoS 1 and keeps every message, in order."""

    def __init__(self, server: Mosquitto, *topics: str, protocol: int = paho.MQTTv311) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
        self.client.username_pw_set(USER, PASSWORD)
        subscribed = threading.Event()
        self.client.on_message = self._keep
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect("127.0.0.1", server.port)
        self.client.loop_start()
        self.client.subscribe([(topic, 1) for topic in topics])
        assert subscribed.wait(10), "not subscribed"

    def _keep(self, _client, _data, message) -> None:
        with self._lock:
            self.messages.append(Received(message.topic, message.payload, bool(message.retain)))

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [m.payload for m in self.messages if m.topic == topic]

    def latest(self) -> dict[str, bytes]:
        """The last payload of each topic."""
        with self._lock:
            return {m.topic: m.payload for m in self.messages}

    def wait_for(self, count: int, timeout: float = 10) -> list[Received]:
        wait_until(lambda: len(self.messages) >= count, timeout)
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained(server: Mosquitto, pattern: str) -> dict[str, bytes]:
    """The retained messages under ``pattern``. The broker sends them right after the
    subscription, in order, so a marker published afterwards arrives after all of them."""
    marker = f"test/marker/{uuid.uuid4().hex}"
    subscriber = Subscriber(server, pattern, marker)
    try:
        subscriber.client.publish(marker, b"end", qos=1)
        wait_until(lambda: subscriber.on(marker), timeout=10)
        return {m.topic: m.payload for m in subscriber.messages if m.retain}
    finally:
        subscriber.close()
