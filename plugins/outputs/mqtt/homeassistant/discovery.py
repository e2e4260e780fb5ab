"""Home Assistant device-based discovery: one retained ``<prefix>/device/<id>/config``
per configured instrument input, its states, its availability, and its removal.

Device ids are ``<node_id>_<input alias>`` (node_id: the host tag unless configured;
the alias is the input's ``alias`` or, without one, its plugin name, ``-2``... for a
second one). They depend on neither the USB port nor the order of plugging, so they
survive restarts and re-plugs; give inputs an ``alias`` to keep them when reordering
the config.

Topics under ``<state_prefix>/<node_id>/``:
- ``status``: ``online`` (retained) on every connection, ``offline`` as the last will
  and on a clean stop, so every entity goes unavailable with the collector;
- ``<alias>/availability``: ``online``/``offline`` from the instrument's health point;
- ``<alias>/<part>``: the latest state of each part (a channel, the status, the meter's
  demand...), JSON, retained.

Home Assistant takes no timestamps, so a batch publishes only the latest state of each
topic: replaying a backlog after an outage must not show hours-old readings as a burst
of "now". The data topics carry every point with its time.
"""

from __future__ import annotations

import json
import re
import socket
from dataclasses import dataclass
from importlib import metadata

from collector import ConfiguredInput, Metric, PluginContext
from collector.lineprotocol import LineProtocolError, decode_line
from plugins.common.mqtt.broker import Will
from plugins.outputs.mqtt.homeassistant.instruments import (
    INSTRUMENTS,
    Entity,
    Instrument,
    announced_inputs,
    iso_utc,
)
from plugins.outputs.mqtt.homeassistant.record import Record
from plugins.outputs.mqtt.messages import Message
from plugins.outputs.mqtt.settings import HomeAssistantConfig

ONLINE, OFFLINE = b"online", b"offline"
DISPLAY_NAMES = {"se521": "SE521", "raven": "RAVEn"}


def slug(text: str) -> str:
    """What Home Assistant allows in a discovery topic's object id."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text) or "_"


def _origin() -> dict[str, str]:
    try:
        version = metadata.version("instrument-collector")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {"name": "instrument-collector", "sw": version}


@dataclass(frozen=True)
class Device:
    id: str
    configured: ConfiguredInput
    instrument: Instrument
    topics: str
    """Prefix of its state and availability topics."""

    @property
    def availability_topic(self) -> str:
        return f"{self.topics}/availability"


class HomeAssistant:
    def __init__(self, config: HomeAssistantConfig, context: PluginContext, qos: int) -> None:
        self.config = config
        self.qos = qos
        self.hostname = context.hostname
        self.node = config.node_id or slug(context.hostname or socket.gethostname())
        root = f"{config.state_prefix}/{self.node}"
        self.status_topic = f"{root}/status"
        self.record = Record(context.state_dir / "homeassistant" / f"{slug(context.alias)}.json")
        self.devices = [Device(f"{self.node}_{slug(configured.alias)}", configured,
                               INSTRUMENTS[configured.name], f"{root}/{slug(configured.alias)}")
                        for configured in announced_inputs(context.inputs)]
        self._by_plugin: dict[str, list[Device]] = {}
        for device in self.devices:
            self._by_plugin.setdefault(device.configured.name, []).append(device)
        self._plugin_of = {name: plugin for plugin, kind in INSTRUMENTS.items()
                           for name in kind.measurements}
        self._prefixes = tuple(name.encode() for name in self._plugin_of)
        self._origin = _origin()
        if len(self._by_plugin.get("raven", ())) > 1:
            context.log.warning("several raven inputs: Home Assistant gets each one's health, "
                                "but meter readings name no port and are not shown")

    @property
    def will(self) -> Will:
        return Will(self.status_topic, OFFLINE, self.qos, retain=True)

    # ------------------------------------------------------------ announcing
    def on_connect(self) -> list[Message]:
        """What every new connection sends: the removal of devices that left the
        config, ``online``, and every device's discovery (the broker may have lost
        retained messages while it was down)."""
        current = {device.id for device in self.devices}
        messages = [Message(topic, b"", 0, True)
                    for device_id, topics in self.record.topics.items()
                    if device_id not in current for topic in topics]
        messages.append(Message(self.status_topic, ONLINE, 0, True))
        messages.extend(self.discovery(device) for device in self.devices)
        for device in self.devices:
            self.record.topics[device.id] = self._retained_topics(device)
        self.record.save()
        return messages

    def announced(self) -> None:
        """The connection's messages were acknowledged: forget the removed devices."""
        current = {device.id for device in self.devices}
        if set(self.record.topics) - current:
            self.record.topics = {k: v for k, v in self.record.topics.items() if k in current}
            self.record.learned = {k: v for k, v in self.record.learned.items()
                                   if k in current}
            self.record.save()

    def on_status(self, payload: bytes) -> list[Message]:
        """Home Assistant (re)started and said so: announce everything again."""
        if payload.strip() != ONLINE:
            return []
        return [Message(self.status_topic, ONLINE, 0, True),
                *(self.discovery(device) for device in self.devices)]

    def discovery(self, device: Device) -> Message:
        topic = f"{self.config.discovery_prefix}/device/{device.id}/config"
        return Message(topic, json.dumps(self.discovery_payload(device)).encode(), 0, True)

    def discovery_payload(self, device: Device) -> dict:
        instrument, configured = device.instrument, device.configured
        display = DISPLAY_NAMES[configured.name]
        name = display if configured.alias == configured.name else configured.alias
        dev = {"ids": [device.id], "name": f"{name} ({self.node})",
               "mf": instrument.manufacturer, "mdl": instrument.model}
        if serial := instrument.serial_number(configured.config):
            dev["sn"] = serial
        learned = self.record.learned.get(device.id, {})
        return {
            "dev": dev,
            "o": self._origin,
            "cmps": {entity.key: self._component(device, entity)
                     for entity in instrument.entities(configured.config, learned)},
            "qos": self.qos,
        }

    def _component(self, device: Device, entity: Entity) -> dict:
        availability = [{"topic": self.status_topic}]
        if entity.follows_instrument:
            availability.append({"topic": device.availability_topic})
        entity_id = re.sub(r"[^a-z0-9_]", "_", f"{device.id}_{entity.key}".lower())
        return {
            "p": "sensor",
            "name": entity.name,
            "unique_id": f"{device.id}_{entity.key}",
            "default_entity_id": f"sensor.{entity_id}",
            "state_topic": f"{device.topics}/{entity.part}",
            "value_template": f"{{{{ value_json.{entity.value} }}}}",
            "availability": availability,
            "availability_mode": "all",
            **entity.options,
        }

    def _retained_topics(self, device: Device) -> list[str]:
        parts = sorted({entity.part for entity in device.instrument.entities(
            device.configured.config, {})})
        return [f"{self.config.discovery_prefix}/device/{device.id}/config",
                device.availability_topic, *(f"{device.topics}/{part}" for part in parts)]

    # ------------------------------------------------------------ states
    def states(self, lines: list[bytes]) -> list[Message]:
        """The latest state per topic of this batch, and a fresh discovery for a device
        whose metrics taught something its discovery shows."""
        latest: dict[str, bytes] = {}
        rediscover: dict[str, Device] = {}
        for line in lines:
            if not line.startswith(self._prefixes):
                continue
            try:
                metric = decode_line(line.decode())
            except (LineProtocolError, UnicodeDecodeError):
                continue
            device = self._device_of(metric)
            part = device.instrument.part(metric) if device else None
            if device is None or part is None:
                continue
            state = {**device.instrument.state(metric), "time": iso_utc(metric.time_ns)}
            latest[f"{device.topics}/{part.name}"] = json.dumps(state).encode()
            if part.available is not None:
                latest[device.availability_topic] = ONLINE if part.available else OFFLINE
            if self._learn(device, device.instrument.learn(metric)):
                rediscover[device.id] = device
        messages = [self.discovery(device) for device in rediscover.values()]
        messages.extend(Message(topic, payload, 0, True) for topic, payload in latest.items())
        return messages

    def _device_of(self, metric: Metric) -> Device | None:
        host = metric.tags.get("host")
        if host is not None and self.hostname and host != self.hostname:
            return None  # forwarded from another collector
        devices = self._by_plugin.get(self._plugin_of.get(metric.name, ""), [])
        if len(devices) == 1:
            return devices[0]
        return next((device for device in devices
                     if device.instrument.is_from(metric, device.configured.config)), None)

    def _learn(self, device: Device, facts: dict[str, str]) -> bool:
        known = self.record.learned.setdefault(device.id, {})
        if not facts or all(known.get(k) == v for k, v in facts.items()):
            return False
        known.update(facts)
        self.record.save()
        return True

