"""The ``collector`` command: run, once, test, check, provision, devices, emulate."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time

from collector import config as config_module
from collector import devices as devices_module
from collector import registry
from collector.agent import Agent, build_plugin
from collector.config import ConfigError
from collector.stats import StatsRegistry

EXIT_FAILED = 1
EXIT_CONFIG = 2


class StdoutSink:
    """Stands in for the outputs in ``collector test``: line protocol to stdout."""

    def append(self, payload: bytes, count: int) -> None:
        sys.stdout.buffer.write(payload)
        sys.stdout.buffer.flush()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in _WITHOUT_CONFIG:
        _setup_logging(args.log_level or "info")
        return args.handler(args)
    try:
        config = config_module.load(args.config)
    except ConfigError as err:
        print(f"collector: config error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    _setup_logging(args.log_level or config.agent.log_level)
    return args.handler(config, args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="collector", description=__doc__)
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("-c", "--config", help=f"TOML file (default: ${config_module.ENV_CONFIG}, "
                                                "else embedded defaults)")
        sub.set_defaults(handler=handler)
        return sub

    command("run", _run, "gather and deliver until SIGTERM/SIGINT")
    command("once", _once, "gather every polled input once, deliver everything, exit")
    test = command("test", _test, "gather and print line protocol; no outputs")
    test.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                      help="let streaming inputs deliver for this long")
    command("check", _check, "check the config and exit")
    provision = command("provision", _provision,
                        "create/alter databases, retention policies, continuous queries")
    provision.add_argument("--dry-run", action="store_true", help="show, change nothing")
    provision.add_argument("--prune", action="store_true",
                           help="drop retention policies the config no longer lists, if empty")
    provision.add_argument("--prune-with-data", action="store_true",
                           help="with --prune: drop them even when they hold data")
    devices = commands.add_parser("devices", help="list serial ports and HID devices and the "
                                                  "plugin that fits each")
    devices.set_defaults(handler=_devices)
    emulate = commands.add_parser("emulate", help="serve an emulated instrument (demos, tests)",
                                  description="serve an emulated instrument; without NAME, "
                                              "list those installed; NAME --help for its options")
    emulate.add_argument("name", metavar="NAME", nargs="?")
    emulate.add_argument("options", nargs=argparse.REMAINDER)
    emulate.set_defaults(handler=_emulate)
    return parser


_WITHOUT_CONFIG = ("devices", "emulate")


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
        print(f"collector: no emulator called {args.name!r}; available: {_emulators()}",
              file=sys.stderr)
        return EXIT_CONFIG
    return serve(args.options)


def _setup_logging(level: str) -> None:
    # Naive "local" time is what the schedule library computes with; pinning it to
    # UTC keeps daylight-saving jumps out of the schedule and the log.
    os.environ["TZ"] = "UTC"
    time.tzset()
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr,
        format="%(asctime)sZ %(levelname)s %(name)s: %(message)s",
    )


def _run(config, args) -> int:
    agent = Agent(config)
    log = logging.getLogger("collector")

    def on_signal(signum, frame) -> None:
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
                 config.agent.shutdown_timeout)
        agent.stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agent.run()
    return 0


def _once(config, args) -> int:
    return 0 if Agent(config).once() else EXIT_FAILED


def _test(config, args) -> int:
    Agent(config, sinks=[StdoutSink()]).gather_for(args.wait)
    return 0


def _check(config, args) -> int:
    inputs = ", ".join(spec.instance_id for spec in config.inputs) or "none"
    outputs = ", ".join(spec.instance_id for spec in config.outputs) or "none"
    print(f"{config.source}: OK; inputs: {inputs}; outputs: {outputs}")
    return 0


def _provision(config, args) -> int:
    prune = "all" if args.prune_with_data else "empty" if args.prune else "none"
    registry = StatsRegistry()
    status = 0
    for spec in config.outputs:
        plugin = build_plugin(spec, config, registry)
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


if __name__ == "__main__":
    sys.exit(main())
