"""What Home Assistant is told about each instrument plugin: its entities, which metric
feeds which state topic, and when the instrument counts as available.

This is the one place that knows the SE521 and RAVEn metric schemas (see their
READMEs); a measurement renamed with ``name_override``/``name_prefix`` is not
recognised, and its instrument's entities stay unknown.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from collector import ConfiguredInput, Metric

DIAGNOSTIC = {"entity_category": "diagnostic"}
ISO_4217 = {
    36: "AUD", 124: "CAD", 156: "CNY", 208: "DKK", 348: "HUF", 356: "INR", 376: "ILS",
    392: "JPY", 484: "MXN", 554: "NZD", 578: "NOK", 710: "ZAR", 752: "SEK", 756: "CHF",
    826: "GBP", 840: "USD", 978: "EUR", 985: "PLN",
}
"""ISO 4217 numeric codes as RAVEn price pushes carry them, for the price's unit."""


@dataclass(frozen=True)
class Entity:
    """One Home Assistant sensor of a device."""

    key: str
    """Component key; also ends its unique_id and default_entity_id."""
    part: str
    """The state topic it reads: ``<device topics>/<part>``."""
    value: str
    """The key of the state message's JSON it shows."""
    name: str
    options: dict[str, object] = field(default_factory=dict)
    follows_instrument: bool = True
    """Unavailable while the instrument is gone; health entities stay available."""


@dataclass(frozen=True)
class Part:
    """Where one metric goes, and whether it says the instrument is there."""

    name: str
    available: bool | None = None


class Instrument:
    """An instrument plugin as Home Assistant sees it."""

    plugin = ""
    manufacturer = ""
    model = ""
    measurements: frozenset[str] = frozenset()

    def entities(self, config: object, learned: dict[str, str]) -> list[Entity]:
        raise NotImplementedError

    def part(self, metric: Metric) -> Part | None:
        raise NotImplementedError

    def is_from(self, metric: Metric, config: object) -> bool:
        """With several inputs of this plugin: does the metric come from this one?"""
        raise NotImplementedError

    def state(self, metric: Metric) -> dict[str, object]:
        return dict(metric.fields)

    def learn(self, metric: Metric) -> dict[str, str]:
        """Facts a metric teaches that the discovery payload shows (the price's
        currency); empty when it teaches nothing."""
        return {}

    def serial_number(self, config: object) -> str:
        return ""


class SE521(Instrument):
    plugin = "se521"
    manufacturer = "Center Technology"
    model = "SE521 thermocouple thermometer"
    measurements = frozenset({"se521", "se521_status", "se521_health"})
    channels = ("T1", "T2", "T3", "T4")

    def entities(self, config: object, learned: dict[str, str]) -> list[Entity]:
        labels: dict[str, str] = getattr(config, "labels", {}) or {}
        temperature = {"device_class": "temperature", "state_class": "measurement",
                       "unit_of_measurement": "°C", "suggested_display_precision": 1}
        entities = [Entity(channel.lower(), channel.lower(), "celsius",
                           labels.get(channel, channel), temperature)
                    for channel in self.channels]
        entities.append(Entity("battery", "status", "battery_percent", "Battery", {
            "device_class": "battery", "state_class": "measurement",
            "unit_of_measurement": "%", **DIAGNOSTIC}))
        entities.append(Entity("health", "health", "state", "Health", {
            "device_class": "enum", "options": ["up", "silent", "absent"], **DIAGNOSTIC},
            follows_instrument=False))
        return entities

    def part(self, metric: Metric) -> Part | None:
        if metric.name == "se521":
            channel = metric.tags.get("channel", "")
            return Part(channel.lower()) if channel in self.channels else None
        if metric.name == "se521_status":
            return Part("status")
        if metric.name == "se521_health":
            return Part("health", available=metric.fields.get("state") == "up")
        return None

    def is_from(self, metric: Metric, config: object) -> bool:
        device = metric.tags.get("device")
        if device == "emulated":
            return bool(getattr(config, "emulate_when_absent", False))
        return device == se521_device_tag(config)

    def state(self, metric: Metric) -> dict[str, object]:
        fields: dict[str, object] = dict(metric.fields)
        if metric.name == "se521":
            fields.setdefault("celsius", None)  # an unplugged probe reads "unknown"
        return fields

    def serial_number(self, config: object) -> str:
        return getattr(config, "serial_number", "") or ""


def se521_device_tag(config: object) -> str:
    """The ``device`` tag inputs.se521 writes: port, else serial number, else hidraw path."""
    port = getattr(config, "port", "")
    transport = getattr(config, "transport", "auto")
    if transport == "serial" or (transport == "auto" and port):
        return port
    return getattr(config, "serial_number", "") or getattr(config, "hid_path", "") or "se521"


class Raven(Instrument):
    plugin = "raven"
    manufacturer = "Rainforest Automation"
    model = "RAVEn / EMU-2 smart-meter bridge"
    measurements = frozenset({"raven_demand", "raven_summation", "raven_price",
                              "raven_health"})

    def entities(self, config: object, learned: dict[str, str]) -> list[Entity]:
        energy = {"device_class": "energy", "state_class": "total_increasing",
                  "unit_of_measurement": "kWh", "suggested_display_precision": 3}
        price: dict[str, object] = {"state_class": "measurement",
                                    "suggested_display_precision": 3, "icon": "mdi:cash"}
        if "currency" in learned:
            price["unit_of_measurement"] = f"{learned['currency']}/kWh"
        return [
            Entity("power", "demand", "kw", "Power", {
                "device_class": "power", "state_class": "measurement",
                "unit_of_measurement": "kW", "suggested_display_precision": 3}),
            Entity("energy_imported", "summation", "delivered_kwh", "Energy imported", energy),
            Entity("energy_exported", "summation", "received_kwh", "Energy exported", energy),
            Entity("price", "price", "price", "Price", price),
            Entity("link_strength", "health", "link_strength", "Link strength", {
                "state_class": "measurement", "unit_of_measurement": "%",
                "icon": "mdi:signal", **DIAGNOSTIC}),
            Entity("last_push", "health", "last_push", "Last push", {
                "device_class": "timestamp", **DIAGNOSTIC}, follows_instrument=False),
            Entity("health", "health", "state", "Health", {
                "device_class": "enum", "options": ["connected", "joining", "stale", "absent"],
                **DIAGNOSTIC}, follows_instrument=False),
        ]

    def part(self, metric: Metric) -> Part | None:
        if metric.name == "raven_health":
            return Part("health", available=metric.fields.get("state") == "connected")
        if metric.name in self.measurements:
            return Part(metric.name.removeprefix("raven_"))
        return None

    def is_from(self, metric: Metric, config: object) -> bool:
        """Only health points name their port; with several RAVEn inputs the meter's
        readings (tagged by MAC address only) cannot be told apart and are not shown."""
        if metric.name != "raven_health":
            return False
        if metric.tags.get("emulated") == "true":
            return bool(getattr(config, "emulate_when_absent", False))
        return metric.tags.get("port") == getattr(config, "port", None)

    def state(self, metric: Metric) -> dict[str, object]:
        fields: dict[str, object] = dict(metric.fields)
        if metric.name == "raven_price":
            fields.setdefault("price", None)
        if metric.name == "raven_health":
            since = metric.fields.get("seconds_since_push")
            fields["last_push"] = (None if not isinstance(since, int | float) else
                                   iso_utc(metric.time_ns - round(since * 1e9)))
            fields.setdefault("link_strength", None)
        return fields

    def learn(self, metric: Metric) -> dict[str, str]:
        code = metric.fields.get("currency") if metric.name == "raven_price" else None
        if isinstance(code, int) and code in ISO_4217:
            return {"currency": ISO_4217[code]}
        return {}


INSTRUMENTS: dict[str, Instrument] = {kind.plugin: kind for kind in (SE521(), Raven())}


def announced_inputs(inputs: tuple[ConfiguredInput, ...]) -> list[ConfiguredInput]:
    return [configured for configured in inputs if configured.name in INSTRUMENTS]


def iso_utc(time_ns: int) -> str:
    """RFC 3339 in UTC with microseconds, as Home Assistant's timestamp sensors parse it."""
    moment = datetime.datetime.fromtimestamp(time_ns / 1e9, datetime.UTC)
    return moment.isoformat(timespec="microseconds")
