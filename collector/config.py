"""Loads the Telegraf-shaped TOML config and checks every key before anything starts."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from collector import registry
from collector.binding import BindError, bind, substitute_env
from collector.units import ByteSize, Duration

ENV_CONFIG = "COLLECTOR_CONFIG"
EMBEDDED = "<embedded defaults>"

Precision = Literal["ns", "us", "ms", "s"]
Overflow = Literal["drop_oldest", "drop_newest"]


class ConfigError(Exception):
    """A config problem, told in one line: file, section, key, what is wrong."""

    def __init__(self, source: str, section: str, key: str, message: str) -> None:
        where = f"[{section}] " if section else ""
        what = f"{key}: " if key else ""
        super().__init__(f"{source}: {where}{what}{message}")


def default_state_dir() -> str:
    """systemd's StateDirectory when run as a service, else the XDG state home."""
    if "STATE_DIRECTORY" in os.environ:
        return os.environ["STATE_DIRECTORY"].split(":")[0]
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, "collector")


@dataclass
class AgentConfig:
    interval: Duration = Duration(10)
    round_interval: bool = True
    collection_jitter: Duration = Duration(0)
    flush_interval: Duration = Duration(10)
    flush_jitter: Duration = Duration(0)
    metric_batch_size: int = 1000
    spool_max_bytes: ByteSize = ByteSize(256 * 2**20)
    spool_overflow: Overflow = "drop_oldest"
    spool_fsync: bool = True
    state_dir: str = field(default_factory=default_state_dir)
    precision: Precision = "ns"
    hostname: str = ""
    omit_hostname: bool = False
    shutdown_timeout: Duration = Duration(10)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def validate(self) -> None:
        _positive(self, "interval", "flush_interval", "shutdown_timeout")
        if self.metric_batch_size < 1:
            raise BindError("metric_batch_size", "must be at least 1")
        if self.spool_max_bytes < 64 * 1024:
            raise BindError("spool_max_bytes", "must be at least 64KiB")


@dataclass
class InputOptions:
    """Keys every [[inputs.*]] table accepts besides the plugin's own."""

    interval: Duration | None = None
    collection_jitter: Duration | None = None
    alias: str = ""
    name_override: str = ""
    name_prefix: str = ""
    name_suffix: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        if self.interval is not None:
            _positive(self, "interval")


@dataclass
class OutputOptions:
    """Keys every [[outputs.*]] table accepts besides the plugin's own."""

    alias: str = ""
    metric_batch_size: int | None = None
    flush_interval: Duration | None = None
    flush_jitter: Duration | None = None
    spool_max_bytes: ByteSize | None = None
    spool_overflow: Overflow | None = None
    retry_max_interval: Duration = Duration(30)

    def validate(self) -> None:
        _positive(self, "retry_max_interval")
        if self.flush_interval is not None:
            _positive(self, "flush_interval")
        if self.metric_batch_size is not None and self.metric_batch_size < 1:
            raise BindError("metric_batch_size", "must be at least 1")


@dataclass
class PluginSpec:
    """One [[inputs.NAME]] or [[outputs.NAME]] table, checked and ready to build."""

    kind: registry.Kind
    name: str
    section: str
    instance_id: str
    cls: type
    options: Any
    config: Any


@dataclass
class Config:
    source: str
    agent: AgentConfig
    global_tags: dict[str, str]
    inputs: list[PluginSpec]
    outputs: list[PluginSpec]


_COMMON = {"inputs": InputOptions, "outputs": OutputOptions}


def load(path: str | None = None) -> Config:
    """The config at ``path``, else $COLLECTOR_CONFIG, else the embedded defaults."""
    path = path or os.environ.get(ENV_CONFIG) or None
    if path is None:
        text = resources.files("collector").joinpath("default.toml").read_text()
        return parse(text, EMBEDDED)
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ConfigError(path, "", "", f"cannot read config: {err.strerror}") from None
    return parse(text, path)


def parse(text: str, source: str) -> Config:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(source, "", "", f"invalid TOML: {err}") from None
    known = {"agent", "global_tags", "inputs", "outputs"}
    for key in document:
        if key not in known:
            raise ConfigError(source, key, "",
                              f"unknown section (known: {', '.join(sorted(known))})")
    agent = _bind_section(source, "agent", AgentConfig, document.get("agent", {}))
    tags_table = {"tags": document.get("global_tags", {})}
    global_tags = _bind_section(source, "global_tags", _Tags, tags_table)
    return Config(
        source=source,
        agent=agent,
        global_tags=global_tags.tags,
        inputs=_plugins(source, "inputs", document.get("inputs", {})),
        outputs=_plugins(source, "outputs", document.get("outputs", {})),
    )


@dataclass
class _Tags:
    tags: dict[str, str] = field(default_factory=dict)


def _bind_section(source: str, section: str, cls: type, table: Any) -> Any:
    try:
        return bind(cls, substitute_env(table))
    except BindError as err:
        key = err.key.removeprefix("tags.") if cls is _Tags else err.key
        raise ConfigError(source, section, key, err.message) from None


def _plugins(source: str, kind: registry.Kind, tables: Any) -> list[PluginSpec]:
    if not isinstance(tables, dict):
        raise ConfigError(source, kind, "", f"expected [[{kind}.NAME]] tables")
    specs: list[PluginSpec] = []
    for name, entries in tables.items():
        entries = [entries] if isinstance(entries, dict) else entries
        if not isinstance(entries, list):
            raise ConfigError(source, f"{kind}.{name}", "", f"expected [[{kind}.{name}]] tables")
        for index, table in enumerate(entries):
            section = f"{kind}.{name}" + (f" #{index + 1}" if len(entries) > 1 else "")
            specs.append(_plugin(source, kind, name, index, section, table))
    seen: set[str] = set()
    for spec in specs:
        if spec.instance_id in seen:
            raise ConfigError(source, spec.section, "alias", f"{spec.instance_id!r} is used twice")
        seen.add(spec.instance_id)
    return specs


def _plugin(source: str, kind: registry.Kind, name: str, index: int, section: str,
            table: Any) -> PluginSpec:
    try:
        cls = registry.load(kind, name)
    except KeyError:
        raise ConfigError(source, section, "", f"unknown {kind[:-1]} plugin {name!r} "
                          f"(available: {', '.join(registry.available(kind))})") from None
    if not isinstance(table, dict):
        raise ConfigError(source, section, "", "expected a table")
    common_cls = _COMMON[kind]
    common_keys = set(common_cls.__dataclass_fields__)
    try:
        table = substitute_env(table)
        options = bind(common_cls, {k: v for k, v in table.items() if k in common_keys})
        config = bind(cls.Config, {k: v for k, v in table.items() if k not in common_keys})
    except BindError as err:
        raise ConfigError(source, section, err.key, err.message) from None
    instance_id = options.alias or (name if index == 0 else f"{name}-{index + 1}")
    return PluginSpec(kind, name, section, instance_id, cls, options, config)


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        if not getattr(obj, name) > 0:
            raise BindError(name, "must be greater than zero")
