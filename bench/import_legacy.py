"""collector import of legacy python-raven rows into a real influxd, against POSTing the
same line protocol to it directly.

    .venv/bin/python bench/import_legacy.py [ROWS] [SOURCE]   (defaults 1,700,000, csv)

SOURCE is ``csv`` (a CSV export) or ``mysql`` (the legacy table in a MariaDB started
here as in the tests). The reference is what the import ends up sending: the same
points (host tag included), encoded in advance and POSTed back to back in batches of
5,000 lines, which is influxd's own limit. The import adds reading the rows,
converting them, the durable spool and delivery. Each side writes into its own fresh
database; the ratio is import time / direct time (target <= 1.5).
"""

from __future__ import annotations

import datetime
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent.parent)]

from collector import config as config_module  # noqa: E402
from collector import importing  # noqa: E402
from collector.lineprotocol import Encoder  # noqa: E402
from collector.shaping import Shaping  # noqa: E402
from collector.timezones import LocalTimes, time_zone  # noqa: E402
from plugins.inputs.raven.legacy import RavenImporter  # noqa: E402
from tests.servers import HTTP, InfluxDB  # noqa: E402

BATCH = 5000
HOST = "bench"
START = datetime.datetime(2021, 3, 1)


def legacy_rows(count: int) -> list[list]:
    """python-raven rows, one every 7 s, negative demand stored unsigned as it did."""
    rows = []
    for index in range(count):
        demand = (index * 37) % 5000 - 1500
        rows.append([index + 1, START + datetime.timedelta(seconds=7 * index),
                     demand & 0xFFFFFFFF, 1, 1000, "bench", "ab12"])
    return rows


HEADER = ["id", "time", "demand", "multiplier", "divisor", "run", "hash"]


def write_csv(path: Path, rows: list[list]) -> None:
    with open(path, "w") as handle:
        handle.write(",".join(HEADER) + "\n")
        for row in rows:
            handle.write(f"{row[0]},{row[1]:%Y-%m-%d %H:%M:%S},{row[2]},{row[3]},{row[4]},"
                         f"{row[5]},{row[6]}\n")


def reference_payloads(rows: list[list]) -> list[bytes]:
    importer = RavenImporter(LocalTimes(time_zone("UTC")))
    encoder = Encoder("ns", Shaping(tags_under={"host": HOST}))
    payloads = []
    for start in range(0, len(rows), BATCH):
        metrics = [metric for row in rows[start:start + BATCH]
                   for metric in importer.convert(dict(zip(HEADER, row, strict=True)))]
        payloads.append(encoder.encode(metrics)[0])
    return payloads


def direct(server: InfluxDB, payloads: list[bytes], db: str) -> float:
    server.query(f'CREATE DATABASE "{db}"')
    started = time.perf_counter()
    for payload in payloads:
        assert HTTP.request("POST", f"{server.url}/write?db={db}&precision=ns",
                            body=payload).status == 204
    return time.perf_counter() - started


def through_import(server: InfluxDB, source: str, db: str, state: Path) -> float:
    config = config_module.parse(f"""
[agent]
state_dir = "{state}"
hostname = "{HOST}"
metric_batch_size = {BATCH}
[[outputs.influxdb]]
urls = ["{server.url}"]
database = "{db}"
content_encoding = "identity"
""", "bench")
    request = importing.ImportRequest("raven", source, timezone="UTC", batch_rows=BATCH)
    started = time.perf_counter()
    outcome = importing.run(config, request)
    elapsed = time.perf_counter() - started
    assert outcome.complete and not outcome.undelivered, outcome
    return elapsed


def count(server: InfluxDB, db: str) -> int:
    (row,) = server.rows("SELECT count(kw) FROM raven_demand", db)
    return row["count"]


def main(rows_wanted: int, kind: str) -> None:
    rows = legacy_rows(rows_wanted)
    with tempfile.TemporaryDirectory() as directory:
        base = Path(directory)
        if kind == "csv":
            source = str(base / "demand.csv")
            write_csv(Path(source), rows)
        else:
            from tests.mariadb import MariaDB

            (base / "mariadb").mkdir()
            mariadb = MariaDB(base / "mariadb")
            mariadb.start()
            source = mariadb.load_raven_legacy(rows)
        payloads = reference_payloads(rows)
        (base / "influxd").mkdir()
        server = InfluxDB(base / "influxd")
        server.start()
        try:
            imported = through_import(server, source, "imported", base / "state")
            posted = direct(server, payloads, "direct")
            assert count(server, "imported") == count(server, "direct") == len(rows)
        finally:
            server.stop()
            if kind == "mysql":
                mariadb.stop()
    print(f"{len(rows):,} legacy rows from {kind}: import {imported:.1f} s "
          f"({len(rows) / imported:,.0f} rows/s), direct POST of the same line protocol "
          f"{posted:.1f} s; import/direct = {imported / posted:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_700_000,
         sys.argv[2] if len(sys.argv) > 2 else "csv")
