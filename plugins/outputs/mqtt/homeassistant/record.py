"""What this output announced to Home Assistant, kept in the state directory.

Home Assistant keeps a device as long as its retained discovery message sits on the
broker, so a device whose input left the config must be removed explicitly, by
publishing an empty retained message over its discovery topic (and its retained
states). Only this record knows which devices those are: it lists, per device id, every
retained topic the output published for it, and what the device taught (a price's
currency) so the next start announces the same unit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class Record:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.topics: dict[str, list[str]] = {}
        self.learned: dict[str, dict[str, str]] = {}
        self._load()

    def _load(self) -> None:
        try:
            document = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            # Unreadable: nothing to remove, everything configured is announced again.
            return
        self.topics = {str(k): [str(t) for t in v]
                       for k, v in document.get("devices", {}).items()}
        self.learned = {str(k): {str(a): str(b) for a, b in v.items()}
                        for k, v in document.get("learned", {}).items()}

    def save(self) -> None:
        """Atomically: a crash leaves the old record or the new one, never half."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        with open(temporary, "w") as handle:
            json.dump({"devices": self.topics, "learned": self.learned}, handle, indent=1,
                      sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
