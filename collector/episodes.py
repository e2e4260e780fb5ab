"""Logging a failure once per episode: when it starts or changes, and when it ends.

A device unplugged for a night or a server down for an hour must not write a line
every interval; the counters in ``internal_*`` say how often it happened.
"""

from __future__ import annotations

import logging


class ErrorReporter:
    """Logs an error when it first appears or changes, and the recovery once."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self._last: str | None = None

    @property
    def failing(self) -> bool:
        return self._last is not None

    def failed(self, err: BaseException, doing: str = "") -> None:
        message = f"{doing}{type(err).__name__}: {err}"
        if message != self._last:
            self.log.error("%s", message)
        self._last = message

    def succeeded(self, message: str = "recovered") -> None:
        if self._last is not None:
            self.log.info("%s", message)
            self._last = None
