"""The spool's framing, fuzzed: any bytes scan without error into items that cover them,
and every intact record is found again whatever damage surrounds it."""

from hypothesis import given
from hypothesis import strategies as st

from collector.spool_format import (
    CURSOR_FILE_SIZE,
    Damage,
    Record,
    Unfinished,
    cursor_slot,
    frame,
    read_cursor,
    scan,
)

payloads = st.lists(st.text(min_size=1, max_size=40).map(lambda t: f"m s=\"{t}\" 1\n"),
                    min_size=1, max_size=4).map(lambda lines: "".join(lines).encode())


@given(st.binary(max_size=2000), st.integers(0, 50))
def test_any_bytes_scan_into_items_that_cover_them_in_order(data, offset):
    offset = min(offset, len(data))
    position = offset
    for item in scan(data, offset):
        assert item.start == position < item.end <= len(data)
        position = item.end
    assert position == len(data)


@given(st.lists(st.tuples(payloads, st.binary(max_size=60)), min_size=1, max_size=8))
def test_every_intact_record_is_found_between_garbage(pieces):
    data = b""
    expected = []
    for payload, garbage in pieces:
        expected.append((len(data), payload))
        data += frame(payload, payload.count(b"\n"), 7) + garbage.replace(b"\xff", b"\xfe")
    found = [(item.start, data[item.start + 28:item.end]) for item in scan(data)
             if isinstance(item, Record)]
    assert found == expected
    assert all(isinstance(item, Damage | Unfinished | Record) for item in scan(data))


@given(payloads, st.integers(0, 10**19 // 10), st.data())
def test_a_flipped_bit_costs_exactly_its_record(payload, stamp, data):
    records = [frame(payload, 3, stamp) for _ in range(3)]
    blob = bytearray(b"".join(records))
    size = len(records[0])
    bit = data.draw(st.integers(size * 8, size * 16 - 1), label="bit in the middle record")
    blob[bit // 8] ^= 1 << (bit % 8)
    items = list(scan(bytes(blob)))
    intact = [item for item in items if isinstance(item, Record)]
    assert [(item.start, item.end) for item in intact] == [(0, size), (2 * size, 3 * size)]
    (lost,) = [item for item in items if not isinstance(item, Record)]
    assert (lost.start, lost.end) == (size, 2 * size)
    assert isinstance(lost, Damage) and lost.count in (3, None)


@given(st.integers(0, 2**62), st.integers(0, 2**40), st.integers(0, 2**40),
       st.integers(0, CURSOR_FILE_SIZE - 1), st.integers(1, 255))
def test_a_torn_cursor_write_keeps_the_previous_position(sequence, segment, offset, byte, mask):
    data = bytearray(CURSOR_FILE_SIZE)
    for seq, position in ((sequence, (segment, offset)), (sequence + 1, (segment + 1, 0))):
        start, slot = cursor_slot(seq, *position)
        data[start:start + len(slot)] = slot
    newest_start, _ = cursor_slot(sequence + 1, segment + 1, 0)
    data[newest_start + byte % 32] ^= mask
    assert read_cursor(bytes(data)) == (sequence, segment, offset)


@given(st.binary(max_size=CURSOR_FILE_SIZE * 2))
def test_any_cursor_bytes_read_without_error(data):
    found = read_cursor(data)
    assert found is None or len(found) == 3
