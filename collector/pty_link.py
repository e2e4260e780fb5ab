"""The stable name of an emulated device: a symlink to its pty that harms nothing else.

``collector emulate NAME --link PATH`` stands in for the name a udev rule gives a real
device. PATH is only taken when nothing of value is there: nothing at all, or a symlink
into /dev/pts that an emulator left behind (its pty is gone, or the emulator that made
it is). A regular file, a directory, another program's link to a live pty and the link
of an emulator still running (plugged in or not) are refused.

Who made a link is recorded in a lock file beside it, ``.NAME.emulator``, holding the
owner's pid and pty. The owner keeps an ``flock`` on it, which the kernel releases
however the owner ends (even ``kill -9``): a lock that can be taken means the recorded
link is stale.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

PTY_DIRECTORY = "/dev/pts/"


class LinkRefused(Exception):
    """The path is not this emulator's to take; the message names it and says why."""


class PtyLink:
    """A claimed path that points to the current pty while one is plugged in."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._record = path.with_name(f".{path.name}.emulator")
        self._lock: int | None = None
        self._tty = ""

    def claim(self) -> None:
        """Take the path, or raise ``LinkRefused`` leaving everything as it was."""
        try:
            self._lock = self._locked_record()
            previous_tty = os.pread(self._lock, 4096, 0).decode(errors="replace").partition(" ")[2]
            if os.path.lexists(self.path):
                if not self._stale(previous_tty):
                    self.release()
                    raise LinkRefused(f"{self.path}: already exists and is not a link an "
                                      f"emulator left behind; remove it or choose another path")
                self.path.unlink()
        except OSError as err:
            self.release()
            raise LinkRefused(f"{self.path}: cannot serve here: {err.strerror}") from None

    def point_to(self, tty: str) -> None:
        """Record ``tty`` as ours, then make the link (in that order, so that a crash in
        between leaves a link the next emulator recognises)."""
        assert self._lock is not None, "claim() first"
        record = f"{os.getpid()} {tty}".encode()
        os.ftruncate(self._lock, 0)
        os.pwrite(self._lock, record, 0)
        self._tty = tty
        try:
            self.path.symlink_to(tty)
        except FileExistsError:
            raise LinkRefused(f"{self.path}: something else appeared there while unplugged") \
                from None

    def remove(self) -> None:
        """Unplug: remove the link, but only while it still points to our pty."""
        try:
            ours = os.readlink(self.path) == self._tty
        except OSError:
            return  # gone, or not a link: not ours to remove
        if ours:
            self.path.unlink(missing_ok=True)

    def release(self) -> None:
        """Give the path up: the link (if still ours), then the record and its lock."""
        if self._lock is None:
            return
        self.remove()
        self._record.unlink(missing_ok=True)
        os.close(self._lock)
        self._lock = None

    def _locked_record(self) -> int:
        """The record file, locked; raises LinkRefused while another emulator holds it."""
        while True:
            fd = os.open(self._record, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.pread(fd, 4096, 0).decode(errors="replace").partition(" ")[0]
                os.close(fd)
                raise LinkRefused(f"{self.path}: in use by another emulator "
                                  f"(pid {owner or '?'})") from None
            # The previous owner may have deleted the file between our open and lock;
            # a lock on a deleted file guards nothing, so open the current one again.
            try:
                if os.stat(self._record).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)

    def _stale(self, previous_tty: str) -> bool:
        """Whether what is at the path is an emulator's leftover link to a pty."""
        if not self.path.is_symlink():
            return False
        target = os.readlink(self.path)
        if not target.startswith(PTY_DIRECTORY):
            return False
        return target == previous_tty or not os.path.exists(target)
