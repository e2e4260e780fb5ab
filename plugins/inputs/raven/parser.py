"""RAVEn / EMU-2 XML stream, sans I/O: bytes in, complete fragments out.

The devices send a stream of small XML fragments with no framing (the plugin README,
"Framing"): a glued tail of an older fragment on connect, stray or mismatched close
tags, dangling start tags, fragments split across reads or two in one, raw 0xFF bytes.
The parser resynchronises on the next known root start tag, drops and counts what is
not a whole fragment, and bounds its buffer.

Fragments are read with a grammar exactly as wide as the devices' XML: a root element
holding one level of ``<Name>text</Name>`` children, no attributes. Text may contain
the five predefined entities and character references; anything else (a DTD, an
entity declaration or reference, CDATA, a processing instruction, a nested element,
mismatched tags) makes the fragment malformed. Nothing can be expanded or fetched, and
it is about three times as fast as feeding expat, which matters on a Raspberry Pi.
Element names are case-insensitive, as on the devices.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

ROOTS = (
    "InstantaneousDemand", "CurrentSummationDelivered", "PriceCluster", "TimeCluster",
    "ConnectionStatus", "NetworkInfo", "DeviceInfo", "MeterList", "MeterInfo",
    "MessageCluster", "CurrentPeriodUsage", "LastPeriodUsage", "ProfileData", "ScheduleInfo",
    "BlockPriceDetail", "FastPollStatus", "Warning",
)
"""Root tags the devices send; anything else between fragments is garbage."""
_CANONICAL = {name.lower().encode(): name for name in ROOTS}
_BOUNDARY = re.compile(rb"<\s*(/?)\s*(" + b"|".join(_CANONICAL) + rb")\s*>")
"""Root start and close tags, matched in a lower-cased copy of the stream: matching
case-insensitively costs three times as much, and this runs on every read."""
_LONGEST_TAG = max(len(name) for name in ROOTS) + 8
_NAME = r"[A-Za-z_][\w.-]*"
_CHILD = re.compile(r"<([A-Za-z_]\w*)>([^<]*)</\1>")
"""A child as the devices write it: the fast pattern, tried first."""
_CHILD_ANY_CASE = re.compile(rf"<({_NAME})\s*>([^<]*)</\1\s*>", re.IGNORECASE)
"""Any child XML allows here: names with '.' or '-', blanks before '>', mixed case."""
_REFERENCE = re.compile(r"&(?:(lt|gt|amp|quot|apos)|#([0-9]{1,7})|#x([0-9a-fA-F]{1,6}));")
_PREDEFINED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}

_NO_REPEATS: Mapping[str, list[str]] = MappingProxyType({})

DEFAULT_MAX_FRAGMENT = 16 * 1024
"""The largest fragment kept; real ones are a few hundred bytes."""


class Fragment(NamedTuple):
    """One notification or reply: its root tag and its children, keyed by lower-case name.

    A child that appears more than once (MeterList's MeterMacId) keeps every value in
    ``repeated``; ``children`` holds the first.
    """

    root: str
    children: dict[str, str]
    repeated: Mapping[str, list[str]] = _NO_REPEATS


@dataclass(slots=True)
class ParserStats:
    fragments: int = 0
    garbage_bytes: int = 0
    """Non-blank bytes outside any fragment (glued tails, stray close tags)."""
    truncated: int = 0
    """Fragments cut short by the next root start tag (a dangling start)."""
    malformed: int = 0
    """Candidates outside the grammar (mismatched tags, entities, nested elements)."""
    oversized: int = 0
    """Candidates longer than the limit, dropped unread."""


class StreamParser:
    def __init__(self, max_fragment: int = DEFAULT_MAX_FRAGMENT) -> None:
        self.max_fragment = max_fragment
        self.stats = ParserStats()
        self._buffer = bytearray()
        self._lower = bytearray()
        """The buffer lower-cased, where tags are searched."""
        self._start = -1
        """Offset of the open fragment's root start tag in the buffer; -1 when none."""
        self._root = b""
        self._scan = 0
        """Where the search for the next tag resumes: nothing before it can match anew."""

    def feed(self, data: bytes) -> list[Fragment]:
        """Take the next bytes read; return the fragments they complete."""
        buffer, lower = self._buffer, self._lower
        buffer += data
        lower += data.lower()
        out: list[Fragment] = []
        start, root, consumed, scan = self._start, self._root, 0, self._scan
        if start >= 0 and len(buffer) - start <= self.max_fragment and (
                _BOUNDARY.search(lower, scan) is None):
            # Inside a fragment with no tag completed by this read: the common case.
            self._scan = max(scan, len(buffer) - _LONGEST_TAG)
            return out
        for tag in _BOUNDARY.finditer(lower, scan):
            scan = tag.end()
            closing, name = tag.groups()
            if not closing:  # a root start tag
                if start >= 0:
                    self.stats.truncated += 1
                elif tag.start() > consumed:
                    self._discard(buffer, consumed, tag.start())
                start, root, consumed = tag.start(), name, tag.start()
            elif start >= 0 and name == root:
                self._complete(buffer[start:scan], name, out)
                start, consumed = -1, tag.end()
        if start >= 0 and len(buffer) - start > self.max_fragment:
            self.stats.oversized += 1
            start, consumed = -1, len(buffer)
        if start < 0:
            keep = _possible_tag_start(buffer, max(consumed, scan))
            if keep > consumed:
                self._discard(buffer, consumed, keep)
            consumed = keep
        del buffer[:consumed]
        del lower[:consumed]
        self._start = start - consumed if start >= 0 else -1
        self._root = root
        self._scan = max(0, scan - consumed, len(buffer) - _LONGEST_TAG)
        return out

    def reset(self) -> None:
        """Forget a partial fragment (after a reconnect the stream starts anew)."""
        self._buffer.clear()
        self._lower.clear()
        self._start, self._root, self._scan = -1, b"", 0

    def _complete(self, raw: bytearray, root: bytes, out: list[Fragment]) -> None:
        if len(raw) > self.max_fragment:
            self.stats.oversized += 1
            return
        fragment = parse_fragment(raw, _CANONICAL[root])
        if fragment is None:
            self.stats.malformed += 1
        else:
            self.stats.fragments += 1
            out.append(fragment)

    def _discard(self, buffer: bytearray, start: int, end: int) -> None:
        skipped = buffer[start:end]
        if not skipped.isspace():  # the line break after each fragment is not garbage
            self.stats.garbage_bytes += len(skipped.translate(None, b" \t\r\n"))


def _possible_tag_start(buffer: bytearray, after: int) -> int:
    """Where a root start tag split across reads may begin (else the buffer's end)."""
    last = buffer.rfind(b"<", after)
    if last < 0 or len(buffer) - last > _LONGEST_TAG:
        return len(buffer)
    return last


def parse_fragment(raw: bytes | bytearray, root: str) -> Fragment | None:
    """A whole ``<Root>...</Root>`` fragment, or None when it is outside the grammar."""
    # ASCII is cp1252's lower half and decodes ten times faster; 0xFF and friends are rare.
    text = raw.decode("ascii") if raw.isascii() else raw.decode("cp1252", errors="replace")
    # The root's own tags hold children, not text, so they never match _CHILD: two of
    # the '<'s are theirs, every other one must belong to a child.
    tags = text.count("<") - 2
    if tags == 0:
        return Fragment(root, {})  # no children (text in the root itself is ignored)
    found = _CHILD.findall(text)
    if tags != 2 * len(found):
        found = _CHILD_ANY_CASE.findall(text)
    if tags != 2 * len(found):
        return None  # a '<' outside <Name>text</Name>: mismatched, nested, <!...>, <?...?>
    if "&" in text:
        found = [(name, _unescape(value)) for name, value in found]
        if any(value is None for _, value in found):
            return None
    children = {name.lower(): value.strip() for name, value in found}
    if len(children) == len(found):
        return Fragment(root, children)
    repeated: dict[str, list[str]] = {}
    for name, value in found:
        repeated.setdefault(name.lower(), []).append(value.strip())
    children = {name: values[0] for name, values in repeated.items()}
    return Fragment(root, children, {k: v for k, v in repeated.items() if len(v) > 1})


def _unescape(value: str) -> str | None:
    """Predefined entities and character references only; None for anything else."""
    if value.count("&") != len(_REFERENCE.findall(value)):
        return None

    def replace(reference: re.Match[str]) -> str:
        named, decimal, hexadecimal = reference.groups()
        if named:
            return _PREDEFINED[named]
        code = int(decimal) if decimal else int(hexadecimal, 16)
        if not 0 < code <= 0x10FFFF:
            raise ValueError(code)
        return chr(code)

    try:
        return _REFERENCE.sub(replace, value)
    except ValueError:
        return None
