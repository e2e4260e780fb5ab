"""HTTP to InfluxDB: the v1 /write + /query API (urllib3) and the v2 write API
(influxdb-client). Both answer with the same small Reply so one write policy serves."""

from __future__ import annotations

import contextlib
import datetime
import gzip
import json
import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode, urlsplit

import urllib3

from collector import RetryableError
from plugins.outputs.influxdb.settings import InfluxDBConfig


@dataclass(frozen=True)
class Reply:
    status: int
    text: str
    retry_after: float | None = None
    url: str = ""
    """What was asked (no credentials are ever in it), for messages."""
    html: bool = False
    """The server answered with a web page: probably not InfluxDB at all."""

    @property
    def summary(self) -> str:
        """The answer in one short line: InfluxDB's error text, or what a page says."""
        text = self.text
        if self.html:
            text = "an HTML page (not InfluxDB?): " + " ".join(
                re.sub(r"<[^>]*>", " ", re.sub(r"(?is)<(script|style).*?</\1>", " ", text)
                       ).split())
        else:
            with contextlib.suppress(ValueError, AttributeError):  # not InfluxDB's JSON
                text = json.loads(text).get("error", text)
        text = " ".join(str(text).split())
        return text if len(text) <= 200 else text[:200] + "..."


def network_error(url: str, err: urllib3.exceptions.HTTPError, timeout: float) -> str:
    """What went wrong on the way to the server, in words a user can act on."""
    where = urlsplit(url).netloc
    cause = err.__cause__
    if isinstance(err, urllib3.exceptions.NameResolutionError):
        return f"{where}: cannot resolve the host name"
    if isinstance(err, urllib3.exceptions.ConnectTimeoutError) and not isinstance(
            err, urllib3.exceptions.NewConnectionError):
        return f"{where}: no connection within {timeout:g} s"
    if isinstance(err, urllib3.exceptions.NewConnectionError):
        reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(cause)
        hint = " (is the server running?)" if isinstance(cause, ConnectionRefusedError) else ""
        return f"{where}: {reason.lower()}{hint}"
    if isinstance(err, urllib3.exceptions.ReadTimeoutError):
        return f"{where}: no answer within {timeout:g} s"
    if isinstance(err, urllib3.exceptions.SSLError):
        return f"{where}: TLS failed: {cause or err}"
    if isinstance(err, urllib3.exceptions.ProtocolError):
        return f"{where}: connection lost ({cause or err})"
    return f"{where}: {type(err).__name__}"


def retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either a number or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
        return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


class V1Transport:
    """POST /write?db=&rp=&precision=ns — accepted by InfluxDB 1.x, 2.x, 3.x and VM."""

    def __init__(self, config: InfluxDBConfig) -> None:
        self.config = config
        self._url_index = 0
        self._pool = urllib3.PoolManager(
            retries=False, timeout=urllib3.Timeout(total=config.timeout),
            maxsize=2, block=False,
        )
        self._headers: dict[str, str] = {}
        if config.token:
            self._headers["Authorization"] = f"Token {config.token.reveal()}"
        elif config.username:
            self._headers.update(urllib3.make_headers(
                basic_auth=f"{config.username}:{config.password.reveal()}"))

    @property
    def url(self) -> str:
        return self.config.urls[self._url_index].rstrip("/")

    def write(self, payload: bytes) -> Reply:
        params = {"db": self.config.database, "precision": "ns"}
        if self.config.retention_policy:
            params["rp"] = self.config.retention_policy
        headers = {**self._headers, "Content-Type": "text/plain; charset=utf-8"}
        if self.config.content_encoding == "gzip":
            payload = gzip.compress(payload, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        return self._request("POST", "/write?" + urlencode(params), payload, headers)

    def query(self, statement: str) -> list[dict]:
        """Run InfluxQL; raises RuntimeError with the server's words on failure."""
        body = urlencode({"q": statement, "db": self.config.database})
        headers = {**self._headers, "Content-Type": "application/x-www-form-urlencoded"}
        reply = self._request("POST", "/query", body.encode(), headers)
        if reply.status >= 300:
            raise RuntimeError(f"{reply.url.split('?')[0]}: HTTP {reply.status} {reply.summary}")
        result = json.loads(reply.text)["results"][0]
        if "error" in result:
            raise RuntimeError(result["error"])
        return result.get("series", [])

    def _request(self, method: str, path: str, body: bytes, headers: dict) -> Reply:
        url = self.url + path
        try:
            response = self._pool.request(method, url, body=body, headers=headers)
        except urllib3.exceptions.HTTPError as err:
            self._url_index = (self._url_index + 1) % len(self.config.urls)
            raise RetryableError(network_error(url, err, self.config.timeout)) from None
        return Reply(response.status, response.data.decode("utf-8", "replace"),
                     retry_after(response.headers.get("Retry-After")), url,
                     "html" in response.headers.get("Content-Type", ""))

    def close(self) -> None:
        self._pool.clear()


class V2Transport:
    """InfluxDB 2.x/3.x /api/v2/write through the official influxdb-client."""

    def __init__(self, config: InfluxDBConfig) -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.config = config
        self._client = InfluxDBClient(
            url=config.urls[0], token=config.token.reveal() or None, org=config.org or None,
            timeout=int(config.timeout * 1000),
            enable_gzip=config.content_encoding == "gzip",
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, payload: bytes) -> Reply:
        from influxdb_client.rest import ApiException

        try:
            self._api.write(bucket=self.config.bucket, org=self.config.org or None,
                            record=payload, write_precision="ns")
        except ApiException as err:
            headers = err.headers or {}
            return Reply(err.status or 0, str(err.body or err.reason or ""),
                         retry_after(headers.get("Retry-After")), self.config.urls[0],
                         "html" in headers.get("Content-Type", ""))
        except urllib3.exceptions.HTTPError as err:
            raise RetryableError(network_error(self.config.urls[0], err, self.config.timeout)
                                 ) from None
        return Reply(204, "")

    def close(self) -> None:
        self._client.close()
