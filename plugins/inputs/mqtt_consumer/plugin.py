"""[[inputs.mqtt_consumer]]: metrics from MQTT topics, acknowledged once durable.

paho hands each message to this input's queue with its acknowledgement held back
(manual ack). The input's thread parses up to ``max_batch`` queued messages, stores
their metrics in every output's spool with one ``acc.store`` and only then sends the
PUBACKs, in the order the messages came. When a spool refuses, nothing is
acknowledged: the input disconnects and, after a pause, reconnects to its persistent
session, where the broker delivers the unacknowledged messages again. A message that
cannot be parsed is counted, logged once per episode and acknowledged (sending it
again would not make it parse).
"""

from __future__ import annotations

import queue
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.subscribeoptions import SubscribeOptions

from collector import Accumulator, Metric, Refused, StreamingInput
from collector.episodes import ErrorReporter
from plugins.common.mqtt.broker import ConnectFailed, Connection
from plugins.inputs.mqtt_consumer.parsing import MessageParser, ParseError
from plugins.inputs.mqtt_consumer.settings import MQTTConsumerConfig

WAIT_FOR_MESSAGES_S = 0.2
REFUSED_PAUSE_S = 5.0


class MQTTConsumer(StreamingInput):
    Config = MQTTConsumerConfig

    def __init__(self, config: MQTTConsumerConfig, context) -> None:
        super().__init__(config, context)
        self.log = context.log
        self.parser = MessageParser(config)
        self.client_id = (config.client_id
                          or f"collector-{context.hostname or 'consumer'}-{context.alias}")
        self.servers = config.parsed_servers
        self.connection_errors = ErrorReporter(context.log)
        self.store_errors = ErrorReporter(context.log)
        self._invalid = False
        """In an episode of messages that do not parse (logged once, when it starts)."""

    def run(self, acc: Accumulator, stop: threading.Event) -> None:
        delay, server = 1.0, 0
        while not stop.is_set():
            try:
                pause = self._session(self.servers[server], acc, stop)
                delay = 1.0
            except ConnectFailed as err:
                self.connection_errors.failed(err)
                server = (server + 1) % len(self.servers)
                pause, delay = delay, min(delay * 2, self.config.reconnect_max_interval)
            stop.wait(pause)

    def _session(self, server, acc: Accumulator, stop: threading.Event) -> float:
        """One connection: consume until it drops, ``stop`` is set or a spool refuses;
        returns how long to pause before the next one."""
        inbox: queue.SimpleQueue[paho.MQTTMessage] = queue.SimpleQueue()
        connection = Connection(self.config, server, self.client_id,
                                persistent=self.config.persistent_session,
                                session_expiry=self.config.session_expiry,
                                manual_ack=True, on_message=inbox.put)
        connection.client.on_subscribe = self._subscribed
        connection.open()
        self.context.stats.set("subscribed", 0)
        try:
            connected = (f"connected to {server} "
                         f"({'resumed' if connection.session_present else 'new'} session)")
            if self.connection_errors.failing:
                self.connection_errors.succeeded(connected)
            else:
                self.log.info("%s", connected)
            self._subscribe(connection)
            while not stop.is_set() and connection.alive:
                batch = _take(inbox, self.config.max_batch)
                if batch and not self._consume(batch, connection, acc):
                    return REFUSED_PAUSE_S
            if not stop.is_set():
                self.connection_errors.failed(ConnectFailed(f"{server}: "
                                                            f"{connection.lost_reason}"))
            return 1.0
        finally:
            self.context.stats.set("subscribed", 0)
            connection.close(graceful=True)

    def _subscribe(self, connection: Connection) -> None:
        """On every connection, so a changed ``topics`` takes effect. MQTT 5 asks for
        retained messages only with a new subscription; MQTT 3.1.1 brokers send them
        again (harmless where points carry timestamps)."""
        if connection.v5:
            options = SubscribeOptions(qos=self.config.qos, retainHandling=1)
            connection.client.subscribe([(topic, options) for topic in self.config.topics])
        else:
            connection.client.subscribe([(topic, self.config.qos) for topic in self.config.topics])

    def _subscribed(self, _client, _data, _mid, reasons, _properties) -> None:
        """``subscribed`` (internal_input) is 1 while every subscription is in place."""
        refused = [(topic, reason) for topic, reason in zip(self.config.topics, reasons,
                                                            strict=False) if reason.is_failure]
        for topic, reason in refused:
            self.log.error("broker refused the subscription to %r: %s", topic, reason)
        self.context.stats.set("subscribed", int(not refused))

    def _consume(self, batch: list[paho.MQTTMessage], connection: Connection,
                 acc: Accumulator) -> bool:
        """Store the batch's metrics, then acknowledge; False when a spool refused.

        Line protocol that topic parsing leaves alone is relayed as received
        (``store_line_protocol``); anything else is parsed into metrics first."""
        now = time.time_ns()
        relayed: list[paho.MQTTMessage] = []
        metrics: list[Metric] = []
        for message in batch:
            if self.parser.relays(_topic(message)):
                relayed.append(message)
            else:
                metrics.extend(self._parsed(message, now))
        self.context.stats.incr("messages_received", len(batch))
        try:
            if metrics:
                acc.store(metrics)
            if relayed:
                outcome = acc.store_line_protocol([m.payload for m in relayed], now)
                for message, stored in zip(relayed, outcome, strict=True):
                    if isinstance(stored, Exception) or not stored:
                        self._invalid_message(message, stored or "no line protocol")
                    else:
                        self._valid_message()
        except Refused as refusal:
            self.store_errors.failed(refusal, "not acknowledged, the broker keeps them: ")
            return False
        self.store_errors.succeeded("storing messages again")
        for message in batch:
            if message.qos:
                connection.client.ack(message.mid, message.qos)
        return True

    def _parsed(self, message: paho.MQTTMessage, now: int) -> list[Metric]:
        try:
            metrics = self.parser.parse(message.topic, message.payload, now)
        except (ParseError, UnicodeDecodeError) as err:
            self._invalid_message(message, err)
            return []
        self._valid_message()
        return metrics

    def _invalid_message(self, message: paho.MQTTMessage, why: object) -> None:
        self.context.stats.incr("messages_invalid")
        if not self._invalid:
            self._invalid = True
            self.log.warning("dropped a message that does not parse (counted in "
                             "messages_invalid; logged again after one parses): %s: %s",
                             _topic(message), str(why)[:200])

    def _valid_message(self) -> None:
        if self._invalid:
            self._invalid = False
            self.log.info("messages parse again")


def _take(inbox: queue.SimpleQueue, most: int) -> list[paho.MQTTMessage]:
    try:
        batch = [inbox.get(timeout=WAIT_FOR_MESSAGES_S)]
    except queue.Empty:
        return []
    while len(batch) < most:
        try:
            batch.append(inbox.get_nowait())
        except queue.Empty:
            break
    return batch


def _topic(message: paho.MQTTMessage) -> str:
    try:
        return message.topic
    except UnicodeDecodeError:
        return "(a topic that is not UTF-8)"
