"""outputs.sql, layout = "se521": the legacy logger's minute table, on SQLite and MariaDB."""

from __future__ import annotations

import logging
import math

import pytest

from collector import RetryableError
from tests.mariadb import MariaDBStore
from tests.se521_readings import MINUTE_NS, NS, aggregated, readings, wall_minute_means
from tests.sql_helpers import sql_output, stamp, write

START = 1_795_236_000_000_000_000
"""2026-11-21 04:40:00 UTC, a minute boundary."""
BERLIN_FALL_BACK = 1_792_890_000_000_000_000
"""2026-10-25 01:00 UTC: Berlin's clocks go from 03:00 CEST back to 02:00 CET."""


def table(store, time_column: str = "DateTm", columns=("tc1", "tc2", "tc3", "tc4"),
          name: str = "temperatures") -> dict[str, tuple]:
    rows = store.rows(f"SELECT {time_column}, {', '.join(columns)} FROM {name} "
                      f"ORDER BY {time_column}")
    return {stamp(row[0])[:19]: row[1:] for row in rows}


def assert_rows_match(found: dict[str, tuple], expected: dict[str, dict[str, float]],
                      channels=("T1", "T2", "T3", "T4")) -> None:
    expected = {wall: means for wall, means in expected.items() if means}
    assert sorted(found) == sorted(expected)
    for wall, means in expected.items():
        for channel, value in zip(channels, found[wall], strict=True):
            if channel in means:
                # FLOAT, as the legacy DDL has it: MariaDB answers with 6 significant digits
                assert value == pytest.approx(means[channel], rel=1e-5, abs=1e-4), (wall, channel)
            else:
                assert value is None, (wall, channel, value)


def test_each_minute_row_is_the_mean_of_that_minutes_valid_readings(store, tmp_path):
    end = START + 10 * MINUTE_NS
    raw = (readings(START, end, 1, "T1", 21.0)
           + readings(START, end, 1, "T2", 180.0, valid=0.8)
           + [r for r in readings(START, end, 2, "T3", -5.0)
              if not 3 * MINUTE_NS <= r.time_ns - START < 6 * MINUTE_NS]
           + readings(START, end, 1, "T4", 0.0, valid=0.0))
    means = aggregated(raw)
    by_channel = {channel: [line for line in means if f"channel={channel}," in line]
                  for channel in ("T1", "T2", "T3")}
    batches = [by_channel["T2"] + [r.line() for r in raw[:100]],
               by_channel["T1"][:5], by_channel["T3"] + by_channel["T1"][5:]]
    options = 'layout = "se521"\ntimezone = "America/New_York"\n'

    output = sql_output(store, tmp_path, options)
    results = [write(output, batch) for batch in batches]
    output.close()
    assert sum(r.written for r in results) == len(means) + 100
    assert output.context.stats.get("skipped") == 100, "raw readings are not averaged in"
    expected = wall_minute_means(raw, "America/New_York")
    assert min(expected) == "2026-11-20 23:40:00", "local wall-clock time, not UTC"
    assert_rows_match(table(store), expected)

    restarted = sql_output(store, tmp_path, options)
    for batch in batches:
        write(restarted, batch)
    restarted.close()
    assert_rows_match(table(store), expected)


def test_a_fall_back_day_keeps_every_reading_of_the_repeated_hour(store, tmp_path, caplog):
    """Berlin, 2026-10-25: wall-clock 02:00-02:59 happens twice. Each of its minutes must
    hold the mean of both passes' readings (weighted: the second pass reads faster), also
    when a batch of the second pass is delivered again, before or after the first."""
    first_pass = BERLIN_FALL_BACK - 3600 * NS
    raw = (readings(first_pass - 1800 * NS, first_pass + 3600 * NS, 15, "T1", 10.0, seed=1)
           + readings(BERLIN_FALL_BACK, BERLIN_FALL_BACK + 5400 * NS, 10, "T1", 20.0, seed=2))
    means = aggregated(raw)
    before, first, second = (
        [line for line in means if lo <= int(line.rsplit(" ", 1)[1]) < hi]
        for lo, hi in ((0, first_pass), (first_pass, BERLIN_FALL_BACK),
                       (BERLIN_FALL_BACK, math.inf)))
    options = 'layout = "se521"\ntimezone = "Europe/Berlin"\nse521.columns = { T1 = "tc1" }\n'
    output = sql_output(store, tmp_path, options)
    with caplog.at_level(logging.INFO):
        for batch in (before, second, first, second):
            assert write(output, batch).rejected == 0
    output.close()

    found = table(store, columns=("tc1",))
    assert_rows_match(found, wall_minute_means(raw, "Europe/Berlin"), channels=("T1",))
    assert len(found) == 30 + 60 + 30, "the repeated hour is one hour of rows"
    assert 12.0 < found["2026-10-25 02:30:00"][0] < 18.0, "neither pass overwrote the other"
    assert output.context.stats.get("repeated_hour_values") == 60 + 60 * 2
    assert caplog.text.count("happened twice") == 1


@pytest.mark.parametrize(("columns", "complaint"), [
    ("DateTm datetime PRIMARY KEY, tc1 float, tc2 float, tc3 varchar(10), tc4 float",
     "column tc3 is varchar(10), expected a floating-point type"),
    ("DateTm timestamp PRIMARY KEY, tc1 float, tc2 float, tc3 float, tc4 float",
     "column DateTm is timestamp, expected a DATETIME"),
    ("DateTm datetime, tc1 float, tc2 float, tc3 float, tc4 float",
     "column DateTm is not a primary or unique key"),
    ("DateTm datetime PRIMARY KEY, tc1 float, tc2 float, tc4 float", "column tc3 is missing"),
    ("DateTm datetime PRIMARY KEY, tc1 float, tc2 float, tc3 float, tc4 float, "
     "site varchar(9) NOT NULL", "column site is NOT NULL without a default"),
])
def test_an_existing_table_that_does_not_fit_is_refused_and_never_altered(
        mariadb, tmp_path, columns, complaint):
    store = MariaDBStore(mariadb)
    store.execute(f"CREATE TABLE temperatures ({columns})")
    before = store.rows("SHOW CREATE TABLE temperatures")
    output = sql_output(store, tmp_path, 'layout = "se521"\n')
    with pytest.raises(RetryableError) as refused:
        write(output, aggregated(readings(START, START + MINUTE_NS, 1, "T1", 21.0)))
    output.close()
    message = str(refused.value)
    assert message.startswith(f"table temperatures (mysql 127.0.0.1:{mariadb.port}/"
                              f"{store.database}): {complaint}")
    assert message.endswith("; the table is left as it is") and "\n" not in message
    assert store.rows("SHOW CREATE TABLE temperatures") == before
    assert store.rows("SELECT COUNT(*) FROM temperatures") == [(0,)]


def test_an_existing_table_with_its_own_types_and_columns_is_filled(mariadb, tmp_path):
    """A legacy table with narrower columns and one more column of its own: it is used as
    it is, and a mean it cannot hold rejects that minute only."""
    store = MariaDBStore(mariadb)
    store.execute("CREATE TABLE readings (Stamp datetime NOT NULL, a decimal(4,2), "
                  "b decimal(4,2), note varchar(20) DEFAULT 'logger', UNIQUE KEY (Stamp))")
    options = ('layout = "se521"\ntimezone = "UTC"\n[outputs.sql.se521]\ntable = "readings"\n'
               'time_column = "Stamp"\ncolumns = { T1 = "a", T2 = "b" }\n')
    output = sql_output(store, tmp_path, options)
    lines = aggregated(readings(START, START + 3 * MINUTE_NS, 1, "T1", 21.0)
                       + readings(START + MINUTE_NS, START + 2 * MINUTE_NS, 1, "T2", 250.0))
    result = write(output, lines)
    output.close()
    assert (result.written, result.rejected) == (2, 2), "minute 2 holds a mean of 250 °C"
    found = table(store, "Stamp", ("a", "b", "note"), "readings")
    assert sorted(found) == ["2026-11-21 04:40:00", "2026-11-21 04:42:00"]
    assert all(row[1] is None and row[2] == "logger" for row in found.values())


def test_means_not_on_a_whole_minute_are_skipped_with_a_hint(store, tmp_path, caplog):
    output = sql_output(store, tmp_path, 'layout = "se521"\ntimezone = "UTC"\n')
    with caplog.at_level(logging.WARNING):
        result = write(output, [
            f"se521,channel=T1,device=EMU0001 celsius_mean=21.5 {START + 30 * NS}",
            f'se521,channel=T1,device=EMU0001 celsius=21.5,state="ok" {START}',
            f"se521,channel=T1,device=EMU0002 celsius_mean=22.5 {START}",
            f"se521,channel=T1,device=EMU0001 celsius_mean=23.5 {START}",
        ])
    output.close()
    assert (result.written, result.rejected) == (4, 0)
    assert output.context.stats.get("skipped") == 3
    assert table(store) == {"2026-11-21 04:40:00": (22.5, None, None, None)}, \
        "the first device stored holds the table"
    assert "1-minute windows" in caplog.text and "aggregators.basicstats" in caplog.text


def test_provision_creates_the_table_once_and_a_dry_run_changes_nothing(store, tmp_path):
    output = sql_output(store, tmp_path, 'layout = "se521"\ntimezone = "UTC"\n')
    planned = output.provision(dry_run=True)
    assert planned[-1].startswith("CREATE TABLE") and "temperatures" in planned[-1]
    assert not (store.driver == "sqlite" and store.path.exists()), "a dry run creates no file"
    assert output.provision(dry_run=False) == planned
    assert output.provision(dry_run=False) == []
    assert table(store) == {}
