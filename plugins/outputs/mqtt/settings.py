"""Options of [[outputs.mqtt]]: the broker, the topic template, layout and format, and
Home Assistant discovery."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from collector import Duration
from collector.binding import BindError
from plugins.common.mqtt.broker import BrokerConfig
from plugins.outputs.mqtt.topics import TopicTemplate

Layout = Literal["non-batch", "batch", "field"]
DataFormat = Literal["influx", "json"]
_TOPIC_LEVEL = re.compile(r"^[^#+\x00]+$")


def check_topic(key: str, topic: str) -> None:
    """A topic to publish or subscribe to without wildcards."""
    if not topic or not _TOPIC_LEVEL.match(topic) or topic.startswith("/"):
        raise BindError(key, "must be a non-empty topic without '+', '#' or a leading '/'")


@dataclass
class HomeAssistantConfig:
    enabled: bool = False
    discovery_prefix: str = "homeassistant"
    status_topic: str = "homeassistant/status"
    """Where Home Assistant says "online" when it starts: discovery is sent again then."""
    state_prefix: str = "collector-ha"
    """States, availability and the collector's last will go under
    ``<state_prefix>/<node_id>/``."""
    node_id: str = ""
    """This collector's name in device ids and topics; default: the host tag."""

    def validate(self) -> None:
        for key in ("discovery_prefix", "status_topic", "state_prefix"):
            check_topic(key, getattr(self, key))
        if self.node_id and not re.fullmatch(r"[A-Za-z0-9_-]+", self.node_id):
            raise BindError("node_id", "letters, digits, '_' and '-' only "
                            "(Home Assistant's rule for discovery topics)")


@dataclass
class MQTTOutputConfig(BrokerConfig):
    topic: str = "collector/{host}/{name}"
    """Template: {name} (measurement), {host}, {tag.KEY}; layout "field" adds {field}."""
    layout: Layout = "non-batch"
    """"non-batch": a message per metric; "batch": a message per topic and batch;
    "field": a message per field with the bare value."""
    data_format: DataFormat = "influx"
    qos: int = 1
    retain: bool = False
    timeout: Duration = Duration(10)
    """Longest wait for the broker's acknowledgements of one batch."""
    max_inflight: int = 100
    """QoS 1/2 messages sent ahead of their acknowledgements (MQTT 5 brokers may lower it)."""
    homeassistant: HomeAssistantConfig = field(default_factory=HomeAssistantConfig)

    def validate(self) -> None:
        super().validate()
        if self.qos not in (0, 1, 2):
            raise BindError("qos", "must be 0, 1 or 2")
        try:
            TopicTemplate(self.topic, self.layout == "field")
        except ValueError as err:
            raise BindError("topic", str(err)) from None
        if self.layout == "field" and self.data_format != "influx":
            raise BindError("data_format", 'layout "field" publishes bare values; '
                            "leave data_format unset")
        if self.timeout <= 0:
            raise BindError("timeout", "must be positive")
        if self.max_inflight < 1:
            raise BindError("max_inflight", "must be at least 1")
