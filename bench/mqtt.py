"""MQTT: outputs.mqtt against a plain paho loop, and the consumer path into influxd
against POSTing the same line protocol to influxd directly.

    .venv/bin/python bench/mqtt.py [N] [ROUNDS]   (defaults 100,000 and 3; needs
                                                  mosquitto and influxd)

1. Publishing at QoS 1, one message per metric (layout "non-batch", influx): the
   output's ``write`` on batches of 1,000 spooled lines (split, topic per series,
   publish, wait for every PUBACK) against a loop that publishes the very same
   (topic, payload) pairs with paho and then waits for every PUBACK. Both use the same
   paho window (100 messages in flight) on the same broker.
2. Consuming: N points queued on the broker for a persistent session, 1,000 lines a
   message (what a publisher with layout "batch" sends), are drained by an agent with
   inputs.mqtt_consumer and outputs.influxdb (parse, durable spool, batch, write)
   against POSTing the same payloads to influxd back to back.

The sides alternate for ROUNDS rounds and the median ratio counts (influxd's speed
drifts with its WAL, the broker's with its queue).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parent.parent)]

import paho.mqtt.client as paho  # noqa: E402
from encoder import workload  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from collector import config as config_module  # noqa: E402
from collector import split_line_protocol as split_lines  # noqa: E402
from collector.agent import Agent, build_plugin  # noqa: E402
from collector.lineprotocol import Encoder  # noqa: E402
from collector.shaping import Shaping  # noqa: E402
from collector.stats import StatsRegistry  # noqa: E402
from tests.mosquitto import PASSWORD, USER, Mosquitto  # noqa: E402
from tests.servers import HTTP, InfluxDB  # noqa: E402

BATCH = 1000
INFLIGHT = 100
HOST = "bench"


def client(server: Mosquitto, client_id: str = "", clean: bool = True) -> paho.Client:
    made = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
    made.username_pw_set(USER, PASSWORD)
    made.max_inflight_messages = INFLIGHT
    made.connect("127.0.0.1", server.port)
    made.loop_start()
    return made


def output_section(server: Mosquitto, state: Path) -> str:
    return f"""[agent]
state_dir = "{state}"
hostname = "{HOST}"
[[outputs.mqtt]]
servers = ["{server.url}"]
username = "{USER}"
password = "{PASSWORD}"
topic = "bench/{{host}}/{{name}}/{{tag.probe}}"
qos = 1
max_inflight = {INFLIGHT}
"""


def through_output(server: Mosquitto, payloads: list[bytes], n: int, state: Path) -> float:
    config = config_module.parse(output_section(server, state), "bench")
    plugin = build_plugin(config.outputs[0], config, StatsRegistry())
    plugin.write(payloads[0], BATCH)  # connect outside the timing
    started = time.perf_counter()
    for payload in payloads:
        assert plugin.write(payload, BATCH).written == BATCH
    rate = n / (time.perf_counter() - started)
    plugin.close()
    return rate


def plain_paho(server: Mosquitto, messages: list[list[tuple[str, bytes]]], n: int) -> float:
    publisher = client(server)
    started = time.perf_counter()
    for batch in messages:
        infos = [publisher.publish(topic, payload, qos=1) for topic, payload in batch]
        for info in infos:
            info.wait_for_publish(10)
    rate = n / (time.perf_counter() - started)
    publisher.disconnect()
    publisher.loop_stop()
    return rate


def queue_for_consumer(server: Mosquitto, payloads: list[bytes], client_id: str) -> None:
    """Create the consumer's persistent session, then fill it while it is away."""
    session = client(server, client_id, clean=False)
    session.subscribe("fleet/#", qos=1)
    time.sleep(0.5)
    session.disconnect()
    session.loop_stop()
    publisher = client(server)
    infos = [publisher.publish(f"fleet/{HOST}/temperature", payload, qos=1)
             for payload in payloads]
    for info in infos:
        info.wait_for_publish(30)
    publisher.disconnect()
    publisher.loop_stop()


def through_consumer(server: Mosquitto, influxd: InfluxDB, payloads: list[bytes], n: int,
                     db: str, state: Path) -> float:
    client_id = f"bench-{db}"
    queue_for_consumer(server, payloads, client_id)
    agent = Agent(config_module.parse(f"""
[agent]
state_dir = "{state}"
omit_hostname = true
metric_batch_size = 5000
flush_interval = "0.1s"
[[inputs.mqtt_consumer]]
servers = ["{server.url}"]
username = "{USER}"
password = "{PASSWORD}"
topics = ["fleet/#"]
client_id = "{client_id}"
[[outputs.influxdb]]
urls = ["{influxd.url}"]
database = "{db}"
content_encoding = "identity"
""", "bench"))
    output = agent.outputs[0]
    output.output.start()  # provisioning (CREATE DATABASE) outside the timing
    started = time.perf_counter()
    output.start()
    agent.streaming[0].start()
    while output.counters.get("written") < n:
        time.sleep(0.005)
    rate = n / (time.perf_counter() - started)
    agent.stop_event.set()
    agent.streaming[0].thread.join(10)
    output.begin_stop(time.monotonic() + 10)
    output.thread.join(10)
    agent.close()
    return rate


def direct(influxd: InfluxDB, payloads: list[bytes], n: int, db: str) -> float:
    influxd.query(f"CREATE DATABASE {db}")
    started = time.perf_counter()
    for payload in payloads:
        assert HTTP.request("POST", f"{influxd.url}/write?db={db}&precision=ns",
                            body=payload).status == 204
    return n / (time.perf_counter() - started)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    encoder = Encoder("ns", Shaping(tags_under={"host": HOST}))
    metrics = workload(n)
    payloads = [encoder.encode(metrics[i:i + BATCH])[0] for i in range(0, n, BATCH)]
    messages = [[(f"bench/{HOST}/temperature/T{(i + j) % 4 + 1}", line + b"\n")
                 for j, line in enumerate(split_lines(payload))]
                for i, payload in zip(range(0, n, BATCH), payloads, strict=True)]
    work = Path(tempfile.mkdtemp())
    for name in ("mosquitto", "influxd"):
        (work / name).mkdir()
    broker, influxd = Mosquitto(work / "mosquitto"), InfluxDB(work / "influxd")
    broker.start()
    influxd.start()
    publishing, consuming = [], []
    started, broker_cpu = time.perf_counter(), cpu_seconds(broker.process.pid)
    try:
        for i in range(rounds):
            reference = plain_paho(broker, messages, n)
            ours = through_output(broker, payloads, n, work / f"out{i}")
            publishing.append(ours / reference)
            print(f"round {i + 1} publish: paho loop {reference:9,.0f} msg/s, "
                  f"outputs.mqtt {ours:9,.0f} msg/s, ratio {ours / reference:.2f}", flush=True)
            reference = direct(influxd, payloads, n, f"direct{i}")
            ours = through_consumer(broker, influxd, payloads, n, f"consumed{i}",
                                    work / f"in{i}")
            consuming.append(ours / reference)
            print(f"round {i + 1} consume: direct POST {reference:9,.0f} points/s, "
                  f"mqtt_consumer {ours:9,.0f} points/s, ratio {ours / reference:.2f}",
                  flush=True)
        busy = cpu_seconds(broker.process.pid) - broker_cpu
        print(f"mosquitto: {busy:.1f} s of CPU in {time.perf_counter() - started:.1f} s "
              f"({busy / (time.perf_counter() - started):.0%} of one core)")
    finally:
        broker.kill()
        influxd.stop()
    print(f"metrics: {n} per round; publish batches of {BATCH}, consume {BATCH} lines/message")
    print(f"median publish ratio: {statistics.median(publishing):.2f} (target >= 0.8)")
    print(f"median consume ratio: {statistics.median(consuming):.2f} (target >= 0.6)")


if __name__ == "__main__":
    main()
