"""outputs.sql throughput vs a plain ``executemany`` of the same rows, same connector.

    .venv/bin/python bench/sql_output.py [N] [ROUNDS]   (defaults 50,000 and 5; needs mariadbd)

The workload is raw SE521 readings (six tags, a float and a string field) in batches
of 1,000, the agent's default batch. Ours: ``SQLOutput.write`` of each batch's line
protocol into the generic layout (decode, checks, upsert, one transaction per batch).
Reference: the same rows, already as tuples, with ``executemany`` of a plain INSERT
into a table of the same DDL and one commit per batch: what a script would do, with
nothing to parse, check or merge. Both sides commit durably (InnoDB's default flush
at commit; SQLite WAL with synchronous=FULL). The two write batch by batch in turn,
each round into fresh tables, and the median ratio of the rounds counts. The time
ours spends in the core's line-protocol decoder is reported too.
"""

import logging
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent.parent)]

from collector import config as config_module  # noqa: E402
from collector import decode_line_protocol  # noqa: E402
from collector.agent import build_plugin  # noqa: E402
from collector.stats import StatsRegistry  # noqa: E402
from plugins.outputs.sql.database import TimeFormatter  # noqa: E402
from plugins.outputs.sql.generic import tag_hash  # noqa: E402
from tests.mariadb import MariaDB  # noqa: E402

BATCH = 1000
T0 = 1_795_236_060_000_000_000
TAGS = ("channel", "device", "host", "model", "raw_unit", "site")
COLUMNS = ("time", "tag_hash", *TAGS, "celsius", "state")


def workload(n: int) -> list[bytes]:
    """Line protocol in batches of BATCH lines: four channels read every second."""
    lines = []
    for i in range(n):
        channel = f"T{i % 4 + 1}"
        stamp = T0 + (i // 4) * 10**9
        lines.append(f"se521,channel={channel},device=/dev/se521,host=pi,model=521,raw_unit=F,"
                     f'site=roof celsius={20 + (i % 500) / 100},state="ok" {stamp}\n')
    return ["".join(lines[i:i + BATCH]).encode() for i in range(0, n, BATCH)]


def rows_of(payloads: list[bytes], digits: int) -> list[list[tuple]]:
    """The rows ours stores, as tuples, with ``digits`` of a second in the time."""
    formatter = TimeFormatter(digits)
    batches = []
    for payload in payloads:
        batch = []
        for metric in decode_line_protocol(payload):
            batch.append((formatter(metric.time_ns), tag_hash(metric.tags),
                          *(metric.tags[tag] for tag in TAGS),
                          metric.fields["celsius"], metric.fields["state"]))
        batches.append(batch)
    return batches


def sql_output(options: str, state: Path):
    config = config_module.parse(f'[agent]\nstate_dir = "{state}"\n[[outputs.sql]]\n{options}',
                                 "bench")
    return build_plugin(config.outputs[0], config, StatsRegistry())


class MySQLReference:
    """executemany of a plain INSERT and a commit, per batch."""

    def __init__(self, server: MariaDB, database: str) -> None:
        server.query(f"CREATE DATABASE {database}")
        self.connection = server.connect(database, autocommit=False)
        self.cursor = self.connection.cursor()
        self.cursor.execute(create_table("DATETIME(6)", "`"))
        self.insert = (f"INSERT INTO bench ({', '.join(COLUMNS)}) "
                       f"VALUES ({', '.join(['%s'] * len(COLUMNS))})")

    def write(self, rows: list[tuple]) -> None:
        self.cursor.executemany(self.insert, rows)
        self.connection.commit()

    def close(self) -> None:
        self.connection.close()


class SQLiteReference:
    """executemany of a plain INSERT in a transaction, per batch; same pragmas as ours."""

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode = WAL")
        self.connection.execute("PRAGMA synchronous = FULL")
        self.connection.execute(create_table("DATETIME", '"'))
        self.insert = f"INSERT INTO bench VALUES ({', '.join(['?'] * len(COLUMNS))})"

    def write(self, rows: list[tuple]) -> None:
        self.connection.execute("BEGIN")
        self.connection.executemany(self.insert, rows)
        self.connection.execute("COMMIT")

    def close(self) -> None:
        self.connection.close()


def race(output, reference, payloads: list[bytes], batches: list[list[tuple]]
         ) -> tuple[float, float, float]:
    """Seconds of ours, of the decoder within ours, and of the reference. The two write
    batch by batch in turn (each going first every other batch), so that a neighbour's
    load on the machine falls on both alike; the decoder is timed on its own right
    after, on the same batch."""
    mine = theirs = decoding = 0.0
    clock = time.perf_counter
    for index, (payload, rows) in enumerate(zip(payloads, batches, strict=True)):
        if index % 2:
            started = clock()
            reference.write(rows)
            middle = clock()
            assert output.write(payload, BATCH).written == BATCH
            theirs, mine = theirs + middle - started, mine + clock() - middle
        else:
            started = clock()
            assert output.write(payload, BATCH).written == BATCH
            middle = clock()
            reference.write(rows)
            mine, theirs = mine + middle - started, theirs + clock() - middle
        started = clock()
        decode_line_protocol(payload)
        decoding += clock() - started
    output.close()
    reference.close()
    return mine, decoding, theirs


def create_table(time_type: str, quote: str) -> str:
    tags = ", ".join(f"{quote}{tag}{quote} VARCHAR(255) NULL" for tag in TAGS)
    return (f"CREATE TABLE bench (time {time_type} NOT NULL, tag_hash BIGINT NOT NULL, {tags}, "
            "celsius DOUBLE NULL, state TEXT NULL, PRIMARY KEY (time, tag_hash))")


def report(name: str, n: int, rounds: list[tuple[float, float, float]]) -> None:
    ratios = [reference / mine for mine, _, reference in rounds]
    decode = statistics.median(d / mine for mine, d, _ in rounds)
    without = statistics.median(reference / (mine - d) for mine, d, reference in rounds)
    print(f"{name}: ours {statistics.median(n / m for m, _, _ in rounds):,.0f} rows/s, "
          f"executemany {statistics.median(n / r for _, _, r in rounds):,.0f} rows/s; "
          f"ratio median {statistics.median(ratios):.2f} "
          f"(rounds {', '.join(f'{r:.2f}' for r in ratios)}); decoding is {decode:.0%} of "
          f"ours, without it {without:.2f}")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    logging.disable(logging.WARNING)
    payloads = workload(n)
    mysql_rows, sqlite_rows = rows_of(payloads, 6), rows_of(payloads, 9)
    mysql_rounds, sqlite_rounds = [], []
    with tempfile.TemporaryDirectory(dir=Path.home()) as directory:
        root = Path(directory)
        (root / "mariadb").mkdir()
        server = MariaDB(root / "mariadb")
        server.start()
        try:
            for index in range(count):
                options = (f'driver = "mysql"\nport = {server.port}\nusername = "root"\n'
                           f'database = "ours{index}"\n')
                mysql_rounds.append(race(sql_output(options, root),
                                         MySQLReference(server, f"reference{index}"),
                                         payloads, mysql_rows))
                sqlite_rounds.append(race(
                    sql_output(f'driver = "sqlite"\npath = "ours{index}.db"\n', root),
                    SQLiteReference(root / f"reference{index}.db"), payloads, sqlite_rows))
        finally:
            server.stop()
    report("MariaDB", n, mysql_rounds)
    report("SQLite", n, sqlite_rounds)


if __name__ == "__main__":
    main()
