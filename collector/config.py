"""Loads the Telegraf-shaped TOML config and checks every key before anything starts."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from collector import registry
from collector.binding import BindError, bind, substitute_env, suggest
from collector.filters import FilterOptions
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
    """Default gather interval of polled inputs."""
    round_interval: bool = True
    """Gather on interval boundaries (:00, :10, ...), as Telegraf does."""
    collection_jitter: Duration = Duration(0)
    """Random delay before each gather, so many collectors do not gather at once."""
    flush_interval: Duration = Duration(10)
    """Outputs write at least this often..."""
    flush_jitter: Duration = Duration(0)
    metric_batch_size: int = 1000
    """...and at once when this many metrics wait."""
    spool_max_bytes: ByteSize = ByteSize(256 * 2**20)
    """Undelivered data each output keeps on disk."""
    spool_overflow: Overflow = "drop_oldest"
    """When a spool is full: drop the oldest metrics, or refuse new ones (drop_newest)."""
    spool_fsync: bool = True
    """fdatasync every append, so acknowledged metrics survive a power cut."""
    state_dir: str = field(default_factory=default_state_dir)
    """Spools and files; default: $STATE_DIRECTORY (systemd), else ~/.local/state/collector."""
    precision: Precision = "ns"
    """Timestamps are truncated to this."""
    hostname: str = ""
    """The host tag; default: the machine's name."""
    omit_hostname: bool = False
    shutdown_timeout: Duration = Duration(10)
    """The longest a stop may take, last flush included."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def validate(self) -> None:
        _positive(self, "interval", "flush_interval", "shutdown_timeout")
        if self.metric_batch_size < 1:
            raise BindError("metric_batch_size", "must be at least 1")
        if self.spool_max_bytes < 64 * 1024:
            raise BindError("spool_max_bytes", "must be at least 64KiB")


@dataclass
class InputOptions(FilterOptions):
    """Keys every [[inputs.*]] table accepts besides the plugin's own. Its filters
    apply to what the plugin emits, before the renames and tags below."""

    interval: Duration | None = None
    """This input's gather interval (default: the agent's, or the plugin's own)."""
    collection_jitter: Duration | None = None
    alias: str = ""
    """Instance name, in logs and internal metrics."""
    name_override: str = ""
    """Rename every measurement of this input (or add name_prefix / name_suffix)."""
    name_prefix: str = ""
    name_suffix: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags added to every metric of this input; they win over the metric's own."""

    def validate(self) -> None:
        if self.interval is not None:
            _positive(self, "interval")


@dataclass
class AggregatorOptions(FilterOptions):
    """Keys every [[aggregators.*]] table accepts besides the plugin's own. Its filters
    choose the metrics it takes (as the inputs' renames and tags left them)."""

    period: Duration = Duration(30)
    """Windows of this length, aligned to UTC boundaries (a 1m window starts at :00)."""
    grace: Duration = Duration(1)
    """How long after a window's end its late metrics are still taken (a meter whose
    clock lags the host's needs at least that lag); the summary is sent then."""
    drop_original: bool = False
    """Send only the summary to the outputs, not the metrics it was made of."""
    alias: str = ""
    """Instance name, in logs and internal metrics."""

    def validate(self) -> None:
        if self.period < 1 or self.period == float("inf"):
            raise BindError("period", "must be at least 1s")
        if self.grace < 0:
            raise BindError("grace", "must not be negative")


@dataclass
class OutputOptions(FilterOptions):
    """Keys every [[outputs.*]] table accepts besides the plugin's own. Its filters
    choose the metrics that go into its spool."""

    alias: str = ""
    """Instance name; also names its spool directory, so keep it stable."""
    metric_batch_size: int | None = None
    """These four default to the agent's."""
    flush_interval: Duration | None = None
    flush_jitter: Duration | None = None
    spool_max_bytes: ByteSize | None = None
    spool_overflow: Overflow | None = None
    retry_max_interval: Duration = Duration(30)
    """Retries back off exponentially up to this."""

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
    source: str = ""
    """The file it is in."""


@dataclass
class Config:
    source: str
    """Where it came from, for messages: a path, several joined with " + ", or
    "<embedded defaults>"."""
    agent: AgentConfig
    global_tags: dict[str, str]
    inputs: list[PluginSpec]
    outputs: list[PluginSpec]
    aggregators: list[PluginSpec] = field(default_factory=list)


COMMON_OPTIONS = {"inputs": InputOptions, "aggregators": AggregatorOptions,
                  "outputs": OutputOptions}
"""The keys every plugin of a kind takes besides its own."""
_SECTIONS = ("agent", "global_tags", *COMMON_OPTIONS)


def load(paths: list[str] | None = None, directory: str | None = None) -> Config:
    """The config files in ``paths``, then every ``*.toml`` in ``directory`` (sorted),
    merged in that order as Telegraf merges ``--config`` and ``--config-directory``;
    with neither, $COLLECTOR_CONFIG, else the embedded defaults."""
    sources = list(paths or [])
    if directory is not None:
        sources += _directory_files(directory)
    elif not sources and os.environ.get(ENV_CONFIG):
        sources = [os.environ[ENV_CONFIG]]
    if not sources:
        text = resources.files("collector").joinpath("default.toml").read_text()
        return parse(text, EMBEDDED)
    return merge([(source, _read(source)) for source in sources])


def _read(path: str) -> str:
    if Path(path).is_dir():
        raise ConfigError(path, "", "", f"is a directory: use --config-directory {path}")
    try:
        return Path(path).read_text()
    except OSError as err:
        raise ConfigError(path, "", "", f"cannot read config: {err.strerror}") from None


def _directory_files(directory: str) -> list[str]:
    try:
        found = sorted(str(path) for path in Path(directory).iterdir() if path.suffix == ".toml")
    except OSError as err:
        raise ConfigError(directory, "", "", f"cannot read config directory: {err.strerror}"
                          ) from None
    if not found:
        raise ConfigError(directory, "", "", "no *.toml files in the config directory")
    return found


def parse(text: str, source: str) -> Config:
    """One config file's text."""
    return merge([(source, text)])


def merge(documents: list[tuple[str, str]]) -> Config:
    """Several config files, in order: later [agent] keys and [global_tags] win; plugins
    add up. Every error names the file that holds the offending key."""
    agent: dict[str, Any] = {}
    agent_from: dict[str, str] = {}
    tags: dict[str, Any] = {}
    tags_from: dict[str, str] = {}
    tables: dict[str, list[tuple[str, str, int, str, Any]]] = {kind: [] for kind in COMMON_OPTIONS}
    for source, text in documents:
        document = _toml(source, text)
        _collect(source, document.get("agent", {}), "agent", agent, agent_from)
        _collect(source, document.get("global_tags", {}), "global_tags", tags, tags_from)
        for kind in tables:
            tables[kind] += _plugin_tables(source, kind, document.get(kind, {}))
    return Config(
        source=" + ".join(source for source, _ in documents),
        agent=_bind_section(agent_from, "agent", AgentConfig, agent),
        global_tags=_bind_section(tags_from, "global_tags", _Tags, {"tags": tags}).tags,
        inputs=_plugins("inputs", tables["inputs"]),
        outputs=_plugins("outputs", tables["outputs"]),
        aggregators=_plugins("aggregators", tables["aggregators"]),
    )


def _toml(source: str, text: str) -> dict[str, Any]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(source, "", "", f"invalid TOML: {err}") from None
    for key in document:
        if key not in _SECTIONS:
            raise ConfigError(source, key, "", f"unknown section{suggest(key, list(_SECTIONS))}")
    return document


def _collect(source: str, table: Any, section: str, into: dict[str, Any],
             sources: dict[str, str]) -> None:
    if not isinstance(table, dict):
        raise ConfigError(source, section, "", "expected a table")
    into.update(table)
    sources.update(dict.fromkeys(table, source))


@dataclass
class _Tags:
    tags: dict[str, str] = field(default_factory=dict)


def _bind_section(sources: dict[str, str], section: str, cls: type, table: Any) -> Any:
    try:
        return bind(cls, substitute_env(table))
    except BindError as err:
        key = err.key.removeprefix("tags.") if cls is _Tags else err.key
        source = sources.get(key.split(".")[0].split("[")[0], next(iter(sources.values()), ""))
        raise ConfigError(source or EMBEDDED, section, key, err.message) from None


def _plugin_tables(source: str, kind: str, tables: Any) -> list[tuple[str, str, int, str, Any]]:
    """(source, name, index in the file, section, table) of every [[kind.NAME]]."""
    if not isinstance(tables, dict):
        raise ConfigError(source, kind, "", f"expected [[{kind}.NAME]] tables")
    found = []
    for name, entries in tables.items():
        entries = [entries] if isinstance(entries, dict) else entries
        if not isinstance(entries, list):
            raise ConfigError(source, f"{kind}.{name}", "", f"expected [[{kind}.{name}]] tables")
        for index, table in enumerate(entries):
            section = f"{kind}.{name}" + (f" #{index + 1}" if len(entries) > 1 else "")
            found.append((source, name, index, section, table))
    return found


def _plugins(kind: registry.Kind, tables: list[tuple[str, str, int, str, Any]]
             ) -> list[PluginSpec]:
    """Bind every table of one kind; instances of a plugin are numbered across files."""
    specs: list[PluginSpec] = []
    seen_names: dict[str, int] = {}
    for source, name, _, section, table in tables:
        number = seen_names[name] = seen_names.get(name, 0) + 1
        specs.append(_plugin(source, kind, name, number, section, table))
    seen: set[str] = set()
    for spec in specs:
        if spec.instance_id in seen:
            raise ConfigError(spec.source, spec.section, "alias",
                              f"{spec.instance_id!r} is used twice")
        seen.add(spec.instance_id)
    return specs


def _plugin(source: str, kind: registry.Kind, name: str, number: int, section: str,
            table: Any) -> PluginSpec:
    try:
        cls = registry.load(kind, name)
    except KeyError:
        available = registry.available(kind)
        raise ConfigError(source, section, "", f"unknown {kind[:-1]} plugin {name!r}"
                          f"{suggest(name, available)}") from None
    if not isinstance(table, dict):
        raise ConfigError(source, section, "", "expected a table")
    common_cls = COMMON_OPTIONS[kind]
    common_keys = set(common_cls.__dataclass_fields__)
    try:
        table = substitute_env(table)
        options = bind(common_cls, {k: v for k, v in table.items() if k in common_keys})
        config = bind(cls.Config, {k: v for k, v in table.items() if k not in common_keys})
    except BindError as err:
        raise ConfigError(source, section, err.key, err.message) from None
    instance_id = options.alias or (name if number == 1 else f"{name}-{number}")
    return PluginSpec(kind, name, section, instance_id, cls, options, config, source)


def require(config: Config, inputs: bool, outputs: bool) -> None:
    """Refuse a config that would do nothing, as Telegraf does."""
    if inputs and not config.inputs:
        raise ConfigError(config.source, "", "", "no inputs: add at least one [[inputs.NAME]] "
                          "(`collector config` prints a sample)")
    if outputs and not config.outputs:
        raise ConfigError(config.source, "", "", "no outputs: add at least one "
                          "[[outputs.NAME]] (`collector config` prints a sample)")


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        if not getattr(obj, name) > 0:
            raise BindError(name, "must be greater than zero")
