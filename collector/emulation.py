"""Serving an emulated serial instrument on a pseudo-terminal, for tests and demos.

A plugin's emulator implements ``SerialDevice`` (bytes from the host in, its answers
out; plus what it sends unprompted) and ``PtyServer`` does the rest: a pty, optionally
behind a stable symlink as a udev rule would give, that can vanish and come back like
an unplugged USB serial adapter.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import tty
from pathlib import Path
from typing import Protocol

POLL_INTERVAL_S = 0.02


class SerialDevice(Protocol):
    def feed(self, data: bytes) -> bytes:
        """Bytes the host wrote; returns the device's answer (b"" for none)."""

    def poll(self) -> bytes:
        """What the device sends on its own now (pushes, b"" for none)."""


class PtyServer:
    """Serves a ``SerialDevice`` on a pty; ``disconnect``/``reconnect`` unplug and replug."""

    def __init__(self, device: SerialDevice, link: Path | None = None) -> None:
        self.device = device
        self.link = link
        self.tty_path = ""
        self._connection: _PtyConnection | None = None

    @property
    def path(self) -> str:
        """Where the host opens the device: the link if there is one, else the pty."""
        return str(self.link) if self.link else self.tty_path

    def start(self) -> PtyServer:
        self.reconnect()
        return self

    def reconnect(self) -> None:
        self.disconnect()
        self._connection = _PtyConnection(self.device)
        self.tty_path = self._connection.tty_path
        if self.link:
            self.link.unlink(missing_ok=True)
            self.link.symlink_to(self.tty_path)

    def disconnect(self) -> None:
        if self.link:
            self.link.unlink(missing_ok=True)
        if self._connection:
            self._connection.close()
            self._connection = None

    close = disconnect


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


def serve_until_signalled(server: PtyServer, what: str) -> int:
    """``collector emulate``: announce the path, serve until SIGINT/SIGTERM, clean up."""
    server.start()
    print(f"{what} emulator serving {server.path} (tty {server.tty_path})", flush=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    server.close()
    return 0
