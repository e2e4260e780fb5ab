"""RAVEn / EMU-2 XML stream, sans I/O: bytes in, complete fragments out.

The devices send a stream of small XML fragments with no framing (shared/protocols/
raven.md): a glued tail of an older fragment on connect, stray or mismatched close
tags, dangling start tags, fragments split across reads or two in one, raw 0xFF bytes.
The parser resynchronises on the next known root start tag, drops and counts what is
not a whole fragment, and bounds its buffer. Each candidate fragment is parsed with
defusedxml, so no entity expansion or external entity can ever be triggered.

Text is code page 1252, one byte per character: decoding each read on its own can never
split a character, so positions in the text are positions in the byte stream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

ROOTS = (
    "InstantaneousDemand", "CurrentSummationDelivered", "PriceCluster", "TimeCluster",
    "ConnectionStatus", "NetworkInfo", "DeviceInfo", "MeterList", "MeterInfo",
    "MessageCluster", "CurrentPeriodUsage", "LastPeriodUsage", "ProfileData", "ScheduleInfo",
    "BlockPriceDetail", "FastPollStatus", "Warning",
)
"""Root tags the devices send; anything else between fragments is garbage."""
_CANONICAL = {name.lower(): name for name in ROOTS}
_ROOT_START = re.compile(r"<\s*(" + "|".join(ROOTS) + r")\s*>", re.IGNORECASE)
_LONGEST_START = max(len(name) for name in ROOTS) + 4

DEFAULT_MAX_FRAGMENT = 16 * 1024
"""The largest fragment kept; real ones are a few hundred bytes."""


@dataclass(frozen=True, slots=True)
class Fragment:
    """One notification or reply: its root tag and its children, keyed by lower-case name.

    A child that appears more than once (MeterList's MeterMacId) keeps every value in
    ``repeated``; ``children`` holds the first.
    """

    root: str
    children: dict[str, str]
    repeated: dict[str, list[str]] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        return self.children.get(name.lower())


@dataclass(slots=True)
class ParserStats:
    fragments: int = 0
    garbage_bytes: int = 0
    """Non-blank bytes outside any fragment (glued tails, stray close tags)."""
    truncated: int = 0
    """Fragments cut short by the next root start tag (a dangling start)."""
    malformed: int = 0
    """Candidates that were not well-formed XML (mismatched tags, forbidden constructs)."""
    oversized: int = 0
    """Candidates longer than the limit, dropped unread."""


class StreamParser:
    def __init__(self, max_fragment: int = DEFAULT_MAX_FRAGMENT) -> None:
        self.max_fragment = max_fragment
        self.stats = ParserStats()
        self._buffer = ""
        self._root: str | None = None

    def feed(self, data: bytes) -> list[Fragment]:
        """Take the next bytes read; return the fragments they complete."""
        self._buffer += data.decode("cp1252", errors="replace")
        fragments = []
        while self._step(fragments):
            pass
        return fragments

    def reset(self) -> None:
        """Forget a partial fragment (after a reconnect the stream starts anew)."""
        self._buffer, self._root = "", None

    def _step(self, out: list[Fragment]) -> bool:
        """Advance by one fragment or one resynchronisation; False when input runs out."""
        buffer = self._buffer
        if self._root is None:
            start = _ROOT_START.search(buffer)
            if start is None:
                keep = _possible_tag_start(buffer)
                self._discard(buffer[:len(buffer) - len(keep)])
                self._buffer = keep
                return False
            self._discard(buffer[:start.start()])
            self._root = _CANONICAL[start.group(1).lower()]
            self._buffer = buffer = buffer[start.start():]
        close = re.search(rf"</\s*{self._root}\s*>", buffer, re.IGNORECASE)
        restart = _ROOT_START.search(buffer, 1, close.start() if close else len(buffer))
        if restart is not None:
            self.stats.truncated += 1
            self._root, self._buffer = None, buffer[restart.start():]
            return True
        if (close.end() if close else len(buffer)) > self.max_fragment:
            self.stats.oversized += 1
            self._root, self._buffer = None, buffer[1:]
            return True
        if close is None:
            return False
        text, self._buffer, self._root = buffer[:close.end()], buffer[close.end():], None
        fragment = _parse(text)
        if fragment is None:
            self.stats.malformed += 1
        else:
            self.stats.fragments += 1
            out.append(fragment)
        return True

    def _discard(self, text: str) -> None:
        self.stats.garbage_bytes += len(text) - sum(map(str.isspace, text))


def _possible_tag_start(buffer: str) -> str:
    """The tail that may be the beginning of a root start tag split across reads."""
    last = buffer.rfind("<")
    if last < 0 or len(buffer) - last > _LONGEST_START:
        return ""
    return buffer[last:]


_TAG = re.compile(r"<(/?)\s*([A-Za-z_][\w.-]*)\s*(/?)>")


def _lower_tags(text: str) -> str:
    """Element names are case-insensitive on these devices; XML's are not."""
    return _TAG.sub(lambda m: f"<{m[1]}{m[2].lower()}{m[3]}>", text)


def _parse(text: str) -> Fragment | None:
    try:
        element = fromstring(_lower_tags(text), forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError):
        return None
    children: dict[str, str] = {}
    repeated: dict[str, list[str]] = {}
    for child in element:
        name, value = child.tag, (child.text or "").strip()
        if len(child):
            return None
        if name in children:
            repeated.setdefault(name, [children[name]]).append(value)
        else:
            children[name] = value
    return Fragment(_CANONICAL[element.tag], children, repeated)
