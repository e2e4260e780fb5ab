"""SE521 codec and bridge framing: the worked example, every frame check, and properties."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugins.inputs.se521 import bridge, codec
from plugins.inputs.se521.emulator import FAULTS, Instrument, InstrumentState

WORKED_EXAMPLE = bytes.fromhex(
    "02 03 00 00 00 01 00 00 00 02 d0 02 ad ff 38 11 a1 00 23".replace(" ", "")
) + bytes(42) + bytes.fromhex("05 96 03".replace(" ", ""))


def celsius(reading: codec.Reading) -> list[float | None]:
    return [None if c.value is None else codec.to_celsius(c.value, reading.unit)
            for c in reading.channels]


def test_worked_example_decodes_to_the_documented_celsius():
    reading = codec.decode_reading(WORKED_EXAMPLE, counter=5)
    assert reading.unit == "F"
    assert [c.value for c in reading.channels] == [72.0, 68.5, -20.0, 451.3]
    assert celsius(reading) == [22.22, 20.28, -28.89, 232.94]
    assert reading.difference.value == 3.5
    assert codec.difference_to_celsius(3.5, "F") == 1.94
    assert (reading.battery_percent, reading.thermocouple, reading.counter) == (99, "K", 5)


def test_commands_carry_the_rolling_counter():
    assert codec.read_command(5) == bytes.fromhex("02410000000503")
    assert codec.model_command(256 + 7) == bytes.fromhex("024b0000000703")


def test_unplugged_and_over_limit_channels_have_no_value():
    frame = bytearray(WORKED_EXAMPLE)
    frame[6] = 0b0100_0110  # T3 unplugged (and over), T2 over limit
    frame[62] = codec.checksum(frame)
    reading = codec.decode_reading(bytes(frame))
    assert [c.state for c in reading.channels] == ["ok", "over_limit", "unplugged", "ok"]
    assert celsius(reading) == [22.22, None, None, 232.94]
    assert reading.difference.value is None, "T1-T2 means nothing with T2 over its limit"


def test_whole_degree_range_flag():
    frame = bytearray(WORKED_EXAMPLE)
    frame[2] = 0b1010_0000  # unit C, T4 in whole degrees
    frame[15:17] = (1234).to_bytes(2, "big")
    frame[62] = codec.checksum(frame)
    reading = codec.decode_reading(bytes(frame))
    assert reading.unit == "C"
    assert reading.channels[3].value == 1234.0
    assert reading.channels[0].value == 72.0


@pytest.mark.parametrize("fault, check", [
    ("checksum", "checksum"), ("etx", "etx"), ("short", "length"), ("counter", "counter")])
def test_each_emulated_fault_fails_its_check(fault, check):
    reply = Instrument(InstrumentState(fault=fault)).respond(codec.read_command(9))
    with pytest.raises(codec.FrameError) as raised:
        codec.decode_reading(reply, counter=9)
    assert raised.value.check == check


def test_missing_stx_and_model_reply():
    with pytest.raises(codec.FrameError, match="stx"):
        codec.decode_reading(b"\x00" + WORKED_EXAMPLE[1:])
    assert codec.decode_model(codec.encode_model("521")) == "521"
    with pytest.raises(codec.FrameError) as raised:
        codec.decode_model(bytes(32))
    assert raised.value.check == "model"


def test_silent_instrument_sends_nothing():
    assert Instrument(InstrumentState(fault="silence")).respond(codec.read_command(1)) == b""
    assert "silence" in FAULTS


def test_bridge_splits_a_64_byte_reply_into_three_in_reports():
    reports = bridge.in_reports(WORKED_EXAMPLE)
    assert [r[0] for r in reports] == [0x1F, 0x1F, 0x02]
    assert all(len(r) == bridge.REPORT_SIZE for r in reports)
    assembler = bridge.ReplyAssembler(64)
    for report in reports:
        assembler.feed(report)
    assert assembler.complete and assembler.reply == WORKED_EXAMPLE
    assert bridge.announce_write(7) == bytes.fromhex("4301070000000000")
    assert bridge.request_read(64) == bytes.fromhex("4304400000000000")


# ---------------------------------------------------------------- properties
@given(st.binary(min_size=0, max_size=80), st.none() | st.integers(0, 255))
def test_arbitrary_bytes_raise_only_frame_errors(frame, counter):
    try:
        reading = codec.decode_reading(frame, counter)
    except codec.FrameError:
        return
    assert len(frame) == 64 and frame[0] == codec.STX and frame[63] == codec.ETX
    assert frame[62] == codec.checksum(frame) and reading.counter == frame[61]


@given(st.integers(0, 63), st.integers(1, 255))
def test_a_mutated_valid_frame_is_rejected_or_decodes_consistently(position, flip):
    frame = bytearray(WORKED_EXAMPLE)
    frame[position] ^= flip
    try:
        reading = codec.decode_reading(bytes(frame), counter=5)
    except codec.FrameError:
        return
    # A single changed byte can only pass when it hit an unused byte and the sum still
    # matches, which one changed byte cannot do: so nothing may get through at all.
    pytest.fail(f"mutated frame accepted: {reading}")


temperature = st.none() | st.floats(-999.9, 9999.0, allow_nan=False).map(lambda t: round(t, 1))


@given(st.lists(temperature, min_size=4, max_size=4), st.sampled_from(["C", "F"]),
       st.sets(st.integers(0, 3)), st.integers(0, 3), st.booleans(), st.integers(0, 255),
       st.sampled_from(["K", "J", "E", "T", ""]))
def test_every_frame_the_emulator_encodes_decodes_to_what_it_encoded(
        temperatures, unit, over, battery, hold, counter, thermocouple):
    state = InstrumentState(temperatures=temperatures, over_limit=over, unit=unit,
                            battery=battery, hold=hold, thermocouple=thermocouple)
    instrument = Instrument(state)
    encoded = instrument.reading(counter)
    decoded = codec.decode_reading(instrument.respond(codec.read_command(counter)), counter)
    assert decoded == encoded
    for value, channel in zip(temperatures, decoded.channels, strict=True):
        if value is None or channel.over_limit:
            assert channel.value is None
        else:
            assert channel.value == pytest.approx(value, abs=0.5 if abs(value) >= 1000 else 1e-9)
