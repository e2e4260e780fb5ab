"""Points/s from the agent to a real influxd vs POSTing the same pre-encoded payloads.

    .venv/bin/python bench/end_to_end.py [N] [ROUNDS]   (defaults 200,000 and 3; needs influxd)

The reference is the server's own limit: the same bytes the agent sends (host tag
included), POSTed back to back with urllib3. The agent path adds gather -> encode ->
durable spool -> batch -> write. influxd's speed drifts as its WAL grows, so the two
alternate for ROUNDS rounds, each into a fresh database, and the median ratio counts.
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parent.parent)]

from encoder import workload  # noqa: E402

from collector import Input, Metric, registry  # noqa: E402
from collector import config as config_module  # noqa: E402
from collector.agent import Agent  # noqa: E402
from collector.lineprotocol import Encoder  # noqa: E402
from collector.shaping import Shaping  # noqa: E402
from tests.servers import HTTP, InfluxDB  # noqa: E402

BATCH = 5000
HOST = "bench"


def direct(server: InfluxDB, payloads: list[bytes], n: int, db: str) -> float:
    server.query(f"CREATE DATABASE {db}")
    started = time.perf_counter()
    for payload in payloads:
        assert HTTP.request("POST", f"{server.url}/write?db={db}&precision=ns",
                            body=payload).status == 204
    return n / (time.perf_counter() - started)


def through_agent(server: InfluxDB, chunks: list[list[Metric]], n: int, db: str,
                  state: Path) -> float:
    pending = iter(chunks)

    class Replay(Input):
        def gather(self, acc) -> None:
            acc.add_metrics(next(pending))

    registry.register("inputs", "replay", Replay)
    agent = Agent(config_module.parse(f"""
[agent]
state_dir = "{state}"
hostname = "{HOST}"
metric_batch_size = {BATCH}
flush_interval = "0.1s"
[[inputs.replay]]
[[outputs.influxdb]]
urls = ["{server.url}"]
database = "{db}"
content_encoding = "identity"
""", "bench"))
    output = agent.outputs[0]
    output.start()
    started = time.perf_counter()
    for _ in chunks:
        agent.polled[0].gather_once()
    while output.counters.get("written") < n:
        time.sleep(0.005)
    rate = n / (time.perf_counter() - started)
    output.begin_stop(time.monotonic() + 10)
    output.thread.join()
    agent.close()
    return rate


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    metrics = workload(n)
    chunks = [metrics[i:i + BATCH] for i in range(0, n, BATCH)]
    encoder = Encoder("ns", Shaping(tags_under={"host": HOST}))
    payloads = [encoder.encode(chunk)[0] for chunk in chunks]
    work = Path(tempfile.mkdtemp())
    (work / "influxd").mkdir()
    server = InfluxDB(work / "influxd")
    server.start()
    ratios = []
    try:
        for i in range(rounds):
            reference = direct(server, payloads, n, f"reference{i}")
            agent = through_agent(server, chunks, n, f"agent{i}", work / f"state{i}")
            ratios.append(agent / reference)
            print(f"round {i + 1}: direct {reference:10,.0f} points/s, "
                  f"agent {agent:10,.0f} points/s, ratio {agent / reference:.2f}")
    finally:
        server.stop()
    print(f"points: {n} per round, batch {BATCH}")
    print(f"median ratio: {statistics.median(ratios):.2f} (target >= 0.7)")


if __name__ == "__main__":
    main()
