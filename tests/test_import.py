"""collector import: legacy history into influxd, counted, resumable, never twice."""

from __future__ import annotations

import datetime
import json
import random
import signal
import zoneinfo
from pathlib import Path

from tests.helpers import collector, run_collector, wait_until, write_config

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
FALL_BACK = datetime.datetime(2025, 10, 26)  # Berlin repeats 02:00-02:59 that night


def influx_config(tmp_path: Path, influxd, database: str) -> Path:
    return write_config(tmp_path, f"""
[agent]
state_dir = "{tmp_path / 'state'}"
omit_hostname = true
[[outputs.influxdb]]
urls = ["{influxd.url}"]
database = "{database}"
[[outputs.influxdb.retention_policies]]
name = "history"
duration = "INF"
default = true
""")


def se521_rows(count: int, start: datetime.datetime, seed: int = 7) -> list[list[str]]:
    """Minute rows as the legacy logger wrote them: NULL for a channel it knew was open,
    1802.6 for one its buggy flag test missed, naive local times."""
    rng = random.Random(seed)
    rows = []
    for minute in range(count):
        values = []
        for _ in range(4):
            roll = rng.random()
            values.append("NULL" if roll < 0.05 else "1802.6" if roll < 0.08
                          else f"{rng.uniform(-20, 400):.2f}")
        rows.append([(start + datetime.timedelta(minutes=minute)).strftime("%Y-%m-%d %H:%M:%S"),
                     *values])
    return rows


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.write_text(",".join(header) + "\n" + "".join(",".join(row) + "\n" for row in rows))
    return path


def ns(year, month, day, hour, minute=0) -> int:
    """A UTC time as influxd answers it (epoch nanoseconds)."""
    return int(datetime.datetime(year, month, day, hour, minute, tzinfo=datetime.UTC)
               .timestamp()) * 10**9


def stored(influxd, database: str, query: str) -> dict:
    return {row.get("channel", ""): row["count"]
            for row in influxd.rows(query, database, missing_ok=True)}


def expected_per_channel(rows: list[list[str]]) -> dict[str, int]:
    counts = {}
    for index in range(4):
        counts[f"T{index + 1}"] = sum(1 for row in rows
                                      if row[index + 1] not in ("NULL", "1802.6"))
    return counts


def test_se521_history_lands_whole_and_a_second_run_adds_nothing(tmp_path, influxd, database):
    rows = se521_rows(3000, FALL_BACK - datetime.timedelta(hours=1))  # across the fall-back
    unique = {row[0]: row for row in rows}  # DateTm was the legacy PRIMARY KEY
    source = write_csv(tmp_path / "temperatures.csv", ["DateTm", "tc1", "tc2", "tc3", "tc4"],
                       list(unique.values()))
    config = influx_config(tmp_path, influxd, database)
    result = run_collector("import", "se521", str(source), "-c", str(config),
                           "--timezone", "Europe/Berlin")
    assert result.returncode == 0, result.stderr
    query = 'SELECT count(celsius_mean) FROM se521 GROUP BY "channel"'
    assert stored(influxd, database, query) == expected_per_channel(list(unique.values()))
    assert "in a repeated autumn hour, read as its first pass" in result.stderr
    assert "outside the thermocouple's range" in result.stderr
    (maximum,) = influxd.rows("SELECT max(celsius_mean) FROM se521", database)
    assert maximum["max"] < 1372, "an open probe never becomes a temperature"
    again = run_collector("import", "se521", str(source), "-c", str(config),
                          "--timezone", "Europe/Berlin")
    assert again.returncode == 0 and "imported completely" in again.stderr
    assert "0 metrics this run" in again.stderr
    assert stored(influxd, database, query) == expected_per_channel(list(unique.values()))


def test_local_times_become_utc_across_the_fall_back(tmp_path, influxd, database):
    rows = [["2025-10-26 01:59:00", "1", "", "", ""], ["2025-10-26 02:30:00", "2", "", "", ""],
            ["2025-10-26 03:00:00", "3", "", "", ""]]
    source = write_csv(tmp_path / "t.csv", ["DateTm", "tc1", "tc2", "tc3", "tc4"], rows)
    result = run_collector("import", "se521", str(source), "-c",
                           str(influx_config(tmp_path, influxd, database)),
                           "--timezone", "Europe/Berlin")
    assert result.returncode == 0, result.stderr
    times = [row["time"] for row in influxd.rows("SELECT celsius_mean FROM se521", database)]
    assert times == [ns(2025, 10, 25, 23, 59), ns(2025, 10, 26, 0, 30), ns(2025, 10, 26, 2)]


def test_raven_history_keeps_export_negative_and_skips_sentinels(tmp_path, influxd, database):
    header = ["id", "time", "demand", "multiplier", "divisor", "run", "hash"]
    rows = [["1", "2024-06-01 10:00:00", "864", "1", "1000", "roof", "ab12"],
            ["2", "2024-06-01 10:00:07", "-1", "-1", "-1", "roof", "ab12"],
            ["3", "2024-06-01 10:00:14", str(2**32 - 1500), "1", "1000", "roof", "ab12"],
            ["4", "2024-06-03 09:00:00", "300", "0", "0", "roof", "ab12"]]  # a 2-day gap
    source = write_csv(tmp_path / "demand.csv", header, rows)
    result = run_collector("import", "raven", str(source), "-c",
                           str(influx_config(tmp_path, influxd, database)),
                           "--timezone", "UTC", "--tag", "meter_mac=0x00135003007c1a2b")
    assert result.returncode == 0, result.stderr
    assert "1 sentinel row" in result.stderr
    points = influxd.rows('SELECT kw, raw, multiplier, divisor FROM raven_demand GROUP BY *',
                          database)
    assert [(p["kw"], p["raw"]) for p in points] == [(0.864, 864), (-1.5, -1500), (300.0, 300)]
    assert {p["meter_mac"] for p in points} == {"0x00135003007c1a2b"}
    assert points[-1]["time"] == ns(2024, 6, 3, 9)


def test_dry_run_prints_what_it_would_store_and_stores_nothing(tmp_path):
    source = write_csv(tmp_path / "t.csv", ["DateTm", "tc1", "tc2", "tc3", "tc4"],
                       [["2025-01-01 12:00:00", "21.5", "NULL", "", "1802.6"]])
    config = write_config(tmp_path, f'[agent]\nstate_dir = "{tmp_path}"\nhostname = "pi"\n'
                                    '[[outputs.file]]\nfiles = ["out.lp"]\n')
    result = run_collector("import", "se521", str(source), "-c", str(config), "--dry-run",
                           "--timezone", "UTC", "--tag", "device=SN42")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ("se521,channel=T1,device=SN42,host=pi celsius_mean=21.5 "
                             "1735732800000000000\n")
    assert not (tmp_path / "out.lp").exists() and not (tmp_path / "import").exists()


def checkpointed_rows(state: Path) -> int:
    found = list((state / "import").glob("*.json")) if (state / "import").exists() else []
    return json.loads(found[0].read_text())["rows"] if found else 0


def test_a_legacy_table_of_100k_rows_lands_once_and_resumes_after_kill_9(
        tmp_path, influxd, database, mariadb):
    rows = se521_rows(100_000, datetime.datetime(2023, 1, 1), seed=11)
    source = mariadb.load_se521_legacy([
        (row[0], *(None if value == "NULL" else float(value) for value in row[1:]))
        for row in rows])
    config = influx_config(tmp_path, influxd, database)
    first = collector("import", "se521", source, "-c", str(config), "--timezone", "UTC")
    wait_until(lambda: checkpointed_rows(tmp_path / "state") >= 20_000, timeout=60, every=0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert 0 < checkpointed_rows(tmp_path / "state") < 100_000, "killed half-way"
    resumed = run_collector("import", "se521", source, "-c", str(config), "--timezone", "UTC",
                            timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed after row" in resumed.stderr
    query = 'SELECT count(celsius_mean) FROM se521 GROUP BY "channel"'
    expected = expected_per_channel(rows)
    assert stored(influxd, database, query) == expected
    again = run_collector("import", "se521", source, "-c", str(config), "--timezone", "UTC")
    assert again.returncode == 0 and "imported completely" in again.stderr
    assert stored(influxd, database, query) == expected


def test_python_raven_tables_give_the_meter_and_the_autumn_second_pass(
        tmp_path, influxd, database, mariadb):
    def row(index: int, local: str, demand: int) -> tuple:
        return (index, local, demand & 0xFFFFFFFF, 1, 1000, "house", "9f3c")

    source = mariadb.load_raven_legacy([
        row(1, "2025-10-26 02:50:00", 500), row(2, "2025-10-26 02:55:00", -200),
        row(3, "2025-10-26 02:05:00", 700),  # the clock went back: the second 02:05
        row(4, "2025-10-26 03:10:00", 0)], meter_id="0x00135003007c1a2b")
    result = run_collector("import", "raven", source, "-c",
                           str(influx_config(tmp_path, influxd, database)),
                           "--timezone", "Europe/Berlin")
    assert result.returncode == 0, result.stderr
    assert "1 in a repeated autumn hour, read as its second pass" in result.stderr
    points = influxd.rows("SELECT kw FROM raven_demand GROUP BY *", database)
    assert [(p["time"], p["kw"]) for p in points] == [
        (ns(2025, 10, 26, 0, 50), 0.5), (ns(2025, 10, 26, 0, 55), -0.2),
        (ns(2025, 10, 26, 1, 5), 0.7), (ns(2025, 10, 26, 2, 10), 0.0)]
    assert {p["meter_mac"] for p in points} == {"0x00135003007c1a2b"}


def test_a_password_in_the_url_is_refused_in_one_line(tmp_path):
    config = write_config(tmp_path, f'[agent]\nstate_dir = "{tmp_path}"\n[[outputs.file]]\n')
    result = run_collector("import", "se521", "mysql://root:hunter2@127.0.0.1:1/SE521",
                           "-c", str(config))
    assert result.returncode == 2
    assert "--password-file" in result.stderr and "hunter2" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
