"""Many workers in one group: three classifiers and a sink, one classifier SIGKILLed mid-stream
and another started; the KPIs end equal to the ground truth and no partition stays unowned."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaProducer, TopicPartition

from parwatch.broker import EmbeddedBroker, TopicSpec, ensure_topics, free_port
from producers.simulation.raw import publish_raw
from producers.simulation.simulator import SimulationConfig, simulate
from schemas.catalog import load_catalog
from streams.worker.destination import MARKER
from streams.worker.status import read_status, wait_for_messages
from tests.e2e.conftest import Pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse]

PARTITIONS = 6
SESSION_S = 3


def _start(pipeline: Pipeline, role: str, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    data = pipeline.data_dir / name
    data.mkdir(exist_ok=True)
    env = pipeline.env | {"PARWATCH_DATA_DIR": str(data)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "parwatch.cli", "worker", "--role", role, "--loglevel", "info"],
        env=env, stdout=(data / "worker.log").open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    pipeline.others.append(proc)
    return proc, data / "worker-status.json"


def _sink_caught_up(bootstrap: str, rows_topic: str, group: str, timeout_s: float = 120) -> None:
    """Put a marker on every partition of the rows topic; wait for the sink to commit past it."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    marks = {
        TopicPartition(rows_topic, q): producer.send(rows_topic, MARKER, partition=q).get(30).offset
        for q in range(PARTITIONS)
    }
    producer.close()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            done = admin.list_group_offsets({group: None})[group]
            if all(tp in done and done[tp].offset > off for tp, off in marks.items()):
                return
            assert time.monotonic() < deadline, "the sink did not catch up"
            time.sleep(0.3)
    finally:
        admin.close()


def _owned_by_live_workers(workers: dict[str, Any]) -> set[str]:
    """The partitions that running workers say they own (their status files)."""
    owned: set[str] = set()
    for proc, status in workers.values():
        if proc.poll() is None:
            owned |= set((read_status(status) or {}).get("assigned", []))
    return owned


def test_three_classifiers_one_killed_and_a_sink(
    broker: EmbeddedBroker, pipeline: Pipeline, topics: Any
) -> None:
    rows_topic = f"rows-{uuid.uuid4().hex[:8]}"
    ensure_topics(broker.bootstrap, [TopicSpec(rows_topic, PARTITIONS)])
    pipeline.env |= {
        "PARWATCH_TOPIC_WAREHOUSE_ROWS": rows_topic,
        "PARWATCH_QUERY_PORT": str(free_port()),
        "PARWATCH_BROKER_SESSION_TIMEOUT_S": str(SESSION_S),
        "PARWATCH_CLICKHOUSE_URL": f"chdb://{pipeline.data_dir / 'warehouse'}",
    }
    sim = simulate(SimulationConfig(seed=5, events=30_000), load_catalog())
    total = len(sim.messages)
    half = total // 2
    msgs = [(m.kind, m.key, m.value) for m in sim.messages]
    publish_raw(broker.bootstrap, topics, msgs[:half])

    sink, sink_status = _start(pipeline, "sink", "sink")
    wait_for_messages(sink_status, 0, timeout_s=60, alive=lambda: sink.poll() is None)
    workers = {f"c{i}": _start(pipeline, "classify", f"c{i}") for i in range(3)}
    everything = {f"{t}/{p}" for t in topics.events()  # inspections, services, offerings
                  for p in range(PARTITIONS)}  # fmt: skip
    unowned_since: dict[str, float] = {}
    longest_gap = 0.0
    formed = False

    def sample() -> None:
        nonlocal longest_gap, formed
        owned = _owned_by_live_workers(workers)
        now = time.monotonic()
        formed = formed or owned == everything
        if not formed:
            return
        for tp in everything:
            if tp in owned:
                if tp in unowned_since:
                    longest_gap = max(longest_gap, now - unowned_since.pop(tp))
            else:
                unowned_since.setdefault(tp, now)

    deadline = time.monotonic() + 120
    while not formed or pipeline.committed() < half // 3:
        assert time.monotonic() < deadline, "the classifiers did not start"
        sample()
        time.sleep(0.05)
    victim, _ = workers["c0"]
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    # Once the dead member's session has expired and its partitions have moved to the two
    # survivors, a new worker joins. (Starting it while the dead member is still in the group
    # makes Tansu, the test broker, hang the rebalance now and then: two membership changes at
    # once. Apache Kafka handles that; Tansu is what runs here.)
    deadline = time.monotonic() + SESSION_S + 30
    sample()
    while _owned_by_live_workers(workers) != everything:  # c0 is dead: survivors
        assert time.monotonic() < deadline, "the survivors did not take over"
        time.sleep(0.05)
        sample()
    workers["c3"] = _start(pipeline, "classify", "c3")
    publish_raw(broker.bootstrap, topics, msgs[half:])
    deadline = time.monotonic() + 300
    while pipeline.committed() < total:
        assert time.monotonic() < deadline, "the classifiers did not finish"
        assert all(p.poll() is None for n, (p, _) in workers.items() if n != "c0")
        sample()
        time.sleep(0.05)
    # The work may end during a rebalance (the killed member's session expiring): give the
    # group the time a rebalance takes to hand every partition to a live worker.
    settle = time.monotonic() + SESSION_S + 20
    sample()
    while unowned_since and time.monotonic() < settle:
        time.sleep(0.05)
        sample()
    assert not unowned_since, f"partitions left without an owner: {sorted(unowned_since)}"
    # A dead member keeps its partitions until its session expires, then they move.
    assert longest_gap < SESSION_S + 20, longest_gap
    _sink_caught_up(broker.bootstrap, rows_topic, f"{pipeline.env['PARWATCH_APP_ID']}-sink")

    for name, (proc, _) in workers.items():
        if name != "c0":
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0
    sink.send_signal(signal.SIGTERM)
    assert sink.wait(60) == 0

    pipeline.assert_kpis_equal_truth(sim.truth)
    dup = pipeline.cli_json("sql", "--json",
                            "SELECT count() AS n FROM (SELECT DISTINCT _topic, _partition, _offset "
                            "FROM duplicates)")  # fmt: skip
    assert dup == [{"n": sim.duplicates}]
