"""Publishing a batch's messages and waiting until the broker acknowledged every one.

At QoS 1 a message counts as delivered on PUBACK, at QoS 2 on PUBCOMP, at QoS 0 once
it is written to the socket. All messages are sent first (up to ``max_inflight`` ahead
of their acknowledgements, which paho paces), then the acknowledgements are awaited;
the wait fails when none arrives for ``timeout`` or the connection drops, so a slow
broker working through a large batch is not mistaken for a dead one.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from plugins.common.mqtt.broker import Connection
from plugins.outputs.mqtt.messages import Message

REJECTING_CODES = {0x90: "topic name invalid", 0x95: "packet too large",
                   0x99: "payload format invalid"}
"""MQTT 5 refusals that sending again cannot cure: the message alone is rejected. Any
other refusal (not authorized, quota exceeded, ...) is retried: fixing the broker's
configuration lets the spooled data through."""
CHUNK = 10_000
"""Messages in flight at most per wait, well below the 65535 message ids."""


class PublishFailed(Exception):
    """Not every message was acknowledged: the whole batch is to be sent again."""


@dataclass
class Outcome:
    rejected: list[tuple[Message, str]] = field(default_factory=list)


class Acks:
    """Acknowledgements as paho reports them, from its network thread."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._pending: set[int] = set()
        self._early: dict[int, tuple[int, str]] = {}
        self._refused: dict[int, tuple[int, str]] = {}
        self._last_progress = 0.0

    def published(self, mid: int, code: int, reason: str) -> None:
        with self._changed:
            if mid in self._pending:
                self._pending.discard(mid)
                self._last_progress = time.monotonic()
                if code >= 0x80:
                    self._refused[mid] = (code, reason)
                if not self._pending:
                    self._changed.notify_all()
            else:
                self._early[mid] = (code, reason)

    def expect(self, mids: list[int]) -> None:
        """Start waiting for ``mids`` (some may have been acknowledged already)."""
        with self._changed:
            self._refused.clear()
            self._last_progress = time.monotonic()
            for mid in mids:
                early = self._early.pop(mid, None)
                if early is None:
                    self._pending.add(mid)
                elif early[0] >= 0x80:
                    self._refused[mid] = early
            self._early.clear()

    def wait(self, connection: Connection, timeout: float) -> dict[int, tuple[int, str]]:
        """The refusals among the expected acknowledgements, once all arrived."""
        with self._changed:
            while self._pending:
                if not connection.alive:
                    self._forget()
                    raise PublishFailed(connection.lost_reason)
                silent = time.monotonic() - self._last_progress
                if silent >= timeout:
                    missing = len(self._pending)
                    self._forget()
                    raise PublishFailed(f"{missing} message(s) not acknowledged within "
                                        f"{timeout:g}s")
                self._changed.wait(min(0.25, timeout - silent))
            return dict(self._refused)

    def _forget(self) -> None:
        self._pending.clear()
        self._early.clear()


class Publisher:
    def __init__(self, qos: int, timeout: float) -> None:
        self.qos = qos
        self.timeout = timeout
        self.acks = Acks()

    def publish(self, connection: Connection, messages: list[Message]) -> Outcome:
        """Send and wait; raises PublishFailed unless every message was acknowledged."""
        outcome = Outcome()
        for start in range(0, len(messages), CHUNK):
            chunk = messages[start:start + CHUNK]
            by_mid: dict[int, Message] = {}
            for message in chunk:
                info = connection.client.publish(message.topic, message.payload, self.qos,
                                                 message.retain)
                if info.rc:
                    raise PublishFailed(f"cannot publish: {info.rc.name}")
                by_mid[info.mid] = message
            self.acks.expect(list(by_mid))
            for mid, (code, reason) in self.acks.wait(connection, self.timeout).items():
                if code not in REJECTING_CODES:
                    raise PublishFailed(f"broker refused a message on "
                                        f"{by_mid[mid].topic!r}: {reason}")
                outcome.rejected.append((by_mid[mid], reason))
        return outcome
