"""The collector command: run, once, test, check, provision, config, plugins, devices,
emulate."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from collector import config as config_module
from collector import devices as devices_module
from collector import importing, registry, sample_config
from collector.agent import Agent, build_plugin
from collector.config import Config, ConfigError
from collector.plugin import StreamingInput
from collector.stats import StatsRegistry
from collector.units import Secret

EXIT_FAILED = 1
EXIT_CONFIG = 2
LEVELS = ("debug", "info", "warning", "error")
log = logging.getLogger("collector")


class StdoutSink:
    """Stands in for the outputs in ``collector test``: line protocol to stdout."""

    def append(self, payload: bytes, count: int) -> None:
        sys.stdout.buffer.write(payload)
        sys.stdout.buffer.flush()


class CommandError(Exception):
    """A command line that cannot be carried out, told in one line (exit 2)."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = getattr(args, "log_level", None)
    try:
        if not hasattr(args, "config"):
            _setup_logging(level or "info")
            return args.handler(args)
        config = load(args)
    except (ConfigError, CommandError) as err:
        kind = "config error: " if isinstance(err, ConfigError) else ""
        print(f"collector: {kind}{err}", file=sys.stderr)
        return EXIT_CONFIG
    _setup_logging(level or config.agent.log_level)
    return args.handler(config, args)


def load(args: argparse.Namespace) -> Config:
    """The config the command line names, with its filters applied and checked for the
    command (``run`` needs inputs and outputs, ``test`` inputs, ``provision`` outputs)."""
    config = config_module.load(args.config, args.config_directory)
    for kind in ("inputs", "outputs"):
        names = getattr(args, f"{kind[:-1]}_filter", None)
        if names is not None:
            _filter(config, kind, names)
    needs_inputs, needs_outputs = _NEEDS[args.command]
    if getattr(args, "dry_run", False) and args.command == "import":
        needs_outputs = False
    config_module.require(config, needs_inputs, needs_outputs)
    return config


def _filter(config: Config, kind: str, names: str) -> None:
    """Telegraf's --input-filter/--output-filter: keep the plugins named (a:b:c)."""
    wanted = set(names.split(":"))
    specs = getattr(config, kind)
    unknown = wanted - {spec.name for spec in specs}
    if unknown:
        raise CommandError(f"--{kind[:-1]}-filter: {', '.join(sorted(unknown))} not in the "
                           f"config ({', '.join(spec.name for spec in specs) or 'none'})")
    setattr(config, kind, [spec for spec in specs if spec.name in wanted])


_NEEDS = {"run": (True, True), "once": (True, True), "check": (True, True),
          "test": (True, False), "provision": (False, True), "import": (False, True)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="collector", description="A Telegraf-style collector for instruments: gathers "
        "readings into a durable spool and delivers them to InfluxDB and other outputs.")
    parser.add_argument("--version", action="version", version=f"collector {_version()}")
    _logging_options(parser, argparse.ArgumentParser.add_argument)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler, text: str, with_config: bool = True,
                filters: str = "") -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        _logging_options(sub, _suppressed)
        sub.set_defaults(handler=handler)
        if with_config:
            sub.add_argument("-c", "--config", action="append", metavar="FILE",
                             help="TOML config; repeat to merge several, in order (default: "
                                  f"${config_module.ENV_CONFIG}, else the embedded defaults)")
            sub.add_argument("--config-directory", metavar="DIR",
                             help="also merge every *.toml in DIR, in name order")
        for kind in filters:
            name = {"i": "input", "o": "output"}[kind]
            sub.add_argument(f"--{name}-filter", metavar="A:B",
                             help=f"use only these {name} plugins of the config")
        return sub

    command("run", _run, "gather and deliver until SIGTERM/SIGINT; SIGHUP reloads the "
            "config", filters="io")
    once = command("once", _once, "gather once (streaming inputs for --wait), deliver "
                   "everything spooled, exit 0 when nothing is left", filters="io")
    test = command("test", _test, "gather once and print line protocol; no outputs, no spool",
                   filters="i")
    for sub in (once, test):
        sub.add_argument("--wait", type=float, metavar="SECONDS",
                         help="how long streaming inputs deliver (default: the agent's "
                              "interval when there are any)")
    command("check", _check, "check the config and exit")
    provision = command("provision", _provision,
                        "make each output's server match the config: databases, retention "
                        "policies, continuous queries")
    provision.add_argument("--dry-run", action="store_true", help="show, change nothing")
    provision.add_argument("--prune", action="store_true",
                           help="also drop what the config no longer lists (continuous "
                                "queries; retention policies only when empty)")
    provision.add_argument("--prune-with-data", action="store_true",
                           help="with --prune: drop retention policies that hold data too")
    legacy = command("import", _import, "bring legacy history (a MySQL table of the old "
                     "loggers, or a CSV export of it) into the configured outputs, "
                     "resumably and without storing anything twice")
    legacy.add_argument("kind", metavar="KIND", help="se521 or raven (which legacy logger)")
    legacy.add_argument("source", metavar="SOURCE",
                        help="mysql://USER@HOST[:PORT]/DATABASE, or a CSV file")
    legacy.add_argument("--timezone", default="local",
                        help="zone of the legacy naive local times: local (default), UTC, "
                             "or an IANA name such as Europe/Berlin")
    legacy.add_argument("--table", default="", help="the table, if renamed")
    legacy.add_argument("--password-file", metavar="FILE",
                        help="the MySQL password (default: $MYSQL_PWD)")
    legacy.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                        help="add a tag to every metric (e.g. device=SN1234); repeatable")
    legacy.add_argument("--dry-run", action="store_true",
                        help="print the line protocol it would store; store nothing")
    legacy.add_argument("--restart", action="store_true",
                        help="forget how far an earlier import got and start again")
    sample = command("config", _config, "print a commented sample config (every installed "
                     "plugin, or those named)", with_config=False)
    sample.add_argument("plugins", nargs="*", metavar="PLUGIN",
                        help="e.g. se521, inputs.raven, outputs.influxdb")
    command("plugins", _plugins, "list the installed plugins", with_config=False)
    command("devices", _devices, "list serial ports and HID devices with their USB ids and "
            "the input plugin that fits each", with_config=False)
    emulate = command("emulate", _emulate, "serve an emulated instrument on a pseudo-terminal "
                      "(demos, tests); without NAME, list those installed; NAME --help shows "
                      "its options", with_config=False)
    emulate.add_argument("name", metavar="NAME", nargs="?")
    emulate.add_argument("options", nargs=argparse.REMAINDER)
    return parser


def _suppressed(parser: argparse.ArgumentParser, *names: str, **kwargs):
    """An option also given after the command, without overriding one given before it."""
    return parser.add_argument(*names, default=argparse.SUPPRESS, **kwargs)


def _logging_options(parser: argparse.ArgumentParser, add) -> None:
    add(parser, "--log-level", choices=LEVELS, help="default: the config's log_level")
    add(parser, "--debug", dest="log_level", action="store_const", const="debug",
        help="log debug detail: batches written, spool depth, device exchanges")
    add(parser, "--quiet", dest="log_level", action="store_const", const="error",
        help="log errors only")


def _version() -> str:
    try:
        return version("instrument-collector")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _setup_logging(level: str) -> None:
    # Naive "local" time is what the schedule library computes with; pinning it to
    # UTC keeps daylight-saving jumps out of the schedule and the log.
    os.environ["TZ"] = "UTC"
    time.tzset()
    logging.basicConfig(stream=sys.stderr,
                        format="%(asctime)sZ %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level.upper())


# ---------------------------------------------------------------- commands
def _run(config: Config, args) -> int:
    while True:
        agent = Agent(config)
        _handle_signals(agent)
        if config.source == config_module.EMBEDDED:
            log.info("no config given: running the embedded defaults. To write to InfluxDB, "
                     "`collector config se521 raven outputs.influxdb > collector.toml`, edit "
                     "it, then `collector run -c collector.toml`")
        agent.run(check_reload=lambda: _reloaded(args))
        if agent.next_config is None:
            return 0
        config = agent.next_config
        logging.getLogger().setLevel(
            (getattr(args, "log_level", None) or config.agent.log_level).upper())
        log.info("running the reloaded config")


def _reloaded(args) -> Config | None:
    """SIGHUP: the config, read again and checked; None (and why, logged) if it is bad,
    so the running one goes on."""
    try:
        config = load(args)
    except (ConfigError, CommandError) as err:
        log.error("SIGHUP: not reloading, the config is bad (keeping the running one): %s", err)
        return None
    log.info("SIGHUP: config checked; restarting with it")
    return config


def _handle_signals(agent: Agent) -> None:
    def on_stop(signum, frame) -> None:
        """First signal: flush and stop within shutdown_timeout. Second: cut the flush
        short, still closing everything and logging "stopped". Third: exit at once."""
        name = signal.Signals(signum).name
        if agent.hurried.is_set():
            os.write(2, f"collector: {name} again: exiting now\n".encode())
            os._exit(128 + signum)
        if agent.stop_event.is_set():
            log.warning("%s again: cutting the flush short (a third one exits at once)", name)
            agent.hurry()
            return
        log.info("%s: flushing and stopping (within %.0f s)", name,
                 agent.settings.shutdown_timeout)
        agent.stop_event.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, lambda *_: agent.reload_requested.set())


def _wait(config: Config, args) -> float:
    if args.wait is not None:
        return args.wait
    streaming = any(issubclass(spec.cls, StreamingInput) for spec in config.inputs)
    return float(config.agent.interval) if streaming else 0.0


def _once(config: Config, args) -> int:
    agent = Agent(config)
    if agent.once(_wait(config, args)):
        return 0
    left = {output.output.context.alias: output.spool.backlog for output in agent.outputs}
    print("collector: not everything was delivered; still spooled: " + ", ".join(
        f"{count} metrics for {alias}" for alias, count in left.items() if count)
          + " (the next run or once sends them)", file=sys.stderr)
    return EXIT_FAILED


def _test(config: Config, args) -> int:
    agent = Agent(config, sinks=[StdoutSink()])
    agent.gather(_wait(config, args))
    agent.close()
    return 0


def _check(config: Config, args) -> int:
    inputs = ", ".join(spec.instance_id for spec in config.inputs) or "none"
    outputs = ", ".join(spec.instance_id for spec in config.outputs) or "none"
    print(f"{config.source}: OK; inputs: {inputs}; outputs: {outputs}")
    return 0


def _provision(config: Config, args) -> int:
    prune = "all" if args.prune_with_data else "empty" if args.prune else "none"
    stats = StatsRegistry()
    status = 0
    for spec in config.outputs:
        plugin = build_plugin(spec, config, stats)
        try:
            changes = plugin.provision(dry_run=args.dry_run, prune=prune)
        except Exception as err:
            print(f"{spec.instance_id}: provisioning failed: {err}", file=sys.stderr)
            status = EXIT_FAILED
            continue
        finally:
            plugin.close()
        if changes is None:
            continue
        verb = "would" if args.dry_run else "did"
        print(f"{spec.instance_id}: {len(changes)} change(s)" + ("" if changes else ", in sync"))
        for change in changes:
            print(f"  {verb}: {change}")
    return status


def _import(config: Config, args) -> int:
    tags = dict(item.partition("=")[::2] for item in args.tag)
    if any(not key or not value for key, value in tags.items()):
        print("collector: --tag takes KEY=VALUE", file=sys.stderr)
        return EXIT_CONFIG
    try:
        password = Secret(Path(args.password_file).read_text().strip()) \
            if args.password_file else Secret(os.environ.get("MYSQL_PWD", ""))
    except OSError as err:
        print(f"collector: --password-file: {err.strerror}", file=sys.stderr)
        return EXIT_CONFIG
    request = importing.ImportRequest(args.kind, args.source, args.timezone, args.table,
                                      password, tags, args.dry_run, args.restart)
    stop = threading.Event()
    importing.install_stop_signals(stop)
    try:
        outcome = importing.run(config, request, stop=stop)
    except importing.ImportProblem as err:
        print(f"collector: import: {err}", file=sys.stderr)
        return EXIT_CONFIG
    print(importing.summary(outcome), file=sys.stderr)
    return 0 if outcome.complete and not outcome.undelivered else EXIT_FAILED


def _config(args) -> int:
    try:
        print(sample_config.sample(args.plugins), end="")
    except KeyError as err:
        raise CommandError(err.args[0]) from None
    return 0


def _plugins(args) -> int:
    for kind in sample_config.PLUGIN_KINDS:
        print(f"{kind}:")
        for name in registry.available(kind):
            print(f"  {name:20} {sample_config.summary(kind, name)}")
    return 0


def _emulators() -> str:
    """Looked up only when asked for: reading every package's entry points is slow."""
    return ", ".join(registry.available("emulators")) or "none installed"


def _devices(args) -> int:
    print(devices_module.report(devices_module.attached()))
    return 0


def _emulate(args) -> int:
    if args.name is None:
        print(_emulators())
        return 0
    try:
        serve = registry.load("emulators", args.name)
    except KeyError:
        raise CommandError(f"no emulator called {args.name!r}; available: {_emulators()}"
                           ) from None
    return serve(args.options)


if __name__ == "__main__":
    sys.exit(main())
