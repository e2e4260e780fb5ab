"""A 204 means the metrics are durable: through a full disk, a refusing spool, a cursor
that cannot be written, and a shutdown against a server that hangs."""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time

from collector import Metric
from tests.disk import Filler, small_disk
from tests.fixed_input import agent_from, output_counters, register_input
from tests.helpers import Sender, collector, post, stop, wait_until, write_config
from tests.servers import free_port

LISTENER = """
[agent]
state_dir = "{state}"
interval = "0.5s"
flush_interval = "0.3s"
omit_hostname = true
{agent}
[[inputs.influxdb_listener]]
service_address = "127.0.0.1:{port}"
[[outputs.influxdb]]
urls = ["{url}"]
database = "durability"
timeout = "{timeout}"
retry_max_interval = "1s"
{output}
"""


def start(tmp_path, url: str, agent: str = "", output: str = "", timeout: str = "2s",
          extra: str = ""):
    """A collector with a listener in front of outputs.influxdb; its port and log path."""
    port = free_port()
    config = LISTENER.format(state=tmp_path / "state", port=port, url=url, agent=agent,
                             output=output, timeout=timeout) + extra
    log_path = tmp_path / "collector.log"
    with open(log_path, "ab") as log:
        process = collector("run", "-c", str(write_config(tmp_path, config)), stderr=log)
    wait_until(lambda: post(f"http://127.0.0.1:{port}", b"") == 204, timeout=20)
    return process, port, log_path


def stored(influxd) -> dict[str, int]:
    rows = influxd.rows('SELECT count(n) FROM flow GROUP BY "series"', "durability",
                        missing_ok=True)
    return {row["series"]: row["count"] for row in rows}


def test_a_full_disk_is_refused_honestly_and_loses_nothing(tmp_path, own_influxd):
    """The state directory fills up while points stream in: the listener answers 507
    instead of 204, delivery goes on, and when space returns everything resumes by
    itself; every point that got a 204 is stored, none twice."""
    with small_disk(tmp_path / "state", "2m") as state:
        process, port, log_path = start(
            tmp_path, own_influxd.url,
            extra="[[inputs.internal]]\ncollect_process = false\n")
        sender = Sender(f"http://127.0.0.1:{port}")
        sender.thread.start()
        try:
            wait_until(lambda: len(sender.acknowledged) > 100, timeout=20)
            with Filler(state):
                wait_until(lambda: sender.statuses[507] >= 20, timeout=20)
            resumed_from = len(sender.acknowledged)
            wait_until(lambda: len(sender.acknowledged) > resumed_from + 100, timeout=20)
            wait_until(lambda: "spool writable again" in log_path.read_text(), timeout=20)
        finally:
            sender.stop.set()
            sender.thread.join()
        expected = sender.per_series()
        wait_until(lambda: stored(own_influxd) == expected, timeout=30, every=0.3)
        refused = own_influxd.rows(
            "SELECT max(refused) FROM internal_input WHERE input = 'influxdb_listener'",
            "durability")
        assert stop(process) == 0
    log = log_path.read_text()
    assert "Traceback" not in log
    assert log.count("cannot write to the spool") == 1, "logged once per episode"
    assert "spool writable again" in log
    assert len(log.splitlines()) < 40, log
    assert refused and refused[0]["max"] > 0, "the internal input saw the refusals"


def test_drop_newest_never_answers_204_for_a_refused_metric(tmp_path, own_influxd):
    process, port, _ = start(tmp_path, "http://127.0.0.1:9",
                                    output='spool_max_bytes = "64KiB"\n'
                                           'spool_overflow = "drop_newest"')
    sender = Sender(f"http://127.0.0.1:{port}")
    sender.thread.start()
    wait_until(lambda: sender.statuses[503] >= 10, timeout=30)
    sender.stop.set()
    sender.thread.join()
    assert stop(process) == 0
    assert sender.statuses[503] and not sender.statuses[0], "refused with a status, not dropped"
    restarted, _, _ = start(tmp_path, own_influxd.url)
    try:
        wait_until(lambda: sum(stored(own_influxd).values()) >= len(sender.acknowledged),
                   timeout=30)
        assert stored(own_influxd) == sender.per_series(), "exactly what got a 204"
    finally:
        assert stop(restarted) == 0


def test_an_unwritable_cursor_is_logged_once_and_delivery_goes_on(tmp_path, caplog):
    register_input("numbers", lambda: [Metric("n", {"v": i}) for i in range(10)])
    spool_dir = tmp_path / "spool" / "file"
    (spool_dir / "ack").mkdir(parents=True)  # the cursor cannot be opened as a file
    agent = agent_from('[[inputs.numbers]]\n[[outputs.file]]\nfiles = ["out.lp"]\n', tmp_path)
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            agent.polled[0].gather_once()
            assert agent.outputs[0].flush(time.monotonic() + 10)
    agent.close()
    assert len((tmp_path / "out.lp").read_text().splitlines()) == 30
    assert output_counters(agent, "file")["written"] == 30
    assert caplog.text.count("cannot record delivery progress") == 1


class HungServer:
    """Accepts connections and never answers: a server stuck in a long GC or a dead NFS."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.connected = threading.Event()
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self._held.append(connection)
            self.connected.set()

    def close(self) -> None:
        self.socket.close()
        for connection in self._held:
            connection.close()


def test_stop_takes_no_longer_than_shutdown_timeout_against_a_hung_server(tmp_path):
    server = HungServer()
    try:
        process, port, log_path = start(tmp_path, server.url, timeout="60s",
                                        agent='shutdown_timeout = "2s"',
                                        output="provision = false")
        assert post(f"http://127.0.0.1:{port}", b"flow n=1i\n") == 204
        assert server.connected.wait(10)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert time.monotonic() - started < 2 + 1.5
    finally:
        server.close()
    log = log_path.read_text()
    assert "did not stop within shutdown_timeout" in log
    assert log.rstrip().endswith("metrics stay spooled for the next start")


def test_a_second_signal_cuts_the_flush_short_but_not_the_bookkeeping(tmp_path):
    server = HungServer()
    try:
        process, port, log_path = start(tmp_path, server.url, timeout="60s",
                                        agent='shutdown_timeout = "60s"',
                                        output="provision = false")
        assert post(f"http://127.0.0.1:{port}", b"flow n=1i\n") == 204
        assert server.connected.wait(10)
        process.send_signal(signal.SIGTERM)
        wait_until(lambda: "flushing and stopping" in log_path.read_text(), timeout=10)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert time.monotonic() - started < 2
    finally:
        server.close()
    log = log_path.read_text()
    assert "cutting the flush short" in log
    assert "stopped; 1 metrics stay spooled for the next start" in log
