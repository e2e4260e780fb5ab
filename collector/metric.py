"""The metric model: what every input produces and every output consumes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

FieldValue = float | int | bool | str


@dataclass(slots=True)
class Metric:
    """One point: a measurement, its tags, its fields, and a UTC timestamp in nanoseconds.

    Timestamps are integers of nanoseconds since the Unix epoch (UTC) so that no
    float rounding or time zone ever gets between the instrument and the database.
    """

    name: str
    fields: dict[str, FieldValue]
    tags: dict[str, str] = field(default_factory=dict)
    time_ns: int = field(default_factory=time.time_ns)


PRECISION_NS: dict[str, int] = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
"""Nanoseconds per unit of each line-protocol precision."""

