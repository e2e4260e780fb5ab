"""outputs.sql, layout = "generic", against real SQLite and MariaDB."""

from __future__ import annotations

import pytest

from collector import RetryableError
from tests.mariadb import MariaDBStore
from tests.sql_helpers import Options, sql_output, stamp, write

T0 = 1_795_236_060_000_000_000
MS = 1_000_000


def column_types(store) -> dict[str, str]:
    if store.driver == "sqlite":
        return {name: kind.lower() for _, name, kind, *_ in store.rows("PRAGMA table_info(se521)")}
    return {name: kind.lower() for name, kind in store.rows(
        "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'se521'")}


def test_a_table_per_measurement_whose_columns_grow_with_new_tags_and_fields(store, tmp_path):
    output = sql_output(store, tmp_path)
    first = write(output, [
        f'se521,channel=T1,device=EMU0001 celsius=21.37,state="ok" {T0}',
        f'se521,channel=T4,device=EMU0001 state="unplugged" {T0}',
        f"raven_demand,meter_mac=0x01 kw=-1.5,raw=-1500i,multiplier=1i,divisor=1000i {T0}",
    ])
    assert (first.written, first.rejected) == (3, 0)
    later = write(output, [f'se521,channel=T1,device=EMU0001,label=panel celsius=21.5,'
                           f'state="ok",alarm=true {T0 + 10**9}'])
    assert (later.written, later.rejected) == (1, 0)
    output.close()

    assert column_types(store) == {
        "time": "datetime(6)" if store.driver == "mysql" else "datetime",
        "tag_hash": "bigint(20)" if store.driver == "mysql" else "bigint",
        "channel": "varchar(255)", "device": "varchar(255)", "celsius": "double",
        "state": "text", "label": "varchar(255)",
        "alarm": "tinyint(1)" if store.driver == "mysql" else "boolean",
    }
    rows = store.rows("SELECT channel, label, celsius, state, alarm FROM se521 "
                      "ORDER BY time, channel")
    assert rows == [("T1", None, 21.37, "ok", None), ("T4", None, None, "unplugged", None),
                    ("T1", "panel", 21.5, "ok", 1)]
    (demand,) = store.rows("SELECT time, meter_mac, kw, raw, multiplier, divisor FROM raven_demand")
    assert stamp(demand[0]) == "2026-11-21 04:41:00.000000"
    assert demand[1:] == ("0x01", -1.5, -1500, 1, 1000)
    assert output.context.stats.get("columns_added") == 11


def test_a_redelivered_batch_leaves_no_duplicate_and_fields_merge_like_influxdb(store, tmp_path):
    batch = [f"flow,loop=primary,site=roof litres={i}.5,pump=true {T0 + i * 10**9}"
             for i in range(50)]
    first = sql_output(store, tmp_path)
    write(first, batch)
    first.close()
    restarted = sql_output(store, tmp_path)
    assert write(restarted, batch).written == 50
    write(restarted, [f"flow,site=roof,loop=primary temp_c=61.5 {T0}",
                      f"flow,loop=primary,site=roof litres=99.5 {T0 + 60 * 10**9}"])
    restarted.close()

    assert store.rows("SELECT COUNT(*) FROM flow") == [(51,)]
    assert store.rows("SELECT litres, pump, temp_c FROM flow ORDER BY time LIMIT 1") == [
        (0.5, 1, 61.5)], "the second point's field joined the first's, nothing was erased"


def test_a_value_that_cannot_be_stored_rejects_its_metric_alone(store, tmp_path):
    output = sql_output(store, tmp_path)
    write(output, [f"m,probe=a v=1.5,n=1i {T0}"])
    result = write(output, [
        f"m,probe=a v=2.5 {T0 + 1 * MS}",
        f'm,probe=b v="not a number" {T0 + 2 * MS}',
        f"m,probe=c n=1.5 {T0 + 3 * MS}",
        f"m,probe={'x' * 256} v=3.5 {T0 + 4 * MS}",
        f"m,probe=d n=18446744073709551615u {T0 + 5 * MS}",
        f"m,probe=e v=4i {T0 + 6 * MS}",
    ])
    output.close()
    assert (result.written, result.rejected) == (2, 4)
    assert store.rows("SELECT probe, v FROM m ORDER BY time") == [
        ("a", 1.5), ("a", 2.5), ("e", 4.0)]


def test_a_table_this_output_did_not_make_is_left_alone(mariadb, tmp_path):
    store = MariaDBStore(mariadb)
    store.execute("CREATE TABLE m (id INT PRIMARY KEY, v DOUBLE)")
    output = sql_output(store, tmp_path)
    result = write(output, [f"m v=1.5 {T0}", f"other v=2.5 {T0}"])
    output.close()
    assert (result.written, result.rejected) == (1, 1)
    assert store.rows("SELECT COUNT(*) FROM m") == [(0,)]
    assert [row[0] for row in store.rows("SHOW COLUMNS FROM m")] == ["id", "v"]


def test_names_the_server_cannot_take_reject_only_their_metrics(mariadb, tmp_path):
    output = sql_output(MariaDBStore(mariadb), tmp_path)
    result = write(output, [f"m,{'k' * 65}=x v=1 {T0}", f"{'t' * 65} v=1 {T0}",
                            f"m,probe=a v=1 {T0}", f"m v=1,bad\\ name\\ =2 {T0 + 1 * MS}"])
    output.close()
    assert (result.written, result.rejected) == (1, 3)


def test_the_mysql_session_is_strict_and_in_utc(mariadb, tmp_path):
    output = sql_output(MariaDBStore(mariadb), tmp_path)
    write(output, [f"m v=1 {T0}"])
    db = output._database()
    (mode, zone), = db.query("SELECT @@SESSION.sql_mode, @@SESSION.time_zone")
    output.close()
    assert "STRICT_ALL_TABLES" in mode and zone == "+00:00"


def test_an_unreachable_server_is_retried_with_a_reason(tmp_path):
    output = sql_output(Options('driver = "mysql"\nport = 9\nusername = "root"\n'
                                'database = "nowhere"\n'), tmp_path)
    with pytest.raises(RetryableError, match=r"mysql 127\.0\.0\.1:9/nowhere: .*\(2003\)"):
        write(output, [f"m v=1 {T0}"])
