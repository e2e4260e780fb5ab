"""From one MQTT message (topic and payload) to metrics.

- ``influx``: line protocol; lines without a timestamp get the arrival time.
- ``json``: Telegraf's JSON serializer (``{"name", "tags", "fields", "timestamp"}`` or
  ``{"metrics": [...]}``, as outputs.mqtt writes it), or a flat object whose numbers,
  booleans and strings become fields of the measurement ``mqtt_consumer``.
- ``value``: one bare value (outputs.mqtt's ``field`` layout) as the field ``value``.

Then the first matching ``topic_parsing`` rule renames the measurement and adds tags
and fields from the topic's levels.
"""

from __future__ import annotations

import json

from collector import Metric
from collector import decode_line_protocol as decode
from collector.lineprotocol import LineProtocolError
from plugins.inputs.mqtt_consumer.settings import (
    TIMESTAMP_UNITS,
    FieldType,
    MQTTConsumerConfig,
    TopicParsing,
)

DEFAULT_MEASUREMENT = "mqtt_consumer"


class ParseError(ValueError):
    """A message that cannot become metrics; the message says why, in one line."""


class MessageParser:
    def __init__(self, config: MQTTConsumerConfig) -> None:
        self.config = config
        self.json_unit = TIMESTAMP_UNITS[config.json_timestamp_units]

    def relays(self, topic: str) -> bool:
        """Whether a message on ``topic`` is stored as received: line protocol that no
        topic rule and no topic tag changes."""
        return (self.config.data_format == "influx" and not self.config.topic_tag
                and not any(rule.matches(topic.split("/")) for rule in self.config.topic_parsing))

    def parse(self, topic: str, payload: bytes, now_ns: int) -> list[Metric]:
        if self.config.data_format == "influx":
            metrics = self._influx(payload)
        elif self.config.data_format == "json":
            metrics = self._json(payload)
        else:
            metrics = [Metric(DEFAULT_MEASUREMENT,
                              {"value": typed(_text(payload).strip(), self.config.data_type)})]
        for metric in metrics:
            if not metric.time_ns:
                metric.time_ns = now_ns
        self._apply_topic(topic, metrics)
        return metrics

    def _influx(self, payload: bytes) -> list[Metric]:
        try:
            metrics = decode(payload)
        except UnicodeDecodeError:
            raise ParseError("payload is not UTF-8") from None
        except LineProtocolError as err:
            raise ParseError(str(err)[:200]) from None
        if not metrics:
            raise ParseError("no line protocol in the message")
        return metrics

    def _json(self, payload: bytes) -> list[Metric]:
        try:
            document = json.loads(_text(payload))
        except ValueError as err:
            raise ParseError(f"not JSON: {err}") from None
        if isinstance(document, dict) and isinstance(document.get("metrics"), list):
            return [self._serialized(item) for item in document["metrics"]]
        if isinstance(document, dict) and "fields" in document:
            return [self._serialized(document)]
        if isinstance(document, dict):
            fields = {k: v for k, v in document.items() if _scalar(v)}
            if fields:
                return [Metric(DEFAULT_MEASUREMENT, fields, {}, 0)]
        raise ParseError("JSON without fields (an object of values, or "
                         "{\"name\", \"tags\", \"fields\", \"timestamp\"})")

    def _serialized(self, item: object) -> Metric:
        if not isinstance(item, dict) or not isinstance(item.get("fields"), dict):
            raise ParseError("a JSON metric needs a \"fields\" object")
        fields = {k: v for k, v in item["fields"].items() if _scalar(v)}
        tags = item.get("tags") or {}
        stamp = item.get("timestamp", 0)
        if not fields or not isinstance(tags, dict) or not isinstance(stamp, int | float):
            raise ParseError("a JSON metric needs fields, tags as an object, a number as "
                             "timestamp")
        return Metric(str(item.get("name") or DEFAULT_MEASUREMENT), fields,
                      {str(k): str(v) for k, v in tags.items()}, int(stamp * self.json_unit))

    def _apply_topic(self, topic: str, metrics: list[Metric]) -> None:
        levels = topic.split("/")
        rule = next((r for r in self.config.topic_parsing if r.matches(levels)), None)
        for metric in metrics:
            if rule is not None:
                _parse_topic(rule, levels, metric)
            if self.config.topic_tag:
                metric.tags[self.config.topic_tag] = topic


def _parse_topic(rule: TopicParsing, levels: list[str], metric: Metric) -> None:
    for marker, level in zip(rule.measurement.split("/"), levels, strict=False):
        if rule.measurement and marker != "_":
            metric.name = level
    if rule.tags:
        for key, level in zip(rule.tags.split("/"), levels, strict=True):
            if key != "_" and level:
                metric.tags[key] = level
    if rule.fields:
        for key, level in zip(rule.fields.split("/"), levels, strict=True):
            if key != "_":
                metric.fields[key] = typed(level, rule.types.get(key, "string"))


def typed(text: str, kind: FieldType) -> float | int | bool | str:
    try:
        if kind == "float":
            return float(text)
        if kind == "int":
            return int(text)
    except ValueError:
        raise ParseError(f"{text[:50]!r} is not {'a number' if kind == 'float' else 'an int'}"
                         ) from None
    if kind == "bool":
        if text.lower() in ("true", "1", "on"):
            return True
        if text.lower() in ("false", "0", "off"):
            return False
        raise ParseError(f"{text[:50]!r} is not a boolean")
    return text


def _text(payload: bytes) -> str:
    try:
        return payload.decode()
    except UnicodeDecodeError:
        raise ParseError("payload is not UTF-8") from None


def _scalar(value: object) -> bool:
    return isinstance(value, bool | int | float | str)
