"""Line protocol to stdout and/or files: for the console, for debugging, for archives."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from collector import Output, RetryableError, WriteResult


@dataclass
class FileConfig:
    files: list[str] = field(default_factory=lambda: ["stdout"])
    """"stdout", or paths; relative paths are resolved in the agent's state_dir."""


class FileOutput(Output):
    Config = FileConfig

    def __init__(self, config: FileConfig, context) -> None:
        super().__init__(config, context)
        self._handles: list[BinaryIO] | None = None

    def _open(self) -> list[BinaryIO]:
        handles = []
        for name in self.config.files:
            if name == "stdout":
                handles.append(sys.stdout.buffer)
                continue
            path = self.context.state_dir / Path(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            handles.append(open(path, "ab"))  # noqa: SIM115 - kept open for the run
        return handles

    def start(self) -> None:
        self.context.log.info("writing line protocol to %s", ", ".join(
            name if name == "stdout" else str(self.context.state_dir / name)
            for name in self.config.files))

    def write(self, payload: bytes, count: int) -> WriteResult:
        try:
            if self._handles is None:
                self._handles = self._open()
            for handle in self._handles:
                handle.write(payload)
                handle.flush()
        except OSError as err:
            self.close()
            raise RetryableError(f"cannot write: {err}") from err
        return WriteResult(written=count)

    def close(self) -> None:
        for handle in self._handles or []:
            if handle is not sys.stdout.buffer:
                handle.close()
        self._handles = None
