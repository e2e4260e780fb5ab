"""Points/s from the agent to a real influxd vs POSTing the same pre-encoded payloads.

    .venv/bin/python bench/end_to_end.py [N]     (default 200,000; needs influxd)
The reference is the server's own limit: the same batches POSTed back to back with
urllib3. The agent path adds gather -> encode -> durable spool -> batch -> write.
"""

import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parent.parent)]

from encoder import workload  # noqa: E402

from collector import Input, registry  # noqa: E402
from collector import config as config_module  # noqa: E402
from collector.agent import Agent  # noqa: E402
from collector.lineprotocol import Encoder  # noqa: E402
from tests.servers import HTTP, InfluxDB  # noqa: E402

BATCH = 5000


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    metrics = workload(n)
    chunks = [metrics[i:i + BATCH] for i in range(0, n, BATCH)]
    work = Path(tempfile.mkdtemp())
    (work / "influxd").mkdir()
    server = InfluxDB(work / "influxd")
    server.start()
    try:
        server.query("CREATE DATABASE reference")
        payloads = [Encoder().encode(chunk)[0] for chunk in chunks]
        started = time.perf_counter()
        for payload in payloads:
            assert HTTP.request("POST", f"{server.url}/write?db=reference&precision=ns",
                                body=payload).status == 204
        reference = n / (time.perf_counter() - started)

        pending = iter(chunks)

        class Replay(Input):
            def gather(self, acc) -> None:
                acc.add_metrics(next(pending))

        registry.register("inputs", "replay", Replay)
        agent = Agent(config_module.parse(f"""
[agent]
state_dir = "{work / 'state'}"
omit_hostname = true
metric_batch_size = {BATCH}
flush_interval = "0.1s"
[[inputs.replay]]
[[outputs.influxdb]]
urls = ["{server.url}"]
database = "agent"
content_encoding = "identity"
""", "bench"))
        output = agent.outputs[0]
        output.start()
        started = time.perf_counter()
        for _ in chunks:
            agent.polled[0].gather_once()
        while output.counters.get("written") < n:
            time.sleep(0.005)
        through_agent = n / (time.perf_counter() - started)
        output.stop(10)
        agent.close()
    finally:
        server.stop()
    print(f"points: {n}, batch {BATCH}")
    print(f"direct POST of pre-encoded batches: {reference:10,.0f} points/s")
    print(f"agent (gather->spool->influxd):      {through_agent:10,.0f} points/s")
    print(f"ratio: {through_agent / reference:.2f} (target >= 0.7)")


if __name__ == "__main__":
    main()
