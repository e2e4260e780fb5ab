"""outputs.sql, layout = "raven": the legacy python-raven tables, on SQLite and MariaDB."""

from __future__ import annotations

import re

from tests.mariadb import MariaDBStore
from tests.sql_helpers import sql_output, stamp, write

METER = "0x00135003007c1a2b"
PUSH0 = 1_795_240_263_000_000_000
"""2026-11-21 05:51:03 UTC, a meter timestamp (whole seconds)."""


def pushes(first: int, last: int) -> list[str]:
    """Demand pushes every 8 s; from the 5th on the house exports (negative demand)."""
    lines = []
    for i in range(first, last):
        raw = 1500 - 400 * i
        lines.append(f"raven_demand,device_mac=0xd8d5b9000000abcd,meter_mac={METER} "
                     f"kw={raw / 1000},raw={raw}i,multiplier=1i,divisor=1000i "
                     f"{PUSH0 + i * 8 * 10**9}")
    return lines


def test_demand_rows_at_the_meters_time_and_one_run_row_per_start(store, tmp_path):
    options = 'layout = "raven"\nraven.run = "basement"\n'
    first_run = sql_output(store, tmp_path, options)
    write(first_run, pushes(0, 10))
    summation = (f"raven_summation,meter_mac={METER} delivered_kwh=1.5,delivered_raw=1500i "
                 f"{PUSH0}")
    assert write(first_run, [*pushes(10, 20), summation]).written == 11
    assert first_run.context.stats.get("skipped") == 1
    first_run.close()

    second_run = sql_output(store, tmp_path, options)
    write(second_run, pushes(10, 30))
    second_run.close()
    assert second_run.context.stats.get("already_stored") == 10, "the redelivered batch"

    runs = store.rows("SELECT name, hash, meter_id, time FROM run_info ORDER BY time, hash")
    assert len(runs) == 2 and {run[0] for run in runs} == {"basement"}
    assert {run[2] for run in runs} == {METER}
    hashes = {run[1] for run in runs}
    assert all(re.fullmatch(r"[0-9a-f-]{36}", run_hash) for run_hash in hashes)
    rows = store.rows("SELECT time, demand, multiplier, divisor, run, hash FROM "
                      "instantaneous_demand ORDER BY time")
    assert len(rows) == 30
    assert [row[1] for row in rows] == [1500 - 400 * i for i in range(30)]
    assert rows[29][1] == -10100, "export stays negative"
    assert stamp(rows[0][0]) == "2026-11-21 05:51:03.000000"
    assert {row[2:5] for row in rows} == {(1, 1000, "basement")}
    first_hash = {row[5] for row in rows[:20]}
    assert len(first_hash) == 1 and first_hash < hashes
    assert {row[5] for row in rows[20:]} == hashes - first_hash


def test_existing_legacy_tables_without_keys_are_filled_and_not_duplicated(mariadb, tmp_path):
    """The tables as a legacy install may have them: an id column, FLOAT numbers, no
    key on time; a batch delivered again after a restart adds no demand row (the
    restart itself is a run: it has its row)."""
    store = MariaDBStore(mariadb)
    store.execute(
        "CREATE TABLE instantaneous_demand (id INT AUTO_INCREMENT PRIMARY KEY, "
        "time DATETIME DEFAULT CURRENT_TIMESTAMP, demand FLOAT, multiplier FLOAT, "
        "divisor FLOAT, run VARCHAR(20), hash VARCHAR(40));"
        "CREATE TABLE run_info (name VARCHAR(20), hash VARCHAR(40), meter_id VARCHAR(20), "
        "time DATETIME DEFAULT CURRENT_TIMESTAMP)")
    for _ in range(2):
        output = sql_output(store, tmp_path, 'layout = "raven"\n')
        write(output, pushes(0, 5))
        output.close()
    assert store.rows("SELECT COUNT(*) FROM instantaneous_demand") == [(5,)]
    assert store.rows("SELECT COUNT(*) FROM run_info") == [(2,)]
