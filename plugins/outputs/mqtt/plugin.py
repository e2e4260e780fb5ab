"""[[outputs.mqtt]]: metrics to an MQTT broker, with Home Assistant discovery.

A batch leaves the spool only when the broker acknowledged every message of it (PUBACK
at QoS 1, PUBCOMP at QoS 2; written to the socket at QoS 0). Anything less raises
RetryableError and the whole batch is published again later: at-least-once, so a
subscriber may see a message twice after a broker outage, never miss one.
"""

from __future__ import annotations

from collector import Output, RetryableError, WriteResult
from collector import split_line_protocol as split_lines
from plugins.common.mqtt.broker import ConnectFailed, Connection, Server
from plugins.outputs.mqtt.homeassistant.discovery import HomeAssistant
from plugins.outputs.mqtt.messages import Message, MessageBuilder
from plugins.outputs.mqtt.publisher import Outcome, Publisher, PublishFailed
from plugins.outputs.mqtt.settings import MQTTOutputConfig

GOODBYE_TIMEOUT_S = 2.0


class MQTTOutput(Output):
    Config = MQTTOutputConfig

    def __init__(self, config: MQTTOutputConfig, context) -> None:
        super().__init__(config, context)
        self.builder = MessageBuilder(config, context.hostname)
        self.publisher = Publisher(config.qos, config.timeout)
        self.homeassistant = (HomeAssistant(config.homeassistant, context, config.qos)
                              if config.homeassistant.enabled else None)
        self.servers = config.parsed_servers
        self._server = 0
        self._connection: Connection | None = None
        self._inflight = config.max_inflight

    # ------------------------------------------------------------ writing
    def write(self, payload: bytes, count: int) -> WriteResult:
        connection = self._connected()
        lines = split_lines(payload)
        batch = self.builder.build(lines)
        messages = batch.messages
        if self.homeassistant is not None:
            messages = messages + self.homeassistant.states(lines)
        outcome = self._publish(connection, messages)
        rejected = batch.rejected + sum(message.metrics for message, _ in outcome.rejected)
        if rejected:
            reasons = {reason for _, reason in outcome.rejected} or {"no topic or payload"}
            self.context.log.warning("rejected %d of %d metrics: %s", rejected, count,
                                     ", ".join(sorted(reasons)))
        return WriteResult(written=count - rejected, rejected=rejected)

    def _publish(self, connection: Connection, messages: list[Message]) -> Outcome:
        try:
            return self.publisher.publish(connection, messages)
        except PublishFailed as err:
            self._disconnect(graceful=False)
            raise RetryableError(f"{connection.server}: {err}") from None

    # ------------------------------------------------------------ connection
    def _connected(self) -> Connection:
        if self._connection is not None and self._connection.alive:
            return self._connection
        self._disconnect(graceful=False)
        server = self.servers[self._server]
        try:
            connection = self._open(server)
            if connection.receive_maximum < self._inflight:
                connection.close()
                self._inflight = connection.receive_maximum
                connection = self._open(server)
        except ConnectFailed as err:
            self._server = (self._server + 1) % len(self.servers)
            raise RetryableError(str(err)) from None
        self._connection = connection
        homeassistant = self.homeassistant
        if homeassistant is not None:
            connection.client.subscribe(homeassistant.config.status_topic, qos=1)
            self._publish(connection, homeassistant.on_connect())
            homeassistant.announced()
        self.context.log.info("connected to %s", server)
        return connection

    def _open(self, server: Server) -> Connection:
        connection = Connection(
            self.config, server, self.config.client_id,
            will=self.homeassistant.will if self.homeassistant else None,
            on_published=self.publisher.acks.published, on_message=self._on_message)
        connection.client.max_inflight_messages = self._inflight
        connection.open()
        return connection

    def _on_message(self, message) -> None:
        """Home Assistant announced itself: send discovery again (from paho's thread;
        retained and re-sent on every connection, so no need to wait for the acks)."""
        connection = self._connection
        if self.homeassistant is None or connection is None:
            return
        for reply in self.homeassistant.on_status(message.payload):
            connection.client.publish(reply.topic, reply.payload, self.config.qos, reply.retain)

    def _disconnect(self, graceful: bool) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close(graceful=graceful)

    def close(self) -> None:
        """Say goodbye: ``offline`` for Home Assistant, then a clean DISCONNECT (which
        keeps the broker from publishing the last will)."""
        connection = self._connection
        if connection is not None and connection.alive and self.homeassistant is not None:
            goodbye = self.homeassistant.will
            info = connection.client.publish(goodbye.topic, goodbye.payload, goodbye.qos,
                                             goodbye.retain)
            if not info.rc:
                info.wait_for_publish(GOODBYE_TIMEOUT_S)
        self._disconnect(graceful=True)
