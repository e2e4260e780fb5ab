"""Logging a failure once per episode: when it starts or changes, and when it ends.

A device unplugged for a night or a server down for an hour must not write a line
every interval; the counters in ``internal_*`` say how often it happened.
"""

from __future__ import annotations

import logging
import time


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


class HealthLog:
    """A device's health, logged each time it changes (the first state too) with how
    long the previous state lasted: a device absent for a night is one line, not one per
    look. ``normal`` states (the healthy one, and steps on the way to it such as a
    meter joining its network) are logged at INFO, every other one as a WARNING."""

    def __init__(self, log: logging.Logger, initial: str, normal: tuple[str, ...]) -> None:
        self.log = log
        self.state = initial
        self.normal = normal
        self._since: float | None = None

    def set(self, subject: str, state: str, detail: str = "") -> None:
        if state == self.state and self._since is not None:
            return
        now = time.monotonic()
        was = "" if self._since is None else f" (was {self.state} for {now - self._since:.0f} s)"
        self._since, self.state = now, state
        self.log.log(logging.INFO if state in self.normal else logging.WARNING, "%s: %s%s%s",
                     subject, state, f": {detail}" if detail else "", was)
