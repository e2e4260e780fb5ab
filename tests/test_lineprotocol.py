"""Line protocol: the escaping rules, types and drops, and round trips through a real
influxd and through our own decoder."""

import math
import string
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from collector import lineprotocol
from collector.lineprotocol import Encoder, LineProtocolError, decode, encode, split_lines
from collector.metric import Metric
from collector.shaping import Shaping
from tests.servers import HTTP

T = 1_700_000_000_123_456_789


def line(metric: Metric, precision: str = "ns") -> str:
    return encode([metric], precision).decode().rstrip("\n")


@pytest.mark.parametrize("name, tags, fields, expected", [
    ("cpu", {}, {"v": 1.5}, f"cpu v=1.5 {T}"),
    ("my cpu,x", {}, {"v": 1.0}, f"my\\ cpu\\,x v=1.0 {T}"),
    ("m=1", {}, {"v": 1.0}, f"m=1 v=1.0 {T}"),
    ("m", {"a b": "c,d=e"}, {"v": 1.0}, f"m,a\\ b=c\\,d\\=e v=1.0 {T}"),
    ("m", {}, {"k=y": 2}, f"m k\\=y=2i {T}"),
    ("m", {}, {"s": 'say "hi" \\o/'}, f'm s="say \\"hi\\" \\\\o/" {T}'),
    ("m", {}, {"on": True, "off": False}, f"m on=true,off=false {T}"),
    ("m", {"z": "1", "a": "2"}, {"v": 1.0}, f"m,a=2,z=1 v=1.0 {T}"),
    ("m", {"empty": ""}, {"v": 1.0}, f"m v=1.0 {T}"),
    ("m\tn", {}, {"v": 1.0}, f"m\\tn v=1.0 {T}"),
    ("m", {}, {"big": 2**63 - 1, "small": -(2**63)},
     f"m big=9223372036854775807i,small=-9223372036854775808i {T}"),
])
def test_encoding_follows_the_reference(name, tags, fields, expected):
    assert line(Metric(name, fields, tags, T)) == expected


@pytest.mark.parametrize("precision, stamp", [("s", "1700000000"), ("ms", "1700000000123"),
                                              ("us", "1700000000123456")])
def test_precision_truncates_timestamp(precision, stamp):
    assert line(Metric("m", {"v": 1.0}, {}, T), precision).endswith(" " + stamp)


def test_unwritable_values_are_dropped_and_counted():
    encoder = Encoder()
    payload, count = encoder.encode([
        Metric("m", {"nan": math.nan, "inf": math.inf, "ok": 1.0, "huge": 2**64,
                     "time": 1.0}, {"time": "x", "t": ""}, T),
        Metric("m", {"only": -math.inf}, {}, T),
        Metric("trailing\\", {"v": 1.0}, {}, T),
        Metric("m", {"v": 1.0}, {"k": "ends\\"}, T),
        Metric("#comment", {"v": 1.0}, {}, T),
        Metric('say\\"', {"v": 1.0}, {}, T),
        Metric("m", {'k\\"': 1.0, "k\\=": 1.0}, {}, T),
    ])
    assert count == 2
    assert payload == f"m ok=1.0 {T}\nm v=1.0 {T}\n".encode()
    assert encoder.stats.metrics_dropped == 5
    assert encoder.stats.fields_dropped == 4 + 1 + 2
    assert encoder.stats.tags_dropped == 3


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 2**63, -(2**63) - 1,
                                   "x" * (64 * 1024), 1j])
def test_an_unwritable_value_in_a_clean_series_is_dropped_and_counted(value):
    encoder = Encoder()
    payload, count = encoder.encode([Metric("m", {"v": 1.0}, {"t": "a"}, T),
                                     Metric("m", {"v": value}, {"t": "a"}, T + 1)])
    assert (payload, count) == (f"m,t=a v=1.0 {T}\n".encode(), 1)
    assert (encoder.stats.metrics_dropped, encoder.stats.fields_dropped) == (1, 1)


def test_never_emits_unsigned():
    assert "u" not in line(Metric("m", {"v": 2**63 - 1}, {}, T)).split()[1]


def test_decoder_reads_types_escapes_and_multiline_strings():
    text = 'a\\ b,t\\=1=x\\,y f="l1\nl2",i=-3i,u=4u,b=T,x=1e3 5\n# comment\n\nc v=1'
    first, second = decode(text)
    assert first == Metric("a b", {"f": "l1\nl2", "i": -3, "u": 4, "b": True, "x": 1000.0},
                           {"t=1": "x,y"}, 5)
    assert second == Metric("c", {"v": 1.0}, {}, 0)
    assert split_lines(text.encode())[0] == b'a\\ b,t\\=1=x\\,y f="l1\nl2",i=-3i,u=4u,b=T,x=1e3 5\n'


def test_decoder_unescapes_quotes_where_influxd_does():
    """Measured on influxd 1.6.7: '\\"' is unescaped in names and field keys, not in tags."""
    assert decode('m\\"x,t\\"=v\\" f\\"=1 1') == [
        Metric('m"x', {'f"': 1.0}, {'t\\"': 'v\\"'}, 1)]


@pytest.mark.parametrize("bad", ["m", "m v=", "m,t v=1", "m v=1 12x", 'm v="open', "m v=zz",
                                 " v=1", "m v=NaN"])
def test_decoder_rejects_malformed_lines(bad):
    with pytest.raises(LineProtocolError):
        decode(bad)


# ---------------------------------------------------------------- properties
SPECIAL = ",= \"\\"
name_text = st.text(alphabet=st.characters(
    categories=["L", "N", "P", "S", "Zs"], include_characters=SPECIAL), min_size=1, max_size=12)
field_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.text(alphabet=st.characters(exclude_categories=["Cs"], include_characters=SPECIAL + "\n"),
            max_size=40),
)
metrics = st.builds(
    Metric,
    name=name_text,
    fields=st.dictionaries(name_text, field_values, min_size=1, max_size=4),
    tags=st.dictionaries(name_text, name_text, max_size=4),
    time_ns=st.integers(min_value=0, max_value=2**62),
)


any_values = st.one_of(field_values, st.floats(), st.integers(min_value=-(2**65), max_value=2**65),
                      st.text(alphabet='ab"\\', max_size=3))


@st.composite
def same_shape(draw) -> list[Metric]:
    """Metrics of one series and field keys whose values change type and validity."""
    name, tags = draw(name_text), draw(st.dictionaries(name_text, name_text, max_size=3))
    keys = draw(st.lists(name_text, min_size=1, max_size=4, unique=True))
    rows = draw(st.lists(st.lists(any_values, min_size=len(keys), max_size=len(keys)),
                         min_size=2, max_size=6))
    return [Metric(name, dict(zip(keys, row, strict=True)), tags, T + i)
            for i, row in enumerate(rows)]


@given(same_shape())
def test_a_shape_seen_before_encodes_as_a_fresh_encoder_would(batch):
    shared = Encoder()
    together, count = shared.encode(batch)
    fresh = [Encoder() for _ in batch]
    alone = [encoder.encode([metric]) for encoder, metric in zip(fresh, batch, strict=True)]
    assert together == b"".join(payload for payload, _ in alone)
    assert count == sum(n for _, n in alone)
    for counter in ("metrics_dropped", "fields_dropped", "tags_dropped"):
        assert getattr(shared.stats, counter) == sum(getattr(e.stats, counter) for e in fresh)


def writable(metric: Metric) -> bytes:
    """The metric's line; hypothesis discards what the encoder (rightly) leaves out."""
    encoder = Encoder()
    payload, _ = encoder.encode([metric])
    stats = encoder.stats
    assume(stats.metrics_dropped == stats.fields_dropped == stats.tags_dropped == 0)
    assume(not set(metric.tags) & set(metric.fields))
    return payload


@given(metrics)
def test_encode_decode_round_trip(metric):
    assert decode(writable(metric)) == [metric]


def influx_query(url: str, db: str, q: str) -> list:
    response = HTTP.request("POST", f"{url}/query", body=urlencode({"q": q, "db": db,
                                                                    "epoch": "ns"}),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    return response.json()["results"][0].get("series", [])


INFLUX_TYPES = {float: "float", int: "integer", bool: "boolean", str: "string"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(metric=metrics)
def test_real_influxd_stores_exactly_what_was_encoded(influxd, metric):
    payload = writable(metric)
    db = "roundtrip"
    influx_query(influxd.url, "", f'DROP DATABASE "{db}"')
    influx_query(influxd.url, "", f'CREATE DATABASE "{db}"')
    reply = HTTP.request("POST", f"{influxd.url}/write?db={db}&precision=ns", body=payload)
    assert reply.status == 204, reply.data
    (series,) = influx_query(influxd.url, db, "SELECT * FROM /.*/ GROUP BY *")
    assert series["name"] == metric.name
    assert series.get("tags", {}) == {k: v for k, v in metric.tags.items()}
    (values,) = series["values"]
    row = dict(zip(series["columns"], values, strict=True))
    assert row.pop("time") == metric.time_ns
    # JSON from Go prints large floats with integer digits; the type is checked below.
    assert {k: float(v) if type(metric.fields[k]) is float else v for k, v in row.items()} \
        == metric.fields
    (types,) = influx_query(influxd.url, db, "SHOW FIELD KEYS")
    assert dict(types["values"]) == {k: INFLUX_TYPES[type(v)] for k, v in metric.fields.items()}


def test_property_alphabet_covers_every_escaped_character():
    assert set(SPECIAL + " ") <= set(string.printable)


def scanned_lines(text: str) -> list[str]:
    """The reference split: a character scan of the whole payload as influxd's scanner
    does it (a backslash takes the next character; a quote opens a string only right
    after a field's '=', and a string ends at the next unescaped quote)."""
    lines, start, quoted, index, fields_started = [], 0, False, 0, False
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if quoted:
            quoted = char != '"'
        elif char == " ":
            fields_started = True
        elif char == "=" and fields_started and text.startswith('"', index + 1):
            quoted = True
            index += 1
        elif char == "\n":
            lines.append(text[start:index])
            start, fields_started = index + 1, False
        index += 1
    lines.append(text[start:])
    return lines


LINE_ALPHABET = 'ab ,="\\.0123456789-itefm#\t\n'


@given(st.text(alphabet=LINE_ALPHABET, max_size=60))
def test_lines_split_as_a_character_scan_splits_them(text):
    assert lineprotocol._split_lines(text) == scanned_lines(text)


@given(st.text(alphabet=LINE_ALPHABET.replace("\n", ""), max_size=40))
def test_the_fast_path_reads_a_line_exactly_as_the_scanner_does(line):
    fast = lineprotocol._decode_common(line, 1)
    try:
        scanned = lineprotocol.decode_line(line)
    except LineProtocolError:
        scanned = None
    if fast is not None:
        assert fast == scanned


def test_a_quote_in_a_field_key_does_not_open_a_string():
    metrics = decode('m a"=1.0 1\nm b=2.0 2\n')
    assert [(m.fields, m.time_ns) for m in metrics] == [({'a"': 1.0}, 1), ({"b": 2.0}, 2)]


def test_the_fast_path_reads_what_the_encoder_writes():
    line = 'se521,channel=T1,device=EMU0001 celsius=21.5,raw=215i,ok=true,state="a, b=c" 17\n'
    (metric,) = decode(line)
    assert lineprotocol._decode_common(line.rstrip("\n"), 1) == metric
    assert metric.fields == {"celsius": 21.5, "raw": 215, "ok": True, "state": "a, b=c"}


encoded_names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1,
                        max_size=12)
encoded_values = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                           st.integers(-(2**63), 2**63 - 1), st.text(max_size=20))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.builds(Metric, encoded_names,
                          st.dictionaries(encoded_names, encoded_values, min_size=1,
                                          max_size=4),
                          st.dictionaries(encoded_names, encoded_names, max_size=3),
                          st.integers(0, 2**62)), min_size=1, max_size=5))
def test_a_payload_decodes_as_its_lines_do_one_by_one(metrics):
    """Whatever the encoder writes (newlines, quotes and escapes in names and strings
    included), the payload's decoding is the scanner's reading of each of its lines."""
    payload, count = Encoder("ns").encode(metrics)
    lines = [line.decode() for line in lineprotocol.lines_of(payload)]
    assert len(lines) == count
    expected = [lineprotocol.decode_line(line) for line in lines
                if line.strip() and not line.lstrip().startswith("#")]
    assert decode(payload) == expected


@pytest.mark.parametrize("line", [
    "m v=1 12 13", "m v=nan", "m v=1x", "m,t= v=1", ",t=a v=1", 'm v="open', "m v=1,",
    "m v=1i2", "m v=1 5m v=2 6\n"])
def test_the_fast_path_refuses_what_the_scanner_refuses(line):
    with pytest.raises(LineProtocolError):
        decode(line)


def test_strings_with_spaces_commas_quotes_newlines_comments_and_blank_lines():
    payload = b'm,host=a s="a, b \\"c\\" d\ne",n=1i 5\n# comment\n\nm v=2 6\n'
    assert decode(payload) == [Metric("m", {"s": 'a, b "c" d\ne', "n": 1}, {"host": "a"}, 5),
                               Metric("m", {"v": 2.0}, {}, 6)]


NOW = 1_795_000_000_123_456_789


def decoded_then_encoded(encoder: Encoder, text: str) -> tuple[bytes, int]:
    metrics = decode(text)
    for metric in metrics:
        metric.time_ns = metric.time_ns or NOW
    return encoder.encode(metrics)


shapings = st.builds(Shaping, name_override=st.sampled_from(["", "renamed"]),
                     tags_under=st.dictionaries(st.sampled_from(["host", "a"]),
                                                st.sampled_from(["pi", "x y"]), max_size=2),
                     tags_over=st.dictionaries(st.sampled_from(["room", "a"]),
                                               st.sampled_from(["b12", "c,d"]), max_size=2),
                     step_ns=st.sampled_from([1, 1000]))


@settings(max_examples=300, deadline=None)
@example("m time=1 5", Shaping())
@example("m a\tb=1,c=2 5", Shaping())
@example("m v=1u 5", Shaping())
@example("m v=9223372036854775808i 5", Shaping())
@example("m v=1_0 5", Shaping())
@example("m v=1e999 5", Shaping())
@given(st.one_of(st.text(alphabet=LINE_ALPHABET, max_size=60),
                 st.lists(metrics, min_size=1, max_size=4).map(
                     lambda ms: Encoder().encode(ms)[0].decode())),
       shapings)
def test_relaying_received_lines_writes_what_decoding_and_encoding_would(text, shaping):
    try:
        expected = decoded_then_encoded(Encoder("ns", shaping), text)
    except LineProtocolError:
        expected = None
    relay = Encoder("ns", shaping)
    try:
        relayed = relay.reencode(text, NOW)
    except LineProtocolError:
        relayed = None
    assert (relayed is None) == (expected is None), (relayed, expected)
    if relayed is not None:
        assert decode(relayed[0]) == decode(expected[0])
        assert relayed[1] == expected[1]


def test_a_relayed_line_keeps_its_fields_as_written_and_gets_the_shaped_series():
    """As written: "True" and "t" stay (the encoder itself writes "true"), which shows
    the lines took the relay's way, not the decoder's."""
    relay = Encoder("ns", Shaping(tags_under={"host": "pi"}, tags_over={"room": "b"}))
    received = 'm,site=roof\\ 1 v=1.5,n=3i,ok=t,on=True,s="a b" 12\nm v=2\n'
    payload, count = relay.reencode(received, NOW)
    assert (payload.decode(), count) == (
        'm,host=pi,room=b,site=roof\\ 1 v=1.5,n=3i,ok=t,on=True,s="a b" 12\n'
        f"m,host=pi,room=b v=2 {NOW}\n", 2)
