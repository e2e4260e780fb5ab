"""A small real file system that fills up: a tmpfs of a few MiB, and a filler for it.

Mounting needs root (or CAP_SYS_ADMIN); where it is refused the test is skipped with
the reason, never run against a disk it cannot fill.
"""

from __future__ import annotations

import errno
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHUNK = b"\0" * 4096


@contextmanager
def small_disk(path: Path, size: str = "2m") -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill up (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path, leave: int = 0) -> Path:
    """Write a file until the disk is full, then give ``leave`` bytes back."""
    path = directory / "filler"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            try:
                os.write(fd, CHUNK)
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
                break
        if leave:
            os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
    finally:
        os.close(fd)
    return path


class Filler:
    """Keeps a disk full, as a runaway log does: takes every page that gets freed."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "filler"
        self.full = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, daemon=True)

    def __enter__(self) -> Filler:
        self._thread.start()
        self.full.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.path.unlink()

    def _fill(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while not self._stop.is_set():
                try:
                    os.write(fd, CHUNK)
                except OSError as err:
                    if err.errno != errno.ENOSPC:
                        raise
                    self.full.set()
                    self._stop.wait(0.002)
        finally:
            os.close(fd)
