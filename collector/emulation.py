"""Serving an emulated serial instrument on a pseudo-terminal, for tests and demos.

A plugin's emulator implements ``SerialDevice`` (bytes from the host in, its answers
out; plus what it sends unprompted) and ``PtyServer`` does the rest: a pty, optionally
behind a stable symlink as a udev rule would give (``PtyLink``: it never harms what
else is at that path), that can vanish and come back like an unplugged USB serial
adapter. ``EmulatorArguments`` and ``serve_until_signalled`` are the shared half of
every ``collector emulate NAME`` command.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import sys
import threading
import tty
from pathlib import Path
from typing import NoReturn, Protocol

from collector.pty_link import LinkRefused, PtyLink

POLL_INTERVAL_S = 0.02
EXIT_USAGE = 2


class SerialDevice(Protocol):
    def feed(self, data: bytes) -> bytes:
        """Bytes the host wrote; returns the device's answer (b"" for none)."""

    def poll(self) -> bytes:
        """What the device sends on its own now (pushes, b"" for none)."""


class PtyServer:
    """Serves a ``SerialDevice`` on a pty; ``disconnect``/``reconnect`` unplug and replug.

    With a ``link``, ``start`` claims that path (or raises ``LinkRefused``) and keeps it
    until ``close``, so no other emulator takes it over while this one is unplugged.
    """

    def __init__(self, device: SerialDevice, link: Path | None = None) -> None:
        self.device = device
        self.link = link
        self.tty_path = ""
        self._link = PtyLink(link) if link else None
        self._connection: _PtyConnection | None = None

    @property
    def path(self) -> str:
        """Where the host opens the device: the link if there is one, else the pty."""
        return str(self.link) if self.link else self.tty_path

    def start(self) -> PtyServer:
        if self._link:
            self._link.claim()
        try:
            self.reconnect()
        except BaseException:
            self.close()
            raise
        return self

    def reconnect(self) -> None:
        self.disconnect()
        self._connection = _PtyConnection(self.device)
        self.tty_path = self._connection.tty_path
        if self._link:
            self._link.point_to(self.tty_path)

    def disconnect(self) -> None:
        if self._link:
            self._link.remove()
        if self._connection:
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        self.disconnect()
        if self._link:
            self._link.release()


class _PtyConnection:
    def __init__(self, device: SerialDevice) -> None:
        self.device = device
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.tty_path = os.ttyname(self.slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="pty-emulator", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], POLL_INTERVAL_S)
            out = b""
            if ready:
                try:
                    out = self.device.feed(os.read(self.master, 4096))
                except OSError:
                    continue
            out += self.device.poll()
            if out:
                os.write(self.master, out)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        os.close(self.master)
        os.close(self.slave)


class EmulatorArguments(argparse.ArgumentParser):
    """An emulator's options: a bad one is one line on stderr and exit 2, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def serve_until_signalled(server: PtyServer, what: str, prog: str) -> int:
    """``collector emulate``: announce the path, serve until SIGINT/SIGTERM, clean up.

    A path that cannot be served (refused, or its directory missing) is one line on
    stderr naming it, and exit 2.
    """
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        server.start()
    except (LinkRefused, OSError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{what} emulator serving {server.path} (tty {server.tty_path})", flush=True)
    stop.wait()
    server.close()
    return 0
