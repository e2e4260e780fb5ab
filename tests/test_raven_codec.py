"""RAVEn / EMU-2 stream parser, decoder and commands: worked values, every malformed case,
properties, and a differential test against aioraven."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from aioraven import data as aioraven_data
from aioraven.protocols import RAVEnReaderProtocol
from aioraven.reader import RAVEnReader
from hypothesis import given
from hypothesis import strategies as st

from plugins.inputs.raven import commands, decoder
from plugins.inputs.raven.parser import ROOTS, Fragment, StreamParser


def fragment(root: str, **children: str) -> bytes:
    return (f"<{root}>\r\n" + "".join(f"  <{k}>{v}</{k}>\r\n" for k, v in children.items())
            + f"</{root}>\r\n").encode("cp1252")


def parse_all(data: bytes, parser: StreamParser | None = None) -> list[Fragment]:
    return (parser or StreamParser()).feed(data)


def ns(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()) * 1_000_000_000


DEMAND = fragment("InstantaneousDemand", DeviceMacId="0xd8d5b9000000abcd",
                  MeterMacId="0x00135003007c1a2b", TimeStamp="0x29f39ed6", Demand="0x000120",
                  Multiplier="0x00000003", Divisor="0x000003e8", DigitsRight="0x03",
                  DigitsLeft="0x06", SuppressLeadingZero="Y")
SUMMATION = fragment("CurrentSummationDelivered", DeviceMacId="0xd8d5b9000000abcd",
                     MeterMacId="0x00135003007c1a2b", TimeStamp="0x29bd58a7",
                     SummationDelivered="0x0000000006bc5b7d",
                     SummationReceived="0x0000000000000000", Multiplier="0x00000001",
                     Divisor="0x000003e8", DigitsRight="0x03", DigitsLeft="0x0f",
                     SuppressLeadingZero="Y")
PRICE = fragment("PriceCluster", DeviceMacId="0xd8d5b9000000abcd",
                 MeterMacId="0x00135003007c1a2b", TimeStamp="0x29bd58a7", Price="0x000000c8",
                 Currency="0x0348", TrailingDigits="0x03", Tier="0x01", RateLabel="Block 1")


# ---------------------------------------------------------------- worked values
def test_worked_values_from_the_protocol_notes():
    demand = decoder.decode(parse_all(DEMAND)[0])
    assert demand.kw == 0.864 and demand.time_ns == ns("2022-04-21T04:49:26")
    assert (demand.raw, demand.multiplier, demand.divisor) == (0x120, 3, 1000)
    summation = decoder.decode(parse_all(SUMMATION)[0])
    assert summation.delivered_kwh == 113007.485
    assert summation.time_ns == ns("2022-03-11T00:47:35")
    negative = decoder.decode(parse_all(fragment(
        "InstantaneousDemand", Demand="0xFFFFFF9C", Multiplier="0x1", Divisor="0x64"))[0])
    assert negative.kw == -1.0 and negative.raw == -100 and negative.meter_mac == ""
    price = decoder.decode(parse_all(PRICE)[0])
    assert (price.price, price.currency, price.tier, price.label) == (0.2, 840, 1, "Block 1")


def test_zero_multiplier_or_divisor_means_one_and_no_time_is_none():
    reading = decoder.decode(parse_all(fragment(
        "InstantaneousDemand", TimeStamp="0xffffffff", Demand="0x0000002a",
        Multiplier="0x00000000", Divisor="0x00000000"))[0])
    assert (reading.kw, reading.multiplier, reading.divisor, reading.time_ns) == (42.0, 1, 1, None)
    assert decoder.raven_time_ns("0xffffff") is None


def test_64_bit_summation_stays_exact_and_unset_price_is_none():
    reading = decoder.decode(parse_all(fragment(
        "CurrentSummationDelivered", SummationDelivered="0x00ffffffffffffff",
        SummationReceived="0x0000000000000001", Multiplier="0x1", Divisor="0x1"))[0])
    assert reading.delivered_raw == 2**56 - 1 and reading.received_raw == 1
    price = decoder.decode(parse_all(fragment("PriceCluster", Price="0xffffffff",
                                              Currency="0x0348", TrailingDigits="0x02"))[0])
    assert price.price is None


def test_connection_status_device_info_and_meter_list():
    status = decoder.decode(parse_all(fragment(
        "ConnectionStatus", DeviceMacId="0xABC", MeterMacId="0xDEF", Status="Rejoining",
        LinkStrength="0x64", Channel="20", Description="Re-joining"))[0])
    assert (status.status, status.link_strength, status.channel, status.meter_mac) == (
        "Rejoining", 100, 20, "0xdef")
    info = decoder.decode(parse_all(fragment(
        "DeviceInfo", DeviceMacId="0xabc", ModelId="Z105-2-EMU2-LEDD_JM", FWVersion="1.4.48",
        DateCode="\xff\xff\xff\xff", Manufacturer="Rainforest Automation, Inc."))[0])
    assert (info.model, info.date_code) == ("Z105-2-EMU2-LEDD_JM", "")
    meters = decoder.decode(parse_all(
        b"<MeterList><DeviceMacId>0xA</DeviceMacId><MeterMacId>0xB</MeterMacId>"
        b"<MeterMacId>0xC</MeterMacId></MeterList>")[0])
    assert meters.meters == ("0xb", "0xc")


def test_children_are_found_by_name_in_any_order_and_case():
    reading = decoder.decode(parse_all(
        b"<instantaneousdemand><DIVISOR>0x3e8</DIVISOR><demand>0x1f4</demand>"
        b"<Multiplier>0x1</Multiplier></INSTANTANEOUSDEMAND>")[0])
    assert reading.kw == 0.5
    lenient = parse_all(b"<PriceCluster><Price >0x1</price><Rate-Label>x</Rate-Label>"
                        b"</PriceCluster>")
    assert lenient[0].children == {"price": "0x1", "rate-label": "x"}


def test_a_bad_number_is_a_decode_error():
    with pytest.raises(decoder.DecodeError, match="Demand"):
        decoder.decode(parse_all(fragment("InstantaneousDemand", Demand="zz"))[0])


# ---------------------------------------------------------------- malformed streams
def test_glued_tail_stray_and_mismatched_tags_and_0xff_are_dropped():
    stream = (b"0x29f39e02</TimeStamp><Demand>0x000192</Demand><Multiplier>0x000"
              + DEMAND + b"</Stray>\r\n\xff\xff"
              + b"<PriceCluster><Price>0x1</Currency></PriceCluster>" + SUMMATION)
    parser = StreamParser()
    roots = [f.root for f in parse_all(stream, parser)]
    assert roots == ["InstantaneousDemand", "CurrentSummationDelivered"]
    assert parser.stats.malformed == 1 and parser.stats.garbage_bytes > 50


def test_dangling_start_tag_is_dropped_at_the_next_root():
    parser = StreamParser()
    got = parse_all(b"<InstantaneousDemand><Demand>0x01</Demand>" + PRICE, parser)
    assert [f.root for f in got] == ["PriceCluster"] and parser.stats.truncated == 1


def test_split_and_concatenated_reads():
    stream = DEMAND + PRICE + SUMMATION
    parser = StreamParser()
    got = [f for i in range(len(stream)) for f in parser.feed(stream[i:i + 1])]
    assert [f.root for f in got] == ["InstantaneousDemand", "PriceCluster",
                                     "CurrentSummationDelivered"]


def test_oversized_fragment_is_dropped_and_entities_are_never_expanded():
    parser = StreamParser(max_fragment=512)
    huge = b"<MessageCluster><Text>" + b"x" * 1000 + b"</Text></MessageCluster>"
    entity = b"<Warning><Text>&xxe;</Text></Warning>"
    got = parse_all(huge + entity + PRICE, parser)
    assert [f.root for f in got] == ["PriceCluster"]
    assert parser.stats.oversized == 1 and parser.stats.malformed == 1


def test_warning_for_an_unknown_command():
    got = decoder.decode(parse_all(b"<Warning><Text>Unknown command</Text></Warning>")[0])
    assert got == decoder.DeviceWarning("Unknown command")


# ---------------------------------------------------------------- properties
@given(st.lists(st.binary(max_size=64), max_size=30))
def test_any_byte_stream_never_raises_and_memory_stays_bounded(reads):
    parser = StreamParser(max_fragment=512)
    for read in reads:
        parser.feed(read)
        assert len(parser._buffer) <= 512 + 64


garbage = st.binary(max_size=40).filter(lambda b: b"<" not in b) | st.sampled_from(
    [b"</Demand>", b"<Multiplier>0x0", b"\xff\xff", b"</InstantaneousDemand>", b"<Inst"])


@given(st.lists(st.tuples(st.sampled_from([DEMAND, PRICE, SUMMATION]), garbage), max_size=8),
       st.lists(st.integers(1, 50), min_size=1, max_size=20))
def test_every_intact_fragment_is_recovered_whatever_the_cuts_and_garbage(pieces, cuts):
    stream = b"".join(junk + whole for whole, junk in pieces)
    parser = StreamParser()
    got, position, i = [], 0, 0
    while position < len(stream):
        size = cuts[i % len(cuts)]
        got += parser.feed(stream[position:position + size])
        position, i = position + size, i + 1
    expected = [parse_all(whole)[0] for whole, _ in pieces]
    assert got == expected


# ---------------------------------------------------------------- differential vs aioraven
class _Collector(RAVEnReader):
    def __init__(self, loop) -> None:
        super().__init__(loop=loop)
        self.elements: list[tuple[str, dict]] = []

    def feed_element(self, data) -> None:
        if data.tag in ROOTS:  # aioraven's pull parser also reports every child element
            self.elements.append((data.tag, {child.tag: child.text for child in data}))


def aioraven_parse(stream: bytes) -> list[tuple[str, dict]]:
    loop = asyncio.new_event_loop()
    try:
        reader = _Collector(loop)
        protocol = RAVEnReaderProtocol(reader, loop=loop)
        protocol.connection_made(None)
        protocol.data_received(stream)
        return reader.elements
    finally:
        loop.close()


def aioraven_value(root: str, raw: dict) -> float:
    """What aioraven's device methods compute for each kind, as a number."""
    if root == "InstantaneousDemand":
        return float(aioraven_data.convert_float_formatted(
            raw["Demand"], raw.get("Multiplier"), raw.get("Divisor"), raw.get("DigitsRight")))
    if root == "CurrentSummationDelivered":
        return float(aioraven_data.convert_float_formatted(
            raw["SummationDelivered"], raw.get("Multiplier"), raw.get("Divisor"),
            raw.get("DigitsRight")))
    if root == "PriceCluster":
        return float(aioraven_data.convert_price(raw["Price"], raw["TrailingDigits"], 2))
    return aioraven_data.convert_datetime(raw["UTCTime"], True).timestamp()


def our_value(reading: decoder.Reading) -> float:
    if isinstance(reading, decoder.Demand):
        return reading.kw
    if isinstance(reading, decoder.Summation):
        return reading.delivered_kwh
    if isinstance(reading, decoder.Price):
        return reading.price
    return reading.utc_ns / 1e9


def corpus() -> list[bytes]:
    """Fragments covering signs, scales, summations, prices and times. aioraven reads a
    zero multiplier or divisor literally (x0, or a ZeroDivisionError), so it is given
    those with the documented rule (zero means 1) already applied."""
    fragments = []
    for demand in ("0x000120", "0xFFFFFF9C", "0xFFFFFFF0", "0x7FFFFFFF", "0x80000000",
                   "0x00001f4", "0x0"):
        for multiplier, divisor in (("0x3", "0x3e8"), ("0x1", "0x64"), ("0x0", "0x3e8"),
                                    ("0x1", "0x0"), ("0x0", "0x0")):
            fragments.append(fragment("InstantaneousDemand", TimeStamp="0x29f39ed6",
                                      Demand=demand, Multiplier=multiplier, Divisor=divisor,
                                      DigitsRight="0x03"))
    for delivered in ("0x0000000006bc5b7d", "0x000000000000ffff", "0x0000000012345678"):
        fragments.append(fragment("CurrentSummationDelivered", SummationDelivered=delivered,
                                  Multiplier="0x1", Divisor="0x3e8", DigitsRight="0x03"))
    for price, digits in (("0xc8", "0x03"), ("0x1234", "0x02"), ("0x5", "0x00")):
        fragments.append(fragment("PriceCluster", Price=price, Currency="0x0348",
                                  TrailingDigits=digits))
    for utc in ("0x29bd58a7", "0x29f39ed6", "0x00000000", "0x3b9aca00"):
        fragments.append(fragment("TimeCluster", UTCTime=utc, LocalTime=utc))
    return fragments


def with_zero_scale_as_one(raw: dict) -> dict:
    return {k: ("0x1" if k in ("Multiplier", "Divisor") and int(v, 16) == 0 else v)
            for k, v in raw.items()}


def test_differential_against_aioraven():
    stream = b"".join(corpus())
    ours = [decoder.decode(f) for f in StreamParser().feed(stream)]
    theirs = aioraven_parse(stream)
    assert len(ours) == len(theirs) == len(corpus())
    for reading, (root, raw) in zip(ours, theirs, strict=True):
        expected = aioraven_value(root, with_zero_scale_as_one(raw))
        assert our_value(reading) == pytest.approx(expected, abs=5e-4), (root, raw)


# ---------------------------------------------------------------- commands
def test_commands_and_the_refused_factory_reset():
    assert commands.command("initialize") == (
        b"<Command><Name>initialize</Name></Command>\r\n")
    assert commands.set_schedule("demand", 10, "0x00135003007c1a2b") == (
        b"<Command><Name>set_schedule</Name><MeterMacId>0x00135003007c1a2b</MeterMacId>"
        b"<Event>demand</Event><Frequency>0x000a</Frequency><Enabled>Y</Enabled>"
        b"</Command>\r\n")
    assert b"<Refresh>Y</Refresh>" in commands.refresh("get_instantaneous_demand")
    for name in ("factory_reset", "FACTORY_RESET"):
        with pytest.raises(commands.RefusedCommand):
            commands.command(name)
    with pytest.raises(ValueError):
        commands.command("format_disk")


def test_only_predefined_entities_and_character_references_are_read():
    parser = StreamParser()
    got = parse_all(
        b'<Warning><!DOCTYPE w [<!ENTITY big "x">]><Text>&big;</Text></Warning>'
        b"<Warning><Text>a &amp; b &#65;&#x42; &lt;c&gt;</Text></Warning>"
        b"<Warning><Text>&#0;</Text></Warning><Warning><Text>&amp</Text></Warning>", parser)
    assert [f.children["text"] for f in got] == ["a & b AB <c>"]
    assert parser.stats.malformed == 3
