"""A line's series key (measurement and tags, as written) and what it says: the output
names a line's topic from them, once per series."""

from __future__ import annotations

from collector.lineprotocol import decode_line


def series_key(line: bytes) -> bytes:
    """Measurement and tags: everything up to the first unescaped space."""
    space = line.find(b" ")
    while space > 0 and line[space - 1] == 0x5C:  # an escaped space
        space = line.find(b" ", space + 1)
    return line if space < 0 else line[:space]


def parse_series(key: bytes) -> tuple[str, dict[str, str]]:
    """Measurement and tags of a series key, unescaped as influxd does."""
    metric = decode_line(key.decode() + " _=0")
    return metric.name, metric.tags
