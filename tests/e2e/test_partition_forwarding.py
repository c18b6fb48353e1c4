"""Partition forwarding (EVENTS.md, Transport), end to end: one service/2 dossier's events
published half with kafka-python (murmur2) and half with confluent-kafka at its default
partitioner (crc32: ``TH-S-TP:D1`` goes to 4 of 6, murmur2 says 0), to 6-partition topics read
by two ``parwatch worker`` processes in one consumer group. The worker that reads an event on the
wrong partition forwards it to its key's partition and counts it; every event is stored once,
read from its murmur2 partition; the dossier's KPIs are the hand-computed ones.

Both workers write to one warehouse, the test process's chdb behind ``tests.chfront.ChFront``
(the embedded engine admits one process); their clients are the real ones, unmocked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer as ConfluentProducer
from kafka import KafkaProducer

from parwatch.broker import EmbeddedBroker, TopicSpec, ensure_topics
from schemas.catalog import load_catalog
from schemas.topics import Topics
from streams.warehouse import migrations
from streams.warehouse.client import WarehouseConfig, connect
from streams.warehouse.reference import load_catalog_tables
from streams.worker.partitioning import partition_of
from streams.worker.status import read_status
from tests.chfront import ChFront
from tests.e2e.conftest import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse]

PARTITIONS = 6
AGENCY, DOSSIER = "TH-S-TP", "D1"
KEY = f"{AGENCY}:{DOSSIER}"


def _event(event_type: str, occurred_at: str, **fields: Any) -> dict[str, Any]:
    return {
        "schema": "service/2", "event_id": str(uuid.uuid4()), "event_type": event_type,
        "occurred_at": occurred_at, "agency_code": AGENCY, "procedure_code": "1.001193",
        "dossier_id": DOSSIER, **fields,
    }  # fmt: skip


# Submitted online at full_process on 10 June 08:30 (+07:00), due 14 June 17:00; a supplement
# asked for on 11 June 09:00 and received on 12 June 09:00 (a one-day pause); paid online; done
# on 13 June 16:30 with an electronic result: on time, 3 d 8 h - 1 d = 2.333 days of resolution.
EVENTS = [
    _event(
        "submitted", "2024-06-10T08:30:00+07:00", channel="online",
        due_at="2024-06-14T17:00:00+07:00", digitized=True, reused_components=1,
        service_level="full_process",
        form={"fields_total": 10, "fields_prefilled": 4, "prefill_sources": ["population_db"]},
    ),
    _event("supplement_requested", "2024-06-11T09:00:00+07:00"),
    _event("supplement_received", "2024-06-12T09:00:00+07:00"),
    _event("paid", "2024-06-12T10:00:00+07:00", payment_channel="online"),
    _event("completed", "2024-06-13T16:30:00+07:00", result_electronic=True),
]  # fmt: skip
BY_KAFKA_PYTHON = [0, 2, 4]  # the others by confluent-kafka; `paid` (3) by both: a duplicate
BY_CONFLUENT = [1, 3]
RESENT_BY_KAFKA_PYTHON = 3


@dataclass
class ForwardingRun:
    warehouse: Any
    deliveries: list[tuple[str, int]] = field(default_factory=list)  # (client, partition)
    forwarded: int = 0  # parwatch_events_forwarded_total, summed over both workers
    assigned: list[list[str]] = field(default_factory=list)  # each worker's partitions


def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:  # noqa: S310 (loopback)
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))  # fmt: skip


@pytest.fixture(scope="module")
def forwarding_run(
    broker: EmbeddedBroker, chdb_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ForwardingRun]:
    suffix = uuid.uuid4().hex[:10]
    topics = Topics(f"insp-{suffix}", f"svc-{suffix}", f"dl-{suffix}", f"offer-{suffix}")
    ensure_topics(broker.bootstrap, [
        TopicSpec(topics.inspections, PARTITIONS), TopicSpec(topics.services, PARTITIONS),
        TopicSpec(topics.offerings, PARTITIONS, compacted=True), TopicSpec(topics.dead_letters, 3),
    ])  # fmt: skip
    config = WarehouseConfig(chdb_url, database=f"t_{uuid.uuid4().hex[:12]}")
    client = connect(config, create_database=True)
    migrations.apply(client)
    load_catalog_tables(client, load_catalog())
    front = ChFront(client)
    front.start()
    group = f"parwatch-forwarding-{suffix}"
    procs: list[subprocess.Popen[bytes]] = []
    dirs: list[Path] = []
    metrics_urls: list[str] = []
    try:
        for i in range(2):
            data_dir = tmp_path_factory.mktemp(f"worker{i}")
            port = free_port()
            env = {
                **os.environ,
                "PARWATCH_KAFKA_BOOTSTRAP": broker.bootstrap,
                "PARWATCH_DATA_DIR": str(data_dir),
                "PARWATCH_CLICKHOUSE_URL": front.url,
                "PARWATCH_CLICKHOUSE_DATABASE": config.database,
                "PARWATCH_TOPIC_INSPECTIONS": topics.inspections,
                "PARWATCH_TOPIC_SERVICES": topics.services,
                "PARWATCH_TOPIC_OFFERINGS": topics.offerings,
                "PARWATCH_TOPIC_DEAD_LETTERS": topics.dead_letters,
                "PARWATCH_APP_ID": group,
                "PARWATCH_BROKER_SESSION_TIMEOUT_S": "3",
                "PARWATCH_METRICS_PORT": str(port),
                "PARWATCH_WORKER_WEB_PORT": str(free_port()),
            }
            log = (data_dir / "worker.log").open("ab")
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "parwatch.cli", "worker", "--loglevel", "warning",
                 "--no-migrate"], env=env, stdout=log, stderr=subprocess.STDOUT,
            ))  # fmt: skip
            dirs.append(data_dir)
            metrics_urls.append(f"http://127.0.0.1:{port}")
        run = ForwardingRun(client)

        def logs() -> str:
            return "\n".join((d / "worker.log").read_text(errors="replace")[-2000:] for d in dirs)

        # Both in the group, the 18 partitions split between them (a rebalance settles).
        deadline = time.monotonic() + 120
        while True:
            assert all(p.poll() is None for p in procs), logs()
            assert time.monotonic() < deadline, logs()
            run.assigned = [(read_status(d / "worker-status.json") or {}).get("assigned") or []
                            for d in dirs]  # fmt: skip
            owned = [p for a in run.assigned for p in a]
            if all(run.assigned) and len(owned) == len(set(owned)) == 3 * PARTITIONS:
                break
            time.sleep(0.3)

        kp = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        cp = ConfluentProducer({"bootstrap.servers": broker.bootstrap, "acks": "all"})

        def delivered(err: Any, msg: Any) -> None:
            assert err is None, err
            run.deliveries.append(("confluent-kafka", msg.partition()))

        for i, event in enumerate(EVENTS):
            value = json.dumps(event).encode()
            if i in BY_CONFLUENT:
                cp.produce(topics.services, value=value, key=KEY.encode(), on_delivery=delivered)
                cp.flush(30)
            if i in BY_KAFKA_PYTHON or i == RESENT_BY_KAFKA_PYTHON:
                meta = kp.send(topics.services, key=KEY.encode(), value=value).get(30)
                run.deliveries.append(("kafka-python", meta.partition))
        kp.close()
        assert len(run.deliveries) == 6

        # Everything stored, and every worker's counts durable (the forward is counted when the
        # batch that read it is committed, before the forwarded copy is processed).
        deadline = time.monotonic() + 120
        wanted = {e["event_id"] for e in EVENTS}
        while True:
            assert all(p.poll() is None for p in procs), logs()
            assert time.monotonic() < deadline, logs()
            stored = {r[0] for r in client.query(
                "SELECT toString(event_id) FROM service_events").result_rows}  # fmt: skip
            dups = client.query("SELECT count() FROM duplicates").result_rows[0][0]
            if stored == wanted and dups >= 1:
                run.forwarded = int(sum(
                    _metric(u, "parwatch_events_forwarded_total") for u in metrics_urls
                ))  # fmt: skip
                moved = sum(1 for _, p in run.deliveries if p != partition_of(KEY, PARTITIONS))
                if run.forwarded >= moved:
                    break
            time.sleep(0.3)
        yield run
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        front.stop()
        client.command(f"DROP DATABASE IF EXISTS {config.database}")


def test_events_on_the_wrong_partition_are_forwarded_and_stored_once(
    forwarding_run: ForwardingRun,
) -> None:
    run = forwarding_run
    right = partition_of(KEY, PARTITIONS)
    assert right == 0  # FACTS.md: murmur2 of TH-S-TP:D1 among 6
    by_client = {c: {p for cc, p in run.deliveries if cc == c} for c, _ in run.deliveries}
    assert by_client["kafka-python"] == {right}
    assert by_client["confluent-kafka"] == {4}  # crc32 (FACTS.md): another partition
    # Both workers own partitions; the one with svc/4 forwarded what the other processes.
    assert all(run.assigned)
    moved = sum(1 for _, p in run.deliveries if p != right)
    assert moved == 2 and run.forwarded == moved
    w = run.warehouse
    rows = w.query(
        "SELECT toString(event_id), count(), groupUniqArray(_partition) FROM service_events FINAL "
        "GROUP BY event_id"
    ).result_rows  # fmt: skip
    assert sorted(r[0] for r in rows) == sorted(e["event_id"] for e in EVENTS)
    assert all(n == 1 and parts == [right] for _, n, parts in rows), rows
    # Every raw row (before FINAL merges) was read from the murmur2 partition too.
    raw_parts = w.query("SELECT DISTINCT _partition FROM service_events").result_rows
    assert raw_parts == [(right,)]
    # The `paid` sent by both clients: one stored, one duplicate, both seen on partition 0.
    dups = w.query(
        "SELECT toString(event_id), entity_key, first_partition, _partition FROM duplicates"
    ).result_rows
    assert dups == [(EVENTS[RESENT_BY_KAFKA_PYTHON]["event_id"], KEY, right, right)]
    v2 = w.query(
        "SELECT event_type, due_at IS NOT NULL, digitized, payment_channel, result_electronic "
        "FROM service_events FINAL ORDER BY occurred_at"
    ).result_rows
    assert v2 == [
        ("submitted", 1, 1, None, None), ("supplement_requested", 0, None, None, None),
        ("supplement_received", 0, None, None, None), ("paid", 0, None, "online", None),
        ("completed", 0, None, None, 1),
    ]  # fmt: skip
    assert w.query("SELECT count() FROM dead_letters").result_rows[0][0] == 0


KPI_EXPECTED = {
    "online_dossier_rate": 1.0,
    "full_process_dossier_rate": 1.0,
    "data_reuse_rate": 1.0,
    "digitization_rate": 1.0,
    "on_time_rate": 1.0,
    "electronic_result_rate": 1.0,
    "online_payment_rate": 1.0,
    # (13 Jun 16:30 - 10 Jun 08:30) - (12 Jun 09:00 - 11 Jun 09:00) = 3 d 8 h - 1 d
    "average_resolution_days": 2 + 8 / 24,
}


def test_kpis_of_the_forwarded_dossier_equal_the_hand_computed_ones(
    forwarding_run: ForwardingRun,
) -> None:
    w = forwarding_run.warehouse
    try:
        result = w.query("SELECT * FROM kpi_month WHERE agency_code IS NULL AND period = '2024-06'")
    except Exception as exc:  # noqa: BLE001 (the v2 views are another change's)
        pytest.skip(f"kpi_month not readable yet: {exc}")
    missing = [k for k in KPI_EXPECTED if k not in result.column_names]
    if missing:
        pytest.skip(f"kpi_month has no v2 columns yet: {missing}")
    assert len(result.result_rows) == 1, result.result_rows
    row = dict(zip(result.column_names, result.result_rows[0], strict=True))
    for name, expected in KPI_EXPECTED.items():
        assert row[name] == pytest.approx(expected, abs=1e-6), (name, row[name])
