"""A line-protocol file that is renamed aside once it reaches a size, as Telegraf's
``rotation_max_size`` does, so that a collector left running for years on an SD card
keeps a bounded archive instead of one file that grows until the card is full."""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path
from typing import BinaryIO

STAMP_FORMAT = "%Y-%m-%dT%H%M%S.%fZ"
"""UTC time of the rotation in an archive's name: sorts by age, no colon."""


class RotatingFile:
    """Appends to ``path``; once it holds ``max_size`` bytes (0: never), it becomes
    ``STEM.<UTC time>.SUFFIX`` (``metrics.2026-11-22T075012.123456Z.lp``) and a new
    ``path`` is started. Only the newest ``max_archives`` archives are kept (-1: all)."""

    def __init__(self, path: Path, max_size: int, max_archives: int) -> None:
        self.path = path
        self.max_size = max_size
        self.max_archives = max_archives
        self._archive_name = re.compile(
            re.escape(path.stem) + r"\.\d{4}-\d\d-\d\dT\d{6}\.\d{6}Z" + re.escape(path.suffix))
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: BinaryIO = open(path, "ab")  # noqa: SIM115 - kept open for the run

    def write(self, payload: bytes) -> None:
        self._handle.write(payload)
        self._handle.flush()
        if self.max_size and self._handle.tell() >= self.max_size:
            self._rotate()

    def archives(self) -> list[Path]:
        """This file's archives, oldest first."""
        return sorted(entry for entry in self.path.parent.iterdir()
                      if self._archive_name.fullmatch(entry.name))

    def close(self) -> None:
        self._handle.close()

    def _rotate(self) -> None:
        self._handle.close()
        stamp = datetime.datetime.now(datetime.UTC).strftime(STAMP_FORMAT)
        os.replace(self.path, self.path.with_name(f"{self.path.stem}.{stamp}{self.path.suffix}"))
        self._handle = open(self.path, "ab")  # noqa: SIM115 - kept open for the run
        if self.max_archives >= 0:
            archives = self.archives()
            for old in archives[:max(0, len(archives) - self.max_archives)]:
                old.unlink(missing_ok=True)
