"""Cutting a batch of line protocol into lines and series keys without decoding fields.

The influx layouts publish each line's bytes as they are; only its series key
(measurement and tags) is needed to pick the topic, and that is parsed once per series.
"""

from __future__ import annotations

import re

from collector.lineprotocol import decode_line

_UNESCAPED_QUOTE = re.compile(rb'(?<!\\)(?:\\\\)*"')


def series_key(line: bytes) -> bytes:
    """Measurement and tags: everything up to the first unescaped space."""
    space = line.find(b" ")
    while space > 0 and line[space - 1] == 0x5C:  # an escaped space
        space = line.find(b" ", space + 1)
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
        if b'"' in piece and _ends_inside_string(line):
            pending = line
            continue
        pending = b""
        if line:
            lines.append(line)
    if pending:
        lines.append(pending)
    return lines


def _ends_inside_string(line: bytes) -> bool:
    fields = line[len(series_key(line)):]
    return len(_UNESCAPED_QUOTE.findall(fields)) % 2 == 1


def parse_series(key: bytes) -> tuple[str, dict[str, str]]:
    """Measurement and tags of a series key, unescaped."""
    metric = decode_line(key.decode() + " _=0")
    return metric.name, metric.tags
