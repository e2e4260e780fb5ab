"""How one input's metrics are renamed, tagged and truncated on their way to the spools.

The encoder applies a shaping once per series, when it compiles that series' line
formatter, rather than once per metric: adding the ``host`` tag to every metric of a
busy input would otherwise cost more than encoding it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Shaping:
    name_override: str = ""
    name_prefix: str = ""
    name_suffix: str = ""
    tags_under: dict[str, str] = field(default_factory=dict)
    """Global tags and ``host``: a metric's own tags win over these."""
    tags_over: dict[str, str] = field(default_factory=dict)
    """The input's ``tags``: these win over a metric's own."""
    step_ns: int = 1
    """Timestamps are truncated to a multiple of this (the agent's ``precision``)."""

    def name(self, name: str) -> str:
        return self.name_override or self.name_prefix + name + self.name_suffix

    def tags(self, tags: dict[str, str]) -> dict[str, str]:
        if not (self.tags_under or self.tags_over):
            return tags
        return {**self.tags_under, **tags, **self.tags_over}
