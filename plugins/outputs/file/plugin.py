"""Line protocol to stdout and/or files: for the console, for debugging, for archives."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from collector import ByteSize, Output, RetryableError, WriteResult
from collector.binding import BindError
from plugins.outputs.file.rotation import RotatingFile


@dataclass
class FileConfig:
    files: list[str] = field(default_factory=lambda: ["stdout"])
    """"stdout", or paths; relative paths are resolved in the agent's state_dir."""
    rotation_max_size: ByteSize = ByteSize(0)
    """A file that reaches this size is renamed aside and started again; 0 never."""
    rotation_max_archives: int = 5
    """Renamed files kept per file, the oldest deleted first; -1 keeps them all."""

    def validate(self) -> None:
        if self.rotation_max_archives < -1:
            raise BindError("rotation_max_archives", "must be -1 (keep all), 0 or more")


class _Stdout:
    """stdout, written like a file."""

    def write(self, payload: bytes) -> None:
        sys.stdout.buffer.write(payload)
        sys.stdout.buffer.flush()

    def close(self) -> None:
        """stdout stays open."""


class FileOutput(Output):
    Config = FileConfig

    def __init__(self, config: FileConfig, context) -> None:
        super().__init__(config, context)
        self._handles: list[RotatingFile | _Stdout] | None = None

    def _open(self) -> list[RotatingFile | _Stdout]:
        return [_Stdout() if name == "stdout" else
                RotatingFile(self.context.state_dir / Path(name), self.config.rotation_max_size,
                             self.config.rotation_max_archives)
                for name in self.config.files]

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
        except OSError as err:
            self.close()
            raise RetryableError(f"cannot write: {err}") from err
        return WriteResult(written=count)

    def close(self) -> None:
        for handle in self._handles or []:
            handle.close()
        self._handles = None
