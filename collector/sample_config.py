"""``collector config``: a commented sample config, written from the option dataclasses the
binder checks, so the sample cannot drift from what is accepted.

Each option's comment is the docstring under its field. Options are commented out at
their defaults; a field whose metadata carries an ``example`` (an option without a
usable default, such as a serial port) is written out with that value, so the sample
passes ``collector check`` as printed.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import json
import math
import textwrap
import types
import typing
from functools import cache
from typing import Any, Literal, get_args, get_origin

from collector import registry
from collector.config import COMMON_OPTIONS, AgentConfig
from collector.units import ByteSize, Duration, Secret

PLUGIN_KINDS: tuple[registry.Kind, ...] = ("inputs", "aggregators", "outputs")
ACTIVE_BY_DEFAULT = {("inputs", "internal"), ("outputs", "file")}
"""With no plugin named, these are active and every other installed one is shown
commented out, as ``telegraf config`` does."""


def sample(wanted: list[str]) -> str:
    """The sample config: the agent, then every installed plugin (or those ``wanted``,
    as ``se521``, ``inputs.se521`` or ``outputs.influxdb``)."""
    chosen = resolve(wanted) if wanted else None
    parts = [_HEADER, _section("[agent]", AgentConfig, commented=True),
             "[global_tags]\n# site = \"lab\"\n"]
    for kind in PLUGIN_KINDS:
        names = [n for k, n in chosen if k == kind] if chosen else registry.available(kind)
        if not names:
            continue
        parts.append(_common_options(kind))
        for name in names:
            active = chosen is not None or (kind, name) in ACTIVE_BY_DEFAULT
            block = plugin_block(kind, name)
            parts.append(block if active else _comment_out(block))
    return "\n".join(parts)


def resolve(wanted: list[str]) -> list[tuple[registry.Kind, str]]:
    """("inputs", "se521") for each name given; a bare name must be unambiguous."""
    found = []
    for item in wanted:
        kind, _, name = item.rpartition(".")
        kinds = [kind] if kind else [k for k in PLUGIN_KINDS if name in registry.available(k)]
        if kind and kind not in PLUGIN_KINDS:
            raise KeyError(f"{item}: the kind is one of {', '.join(PLUGIN_KINDS)}")
        if not kinds or (kind and name not in registry.available(kind)):  # type: ignore[arg-type]
            raise KeyError(f"{item}: no such plugin (`collector plugins` lists them)")
        if len(kinds) > 1:
            raise KeyError(f"{item}: a plugin of several kinds; say "
                           + " or ".join(f"{kind}.{name}" for kind in kinds))
        found.append((kinds[0], name))
    return found


def plugin_block(kind: registry.Kind, name: str) -> str:
    comment = "".join(f"## {line}\n" for line in _wrap(summary(kind, name)))
    return comment + _section(f"[[{kind}.{name}]]", registry.load(kind, name).Config,
                              commented=False)


def summary(kind: registry.Kind, name: str) -> str:
    """What the plugin is: the first paragraph of its module's docstring."""
    text = inspect.getdoc(inspect.getmodule(registry.load(kind, name))) or ""
    text = " ".join(text.split("\n\n")[0].removeprefix(f"[[{kind}.{name}]]:").split())
    return text[:1].upper() + text[1:]


_HEADER = """\
# Collector configuration (TOML, Telegraf's shape). Lines starting with '#' are
# options at their defaults: uncomment to change. ${VAR} and ${VAR:-default} are taken
# from the environment; any secret option X can instead be given as X_file = "/path".
"""


def _common_options(kind: registry.Kind) -> str:
    body = _comment_out(_section("", COMMON_OPTIONS[kind], commented=True)).strip("\n")
    return f"## Every [[{kind}.NAME]] also takes:\n{body}\n"


def _section(header: str, cls: type, commented: bool) -> str:
    lines = [header] if header else []
    nested = []
    docs = _field_docs(cls)
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        if not item.init:
            continue
        hint = hints[item.name]
        doc = docs.get(item.name, "")
        if _is_dataclass_list(hint):
            nested.append((item.name, get_args(hint)[0], doc, True))
            continue
        if dataclasses.is_dataclass(hint):
            nested.append((item.name, hint, doc, False))
            continue
        for line in _wrap(doc + _choices(hint)):
            lines.append(f"## {line}")
        if "example" in item.metadata:
            lines.append(f"{item.name} = {_toml(item.metadata['example'])}")
            continue
        if _required(item):
            lines.append(f"# {item.name} = {_placeholder(hint)}  (required)")
            continue
        value = _default(item)
        shown = _toml(value) if value is not None else f"{_placeholder(hint)}  (unset)"
        lines.append(f"# {item.name} = {shown}")
        if hint is Secret:
            lines.append(f"# {item.name}_file = \"/path/to/file\"  (instead of {item.name})")
    text = "\n".join(lines) + "\n"
    for name, item_cls, doc, repeated in nested:
        table = f"{header.strip('[]')}.{name}"
        block = _section(f"[[{table}]]" if repeated else f"[{table}]", item_cls,
                         commented=not repeated)
        notes = "".join(f"## {line}\n" for line in _wrap(doc))
        text += _comment_out(notes + block)
    return text


def _comment_out(block: str) -> str:
    return "".join(line if line.startswith("#") or not line.strip() else f"# {line}"
                   for line in block.splitlines(keepends=True))


def _required(item: dataclasses.Field) -> bool:
    return item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING


def _default(item: dataclasses.Field) -> Any:
    if item.default is not dataclasses.MISSING:
        return item.default
    return item.default_factory()  # type: ignore[misc]


_PLACEHOLDERS = {Duration: '"10s"', ByteSize: '"64MiB"', int: "1", float: "1.0", bool: "true",
                 str: '""', Secret: '""'}


def _placeholder(hint: Any) -> str:
    """A value of the right type for an option shown without a default."""
    options = [a for a in get_args(hint) if a is not type(None)] or [hint]
    option = options[0]
    if get_origin(option) is Literal:
        return json.dumps(get_args(option)[0])
    if get_origin(option) is list:
        return "[]"
    if get_origin(option) is dict:
        return "{}"
    return _PLACEHOLDERS.get(option, '""')


def _is_dataclass_list(hint: Any) -> bool:
    return get_origin(hint) is list and dataclasses.is_dataclass(get_args(hint)[0])


def _choices(hint: Any) -> str:
    options = [a for a in get_args(hint) if a is not type(None)] if get_origin(
        hint) in (typing.Union, types.UnionType) else [hint]
    for option in options:
        if get_origin(option) is Literal:
            return " One of: " + ", ".join(json.dumps(v) for v in get_args(option)) + "."
    return ""


def _wrap(text: str) -> list[str]:
    """A docstring as comment lines (reST ``literals`` become `literals`)."""
    text = " ".join(text.replace("``", "`").split())
    return textwrap.wrap(text, 86) if text else []


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Duration):
        return json.dumps(_duration(float(value)))
    if isinstance(value, ByteSize):
        return json.dumps(_size(int(value)))
    if isinstance(value, Secret):
        return '""'
    if isinstance(value, int | float | str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{key} = {_toml(item)}" for key, item in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def _duration(seconds: float) -> str:
    if math.isinf(seconds):
        return "INF"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1), ("ms", 0.001)):
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{seconds}s" if seconds else "0s"


def _size(size: int) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"


@cache
def _field_docs(cls: type) -> dict[str, str]:
    """Docstrings written under dataclass fields (Python keeps them only in the source)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, following in itertools.pairwise(body):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(following, ast.Expr)
                    and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)):
                docs[node.target.id] = inspect.cleandoc(following.value.value)
    return docs
