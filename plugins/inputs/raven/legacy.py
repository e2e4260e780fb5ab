"""``collector import raven``: the legacy python-raven logger's ``instantaneous_demand``
table (with ``run_info`` for the meter), or a CSV export of it.

What that logger stored, and how it is read back:
- ``demand``, ``multiplier``, ``divisor`` as the meter sent them, but read as unsigned
  hex: an exporting meter's negative demand became about 4.29e9. Demand is
  sign-extended from 32 bits here, so export is negative again; a multiplier or divisor
  of 0 means 1, as the protocol says.
- When the stick answered anything but InstantaneousDemand, a sentinel row of
  ``(-1, -1, -1)``: skipped and counted, never a reading.
- ``time`` (or ``date_time``) is when the row was inserted, by the database's clock in
  its local time (the meter's own timestamp was never stored); it is read with
  ``--timezone``. An integer there is Unix seconds.
- ``run_info`` maps a run (``hash``) to ``meter_id``, which that logger left empty; a
  non-empty one becomes the ``meter_mac`` tag (``--tag meter_mac=...`` otherwise).

Each row becomes a ``raven_demand`` metric as the live input writes it: ``kw``, ``raw``,
``multiplier``, ``divisor``.
"""

from __future__ import annotations

import datetime
from typing import Any

from collector import Importer, LocalTimes, Metric, RowSource
from plugins.inputs.raven.decoder import signed32


class RavenImporter(Importer):
    table = "instantaneous_demand"
    order_by = (("id",), ("time",), ("date_time",))

    def __init__(self, times: LocalTimes) -> None:
        super().__init__(times)
        self.meters: dict[str, str] = {}
        """run hash -> meter MAC, from run_info."""

    def prepare(self, source: RowSource) -> None:
        self.meters = {str(row.get("hash")): str(row.get("meter_id") or "")
                       for row in source.lookup("run_info")}

    def convert(self, row: dict[str, Any]) -> list[Metric]:
        demand, multiplier, divisor = row.get("demand"), row.get("multiplier"), row.get("divisor")
        if demand == -1 and multiplier == -1 and divisor == -1:
            self.skipped["sentinel row (-1, -1, -1)"] += 1
            return []
        if demand is None or multiplier is None or divisor is None:
            self.skipped["NULL demand, multiplier or divisor"] += 1
            return []
        time_ns = self._time_ns(row)
        if time_ns is None:
            self.skipped["row without a time"] += 1
            return []
        raw = signed32(int(demand))
        multiplier, divisor = int(multiplier) or 1, int(divisor) or 1
        tags = {}
        meter = self.meters.get(str(row.get("hash")), "")
        if meter:
            tags["meter_mac"] = meter
        return [Metric("raven_demand", {"kw": raw * multiplier / divisor, "raw": raw,
                                        "multiplier": multiplier, "divisor": divisor},
                       tags, time_ns)]

    def _time_ns(self, row: dict[str, Any]) -> int | None:
        value = row.get("time")
        if value is None:
            value = row.get("date_time")
        if type(value) is datetime.datetime:
            return self.times.to_utc_ns(value)
        if type(value) in (int, float):
            return int(value * 10**9)
        return None
