"""``collector import``: legacy history into the configured outputs, through the normal
pipeline and spool, resumably.

Rows are read in the order they were written (keyset pages of a MySQL table, or the
lines of a CSV export), converted by the kind's ``Importer``, and stored a batch at a
time; after each stored batch (durable in every spool) a checkpoint records how far the
import got, so a run killed half-way resumes there, and a run after a finished one
imports nothing. A batch stored again after a kill is stored idempotently (same series
and timestamp). The outputs deliver while rows are read; the reader waits while a
spool is more than half full, so an import never makes a spool drop anything.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import hashlib
import json
import logging
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

from collector import registry
from collector.agent import Agent
from collector.config import Config, InputOptions
from collector.pipeline import InputAccumulator
from collector.plugin import Importer, Refused
from collector.stats import StatsRegistry
from collector.timezones import LocalTimes, time_zone
from collector.units import Secret

log = logging.getLogger("collector.import")
STALLED_AFTER_S = 60.0
"""Waiting on the outputs this long without progress ends the import (resumable)."""


class ImportProblem(Exception):
    """A problem with the import's source or options, told in one line."""


@dataclass
class ImportRequest:
    kind: str
    source: str
    """mysql://USER@HOST[:PORT]/DATABASE, or a CSV file."""
    timezone: str = "local"
    table: str = ""
    password: Secret = dataclasses.field(default_factory=Secret)
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    dry_run: bool = False
    restart: bool = False
    batch_rows: int = 5000


# ---------------------------------------------------------------- sources
class MySQLSource:
    """A MySQL/MariaDB table, read in pages ordered by a unique key (keyset paging: each
    page starts after the last key read, so a page costs the same however far in)."""

    def __init__(self, url: str, password: Secret) -> None:
        import mysql.connector

        parts = urlsplit(url)
        if parts.password is not None:
            raise ImportProblem(f"{parts.hostname}: give the password with --password-file "
                               "or $MYSQL_PWD, not in the URL (it would end up in logs)")
        database = parts.path.lstrip("/")
        if not database or not parts.hostname:
            raise ImportProblem(f"{url}: expected mysql://USER@HOST[:PORT]/DATABASE")
        self.description = f"mysql://{parts.username or ''}@{parts.hostname}:" \
                           f"{parts.port or 3306}/{database}"
        try:
            self.connection = mysql.connector.connect(
                host=parts.hostname, port=parts.port or 3306, user=unquote(parts.username or ""),
                password=password.reveal(), database=database, connection_timeout=10)
        except mysql.connector.Error as err:
            raise ImportProblem(f"{self.description}: {err.msg}") from None

    def columns(self, table: str) -> list[str]:
        cursor = self.connection.cursor()
        try:
            cursor.execute(f"SELECT * FROM {_quote(table)} LIMIT 0")
            cursor.fetchall()
        except Exception as err:
            raise ImportProblem(f"{self.description}: table {table}: {err}") from None
        columns = [column[0] for column in cursor.description]
        cursor.close()
        return columns

    def lookup(self, table: str) -> list[dict[str, Any]]:
        cursor = self.connection.cursor(dictionary=True)
        try:
            cursor.execute(f"SELECT * FROM {_quote(table)}")
            return list(cursor.fetchall())
        except Exception:
            return []
        finally:
            cursor.close()

    def count(self, table: str, key: tuple[str, ...], after: list | None) -> int:
        where, values = _after(key, after)
        cursor = self.connection.cursor()
        cursor.execute(f"SELECT COUNT(*) FROM {_quote(table)}{where}", values)
        (total,) = cursor.fetchone()
        cursor.close()
        return total

    def pages(self, table: str, key: tuple[str, ...], after: list | None, size: int
              ) -> Iterator[tuple[list[dict[str, Any]], list]]:
        """Pages of rows, each with the key of its last row (where the next starts)."""
        order = ", ".join(map(_quote, key))
        while True:
            where, values = _after(key, after)
            cursor = self.connection.cursor(dictionary=True)
            cursor.execute(f"SELECT * FROM {_quote(table)}{where} ORDER BY {order} "
                           f"LIMIT {int(size)}", values)
            rows = cursor.fetchall()
            cursor.close()
            if not rows:
                return
            after = [_plain(rows[-1][column]) for column in key]
            yield rows, after

    def close(self) -> None:
        self.connection.close()


class CSVSource:
    """A CSV export of one table, with a header line; read in file order. Empty fields,
    NULL and \\N (mysql's export) are no value; numbers and date-times are parsed."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        try:
            stat = self.path.stat()
        except OSError as err:
            raise ImportProblem(f"{path}: {err.strerror}") from None
        self.description = str(self.path)
        self.signature = [stat.st_size, stat.st_mtime_ns]
        with open(self.path, newline="") as handle:
            self._header = next(csv.reader(handle), [])

    def columns(self, table: str) -> list[str]:
        return list(self._header)

    def lookup(self, table: str) -> list[dict[str, Any]]:
        return []

    def count(self, table: str, key: tuple[str, ...], after: list | None) -> int:
        with open(self.path, newline="") as handle:
            lines = sum(1 for _ in csv.reader(handle)) - 1
        return max(0, lines - (after[0] if after else 0))

    def pages(self, table: str, key: tuple[str, ...], after: list | None, size: int
              ) -> Iterator[tuple[list[dict[str, Any]], list]]:
        done = after[0] if after else 0
        header = self._header
        converters: list[Callable[[str], Any]] = [_value] * len(header)
        undecided = set(range(len(header)))
        with open(self.path, newline="") as handle:
            reader = csv.reader(handle)
            for _ in range(done + 1):
                next(reader, None)
            page: list[dict[str, Any]] = []
            for line in reader:
                if undecided:
                    for index in [i for i in undecided if i < len(line)
                                  and line[i] not in _NULLS]:
                        converters[index] = _converter_for(line[index])
                        undecided.discard(index)
                try:
                    values = [None if text in _NULLS else convert(text)
                              for convert, text in zip(converters, line, strict=False)]
                except ValueError:  # a column of mixed kinds: this row value by value
                    values = [None if text in _NULLS else _value(text) for text in line]
                page.append(dict(zip(header, values, strict=False)))
                if len(page) == size:
                    done += len(page)
                    yield page, [done]
                    page = []
            if page:
                yield page, [done + len(page)]

    def close(self) -> None:
        pass


def open_source(request: ImportRequest) -> MySQLSource | CSVSource:
    if request.source.startswith("mysql://"):
        return MySQLSource(request.source, request.password)
    return CSVSource(request.source)


_NULLS = frozenset(("", "NULL", "\\N"))
_INTEGER = re.compile(r"-?\d+")
_NUMBER = re.compile(r"-?\d+(\.\d*)?([eE][-+]?\d+)?")
_DATETIME = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?")


def _converter_for(text: str) -> Callable[[str], Any]:
    """How to read a column, judged by its first value: parsing each value's kind anew
    cost more than everything else an import does with a row."""
    if _INTEGER.fullmatch(text):
        return int
    if _NUMBER.fullmatch(text):
        return float
    if _DATETIME.fullmatch(text):
        return datetime.datetime.fromisoformat
    return str


def _value(text: str) -> Any:
    """One value whatever its column: a number, a date-time, or text."""
    return _converter_for(text)(text)


def _quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


def _after(key: tuple[str, ...], after: list | None) -> tuple[str, tuple]:
    if not after:
        return "", ()
    columns = ", ".join(map(_quote, key))
    return f" WHERE ({columns}) > ({', '.join(['%s'] * len(key))})", tuple(after)


def _plain(value: Any) -> Any:
    """A key value as JSON can keep it (MySQL compares a DATETIME with its text)."""
    return value if isinstance(value, int | float | str) else str(value)


# ---------------------------------------------------------------- checkpoint
class Checkpoint:
    """How far an import of one source got: a small JSON file in the state directory,
    replaced atomically after each stored batch."""

    def __init__(self, state_dir: Path, request: ImportRequest, table: str) -> None:
        identity = f"{request.kind}\n{request.source}\n{table}"
        digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
        self.path = state_dir / "import" / f"{request.kind}-{digest}.json"
        self.data: dict[str, Any] = {"kind": request.kind, "source": request.source,
                                     "table": table, "after": None, "rows": 0,
                                     "complete": False}

    def load(self, signature: list | None) -> None:
        try:
            saved = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as err:
            raise ImportProblem(f"{self.path}: unreadable checkpoint ({err}); --restart "
                               "imports from the start") from None
        if saved.get("signature") != signature:
            raise ImportProblem(f"{self.data['source']} changed since the last import; "
                               "--restart imports it again from the start")
        self.data.update(saved)

    def save(self, after: list, rows: int, signature: list | None,
             complete: bool = False) -> None:
        self.data.update(after=after, rows=rows, signature=signature, complete=complete,
                         saved=datetime.datetime.now(datetime.UTC).isoformat())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.data))
        temporary.replace(self.path)


# ---------------------------------------------------------------- the run
@dataclass
class Outcome:
    rows: int = 0
    metrics: int = 0
    skipped: Counter[str] = dataclasses.field(default_factory=Counter)
    times: Counter[str] = dataclasses.field(default_factory=Counter)
    undelivered: int = 0
    complete: bool = False
    resumed_at: int = 0


def importer_for(kind: str, request: ImportRequest) -> Importer:
    try:
        cls = registry.load("importers", kind)
    except KeyError:
        known = ", ".join(registry.available("importers")) or "none installed"
        raise ImportProblem(f"no importer called {kind!r} (known: {known})") from None
    try:
        times = LocalTimes(time_zone(request.timezone))
    except ValueError as err:
        raise ImportProblem(f"--timezone: {err}") from None
    return cls(times)


def key_of(importer: Importer, columns: list[str], table: str) -> tuple[str, ...]:
    for key in importer.order_by:
        if all(column in columns for column in key):
            return key
    raise ImportProblem(f"table {table}: none of the expected key columns "
                       f"{' or '.join('+'.join(k) for k in importer.order_by)} in "
                       f"{', '.join(columns) or 'no columns'}")


def run(config: Config, request: ImportRequest, out: TextIO = sys.stdout,
        stop: threading.Event | None = None) -> Outcome:
    """Import ``request``; what happened. ``stop`` ends it after the batch in hand."""
    stop = stop or threading.Event()
    importer = importer_for(request.kind, request)
    source = open_source(request)
    outcome = Outcome()
    try:
        importer.prepare(source)
        table = request.table or importer.table
        key = key_of(importer, source.columns(table), table) if isinstance(
            source, MySQLSource) else ("line",)
        signature = getattr(source, "signature", None)
        checkpoint = Checkpoint(Path(config.agent.state_dir), request, table)
        if not (request.restart or request.dry_run):
            checkpoint.load(signature)
        if checkpoint.data["complete"]:
            outcome.complete, outcome.rows = True, checkpoint.data["rows"]
            log.info("%s was imported completely (%d rows, %s); --restart imports it again",
                     source.description, outcome.rows, checkpoint.data.get("saved", ""))
            return outcome
        start = checkpoint.data["after"]
        outcome.resumed_at = outcome.rows = checkpoint.data["rows"]
        total = source.count(table, key, start) + outcome.resumed_at
        store = _Store(config, request.tags, out if request.dry_run else None)
        try:
            with _progress(total, outcome.resumed_at, source.description) as advance:
                position = start
                for rows, position in source.pages(table, key, start, request.batch_rows):
                    metrics = [metric for row in rows for metric in importer.convert(row)]
                    if not store.put(metrics, stop):
                        break
                    outcome.rows += len(rows)
                    outcome.metrics += len(metrics)
                    if not request.dry_run:
                        checkpoint.save(position, outcome.rows, signature)
                    advance(len(rows))
                    if stop.is_set():
                        break
                else:
                    outcome.complete = True
                    if not request.dry_run:
                        checkpoint.save(position or [], outcome.rows, signature, complete=True)
        finally:
            outcome.undelivered = store.finish(stop)
        outcome.skipped = importer.skipped
        outcome.times = importer.times.counted
        return outcome
    finally:
        source.close()


class _Stdout:
    """--dry-run's sink: the line protocol that would be stored, on stdout."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def append(self, payload: bytes, count: int) -> None:
        self.out.write(payload.decode())


class _Store:
    """The configured outputs (or stdout), delivering while the import stores into
    their spools."""

    def __init__(self, config: Config, tags: dict[str, str], out: TextIO | None) -> None:
        outputs_only = dataclasses.replace(config, inputs=[], aggregators=[])
        self.agent = Agent(outputs_only, sinks=None if out is None else [_Stdout(out)])
        counters = StatsRegistry().counters("input", input="import")
        self.accumulator = InputAccumulator(self.agent.pipeline, InputOptions(tags=tags),
                                            counters, buffered=True)
        for output in self.agent.outputs:
            output.start()
        self._waiting_logged = False

    def put(self, metrics: list, stop: threading.Event) -> bool:
        """Store a batch once every spool has room; False when stopped or stalled."""
        while self._wait_for_room(stop):
            try:
                self.accumulator.store(metrics)
                return True
            except Refused as refusal:
                log.warning("a spool refused the batch (%s); waiting", refusal.reason)
                stop.wait(1.0)
        return False

    def _wait_for_room(self, stop: threading.Event) -> bool:
        last_progress = time.monotonic()
        while not stop.is_set():
            full = [o for o in self.agent.outputs if o.spool.bytes > o.spool.max_bytes // 2]
            if not full:
                self._waiting_logged = False
                return True
            if not self._waiting_logged:
                log.info("waiting for %s to deliver before reading on", ", ".join(
                    o.output.context.alias for o in full))
                self._waiting_logged = True
            before = sum(o.spool.bytes for o in full)
            stop.wait(0.5)
            if sum(o.spool.bytes for o in full) < before:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > STALLED_AFTER_S:
                log.error("the outputs delivered nothing for %.0f s; stopping (the import "
                          "resumes where it stopped)", STALLED_AFTER_S)
                return False
        return False

    def finish(self, stop: threading.Event) -> int:
        """Let the outputs deliver everything spooled now (until they stall for
        ``STALLED_AFTER_S`` or ``stop``), close them, and say how much stays spooled."""
        outputs = self.agent.outputs
        for output in outputs:
            output.begin_stop(float("inf"))
        last, last_change = None, time.monotonic()
        while any(output.thread.is_alive() for output in outputs) and not stop.is_set():
            backlog = sum(output.spool.backlog for output in outputs)
            if backlog != last:
                last, last_change = backlog, time.monotonic()
            elif time.monotonic() - last_change > STALLED_AFTER_S:
                break
            stop.wait(0.1)
        self.agent.hurry()
        self.agent.close()
        return sum(output.spool.backlog for output in outputs)


@contextlib.contextmanager
def _progress(total: int, done: int, what: str):
    """A progress bar with rate and ETA on a terminal (rich); log lines otherwise."""
    if sys.stderr.isatty():
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class Rate(ProgressColumn):
            def render(self, task) -> Text:
                return Text(f"{task.speed:,.0f} rows/s" if task.speed else "")

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   Rate(), TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, transient=False) as bar:
            task = bar.add_task(f"importing {what}", total=total, completed=done)
            yield lambda rows: bar.advance(task, rows)
        return
    state = {"done": done, "next": 0.0}

    def advance(rows: int) -> None:
        state["done"] += rows
        if time.monotonic() >= state["next"]:
            state["next"] = time.monotonic() + 10
            log.info("imported %d of %d rows", state["done"], total)

    yield advance


def install_stop_signals(stop: threading.Event) -> None:
    """SIGINT/SIGTERM end the import after the batch in hand (it resumes from there)."""
    def on_signal(signum, frame) -> None:
        log.warning("%s: stopping after this batch; run the same import again to resume",
                    signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


def summary(outcome: Outcome) -> str:
    """What an import did, for the person who ran it."""
    lines = [f"imported {outcome.rows} rows ({outcome.metrics} metrics this run"
             + (f", resumed after row {outcome.resumed_at}" if outcome.resumed_at else "")
             + ")" + ("" if outcome.complete else "; not finished: run it again to resume")]
    lines += [f"  left out: {count} {reason}" for reason, count in outcome.skipped.items()]
    described = {"ambiguous_first": "in a repeated autumn hour, read as its first pass",
                 "ambiguous_second": "in a repeated autumn hour, read as its second pass",
                 "nonexistent": "in a spring-forward gap, read as before the change"}
    lines += [f"  local times: {count} {described[case]}"
              for case, count in outcome.times.items()]
    if outcome.undelivered:
        lines.append(f"  {outcome.undelivered} metrics still spooled: the next "
                     "`collector run` (or this import again) delivers them")
    return "\n".join(lines)
