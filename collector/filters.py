"""Telegraf's metric filters: which metrics a plugin takes, and which of their fields.

``namepass``/``namedrop`` match the measurement, ``tagpass``/``tagdrop`` a tag's value
(a metric passes when any listed tag matches one of its patterns), and
``fieldpass``/``fielddrop`` keep or remove fields; a metric left without fields is
dropped. Patterns are globs as in Telegraf: ``*``, ``?``, ``[abc]``, ``[!abc]`` and
``{a,b}`` alternatives.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from collector.metric import Metric

_BRACES = re.compile(r"\{([^{}]*)\}")


@dataclass
class FilterOptions:
    """The filter keys every [[inputs.*]], [[aggregators.*]] and [[outputs.*]] takes."""

    namepass: list[str] = field(default_factory=list)
    """Only metrics whose measurement matches one of these globs."""
    namedrop: list[str] = field(default_factory=list)
    """No metric whose measurement matches one of these."""
    tagpass: dict[str, list[str]] = field(default_factory=dict)
    """Only metrics with a tag matching, e.g. { channel = ["T1", "T2"] }."""
    tagdrop: dict[str, list[str]] = field(default_factory=dict)
    fieldpass: list[str] = field(default_factory=list)
    """Only these fields (a metric left with none is dropped)."""
    fielddrop: list[str] = field(default_factory=list)


class Selector:
    """One plugin's filters, compiled; ``None`` from ``of`` means "takes everything"."""

    def __init__(self, options: FilterOptions) -> None:
        self.namepass = _compile(options.namepass)
        self.namedrop = _compile(options.namedrop)
        self.tagpass = {key: _compile(globs) for key, globs in options.tagpass.items()}
        self.tagdrop = {key: _compile(globs) for key, globs in options.tagdrop.items()}
        self.fieldpass = _compile(options.fieldpass)
        self.fielddrop = _compile(options.fielddrop)
        self.key = (tuple(options.namepass), tuple(options.namedrop),
                    tuple(sorted((k, tuple(v)) for k, v in options.tagpass.items())),
                    tuple(sorted((k, tuple(v)) for k, v in options.tagdrop.items())),
                    tuple(options.fieldpass), tuple(options.fielddrop))
        """Equal for plugins with the same filters: they can share one encoding."""

    @classmethod
    def of(cls, options: FilterOptions) -> Selector | None:
        selector = cls(options)
        return selector if any(selector.key) else None

    def selects(self, name: str, tags: dict[str, str]) -> bool:
        if self.namepass and not self.namepass(name):
            return False
        if self.namedrop and self.namedrop(name):
            return False
        if self.tagpass and not _any_tag(self.tagpass, tags):
            return False
        return not (self.tagdrop and _any_tag(self.tagdrop, tags))

    def apply(self, metrics: list[Metric]) -> list[Metric]:
        """The metrics selected, with their fields filtered (new metrics where they
        change: a metric may also go elsewhere unfiltered)."""
        kept = []
        for metric in metrics:
            if not self.selects(metric.name, metric.tags):
                continue
            fields = metric.fields
            if self.fieldpass or self.fielddrop:
                fields = {key: value for key, value in fields.items()
                          if (not self.fieldpass or self.fieldpass(key))
                          and not (self.fielddrop and self.fielddrop(key))}
                if not fields:
                    continue
                if len(fields) != len(metric.fields):
                    metric = Metric(metric.name, fields, metric.tags, metric.time_ns)
            kept.append(metric)
        return kept


def _any_tag(patterns: dict, tags: dict[str, str]) -> bool:
    return any(key in tags and match(tags[key]) for key, match in patterns.items())


def _compile(globs: list[str]):
    """One matcher for a list of globs (None when the list is empty)."""
    if not globs:
        return None
    expanded = [pattern for glob in globs for pattern in expand_braces(glob)]
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in expanded)).match


def expand_braces(glob: str) -> list[str]:
    """``a{b,c}d`` -> ``abd``, ``acd`` (innermost first), which fnmatch does not know."""
    match = _BRACES.search(glob)
    if match is None:
        return [glob]
    head, tail = glob[:match.start()], glob[match.end():]
    return [expanded for option in match.group(1).split(",")
            for expanded in expand_braces(head + option + tail)]
