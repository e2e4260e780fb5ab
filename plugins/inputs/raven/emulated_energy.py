"""The physics behind the emulated meter: a demand that may wander, and energy that follows it.

A meter's summation registers are the integral of its demand by direction: importing
(positive demand) adds to "delivered", exporting (negative, a solar array) to
"received". The emulator keeps them in whole Wh, as the devices send them, computed in
integers from monotonic time, so that kWh and cost on a dashboard built on it add up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WATT_NS_PER_WH = 3600 * 10**9
DAY_S = 600.0
"""An emulated day: ten minutes, so that a demo dashboard shows whole days."""


class EnergyIntegrator:
    """Whole Wh imported and exported at each step, exactly.

    Watts times nanoseconds is an integer; what does not make a whole Wh yet is carried
    to the next step, per direction, so the totals equal the integral of demand however
    often (or seldom) the integrator is stepped.
    """

    def __init__(self, now_ns: int) -> None:
        self._last_ns = now_ns
        self._imported_wns = 0
        self._exported_wns = 0

    def step(self, demand_w: int, now_ns: int) -> tuple[int, int]:
        """Wh delivered and received since the last step, ``demand_w`` having held."""
        elapsed_ns = now_ns - self._last_ns
        self._last_ns = now_ns
        if demand_w >= 0:
            imported, self._imported_wns = divmod(
                self._imported_wns + demand_w * elapsed_ns, WATT_NS_PER_WH)
            return imported, 0
        exported, self._exported_wns = divmod(
            self._exported_wns - demand_w * elapsed_ns, WATT_NS_PER_WH)
        return 0, exported


@dataclass(frozen=True)
class DemandWander:
    """A household's demand over an emulated day, so that a demo shows a curve.

    The load swings smoothly between half and one and a half times ``base_w``. With
    ``solar_peak_w``, a solar array produces from "sunrise" a quarter into each period
    to "sunset" three quarters into it, peaking at midday, and demand goes negative
    (export) while it produces more than the load. Each period starts at midnight.
    """

    base_w: int = 864
    solar_peak_w: int = 0
    period_s: float = DAY_S

    def demand_w(self, elapsed_s: float) -> int:
        phase = 2 * math.pi * elapsed_s / self.period_s
        load = self.base_w * (1 + 0.3 * math.sin(3 * phase) + 0.2 * math.sin(7 * phase + 1))
        solar = self.solar_peak_w * max(0.0, -math.cos(phase))
        return round(load - solar)


DEMO_DAY = DemandWander(base_w=864, solar_peak_w=2500)
"""What the embedded defaults show without a meter: import at night, export at midday."""
