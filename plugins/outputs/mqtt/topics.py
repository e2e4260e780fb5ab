"""Topic templates: ``collector/{host}/{name}/{tag.channel}``.

A placeholder always fills exactly one topic level: '/', '+', '#' and NUL in a value
become '_', so a tag value like "/dev/se521" cannot add levels or wildcards that a
subscriber's pattern (or inputs.mqtt_consumer's topic_parsing) would trip over. A
missing tag leaves its level empty, as Telegraf does.
"""

from __future__ import annotations

import re

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_UNSAFE = str.maketrans({"/": "_", "+": "_", "#": "_", "\x00": "_"})
MAX_TOPIC_BYTES = 65535


class TopicTemplate:
    """A compiled template; ``render`` is called once per series, not per metric."""

    def __init__(self, template: str, with_field: bool = False) -> None:
        if not template or template.startswith("/"):
            raise ValueError("must be a non-empty topic not starting with '/'")
        if "+" in _PLACEHOLDER.sub("", template) or "#" in _PLACEHOLDER.sub("", template):
            raise ValueError("a topic to publish to cannot contain '+' or '#'")
        parts: list[tuple[str, str]] = []
        position = 0
        for match in _PLACEHOLDER.finditer(template):
            parts.append(("text", template[position:match.start()]))
            name = match.group(1)
            if name in ("name", "host") or (name == "field" and with_field):
                parts.append((name, ""))
            elif name.startswith("tag.") and len(name) > 4:
                parts.append(("tag", name[4:]))
            else:
                known = "{name}, {host}, {tag.KEY}" + (", {field}" if with_field else "")
                raise ValueError(f"unknown placeholder {{{name}}} (known: {known})")
            position = match.end()
        parts.append(("text", template[position:]))
        if with_field and not any(kind == "field" for kind, _ in parts):
            parts.append(("text", "/"))
            parts.append(("field", ""))
        self.parts = [(kind, value) for kind, value in parts if kind != "text" or value]

    def render(self, name: str, tags: dict[str, str], host: str, field: str = "") -> str:
        out = []
        for kind, value in self.parts:
            if kind == "text":
                out.append(value)
            elif kind == "name":
                out.append(name.translate(_UNSAFE))
            elif kind == "host":
                out.append(tags.get("host", host).translate(_UNSAFE))
            elif kind == "field":
                out.append(field.translate(_UNSAFE))
            else:
                out.append(tags.get(value, "").translate(_UNSAFE))
        return "".join(out)


def valid_topic(topic: str) -> bool:
    """What a broker accepts to publish to: non-empty, not too long."""
    return 0 < len(topic.encode()) <= MAX_TOPIC_BYTES
