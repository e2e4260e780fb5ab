"""InfluxDB line protocol: a fast encoder and a decoder that parses as influxd 1.x does.

Rules (see shared/reference/influxdb.md): measurement escapes comma and space; tag
keys, tag values and field keys escape comma, '=' and space; string fields escape '"'
and backslash; tab/CR/LF/FF in names are written as their backslash sequences, as
Telegraf does. Integers get an ``i`` suffix and must fit in int64 (``u`` is never
emitted). NaN and infinities, empty tag values, the reserved key ``time`` and names
influxd cannot represent (a backslash at the end or before an escaped character) are
left out and counted, never sent; so is a measurement starting with '#', which
influxd would read as a comment line and silently ignore.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from collector.metric import PRECISION_NS, FieldValue, Metric

_CONTROL = {"\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_NAME_ESCAPES = str.maketrans({",": "\\,", " ": "\\ ", **_CONTROL})
_KEY_ESCAPES = str.maketrans({",": "\\,", " ": "\\ ", "=": "\\=", **_CONTROL})
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})

_NAME_SPECIAL = re.compile(r"[, \t\n\f\r\\]").search
_KEY_SPECIAL = re.compile(r"[,= \t\n\f\r\\]").search
# influxd 1.x treats '\' as "skip the next character" while scanning and only unescapes
# '\,', '\ ' and '\='; a backslash at the end of a name or before one of those can
# therefore not be written in a way that reads back the same.
_NAME_UNREPRESENTABLE = re.compile(r"\\(?=[, ]|$)").search
_KEY_UNREPRESENTABLE = re.compile(r"\\(?=[,= ]|$)").search

MAX_STRING_BYTES = 64 * 1024 - 1
"""influxd 1.x rejects string field values of 64 KiB or more."""

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_CACHE_LIMIT = 20_000


class LineProtocolError(ValueError):
    """A line that cannot be parsed; says where and why."""


@dataclass(slots=True)
class EncodeStats:
    """What the encoder left out, so that nothing vanishes silently."""

    metrics_dropped: int = 0
    fields_dropped: int = 0
    tags_dropped: int = 0


class Encoder:
    """Encodes metrics to line protocol bytes.

    Instruments repeat the same series millions of times, so the escaped series prefix
    (measurement and sorted tags) and each escaped ``key=`` are cached: the hot loop is
    two dict lookups and the formatting of the values.
    """

    def __init__(self, precision: str = "ns") -> None:
        self.divisor = PRECISION_NS[precision]
        self.stats = EncodeStats()
        self._series: dict[object, str | None] = {}
        self._fields: dict[str, str | None] = {}

    def encode(self, metrics: Iterable[Metric]) -> tuple[bytes, int]:
        """Return newline-terminated lines and how many metrics they hold."""
        lines = []
        append = lines.append
        series_cache = self._series
        field_cache = self._fields
        divisor = self.divisor
        stats = self.stats
        for metric in metrics:
            tags = metric.tags
            series_key = (metric.name, *tags.items()) if tags else metric.name
            try:
                prefix = series_cache[series_key]
            except KeyError:
                prefix = self._series_prefix(series_key, metric)
            if prefix is None:
                stats.metrics_dropped += 1
                continue
            parts = []
            for key, value in metric.fields.items():
                try:
                    field = field_cache[key]
                except KeyError:
                    field = self._field_prefix(key)
                kind = type(value)
                if field is None:
                    stats.fields_dropped += 1
                elif kind is float and value - value == 0.0:
                    parts.append(field + repr(value))
                elif kind is int and _INT64_MIN <= value <= _INT64_MAX:
                    parts.append(f"{field}{value}i")
                elif kind is bool:
                    parts.append(field + ("true" if value else "false"))
                elif kind is str and (text := _quoted_string(value)) is not None:
                    parts.append(field + text)
                else:
                    stats.fields_dropped += 1
            if not parts:
                stats.metrics_dropped += 1
                continue
            stamp = metric.time_ns if divisor == 1 else metric.time_ns // divisor
            append(f"{prefix} {','.join(parts)} {stamp}")
        if not lines:
            return b"", 0
        lines.append("")
        return "\n".join(lines).encode(), len(lines) - 1

    def _series_prefix(self, series_key: object, metric: Metric) -> str | None:
        """Escaped "measurement,tag=value,..." (tags sorted); None if the name is unusable.

        Prefixes that left a tag out are not cached, so every such metric is counted.
        """
        if metric.name.startswith("#"):
            return None
        name = _escape(metric.name, _NAME_SPECIAL, _NAME_UNREPRESENTABLE, _NAME_ESCAPES)
        if name is None:
            return None
        parts = [name]
        for key in sorted(metric.tags):
            ekey = None if key == "time" else _escape(
                key, _KEY_SPECIAL, _KEY_UNREPRESENTABLE, _KEY_ESCAPES)
            evalue = _escape(metric.tags[key], _KEY_SPECIAL, _KEY_UNREPRESENTABLE, _KEY_ESCAPES)
            if ekey is None or evalue is None:
                self.stats.tags_dropped += 1
            else:
                parts.append(ekey + "=" + evalue)
        prefix = ",".join(parts)
        if len(parts) == len(metric.tags) + 1:
            _remember(self._series, series_key, prefix)
        return prefix

    def _field_prefix(self, key: str) -> str | None:
        escaped = None if key == "time" else _escape(
            key, _KEY_SPECIAL, _KEY_UNREPRESENTABLE, _KEY_ESCAPES)
        prefix = None if escaped is None else escaped + "="
        return _remember(self._fields, key, prefix)


def _remember(cache: dict, raw: object, escaped: str | None) -> str | None:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[raw] = escaped
    return escaped


def _escape(text: str, special, unrepresentable, table) -> str | None:
    if not text or type(text) is not str:
        return None
    if special(text) is None:
        return text
    if "\\" in text and unrepresentable(text):
        return None
    return text.translate(table)


def _quoted_string(value: str) -> str | None:
    """A string field value, quoted and escaped; None when influxd 1.x would refuse it."""
    if len(value) * 4 > MAX_STRING_BYTES and len(value.encode()) > MAX_STRING_BYTES:
        return None
    if '"' in value or "\\" in value:
        value = value.translate(_STRING_ESCAPES)
    return '"' + value + '"'


def encode(metrics: Iterable[Metric], precision: str = "ns") -> bytes:
    """Encode metrics with a throw-away encoder; for tools and tests."""
    return Encoder(precision).encode(metrics)[0]


def decode(data: bytes | str, precision: str = "ns") -> list[Metric]:
    """Parse line protocol the way influxd 1.x does; blank and '#' lines are skipped."""
    text = data.decode() if isinstance(data, bytes) else data
    multiplier = PRECISION_NS[precision]
    return [
        decode_line(line, multiplier)
        for line in _split_lines(text)
        if line.strip() and not line.lstrip().startswith("#")
    ]


def split_lines(payload: bytes) -> list[bytes]:
    """Newline-terminated lines of a payload; a newline inside a string field stays."""
    return [line.encode() + b"\n" for line in _split_lines(payload.decode()) if line]


def _split_lines(text: str) -> list[str]:
    """Split on newlines that are not inside a quoted string field."""
    if '"' not in text:
        return text.split("\n")
    lines, start, quoted, i, n = [], 0, False, 0, len(text)
    fields_started = False
    while i < n:
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == " " and not quoted:
            fields_started = True
        elif char == '"' and fields_started:
            quoted = not quoted
        elif char == "\n" and not quoted:
            lines.append(text[start:i])
            start, fields_started = i + 1, False
        i += 1
    lines.append(text[start:])
    return lines


def decode_line(line: str, multiplier: int = 1) -> Metric:
    """Parse one line; raises LineProtocolError naming the problem."""
    name, pos = _scan(line, 0, ", ")
    if not name:
        raise LineProtocolError(f"missing measurement in {line!r}")
    tags: dict[str, str] = {}
    while pos < len(line) and line[pos] == ",":
        key, pos = _scan(line, pos + 1, "=")
        if pos >= len(line):
            raise LineProtocolError(f"tag without value in {line!r}")
        value, pos = _scan(line, pos + 1, ", ")
        if not key or not value:
            raise LineProtocolError(f"empty tag key or value in {line!r}")
        tags[key] = value
    if pos >= len(line) or line[pos] != " ":
        raise LineProtocolError(f"missing fields in {line!r}")
    fields: dict[str, FieldValue] = {}
    pos += 1
    while True:
        key, pos = _scan(line, pos, "=")
        if not key or pos >= len(line):
            raise LineProtocolError(f"bad field in {line!r}")
        value, pos = _scan_value(line, pos + 1)
        fields[key] = value
        if pos < len(line) and line[pos] == ",":
            pos += 1
            continue
        break
    rest = line[pos:].strip()
    if not rest:
        return Metric(name, fields, tags, 0)
    try:
        stamp = int(rest)
    except ValueError:
        raise LineProtocolError(f"bad timestamp {rest!r} in {line!r}") from None
    return Metric(name, fields, tags, stamp * multiplier)


def _scan(line: str, pos: int, stops: str) -> tuple[str, int]:
    """Read up to an unescaped stop character, undoing the escapes influxd undoes."""
    out = []
    n = len(line)
    while pos < n:
        char = line[pos]
        if char == "\\" and pos + 1 < n:
            nxt = line[pos + 1]
            out.append(nxt if nxt in ", =" else char + nxt)
            pos += 2
            continue
        if char in stops:
            break
        out.append(char)
        pos += 1
    return "".join(out), pos


def _scan_value(line: str, pos: int) -> tuple[FieldValue, int]:
    if pos < len(line) and line[pos] == '"':
        out = []
        pos += 1
        while pos < len(line):
            char = line[pos]
            if char == "\\" and pos + 1 < len(line) and line[pos + 1] in '\\"':
                out.append(line[pos + 1])
                pos += 2
                continue
            if char == '"':
                return "".join(out), pos + 1
            out.append(char)
            pos += 1
        raise LineProtocolError(f"unterminated string in {line!r}")
    end = pos
    while end < len(line) and line[end] not in ", ":
        end += 1
    return _parse_scalar(line[pos:end], line), end


_TRUE = {"t", "T", "true", "True", "TRUE"}
_FALSE = {"f", "F", "false", "False", "FALSE"}


def _parse_scalar(token: str, line: str) -> FieldValue:
    try:
        if token in _TRUE:
            return True
        if token in _FALSE:
            return False
        if token[-1:] in ("i", "u"):
            return int(token[:-1])
        value = float(token)
    except ValueError:
        raise LineProtocolError(f"bad field value {token!r} in {line!r}") from None
    if not math.isfinite(value):
        raise LineProtocolError(f"non-finite field value {token!r} in {line!r}")
    return value
