"""Home Assistant's rules for MQTT device discovery, as its documentation states them,
to check what outputs.mqtt announces without running Home Assistant.

From the MQTT integration's documentation (device-based discovery, sensor platform)
and the sensor entity's device classes: a payload needs ``device`` (with identifiers
or connections), ``origin`` (with a name) and ``components``; a component that is more
than a platform needs a unique_id; ``object_id`` is deprecated for
``default_entity_id``; each device class allows only some state classes and units.
"""

from __future__ import annotations

import json
import re

DISCOVERY_TOPIC = re.compile(r"^(?P<prefix>.+)/device/(?P<object_id>[a-zA-Z0-9_-]+)/config$")
DEVICE_ABBREVIATIONS = {"ids": "identifiers", "cns": "connections", "mf": "manufacturer",
                        "mdl": "model", "name": "name", "sw": "sw_version",
                        "hw": "hw_version", "sn": "serial_number", "sa": "suggested_area"}
ORIGIN_ABBREVIATIONS = {"name": "name", "sw": "sw_version", "url": "support_url"}
TOP_ABBREVIATIONS = {"dev": "device", "o": "origin", "cmps": "components",
                     "stat_t": "state_topic", "avty": "availability"}
COMPONENT_ABBREVIATIONS = {"p": "platform", "uniq_id": "unique_id", "dev_cla": "device_class",
                           "stat_cla": "state_class", "unit_of_meas": "unit_of_measurement",
                           "stat_t": "state_topic", "val_tpl": "value_template",
                           "avty": "availability", "avty_mode": "availability_mode",
                           "ent_cat": "entity_category", "def_ent_id": "default_entity_id",
                           "sug_dsp_prc": "suggested_display_precision"}
STATE_CLASSES = {"measurement", "total", "total_increasing"}
DEVICE_CLASS_STATE_CLASSES = {
    "energy": {"total", "total_increasing"},
    "power": {"measurement"},
    "temperature": {"measurement"},
    "battery": {"measurement"},
    "monetary": {"total"},
    "timestamp": set(),
    "enum": set(),
}
DEVICE_CLASS_UNITS = {
    "energy": {"Wh", "kWh", "MWh", "GWh", "J", "kJ", "MJ", "GJ"},
    "power": {"mW", "W", "kW", "MW", "GW"},
    "temperature": {"°C", "°F", "K"},
    "battery": {"%"},
    "timestamp": {None},
    "enum": {None},
}
SUPPORTED_PLATFORMS = {"sensor", "binary_sensor"}


class Invalid(AssertionError):
    pass


def _expand(table: dict, abbreviations: dict) -> dict:
    return {abbreviations.get(key, key): value for key, value in table.items()}


def validate_device_discovery(topic: str, payload: bytes) -> dict:
    """The payload with abbreviations expanded; raises Invalid naming the rule broken."""
    if not DISCOVERY_TOPIC.match(topic):
        raise Invalid(f"{topic}: not <prefix>/device/<[a-zA-Z0-9_-]+>/config")
    document = json.loads(payload)
    if not isinstance(document, dict):
        raise Invalid("payload must be a JSON object")
    config = _expand(document, TOP_ABBREVIATIONS)
    for key in ("device", "origin", "components"):
        if key not in config:
            raise Invalid(f"required key {key!r} missing")
    device = _expand(config["device"], DEVICE_ABBREVIATIONS)
    identifiers = device.get("identifiers") or device.get("connections")
    if not identifiers:
        raise Invalid("device needs identifiers or connections")
    if isinstance(device.get("identifiers"), list) and not all(
            isinstance(i, str) for i in device["identifiers"]):
        raise Invalid("identifiers are strings")
    origin = _expand(config["origin"], ORIGIN_ABBREVIATIONS)
    if not isinstance(origin.get("name"), str) or not origin["name"]:
        raise Invalid("origin needs a name")
    components = config["components"]
    if not isinstance(components, dict) or not components:
        raise Invalid("components must map ids to component configs")
    config["device"], config["origin"] = device, origin
    unique_ids: set[str] = set()
    for key, raw in components.items():
        component = _expand(raw, COMPONENT_ABBREVIATIONS)
        components[key] = component
        _validate_component(key, component, config)
        if component["unique_id"] in unique_ids:
            raise Invalid(f"{key}: unique_id {component['unique_id']!r} used twice")
        unique_ids.add(component["unique_id"])
    return config


def _validate_component(key: str, component: dict, shared: dict) -> None:
    where = f"component {key}"
    platform = component.get("platform")
    if platform not in SUPPORTED_PLATFORMS:
        raise Invalid(f"{where}: platform {platform!r} unsupported or missing")
    if len(component) > 1 and not isinstance(component.get("unique_id"), str):
        raise Invalid(f"{where}: a unique_id is required")
    if "object_id" in component:
        raise Invalid(f"{where}: object_id is deprecated, use default_entity_id")
    entity_id = component.get("default_entity_id")
    if entity_id is not None and not re.fullmatch(rf"{platform}\.[a-z0-9_]+", entity_id):
        raise Invalid(f"{where}: default_entity_id {entity_id!r} is not {platform}.<slug>")
    state_topic = component.get("state_topic", shared.get("state_topic"))
    if not state_topic or "+" in state_topic or "#" in state_topic:
        raise Invalid(f"{where}: needs a state_topic")
    template = component.get("value_template")
    if template is not None and "{{" not in template:
        raise Invalid(f"{where}: value_template is not a template")
    for availability in component.get("availability", []):
        if not availability.get("topic"):
            raise Invalid(f"{where}: every availability entry needs a topic")
    if component.get("availability_mode", "latest") not in ("all", "any", "latest"):
        raise Invalid(f"{where}: availability_mode must be all, any or latest")
    if component.get("entity_category", "diagnostic") not in ("config", "diagnostic"):
        raise Invalid(f"{where}: entity_category must be config or diagnostic")
    precision = component.get("suggested_display_precision", 0)
    if not isinstance(precision, int) or precision < 0:
        raise Invalid(f"{where}: suggested_display_precision is a non-negative integer")
    if platform == "sensor":
        _validate_sensor(where, component)


def _validate_sensor(where: str, sensor: dict) -> None:
    device_class = sensor.get("device_class")
    state_class = sensor.get("state_class")
    unit = sensor.get("unit_of_measurement")
    if state_class is not None and state_class not in STATE_CLASSES:
        raise Invalid(f"{where}: unknown state_class {state_class!r}")
    if device_class is not None:
        if device_class not in DEVICE_CLASS_STATE_CLASSES:
            raise Invalid(f"{where}: device_class {device_class!r} unknown to this validator")
        allowed = DEVICE_CLASS_STATE_CLASSES[device_class]
        if state_class is not None and state_class not in allowed:
            raise Invalid(f"{where}: device_class {device_class} does not allow state_class "
                          f"{state_class} (allowed: {sorted(allowed) or 'none'})")
        if unit not in DEVICE_CLASS_UNITS[device_class]:
            raise Invalid(f"{where}: device_class {device_class} does not allow unit {unit!r}")
    options = sensor.get("options")
    if options is not None:
        if not options:
            raise Invalid(f"{where}: an empty options list is not allowed")
        if state_class or unit:
            raise Invalid(f"{where}: options exclude state_class and unit_of_measurement")
        if device_class != "enum":
            raise Invalid(f"{where}: options need device_class enum")
