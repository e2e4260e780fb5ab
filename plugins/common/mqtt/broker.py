"""Connecting to an MQTT broker: the options both MQTT plugins share and one connection.

Each connection gets a fresh paho client that never reconnects by itself. paho keeps
unacknowledged messages queued across its own reconnects and sends them again behind
the caller's back; with one client per connection, what a plugin has not seen
acknowledged is simply sent again by the plugin (the output's spool replays the batch,
the broker redelivers to a consumer's persistent session), so there is exactly one
owner of every retry.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collector import Duration, Secret
from collector.binding import BindError

TLS_SCHEMES = {"ssl", "tls", "mqtts"}
PLAIN_SCHEMES = {"tcp", "mqtt"}
NEVER_EXPIRES = 0xFFFFFFFF
"""MQTT 5's Session Expiry Interval meaning "never"."""


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    tls: bool

    def __str__(self) -> str:
        return f"{'ssl' if self.tls else 'tcp'}://{self.host}:{self.port}"


def parse_server(text: str) -> Server:
    """``host:port``, ``tcp://host[:1883]`` or ``ssl://host[:8883]`` (also ``mqtt``,
    ``mqtts``, ``tls``), as Telegraf writes them."""
    url = urlsplit(text if "://" in text else f"tcp://{text}")
    if url.scheme not in TLS_SCHEMES | PLAIN_SCHEMES:
        raise ValueError(f"unknown scheme {url.scheme!r} (tcp:// or ssl://)")
    if url.username or url.password:
        raise ValueError("put credentials in username/password, not in the URL "
                         "(they would end up in logs)")
    if not url.hostname or url.path not in ("", "/"):
        raise ValueError("expected HOST:PORT, tcp://HOST:PORT or ssl://HOST:PORT")
    tls = url.scheme in TLS_SCHEMES
    return Server(url.hostname, url.port or (8883 if tls else 1883), tls)


@dataclass
class BrokerConfig:
    """Options of every MQTT plugin: where the broker is and how to log in."""

    servers: list[str] = field(default_factory=lambda: ["tcp://127.0.0.1:1883"])
    """Tried in turn: the next one after a failed connection."""
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    client_id: str = ""
    username: str = ""
    password: Secret = field(default_factory=Secret)
    keep_alive: Duration = Duration(60)
    """Ping interval. 0 would disable keep-alive, which mosquitto >= 2.0.12 refuses."""
    connect_timeout: Duration = Duration(10)
    tls_ca: str = ""
    """CA bundle that signed the broker's certificate; empty: the system's CAs."""
    tls_cert: str = ""
    tls_key: str = ""
    insecure_skip_verify: bool = False
    """Accept any certificate and host name (testing only)."""

    def validate(self) -> None:
        if not self.servers:
            raise BindError("servers", "needs at least one broker, e.g. \"tcp://127.0.0.1:1883\"")
        for index, text in enumerate(self.servers):
            try:
                parse_server(text)
            except ValueError as err:
                raise BindError(f"servers[{index}]", str(err)) from None
        if not 1 <= self.keep_alive <= 65535:
            raise BindError("keep_alive", "must be between 1s and 65535s (0 would disable "
                            "keep-alive, which mosquitto >= 2.0.12 refuses)")
        if self.connect_timeout <= 0:
            raise BindError("connect_timeout", "must be positive")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise BindError("tls_key" if self.tls_cert else "tls_cert",
                            "tls_cert and tls_key go together")
        for key in ("tls_ca", "tls_cert", "tls_key"):
            path = getattr(self, key)
            if path and not Path(path).is_file():
                raise BindError(key, f"no such file: {path}")
        if self.password and not self.username:
            raise BindError("password", "a password needs a username")

    @property
    def parsed_servers(self) -> list[Server]:
        return [parse_server(text) for text in self.servers]


class ConnectFailed(Exception):
    """The broker could not be reached or refused us; the message is one line and never
    contains a credential."""


@dataclass(frozen=True)
class Will:
    """The message the broker publishes when this client vanishes without a word."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


OnMessage = Callable[[paho.MQTTMessage], None]
OnPublished = Callable[[int, int, str], None]
"""(message id, reason code, reason): an MQTT 5 broker may acknowledge with a refusal
(a code of 0x80 or more); MQTT 3.1.1 acknowledgements are always 0."""


class Connection:
    """One connection through its own paho client and network thread."""

    def __init__(self, config: BrokerConfig, server: Server, client_id: str, *,
                 persistent: bool = False, session_expiry: float = 0.0,
                 manual_ack: bool = False, will: Will | None = None,
                 on_message: OnMessage | None = None,
                 on_published: OnPublished | None = None) -> None:
        self.config = config
        self.server = server
        self.v5 = config.protocol == "5"
        self.persistent = persistent
        self.session_expiry = session_expiry
        self.session_present = False
        self.receive_maximum = 65535
        """How many QoS 1/2 messages an MQTT 5 broker takes ahead of its acknowledgements
        (paho cannot lower its window on an open connection: reconnect with less)."""
        self._connected = threading.Event()
        self._gone = threading.Event()
        self._refusal = ""
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id,
            clean_session=None if self.v5 else not persistent,
            protocol=paho.MQTTv5 if self.v5 else paho.MQTTv311,
            reconnect_on_failure=False, manual_ack=manual_ack,
        )
        self.client.connect_timeout = config.connect_timeout
        if config.username:
            self.client.username_pw_set(config.username, config.password.reveal() or None)
        if server.tls:
            self._set_tls()
        if will is not None:
            self.client.will_set(will.topic, will.payload, will.qos, will.retain)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        if on_message is not None:
            self.client.on_message = lambda _client, _data, message: on_message(message)
        if on_published is not None:
            self.client.on_publish = lambda _client, _data, mid, reason, _props: on_published(
                mid, reason.value, str(reason))

    def _set_tls(self) -> None:
        context = ssl.create_default_context(cafile=self.config.tls_ca or None)
        if self.config.tls_cert:
            context.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        if self.config.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self.client.tls_set_context(context)

    # ------------------------------------------------------------ lifecycle
    def open(self) -> None:
        """Connect and wait for the broker's CONNACK; raises ConnectFailed."""
        properties = None
        if self.v5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = (
                (NEVER_EXPIRES if self.session_expiry == float("inf")
                 else int(self.session_expiry)) if self.persistent else 0)
        try:
            self.client.connect(
                self.server.host, self.server.port, keepalive=round(self.config.keep_alive),
                clean_start=not self.persistent if self.v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
                properties=properties)
        except (OSError, ssl.SSLError) as err:
            raise ConnectFailed(f"{self.server}: {_describe(err)}") from None
        self.client.loop_start()
        if not self._connected.wait(self.config.connect_timeout) or self._gone.is_set():
            reason = self._refusal or "no answer to CONNECT"
            self.close(graceful=False)
            raise ConnectFailed(f"{self.server}: {reason}")

    @property
    def alive(self) -> bool:
        return self._connected.is_set() and not self._gone.is_set()

    def wait_gone(self, timeout: float) -> bool:
        return self._gone.wait(timeout)

    def close(self, graceful: bool = True) -> None:
        """Disconnect; bounded even against a broker that stopped reading."""
        if graceful and self.alive:
            self.client.disconnect()
            self._gone.wait(2.0)
        sock = self.client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.client.loop_stop()
        self._gone.set()

    # ------------------------------------------------------------ callbacks
    def _on_connect(self, _client, _data, flags, reason, properties) -> None:
        if reason.is_failure:
            self._refusal = f"broker refused the connection: {reason}"
            self._gone.set()
            self._connected.set()
            return
        self.session_present = bool(flags.session_present)
        maximum = getattr(properties, "ReceiveMaximum", None) if self.v5 else None
        if maximum:
            self.receive_maximum = maximum
        self._connected.set()

    def _on_disconnect(self, _client, _data, _flags, reason, _properties) -> None:
        if not self._refusal and reason.is_failure:
            self._refusal = f"disconnected: {reason}"
        self._gone.set()

    @property
    def lost_reason(self) -> str:
        return self._refusal or "connection lost"


def _describe(err: BaseException) -> str:
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, TimeoutError | socket.timeout):
        return "connection timed out"
    if isinstance(err, ssl.SSLError):
        return f"TLS: {err.reason or err}"
    return err.strerror or type(err).__name__ if isinstance(err, OSError) else str(err)
