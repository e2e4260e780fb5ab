"""From a batch of line protocol to MQTT messages, by layout and data format.

- ``non-batch``: one message per metric on the metric's topic.
- ``batch``: one message per topic with all of the batch's metrics for it.
- ``field``: one message per field, on the topic with the field name appended (or put
  where ``{field}`` is), carrying the bare value; tags and time are dropped.

``influx`` payloads are the lines exactly as spooled (newline-terminated, nanosecond
timestamps). ``json`` follows Telegraf's JSON serializer, with the timestamp in
nanoseconds: ``{"name": …, "tags": {…}, "fields": {…}, "timestamp": …}``, and
``{"metrics": […]}`` for a batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from collector import Metric
from collector.lineprotocol import LineProtocolError, decode_line
from plugins.outputs.mqtt.series import parse_series, series_key
from plugins.outputs.mqtt.settings import MQTTOutputConfig
from plugins.outputs.mqtt.topics import TopicTemplate, valid_topic

MAX_CACHED_SERIES = 10_000


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    metrics: int
    """Metrics the message carries: what is rejected if the broker refuses it."""
    retain: bool


@dataclass
class Batch:
    messages: list[Message]
    rejected: int
    """Metrics that no message can carry (a line that does not parse, a topic too long)."""


class MessageBuilder:
    def __init__(self, config: MQTTOutputConfig, hostname: str) -> None:
        self.layout = config.layout
        self.json = config.data_format == "json"
        self.retain = config.retain
        self.template = TopicTemplate(config.topic, config.layout == "field")
        self.hostname = hostname
        self._topics: dict[bytes, str] = {}

    def build(self, lines: list[bytes]) -> Batch:
        if self.layout == "field":
            return self._fields(lines)
        if self.json:
            return self._json(lines)
        return self._influx(lines)

    # ------------------------------------------------------------ influx
    def _influx(self, lines: list[bytes]) -> Batch:
        rejected = 0
        if self.layout == "non-batch":
            messages = []
            for line in lines:
                topic = self._topic_of(line)
                if topic is None:
                    rejected += 1
                else:
                    messages.append(Message(topic, line + b"\n", 1, self.retain))
            return Batch(messages, rejected)
        grouped: dict[str, list[bytes]] = {}
        for line in lines:
            topic = self._topic_of(line)
            if topic is None:
                rejected += 1
            else:
                grouped.setdefault(topic, []).append(line)
        return Batch([Message(topic, b"\n".join(group) + b"\n", len(group), self.retain)
                      for topic, group in grouped.items()], rejected)

    def _topic_of(self, line: bytes) -> str | None:
        key = series_key(line)
        topic = self._topics.get(key)
        if topic is None:
            try:
                name, tags = parse_series(key)
            except (LineProtocolError, UnicodeDecodeError):
                return None
            topic = self.template.render(name, tags, self.hostname)
            if not valid_topic(topic):
                return None
            if len(self._topics) >= MAX_CACHED_SERIES:
                self._topics.clear()
            self._topics[key] = topic
        return topic

    # ------------------------------------------------------------ decoded
    def _decoded(self, lines: list[bytes]) -> tuple[list[Metric], int]:
        metrics, rejected = [], 0
        for line in lines:
            try:
                metrics.append(decode_line(line.decode()))
            except (LineProtocolError, UnicodeDecodeError):
                rejected += 1
        return metrics, rejected

    def _json(self, lines: list[bytes]) -> Batch:
        metrics, rejected = self._decoded(lines)
        grouped: dict[str, list[dict]] = {}
        for metric in metrics:
            topic = self.template.render(metric.name, metric.tags, self.hostname)
            if not valid_topic(topic):
                rejected += 1
                continue
            grouped.setdefault(topic, []).append(json_metric(metric))
        messages = []
        for topic, group in grouped.items():
            if self.layout == "batch":
                messages.append(Message(topic, _dumps({"metrics": group}), len(group),
                                        self.retain))
            else:
                messages.extend(Message(topic, _dumps(one), 1, self.retain) for one in group)
        return Batch(messages, rejected)

    def _fields(self, lines: list[bytes]) -> Batch:
        metrics, rejected = self._decoded(lines)
        messages = []
        for metric in metrics:
            fields = [(self.template.render(metric.name, metric.tags, self.hostname, key), value)
                      for key, value in metric.fields.items()]
            if not all(valid_topic(topic) for topic, _ in fields):
                rejected += 1
                continue
            # The metric counts once, with its first field's message.
            messages.extend(Message(topic, bare_value(value), int(index == 0), self.retain)
                            for index, (topic, value) in enumerate(fields))
        return Batch(messages, rejected)


def json_metric(metric: Metric) -> dict:
    return {"name": metric.name, "tags": metric.tags, "fields": metric.fields,
            "timestamp": metric.time_ns}


def bare_value(value: object) -> bytes:
    if isinstance(value, bool):
        return b"true" if value else b"false"
    return str(value).encode()


def _dumps(document: dict) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


