"""A RAVEn stick or EMU-2 for tests and demos, served on a pseudo-terminal.

``Meter`` pushes demand, summation, price and time on its schedules and its connection
status at each join step and now and then, answers commands from its cache
(``Refresh=Y`` reads the meter afresh), plays the join sequence (also after
``rejoin()``), says ``<Warning>`` to unknown commands, and can inject each malformed
piece real streams contain (``MALFORMED``). Its summation is the integral of its demand
(which may wander through an emulated day), by direction. The EMU-2 flavour sends a
summation above 32 bits, demand in six hex digits when positive, and an all-0xFF
DateCode.
"""

from __future__ import annotations

import argparse
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from collector.emulation import EmulatorArguments, PtyServer, serve_until_signalled
from plugins.inputs.raven.decoder import Y2K_EPOCH_S
from plugins.inputs.raven.emulated_energy import DAY_S, DemandWander, EnergyIntegrator
from plugins.inputs.raven.parser import parse_fragment

JOIN_SEQUENCE = ("Initializing", "Network Discovery", "Joining", "Join: Success",
                 "Authenticating", "Authenticating: Success", "Connected")
REJOIN_SEQUENCE = ("Rejoining", "Joining", "Join: Success", "Connected")
MALFORMED = {
    "glued_tail": b"0x29f39e02</TimeStamp><Demand>0x000192</Demand><Multiplier>0x000",
    "stray_close": b"</Demand></InstantaneousDemand>\r\n",
    "dangling_start": b"<InstantaneousDemand>\r\n<DeviceMacId>0xd8d5",
    "mismatched": b"<PriceCluster><Price>0x000000c8</Currency></PriceCluster>\r\n",
    "ff_bytes": b"\xff\xff\xff\xff",
}
"""What real streams contain between or instead of whole fragments."""
_COMMAND = re.compile(rb"<Command>.*?</Command>", re.IGNORECASE | re.DOTALL)


@dataclass
class MeterState:
    """What the emulated meter reports; tests change it while it runs."""

    model: Literal["raven", "emu2"] = "raven"
    device_mac: str = "0xd8d5b9000000abcd"
    meters: list[str] = field(default_factory=lambda: ["0x00135003007c1a2b"])
    demand_w: int = 864
    """Negative while exporting (solar). A change counts from the meter's latest step
    (it steps at every poll and command: every 20 ms when served on a pty); a wandering
    meter sets it itself."""
    delivered_wh: int = 113_007_485
    """Imported energy; grows with positive demand."""
    received_wh: int = 0
    """Exported energy; grows with negative demand."""
    price_milli: int = 200
    """Price in thousandths of the currency per kWh."""
    currency: int = 840
    clock_skew_s: int = 0
    """The meter's clock minus the host's: its pushes carry its own time."""
    link_strength: int = 0x64
    channel: int = 20
    intervals: dict[str, float] = field(default_factory=lambda: {
        "demand": 8.0, "summation": 30.0, "price": 120.0, "time": 60.0})
    connection_interval: float = 60.0
    """Seconds between ConnectionStatus pushes once joined (each join step pushes one)."""
    join_step_s: float = 0.3


class Meter:
    """The device side of the serial line: ``feed`` answers commands, ``poll`` pushes.

    ``wander`` makes the demand follow an emulated day; ``clock`` is monotonic time in
    ns, which tests replace to run hours of a meter in no time.
    """

    def __init__(self, state: MeterState | None = None, wander: DemandWander | None = None,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.state = state or MeterState()
        self.commands: list[str] = []
        self._wander = wander
        self._clock = clock
        self._started_ns = clock()
        self._energy = EnergyIntegrator(self._started_ns)
        self._lock = threading.Lock()
        self._pending = b""
        self._inject: list[bytes] = []
        self._status = "Connected"
        self._joining: list[str] = []
        self._next_join = 0
        self._next_push: dict[str, int] = {}
        self._next_status = 0
        self._cache: dict[str, bytes] = {}
        self._step(self._started_ns)

    # ------------------------------------------------------------ control (tests, CLI)
    def rejoin(self, sequence: tuple[str, ...] = REJOIN_SEQUENCE) -> None:
        """Drop off the meter's network and join again, announcing each step."""
        with self._lock:
            self._joining = list(sequence)
            self._next_join = 0

    def inject(self, *names: str) -> None:
        """Send these malformed pieces (keys of MALFORMED) before the next push."""
        with self._lock:
            self._inject += [MALFORMED[name] for name in names]

    @property
    def status(self) -> str:
        return self._status

    # ------------------------------------------------------------ SerialDevice
    def feed(self, data: bytes) -> bytes:
        with self._lock:
            self._step(self._clock())
            self._pending += data
            replies = []
            for found in _COMMAND.finditer(self._pending):
                replies.append(self._answer(found.group()))
            last = self._pending.rfind(b"</Command>")
            if last >= 0:
                self._pending = self._pending[last + len(b"</Command>"):]
            self._pending = self._pending[-4096:]
            return b"".join(replies)

    def poll(self) -> bytes:
        now = self._clock()
        with self._lock:
            self._step(now)
            out = b"".join(self._inject)
            self._inject.clear()
            if self._joining:
                if now >= self._next_join:
                    self._status = self._joining.pop(0)
                    self._next_join = now + _ns(self.state.join_step_s)
                    self._next_status = now + _ns(self.state.connection_interval)
                    out += self._connection_status()
                return out
            if now >= self._next_status:
                self._next_status = now + _ns(self.state.connection_interval)
                out += self._connection_status()
            for event, interval in self.state.intervals.items():
                if now >= self._next_push.get(event, 0):
                    self._next_push[event] = now + _ns(interval)
                    out += self._fresh(event)
            return out

    def _step(self, now_ns: int) -> None:
        """Bring the energy registers, and a wandering demand, up to ``now_ns``."""
        state = self.state
        imported, exported = self._energy.step(state.demand_w, now_ns)
        state.delivered_wh += imported
        state.received_wh += exported
        if self._wander is not None:
            state.demand_w = self._wander.demand_w((now_ns - self._started_ns) / 1e9)

    # ------------------------------------------------------------ fragments
    def _answer(self, raw: bytes) -> bytes:
        command = parse_fragment(raw, "Command")
        name = (command.children.get("name") or "") if command else ""
        self.commands.append(name)
        if command is None:
            return _warning("Invalid command")
        refresh = command.children.get("refresh", "N").upper() == "Y"
        state = self.state
        if name == "set_schedule":
            event = command.children.get("event", "")
            frequency = int(command.children.get("frequency", "0x0"), 16)
            if event in state.intervals and frequency:
                state.intervals[event] = float(frequency)
            return b""
        if name in ("initialize", "restart"):
            return b""
        if name == "get_device_info":
            return self._device_info()
        if name == "get_meter_list":
            return _element("MeterList", [("DeviceMacId", state.device_mac),
                                          *(("MeterMacId", mac) for mac in state.meters)])
        if name in ("get_connection_status", "get_network_info"):
            return self._connection_status()
        event = _EVENT_OF_COMMAND.get(name)
        if event is None:
            return _warning("Unknown command")
        if refresh or event not in self._cache:
            return self._fresh(event)
        return self._cache[event]

    def _fresh(self, event: str) -> bytes:
        """A new reading of ``event`` for every meter, remembered for cached answers."""
        state = self.state
        meter_time = f"0x{int(time.time()) + state.clock_skew_s - Y2K_EPOCH_S:08x}"
        out = b""
        for meter in state.meters:
            macs = {"DeviceMacId": state.device_mac, "MeterMacId": meter}
            if event == "demand":
                demand = state.demand_w & 0xFFFFFFFF
                digits = 6 if state.model == "emu2" and 0 <= state.demand_w < 2**23 else 8
                out += _fragment("InstantaneousDemand", **macs, TimeStamp=meter_time,
                                 Demand=f"0x{demand:0{digits}x}", Multiplier="0x00000001",
                                 Divisor="0x000003e8", DigitsRight="0x03", DigitsLeft="0x06",
                                 SuppressLeadingZero="Y")
            elif event == "summation":
                out += _fragment("CurrentSummationDelivered", **macs, TimeStamp=meter_time,
                                 SummationDelivered=f"0x{state.delivered_wh:016x}",
                                 SummationReceived=f"0x{state.received_wh:016x}",
                                 Multiplier="0x00000001", Divisor="0x000003e8",
                                 DigitsRight="0x03", DigitsLeft="0x0f", SuppressLeadingZero="Y")
            elif event == "price":
                out += _fragment("PriceCluster", **macs, TimeStamp=meter_time,
                                 Price=f"0x{state.price_milli:08x}",
                                 Currency=f"0x{state.currency:04x}", TrailingDigits="0x03",
                                 Tier="0x01", RateLabel="Block 1")
            elif event == "time":
                out += _fragment("TimeCluster", **macs, UTCTime=meter_time, LocalTime=meter_time)
        self._cache[event] = out
        return out

    def _connection_status(self) -> bytes:
        state = self.state
        return _fragment("ConnectionStatus", DeviceMacId=state.device_mac,
                         MeterMacId=state.meters[0] if state.meters else "",
                         Status=self._status, Description=self._status,
                         ExtPanId="0x00135003007c1a2b", Channel=str(state.channel),
                         ShortAddr="0xe1aa", LinkStrength=f"0x{state.link_strength:02x}")

    def _device_info(self) -> bytes:
        state = self.state
        emu2 = state.model == "emu2"
        return _fragment(
            "DeviceInfo", DeviceMacId=state.device_mac, InstallCode="0x8ba7f1dee6c4f5cc",
            LinkKey="0x2b26f9124113b1e200db6e8ec2adc3e5", FWVersion="1.4.48 (6952)",
            HWVersion="1.2.3", ImageType="0x1301", Manufacturer="Rainforest Automation, Inc.",
            ModelId="Z105-2-EMU2-LEDD_JM" if emu2 else "Z106",
            DateCode="\xff" * 16 if emu2 else "2013103023220630")


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)


_EVENT_OF_COMMAND = {
    "get_instantaneous_demand": "demand", "get_current_summation_delivered": "summation",
    "get_current_price": "price", "get_time": "time",
}


def _fragment(root: str, **children: str) -> bytes:
    return _element(root, list(children.items()))


def _element(root: str, children: list[tuple[str, str]]) -> bytes:
    """One element per line, as the devices send it."""
    lines = "".join(f"  <{key}>{value}</{key}>\r\n" for key, value in children)
    return f"<{root}>\r\n{lines}</{root}>\r\n".encode("cp1252")


def _warning(text: str) -> bytes:
    return f"<Warning>\r\n  <Text>{text}</Text>\r\n</Warning>\r\n".encode("cp1252")


# ---------------------------------------------------------------- collector emulate raven|emu2
DEMAND_LIMIT_W = 10_000_000
"""Far beyond any household, and a wandering demand of that size still fits 32 bits."""
MAX_CLOCK_SKEW_S = 10 * 365 * 86400
"""Further off than this, the meter's time could fall before its 2000 epoch."""


def _main(model: Literal["raven", "emu2"], argv: list[str]) -> int:
    parser = EmulatorArguments(prog=f"collector emulate {model}",
                               description=f"Serve an emulated {model} on a pty until "
                                           "interrupted.")
    parser.add_argument("--link", type=Path, metavar="PATH",
                        help="also serve at PATH, a symlink to the pty as a udev rule would "
                             "make; anything else already there is left alone")
    parser.add_argument("--demand-w", type=_watts, default=864, metavar="W",
                        help="demand in watts; negative while exporting (default: 864)")
    parser.add_argument("--wander", action="store_true",
                        help="let demand follow an emulated day: a load between half and "
                             "1.5 times --demand-w")
    parser.add_argument("--solar-peak-w", type=_peak_watts, metavar="W",
                        help="a solar array peaking at W at midday: demand goes negative "
                             "(export) while it beats the load (implies --wander)")
    parser.add_argument("--day", type=_interval, metavar="S",
                        help="length of the emulated day in seconds (implies --wander; "
                             f"default: {DAY_S:.0f})")
    parser.add_argument("--demand-interval", type=_interval, default=8.0, metavar="S",
                        help="seconds between demand pushes (default: 8)")
    parser.add_argument("--summation-interval", type=_interval, default=30.0, metavar="S",
                        help="seconds between summation pushes (default: 30)")
    parser.add_argument("--connection-interval", type=_interval, default=60.0, metavar="S",
                        help="seconds between connection status pushes once joined "
                             "(default: 60)")
    parser.add_argument("--clock-skew", type=_clock_skew, default=0, metavar="S",
                        help="the meter's clock minus the host's, in seconds (default: 0)")
    args = parser.parse_args(argv)
    state = MeterState(model=model, demand_w=args.demand_w, clock_skew_s=args.clock_skew,
                       connection_interval=args.connection_interval)
    if model == "emu2":
        state.delivered_wh = 0x1_06BC_5B7D
    state.intervals.update(demand=args.demand_interval, summation=args.summation_interval)
    wanders = args.wander or args.solar_peak_w is not None or args.day is not None
    wander = DemandWander(args.demand_w, args.solar_peak_w or 0, args.day or DAY_S)
    meter = Meter(state, wander if wanders else None)
    meter.rejoin(JOIN_SEQUENCE)
    return serve_until_signalled(PtyServer(meter, args.link), model.upper(), parser.prog)


def _watts(text: str) -> int:
    try:
        watts = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of watts") from None
    if abs(watts) > DEMAND_LIMIT_W:
        raise argparse.ArgumentTypeError(f"{text} is beyond +-{DEMAND_LIMIT_W} W")
    return watts


def _peak_watts(text: str) -> int:
    watts = _watts(text)
    if watts < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return watts


def _interval(text: str) -> float:
    """A push interval: the device's schedule takes 1 to 65535 s; tests go faster."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < seconds <= 0xFFFF:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"{text} is not within 0 < S <= 65535")
    return seconds


def _clock_skew(text: str) -> int:
    try:
        seconds = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") \
            from None
    if abs(seconds) > MAX_CLOCK_SKEW_S:
        raise argparse.ArgumentTypeError(f"{text} is more than ten years")
    return seconds


def main_raven(argv: list[str]) -> int:
    """``collector emulate raven``."""
    return _main("raven", argv)


def main_emu2(argv: list[str]) -> int:
    """``collector emulate emu2``."""
    return _main("emu2", argv)
