"""[[outputs.influxdb]]: line protocol to InfluxDB, with retention policies as code."""

from __future__ import annotations

import re

from collector import Output, RetryableError, WriteResult
from collector.lineprotocol import split_lines
from plugins.outputs.influxdb.provision import Provisioner
from plugins.outputs.influxdb.settings import InfluxDBConfig
from plugins.outputs.influxdb.transport import Reply, V1Transport, V2Transport

_DROPPED = re.compile(r"dropped=(\d+)")


class InfluxDBOutput(Output):
    """Writes batches and decides, per the server's answer, what is kept or retried.

    - 2xx: written.
    - 400 "partial write": the server stored all but ``dropped=N`` points (beyond
      retention: counted as dropped; type conflicts: counted as rejected) and, on
      influxd 1.6, all but the lines it names as "unable to parse" (rejected). Retrying
      cannot help, so the batch is done.
    - other 400 and 413: nothing was stored; the batch is split in halves until the
      bad (or oversized) lines stand alone, and only those are rejected.
    - 404 database not found: provision (when enabled) and retry.
    - 401/403/404, 429, 5xx, network: retried with backoff; the data waits in the spool.
    """

    Config = InfluxDBConfig

    def __init__(self, config: InfluxDBConfig, context) -> None:
        super().__init__(config, context)
        self.transport = V2Transport(config) if config.api == "v2" else V1Transport(config)

    def start(self) -> None:
        self.context.log.info("writing to %s, database %s%s", " or ".join(self.config.urls),
                              self.config.bucket if self.config.api == "v2"
                              else self.config.database,
                              f", retention policy {self.config.retention_policy}"
                              if self.config.retention_policy else "")
        if self.config.provision and self.config.api == "v1":
            try:
                changes = self.provision(dry_run=False)
            except (RetryableError, RuntimeError) as err:
                raise RuntimeError(f"provisioning failed ({err}); it is tried again when the "
                                   "server answers that the database is missing") from None
            for change in changes:
                self.context.log.info("provisioned: %s", change)

    def provision(self, dry_run: bool, prune: str = "none") -> list[str] | None:
        if self.config.api != "v1":
            return None
        return Provisioner(self.transport, self.config, self.context.log).apply(
            dry_run=dry_run, prune=prune)

    def write(self, payload: bytes, count: int) -> WriteResult:
        reply = self.transport.write(payload)
        if reply.status < 300:
            return WriteResult(written=count)
        text = reply.text.strip()
        if reply.status == 400 and "partial write" in text:
            return self._partial(text, count)
        if reply.status in (400, 413) and not reply.html:
            return self._isolate(payload, count, reply)
        if reply.status == 404 and "database not found" in text and self.config.provision:
            self.start()
            raise RetryableError(f"HTTP 404 {reply.summary}; database created", retry_after=0)
        raise RetryableError(f"{reply.url}: HTTP {reply.status} {reply.summary}",
                             reply.retry_after)

    def _partial(self, text: str, count: int) -> WriteResult:
        """influxd stored the rest; lines it could not parse are not in its dropped=N."""
        match = _DROPPED.search(text)
        lost = int(match.group(1)) if match else 0
        unparsed = text.count("unable to parse '")
        self.context.log.warning("server kept %d of %d points: %s", count - lost - unparsed,
                                 count, text[:300])
        if "beyond retention" in text:
            return WriteResult(written=count - lost - unparsed, dropped=lost, rejected=unparsed)
        return WriteResult(written=count - lost - unparsed, rejected=lost + unparsed)

    def _isolate(self, payload: bytes, count: int, reply: Reply) -> WriteResult:
        lines = split_lines(payload)
        if len(lines) <= 1:
            self.context.log.warning("rejected a point (HTTP %d %s): %r", reply.status,
                                     reply.summary, payload[:300])
            return WriteResult(written=0, rejected=count)
        half = len(lines) // 2
        first = self.write(b"".join(lines[:half]), half)
        second = self.write(b"".join(lines[half:]), len(lines) - half)
        return WriteResult(
            written=first.written + second.written,
            dropped=first.dropped + second.dropped,
            rejected=first.rejected + second.rejected,
        )

    def close(self) -> None:
        self.transport.close()
