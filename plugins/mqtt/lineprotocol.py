"""Line protocol where the MQTT plugins need speed: cutting a payload into lines,
reading a line's series key without its fields, and decoding whole messages.

The consumer decodes every line it receives: one anchored regular expression per line
and a cache of parsed series keys make it about 3x faster than the core's general
decoder on the lines the collector and Telegraf write. Any line this fast path cannot
read (comments, escapes in field keys, anything odd) goes to
``collector.lineprotocol.decode_line``, which defines the rules (influxd 1.x's) and the
error messages; a property test checks both agree on everything the encoder writes.
"""

from __future__ import annotations

import math
import re
from typing import TypeVar

from collector import Metric
from collector.lineprotocol import decode_line

_COMPLETE_FIELDS = re.compile(rb'(?:\\.|="(?:[^"\\]|\\.)*"|=(?!")|"|[^"\\=])*+', re.DOTALL)
"""Fields whose every string is closed. A quote right after an unescaped '=' opens a
string; anywhere else (in a key, after an escape) it is a plain character."""
_ONE_FIELD = r'[^,=\\ "\n]++=(?:"(?:[^"\\]|\\.)*+"|[^,"\\ \n]++)'
_LINE = re.compile(
    r'((?:[^ \n\\#]|\\.)(?:[^ \n\\]|\\.)*+)'    # measurement and tags
    rf' ({_ONE_FIELD}(?:,{_ONE_FIELD})*+)'           # fields; strings may hold newlines
    r'(?: (-?[0-9]+))?(?:\n|\Z)', re.DOTALL)
"""One line of the common shape: no comment or blank line, no escape in a field key."""
_KEY = re.compile(r"((?:[^,\\ ]|\\.)+)((?:,(?:[^,=\\ ]|\\.)+=(?:[^,=\\ ]|\\.)+)*) ")
_TAG = re.compile(r",((?:[^,=\\ ]|\\.)+)=((?:[^,=\\ ]|\\.)+)")
_ESCAPED_PAIR = re.compile(r"\\(.)")
_FIELD = re.compile(r'([^,=\\ "]+)=("(?:[^"\\]|\\.)*"|[^,"\\ ]+)')
_FIELDS = re.compile(rf"{_ONE_FIELD}(?:,{_ONE_FIELD})*")
"""Fields without escapes in their keys: key=value, comma-separated, nothing else."""
_STRING_ESCAPE = re.compile(r'\\([\\"])')
_SERIES: dict[str, tuple[str, dict[str, str]]] = {}
"""Measurement and tags per series key: most lines of a message share a few series."""
MAX_CACHED_SERIES = 10_000
MAX_CACHED_KEY = 1024
"""Only keys of lines that parsed, and not huge ones: at most ~10 MB of cache."""
T = TypeVar("T", str, bytes)
_TRUE = frozenset({"t", "T", "true", "True", "TRUE"})
_FALSE = frozenset({"f", "F", "false", "False", "FALSE"})


def series_key(line: T) -> T:
    """Measurement and tags: everything up to the first unescaped space."""
    space = line.find(b" " if isinstance(line, bytes) else " ")
    while space > 0 and line[space - 1] in (0x5C, "\\"):  # an escaped space
        space = line.find(b" " if isinstance(line, bytes) else " ", space + 1)
    return line if space < 0 else line[:space]


def split_lines(payload: bytes) -> list[bytes]:
    """The lines of a payload (without newlines); a newline inside a string field does
    not end a line."""
    pieces = payload.split(b"\n")
    if b'"' not in payload:
        return [piece for piece in pieces if piece]
    lines: list[bytes] = []
    pending = b""
    for piece in pieces:
        line = pending + b"\n" + piece if pending else piece
        # A string left open stays open until a piece brings a quote.
        if (pending and b'"' not in piece) or (b'"' in piece and _ends_inside_string(line)):
            pending = line
            continue
        pending = b""
        if line:
            lines.append(line)
    if pending:
        lines.append(pending)
    return lines


def _ends_inside_string(line: bytes) -> bool:
    return _COMPLETE_FIELDS.fullmatch(line, len(series_key(line))) is None


def parse_series(key: bytes) -> tuple[str, dict[str, str]]:
    """Measurement and tags of a series key, unescaped."""
    metric = decode_line(key.decode() + " _=0")
    return metric.name, metric.tags


def decode(payload: bytes) -> list[Metric]:
    """Every metric of a payload (UTF-8); raises what ``decode_line`` raises for the
    first line that is not line protocol. Blank and '#' lines are skipped.

    One regular-expression scan cuts the lines of a well-formed payload; a payload it
    does not cover end to end (comments, blank lines, odd escapes) is decoded line by
    line instead."""
    text = payload.decode()
    metrics = []
    position, end = 0, len(text)
    while position < end:
        line = _LINE.match(text, position)
        if line is None:
            return _line_by_line(payload)
        position = line.end()
        key, fields_text, stamp = line.groups()
        metric = _metric(key, fields_text, stamp)
        metrics.append(metric or decode_line(line.group(0).rstrip("\n")))
    return metrics


def _line_by_line(payload: bytes) -> list[Metric]:
    metrics = []
    for raw in split_lines(payload):
        line = raw.decode()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        metrics.append(_fast(line) or decode_line(line))
    return metrics


def _fast(line: str) -> Metric | None:
    """The common shape, or None to let the general decoder judge the line."""
    key = series_key(line)
    fields_text, _, stamp = line[len(key) + 1:].rpartition(" ")
    if not (stamp.isascii() and stamp.lstrip("-").isdigit()):
        fields_text, stamp = line[len(key) + 1:], ""
    return _metric(key, fields_text, stamp)


def _metric(key: str, fields_text: str, stamp: str) -> Metric | None:
    series = _SERIES.get(key)
    fresh = series is None
    if fresh:
        series = _series(key)
        if series is None:
            return None
    fields = _fields(fields_text)
    if fields is None:
        return None
    if fresh and len(key) <= MAX_CACHED_KEY:
        if len(_SERIES) >= MAX_CACHED_SERIES:
            _SERIES.clear()
        _SERIES[key] = series
    return Metric(series[0], fields, dict(series[1]), int(stamp) if stamp else 0)


def _series(key: str) -> tuple[str, dict[str, str]] | None:
    if "\\" in key:
        escaped = _KEY.fullmatch(key + " ")
        if escaped is None:
            return None
        return (_unescape(escaped.group(1), ', ="'),
                {_unescape(tag, ", ="): _unescape(value, ", =")
                 for tag, value in _TAG.findall(escaped.group(2))})
    name, *items = key.split(",")
    tags = {}
    for item in items:
        tag, _, value = item.partition("=")
        if not tag or not value:
            return None
        tags[tag] = value
    return (name, tags) if name else None


def _fields(text: str) -> dict[str, float | int | bool | str] | None:
    fields: dict[str, float | int | bool | str] = {}
    if '"' not in text and "\\" not in text:
        for item in text.split(","):
            field, _, token = item.partition("=")
            value = _value(token) if field and token and " " not in item else None
            if value is None:
                return None
            fields[field] = value
        return fields
    if _FIELDS.fullmatch(text) is None:
        return None
    for field, token in _FIELD.findall(text):
        value = _value(token)
        if value is None:
            return None
        fields[field] = value
    return fields


def _unescape(text: str, unescapes: str) -> str:
    """As the core's scanner: a backslash takes the next character with it, and only
    the characters in ``unescapes`` lose their backslash."""
    if "\\" not in text:
        return text
    return _ESCAPED_PAIR.sub(lambda pair: pair.group(1) if pair.group(1) in unescapes
                             else pair.group(0), text)


def _value(token: str) -> float | int | bool | str | None:
    if token[0] == '"':
        body = token[1:-1]
        return _STRING_ESCAPE.sub(r"\1", body) if "\\" in body else body
    if token in _TRUE:
        return True
    if token in _FALSE:
        return False
    try:
        if token[-1] in "iu":
            return int(token[:-1])
        number = float(token)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
