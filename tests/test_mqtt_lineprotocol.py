"""The MQTT plugins' fast line-protocol paths agree with the core decoder."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector import Metric
from collector.lineprotocol import Encoder, LineProtocolError, decode_line
from plugins.mqtt.lineprotocol import decode, series_key, split_lines

names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1,
                max_size=12)
values = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                   st.integers(-(2**63), 2**63 - 1), st.text(max_size=20))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.builds(Metric, names, st.dictionaries(names, values, min_size=1,
                                                         max_size=4),
                          st.dictionaries(names, names, max_size=3),
                          st.integers(0, 2**62)), min_size=1, max_size=5))
def test_fast_decoding_reads_what_the_encoder_wrote_as_the_core_does(metrics):
    payload, count = Encoder("ns").encode(metrics)
    lines = [line.decode() for line in split_lines(payload)]
    assert len(lines) == count
    expected = [decode_line(line) for line in lines  # the core decoder's rule for comments
                if line.strip() and not line.lstrip().startswith("#")]
    assert decode(payload) == expected
    for line in split_lines(payload):
        assert line.startswith(series_key(line))


@pytest.mark.parametrize("line", [
    b"m v=1 12 13", b"m v=nan", b"m v=1x", b"m,t= v=1", b",t=a v=1", b"m v=\"open",
    b"m v=1,", b"m v=1i2", b"m v=1 5m v=2 6\n"])
def test_what_the_core_refuses_is_refused(line):
    with pytest.raises(LineProtocolError):
        decode_line(line.decode())
    with pytest.raises(LineProtocolError):
        decode(line)


def test_strings_with_spaces_commas_quotes_and_newlines():
    payload = b'm,host=a s="a, b \\"c\\" d\ne",n=1i 5\n# comment\n\nm v=2 6\n'
    assert decode(payload) == [Metric("m", {"s": 'a, b "c" d\ne', "n": 1}, {"host": "a"}, 5),
                               Metric("m", {"v": 2.0}, {}, 6)]
