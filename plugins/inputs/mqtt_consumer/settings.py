"""Options of [[inputs.mqtt_consumer]]: the broker, the topics, the payload format and
how topics become measurement, tags and fields."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from collector import Duration
from collector.binding import BindError
from plugins.common.mqtt.broker import BrokerConfig

FieldType = Literal["int", "float", "bool", "string"]
TIMESTAMP_UNITS = {"1ns": 1, "1us": 1_000, "1ms": 1_000_000, "1s": 1_000_000_000}


def _levels(pattern: str) -> list[str]:
    return pattern.split("/")


@dataclass
class TopicParsing:
    """Telegraf's topic_parsing: a level of the topic becomes the measurement, a tag or a
    field. In ``measurement``, ``tags`` and ``fields`` each level is ``_`` (skip) or a
    word: the measurement marker, or the tag's or field's key."""

    topic: str
    """Which topics this rule applies to, with '+' wildcards (no '#')."""
    measurement: str = ""
    tags: str = ""
    fields: str = ""
    types: dict[str, FieldType] = field(default_factory=dict)
    """Type of a field taken from the topic: int, float, bool or string (the default)."""

    def validate(self) -> None:
        if not self.topic or "#" in self.topic:
            raise BindError("topic", "a topic pattern with '+' wildcards only, no '#'")
        size = len(_levels(self.topic))
        for key in ("measurement", "tags", "fields"):
            value = getattr(self, key)
            if value and len(_levels(value)) != size:
                raise BindError(key, f"needs {size} levels like topic ({self.topic!r}), "
                                f"'_' for the ones to skip")
        if self.measurement and sum(p != "_" for p in _levels(self.measurement)) != 1:
            raise BindError("measurement", "mark exactly one level, e.g. \"_/measurement/_\"")

    def matches(self, levels: list[str]) -> bool:
        pattern = _levels(self.topic)
        return len(pattern) == len(levels) and all(
            p in ("+", level) for p, level in zip(pattern, levels, strict=True))


@dataclass
class MQTTConsumerConfig(BrokerConfig):
    topics: list[str] = field(default_factory=lambda: ["collector/#"])
    qos: int = 1
    """1: nothing is lost while the collector is down (with persistent_session). 0: at
    most once. QoS 2 is refused: its delivery is settled before the metrics are stored."""
    persistent_session: bool = True
    """The broker keeps the subscription and queues messages while this collector is
    away. Needs a stable client_id (the default is one)."""
    session_expiry: Duration = Duration(math.inf)
    """MQTT 5: how long the broker keeps the session of a disconnected consumer."""
    data_format: Literal["influx", "json", "value"] = "influx"
    data_type: FieldType = "float"
    """data_format "value": the type of the bare value."""
    json_timestamp_units: Literal["1ns", "1us", "1ms", "1s"] = "1ns"
    topic_tag: str = ""
    """Tag every metric with its topic under this key (Telegraf's default is "topic");
    empty: no tag, so forwarded metrics are the same series as directly written ones."""
    topic_parsing: list[TopicParsing] = field(default_factory=list)
    max_batch: int = 1000
    """Messages stored (one durable write) and acknowledged together at most."""
    reconnect_max_interval: Duration = Duration(30)

    def validate(self) -> None:
        super().validate()
        if not self.topics:
            raise BindError("topics", "subscribe to at least one topic, e.g. \"collector/#\"")
        for index, topic in enumerate(self.topics):
            levels = _levels(topic)
            if not topic or "#" in levels[:-1] or any(
                    ("+" in level or "#" in level) and len(level) > 1 for level in levels):
                raise BindError(f"topics[{index}]", "'+' and '#' stand for whole levels, "
                                "'#' only at the end")
        if self.qos not in (0, 1):
            raise BindError("qos", "0 or 1: at QoS 2 the broker considers a message delivered "
                            "before it is stored, so a crash could lose it")
        if self.persistent_session and self.qos == 0:
            raise BindError("persistent_session", "a persistent session keeps messages only "
                            "at qos = 1")
        if self.session_expiry <= 0:
            raise BindError("session_expiry", "must be positive")
        if self.max_batch < 1:
            raise BindError("max_batch", "must be at least 1")
