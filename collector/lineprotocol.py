"""InfluxDB line protocol: a fast encoder and a decoder that parses as influxd 1.x does.

Rules (InfluxDB 1.x's line protocol reference): measurement escapes comma and space; tag
keys, tag values and field keys escape comma, '=' and space; string fields escape '"'
and backslash; tab/CR/LF/FF in names are written as their backslash sequences, as
Telegraf does. Integers get an ``i`` suffix and must fit in int64 (``u`` is never
emitted). NaN and infinities, empty tag values, the reserved key ``time`` and names
influxd cannot represent (a backslash at the end or before a character it unescapes) are
left out and counted, never sent; so is a measurement starting with '#', which
influxd would read as a comment line and silently ignore.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from collector import line_templates
from collector.line_templates import MAX_FAST_STRING_CHARS, LineFormatter
from collector.metric import PRECISION_NS, FieldValue, Metric
from collector.shaping import Shaping

_CONTROL = {"\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_NAME_ESCAPES = str.maketrans({",": "\\,", " ": "\\ ", **_CONTROL})
_KEY_ESCAPES = str.maketrans({",": "\\,", " ": "\\ ", "=": "\\=", **_CONTROL})
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})

_NAME_SPECIAL = re.compile(r"[, \t\n\f\r\\]").search
_KEY_SPECIAL = re.compile(r"[,= \t\n\f\r\\]").search
# influxd 1.x treats '\' as "skip the next character" while scanning, then unescapes
# '\,', '\ ' and '\=' everywhere and also '\"' in measurements and field keys (measured
# on 1.6.7); a backslash at the end of a name or before one of those can therefore not
# be written in a way that reads back the same.
_NAME_UNESCAPES = ', ="'
_TAG_UNESCAPES = ", ="
_NAME_UNREPRESENTABLE = re.compile(r'\\(?=[, ="]|$)').search
_TAG_UNREPRESENTABLE = re.compile(r"\\(?=[,= ]|$)").search

MAX_STRING_BYTES = 64 * 1024 - 1
"""influxd 1.x rejects string field values of 64 KiB or more."""

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_CACHE_LIMIT = 20_000
T = TypeVar("T")
_FIELD_KEYS_FOLLOW = object()
"""Separates tag items from field keys in a shape key, so no two shapes can collide."""


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

    Instruments repeat the same series with the same field types millions of times, so
    each shape (measurement, tags, field keys) gets a formatter compiled for it
    (see ``collector.line_templates``); metrics it does not fit take the general path,
    which caches the escaped series prefix and each escaped ``key=``.
    """

    def __init__(self, precision: str = "ns", shaping: Shaping | None = None) -> None:
        self.divisor = PRECISION_NS[precision]
        self.shaping = shaping or Shaping()
        self.stats = EncodeStats()
        self._formatters: dict[tuple, LineFormatter] = {}
        self._series: dict[tuple, str | None] = {}
        self._fields: dict[str, str | None] = {}
        self._relay_prefixes: dict[str, str | None] = {}

    def encode(self, metrics: Iterable[Metric]) -> tuple[bytes, int]:
        """Return newline-terminated lines and how many metrics they hold."""
        lines = []
        append = lines.append
        formatters = self._formatters
        for metric in metrics:
            fields = metric.fields
            shape = (metric.name, *metric.tags.items(), _FIELD_KEYS_FOLLOW, *fields)
            try:
                formatter = formatters[shape]
            except KeyError:
                formatter = self._formatter(shape, metric)
            line = formatter(metric)
            if line is None:
                line = self._general_line(metric)
                if line is None:
                    continue
            append(line)
        if not lines:
            return b"", 0
        lines.append("")
        return "\n".join(lines).encode(), len(lines) - 1

    def reencode(self, text: str, now_ns: int, multiplier: int = 1) -> tuple[bytes, int]:
        """Line protocol received from elsewhere (an MQTT broker, an HTTP client), as
        this encoder would write its metrics: the series renamed and tagged by the
        shaping, lines without a timestamp stamped ``now_ns``, timestamps in units of
        ``multiplier`` ns made ns, what influxd 1.x would refuse left out and counted.

        A relay sees many lines of few series, so a line whose fields hold no escape
        keeps its fields as written and gets its series prefix from a cache; any other
        line is decoded and encoded. Raises LineProtocolError (and UnicodeDecodeError)
        as ``decode`` does, for a payload that is not line protocol.
        """
        lines = []
        for line in _split_lines(text):
            if not line or line.isspace() or line.lstrip().startswith("#"):
                continue
            relayed = self._relayed(line, now_ns, multiplier)
            if relayed is None:
                metric = decode_line(line, multiplier)
                metric.time_ns = metric.time_ns or now_ns
                relayed = self._general_line(metric)
                if relayed is None:
                    continue
            lines.append(relayed)
        if not lines:
            return b"", 0
        lines.append("")
        return "\n".join(lines).encode(), len(lines) - 1

    def _relayed(self, line: str, now_ns: int, multiplier: int) -> str | None:
        """``line`` as written, with the shaped series in front, when that is exactly
        what decoding and encoding it would give; else None."""
        end = series_end(line)
        if end < 0:
            return None
        head, rest = line[:end], line[end + 1:]
        if "\\" in rest:
            return None
        try:
            prefix = self._relay_prefixes[head]
        except KeyError:
            prefix = self._relay_prefix(head)
        if prefix is None:
            return None
        position = _relayed_fields_end(rest)
        if position is None:
            return None
        stamp = rest[position:]
        if not stamp:
            stamp_ns = now_ns
        elif _TIMESTAMP(stamp):
            stamp_ns = int(stamp) * multiplier or now_ns  # 0 counts as none, as in decode
        else:
            return None
        step = self.shaping.step_ns
        return f"{prefix} {rest[:position]} {(stamp_ns - stamp_ns % step) // self.divisor}"

    def _relay_prefix(self, head: str) -> str | None:
        series = _series_of(head)
        prefix = None
        if series is not None:
            escaped, tags_dropped = self._escaped_series(Metric(series[0], {}, series[1]))
            prefix = None if tags_dropped else escaped
        return _remember(self._relay_prefixes, head, prefix)

    def _formatter(self, shape: tuple, metric: Metric) -> LineFormatter:
        prefix, tags_dropped = self._escaped_series(metric)
        keys = [self._field_prefix(key) for key in metric.fields]
        made = None
        if prefix is not None and not tags_dropped and keys and None not in keys:
            pieces = [f"{prefix} {keys[0]}", *(f",{key}" for key in keys[1:]), " "]
            made = line_templates.formatter(map(type, metric.fields.values()), pieces,
                                            self.shaping.step_ns, self.divisor)
        return _remember(self._formatters, shape, made or line_templates.no_fast_path)

    def _general_line(self, metric: Metric) -> str | None:
        """Write what can be written of any metric, counting everything left out."""
        stats = self.stats
        series_key = (metric.name, *metric.tags.items())
        try:
            prefix = self._series[series_key]
        except KeyError:
            prefix, tags_dropped = self._escaped_series(metric)
            stats.tags_dropped += tags_dropped
            if not tags_dropped:
                _remember(self._series, series_key, prefix)
        if prefix is None:
            stats.metrics_dropped += 1
            return None
        parts = []
        for key, value in metric.fields.items():
            try:
                field = self._fields[key]
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
            return None
        step = self.shaping.step_ns
        stamp = (metric.time_ns - metric.time_ns % step) // self.divisor
        return f"{prefix} {','.join(parts)} {stamp}"

    def _escaped_series(self, metric: Metric) -> tuple[str | None, int]:
        """Escaped "measurement,tag=value,..." (shaped, tags sorted) and how many tags
        were left out. The prefix is None when the measurement name is unusable.
        """
        name = self.shaping.name(metric.name)
        tags = self.shaping.tags(metric.tags)
        if name.startswith("#"):
            return None, 0
        escaped_name = _escape(name, _NAME_SPECIAL, _NAME_UNREPRESENTABLE, _NAME_ESCAPES)
        if escaped_name is None:
            return None, 0
        parts = [escaped_name]
        for key in sorted(tags):
            ekey = None if key == "time" else _escape(
                key, _KEY_SPECIAL, _TAG_UNREPRESENTABLE, _KEY_ESCAPES)
            evalue = _escape(tags[key], _KEY_SPECIAL, _TAG_UNREPRESENTABLE, _KEY_ESCAPES)
            if ekey is not None and evalue is not None:
                parts.append(ekey + "=" + evalue)
        return ",".join(parts), len(tags) + 1 - len(parts)

    def _field_prefix(self, key: str) -> str | None:
        escaped = None if key == "time" else _escape(
            key, _KEY_SPECIAL, _NAME_UNREPRESENTABLE, _KEY_ESCAPES)
        prefix = None if escaped is None else escaped + "="
        return _remember(self._fields, key, prefix)


def _remember(cache: dict[Any, T], raw: object, escaped: T) -> T:
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
    """Parse line protocol the way influxd 1.x does; blank and '#' lines are skipped.

    A line whose fields hold no backslash (nearly every line) has its fields read with
    one pattern, and its series key (escapes and all) read once per series and
    remembered; any other line goes through the character scanner.
    """
    text = data.decode() if isinstance(data, bytes) else data
    multiplier = PRECISION_NS[precision]
    metrics = []
    for line in _split_lines(text):
        if not line or line.isspace() or line.lstrip().startswith("#"):
            continue
        metric = _decode_common(line, multiplier)
        metrics.append(metric if metric is not None else decode_line(line, multiplier))
    return metrics


_PLAIN_FIELD = re.compile(r'([^=,\s"]+)=(?:"([^"]*)"|([^,\s"]+))(,?)')


_SERIES: dict[str, tuple[str, dict[str, str]]] = {}
"""Measurement and tags of series keys read before: a batch repeats a few series."""


def _decode_common(line: str, multiplier: int) -> Metric | None:
    """A line whose fields hold no backslash; None when anything is off, so that the
    scanner, which names the problem, reads it instead."""
    end = series_end(line)
    if end < 0:
        return None
    head, rest = line[:end], line[end + 1:]
    if "\\" in rest:
        return None
    series = _SERIES.get(head)
    if series is None:
        series = _series_of(head)
        if series is None:
            return None
        _remember(_SERIES, head, series)
    name, tags = series[0], dict(series[1])
    fields: dict[str, FieldValue] = {}
    position = 0
    match = _PLAIN_FIELD.match
    while True:
        found = match(rest, position)
        if found is None:
            return None
        key, string, scalar, comma = found.groups()
        if string is not None:
            fields[key] = string
        else:
            try:
                fields[key] = _parse_scalar(scalar, line)
            except LineProtocolError:
                return None
        position = found.end()
        if not comma:
            break
    stamp = rest[position:]
    if not stamp or stamp.isspace():
        return Metric(name, fields, tags, 0)
    if stamp[0] != " ":
        return None
    try:
        return Metric(name, fields, tags, int(stamp) * multiplier)
    except ValueError:
        return None


_RELAY_KEY = r'(?!time=)[^=,\s"\\]+'
_RELAY_VALUE = (
    rf'(?:"[^"\\]{{0,{MAX_FAST_STRING_CHARS}}}"'        # a string within influxd's limit
    r"|-?\d{1,18}i"                                     # an int64, surely in range
    r"|(?:true|True|TRUE|t|T|false|False|FALSE|f|F)"      # longest spelling first
    r"|-?(?:\d{1,200}(?:\.\d{0,200})?|\.\d{1,200})(?:[eE][-+]?\d{1,2})?)")  # surely finite
_RELAY_FIELDS = re.compile(
    rf"{_RELAY_KEY}={_RELAY_VALUE}(?:,{_RELAY_KEY}={_RELAY_VALUE})*").match
"""Fields the encoder would write unchanged; anything else (the key ``time``, a value
near a limit, an escape) is left to the decoder and the encoder to judge."""
_TIMESTAMP = re.compile(r" -?\d{1,19}").fullmatch


def _relayed_fields_end(rest: str) -> int | None:
    """Where the fields of a received line end, if every field is one the encoder
    would write unchanged; None otherwise."""
    found = _RELAY_FIELDS(rest)
    return None if found is None else found.end()


def split_lines(payload: bytes) -> list[bytes]:
    """Newline-terminated lines of a payload; a newline inside a string field stays."""
    return [line + b"\n" for line in lines_of(payload)]


def lines_of(payload: bytes) -> list[bytes]:
    """The non-empty lines of a payload, without their newlines; a newline inside a
    string field, or escaped, stays in its line. Bytes that are not UTF-8 are kept as
    they are, for each line's decoding to judge."""
    text = payload.decode("utf-8", "surrogateescape")
    return [line.encode("utf-8", "surrogateescape") for line in _split_lines(text) if line]


def count_lines(payload: bytes) -> int:
    """Lines (so metrics) in a payload, even a damaged one: bytes that are not UTF-8
    count as text, and a newline inside a quoted string does not end a line."""
    return sum(1 for line in _split_lines(payload.decode("utf-8", "replace")) if line.strip())


def series_end(line: str) -> int:
    """Where the series key ends: the first space no backslash escapes (-1: none)."""
    space = line.find(" ")
    while space > 0 and line[space - 1] == "\\":
        start = space - 1
        while start > 0 and line[start - 1] == "\\":
            start -= 1
        if (space - start) % 2 == 0:  # an escaped backslash, then a real space
            break
        space = line.find(" ", space + 1)
    return space


def _series_of(head: str) -> tuple[str, dict[str, str]] | None:
    """Measurement and tags of a series key; the scanner's reading when it has escapes."""
    if "\\" in head:
        try:
            metric = decode_line(head + " _=0")
        except LineProtocolError:
            return None
        return metric.name, metric.tags
    name, *pairs = head.split(",")
    tags: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not (key and equals and value) or "=" in value:
            return None
        tags[key] = value
    return (name, tags) if name else None


def _split_lines(text: str) -> list[str]:
    """Split on newlines that are not inside a quoted string field nor escaped by a
    backslash, as influxd's scanner does."""
    if '"' not in text and "\\\n" not in text:
        return text.split("\n")
    lines: list[str] = []
    pieces = text.split("\n")
    index = 0
    while index < len(pieces):
        line = pieces[index]
        index += 1
        while index < len(pieces) and _continues(line):
            line += "\n" + pieces[index]
            index += 1
        lines.append(line)
    return lines


def _continues(line: str) -> bool:
    """Whether the newline after ``line`` belongs to it: inside a string field's value,
    or escaped by a backslash.

    As in influxd, a quote opens a string only right after the '=' of a field (in the
    fields, after the series' first unescaped space); anywhere else it is a character.
    """
    end = series_end(line)
    fields = "" if end < 0 else line[end + 1:]
    if "\\" not in fields:
        if line.endswith("\\") and (len(line) - len(line.rstrip("\\"))) % 2:
            return True  # an escaped newline in the series key
        opening = fields.find('="')
        while opening >= 0:
            closing = fields.find('"', opening + 2)
            if closing < 0:
                return True
            opening = fields.find('="', closing + 1)
        return False
    quoted = fields_started = False
    index, end = 0, len(line)
    while index < end:
        char = line[index]
        if char == "\\":
            index += 2
            continue
        if quoted:
            quoted = char != '"'
        elif char == " ":
            fields_started = True
        elif char == "=" and fields_started and line.startswith('"', index + 1):
            quoted = True
            index += 1
        index += 1
    return quoted or index > end


def decode_line(line: str, multiplier: int = 1) -> Metric:
    """Parse one line; raises LineProtocolError naming the problem."""
    name, pos = _scan(line, 0, ", ", _NAME_UNESCAPES)
    if not name:
        raise LineProtocolError(f"missing measurement in {line!r}")
    tags: dict[str, str] = {}
    while pos < len(line) and line[pos] == ",":
        key, pos = _scan(line, pos + 1, "=", _TAG_UNESCAPES)
        if pos >= len(line):
            raise LineProtocolError(f"tag without value in {line!r}")
        value, pos = _scan(line, pos + 1, ", ", _TAG_UNESCAPES)
        if not key or not value:
            raise LineProtocolError(f"empty tag key or value in {line!r}")
        tags[key] = value
    if pos >= len(line) or line[pos] != " ":
        raise LineProtocolError(f"missing fields in {line!r}")
    fields: dict[str, FieldValue] = {}
    pos += 1
    while True:
        key, pos = _scan(line, pos, "=", _NAME_UNESCAPES)
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


def _scan(line: str, pos: int, stops: str, unescapes: str) -> tuple[str, int]:
    """Read up to an unescaped stop character, undoing the escapes influxd undoes."""
    out = []
    n = len(line)
    while pos < n:
        char = line[pos]
        if char == "\\" and pos + 1 < n:
            nxt = line[pos + 1]
            out.append(nxt if nxt in unescapes else char + nxt)
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
