"""[[inputs.influxdb_listener]]: accept line protocol over HTTP, as InfluxDB's /write does.

Lets other programs (scripts, another collector, curl) push metrics through this
collector's spool and outputs. A request is answered 204 only after its metrics are
durably in every output's spool, so a 204 means "will be delivered". When a spool
refuses them (full under ``drop_newest``: 503; disk full or failing: 507), the answer
says why and carries Retry-After, so the client sends them again later.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from collector import Accumulator, ByteSize, Refused, StreamingInput
from collector.binding import BindError
from collector.episodes import ErrorReporter
from collector.lineprotocol import LineProtocolError
from collector.metric import PRECISION_NS

RETRY_AFTER_S = 10


@dataclass
class ListenerConfig:
    service_address: str = "127.0.0.1:8186"
    max_body_size: ByteSize = ByteSize(32 * 2**20)

    def validate(self) -> None:
        port = self.service_address.rpartition(":")[2]
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise BindError("service_address", "expected HOST:PORT, e.g. \"127.0.0.1:8186\"")


class InfluxDBListener(StreamingInput):
    Config = ListenerConfig

    def run(self, acc: Accumulator, stop: threading.Event) -> None:
        host, _, port = self.config.service_address.rpartition(":")
        handler = type("Handler", (_Handler,), {"acc": acc, "limit": self.config.max_body_size,
                                                "errors": ErrorReporter(self.context.log)})
        server = _Server((host or "0.0.0.0", int(port)), handler)
        server.daemon_threads = True
        serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                   name="influxdb-listener", daemon=True)
        serving.start()
        self.context.log.info("listening on %s", self.config.service_address)
        try:
            stop.wait()
        finally:
            server.shutdown()
            server.server_close()
            serving.join()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A request that failed has been answered 500 and logged once per episode by its
        handler; the default would print a traceback for every one."""


class _Handler(BaseHTTPRequestHandler):
    acc: Accumulator
    limit: int
    errors: ErrorReporter
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._answer(204 if urlparse(self.path).path == "/ping" else 404)

    do_HEAD = do_GET

    def do_POST(self) -> None:
        url = urlparse(self.path)
        if url.path != "/write":
            self._answer(404, "not found")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.limit:
            self._answer(413, f"body larger than {self.limit} bytes")
            return
        body = self.rfile.read(length)
        precision = parse_qs(url.query).get("precision", ["ns"])[0]
        if precision not in PRECISION_NS:
            self._answer(400, f"unknown precision {precision!r}")
            return
        try:
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            (stored,) = self.acc.store_line_protocol([body], time.time_ns(), precision)
            if isinstance(stored, Exception):
                raise stored
        except (LineProtocolError, UnicodeDecodeError, OSError) as err:
            self._answer(400, f"unable to parse: {err}")
            return
        except Refused as refusal:
            self._answer(507 if refusal.storage_failed else 503,
                         f"not stored: {refusal.reason}; send again later", RETRY_AFTER_S)
            return
        except Exception as err:
            self.errors.failed(err, "storing a request failed: ")
            self._answer(500, f"not stored: {type(err).__name__}")
            return
        self.errors.succeeded("storing requests again")
        self._answer(204)

    def _answer(self, status: int, error: str = "", retry_after: int | None = None) -> None:
        body = json.dumps({"error": error}).encode() if error else b""
        self.send_response(status)
        if body:
            self.send_header("Content-Type", "application/json")
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        """Requests are counted by the agent, not logged one by one."""
