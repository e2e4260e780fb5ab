"""``collector import se521``: the legacy SE521 logger's ``SE521.temperatures`` table
(``DateTm`` DATETIME PRIMARY KEY, ``tc1``..``tc4`` FLOAT), or a CSV export of it.

Each row is one minute's mean per channel, at the minute in the logger's local wall
clock; it becomes an ``se521`` metric per channel with field ``celsius_mean`` (what
``[[aggregators.basicstats]] stats = ["mean"]`` names a per-minute mean) and tag
``device = "legacy"`` (``--tag device=...`` to say which instrument it was).

The legacy logger wrote NULL for a channel it knew was open, but its flag test was
buggy, so an open probe also left numbers an SE521 cannot measure: the 0x7FFF
stand-in read as °F and converted gives about 1802.6 °C. A value outside the K-type
thermocouple's range (-200 to 1372 °C) is therefore "no value", never a temperature.
"""

from __future__ import annotations

import datetime
from typing import Any

from collector import Importer, Metric

CHANNELS = {"tc1": "T1", "tc2": "T2", "tc3": "T3", "tc4": "T4"}
K_TYPE_RANGE_C = (-200.0, 1372.0)


class SE521Importer(Importer):
    table = "temperatures"
    order_by = (("DateTm",),)

    def convert(self, row: dict[str, Any]) -> list[Metric]:
        stamp = row.get("DateTm")
        if not isinstance(stamp, datetime.datetime):
            self.skipped["row without a time"] += 1
            return []
        time_ns = self.times.to_utc_ns(stamp)
        metrics = []
        for column, channel in CHANNELS.items():
            value = row.get(column)
            if value is None:
                self.skipped["NULL (open channel)"] += 1
            elif not K_TYPE_RANGE_C[0] <= float(value) <= K_TYPE_RANGE_C[1]:
                self.skipped["outside the thermocouple's range (open-probe artefact)"] += 1
            else:
                metrics.append(Metric("se521", {"celsius_mean": float(value)},
                                      {"channel": channel, "device": "legacy"}, time_ns))
        return metrics
