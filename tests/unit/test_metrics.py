"""The worker's metrics: what a batch's tally adds, and the operator endpoint's answers."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from aiokafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from streams.worker.metrics import LOOKUPS, REASONS, RESULTS, TABLES, Tally, WorkerMetrics
from streams.worker.metrics_server import MetricsServer
from streams.worker.metrics_watch import Health

TOPICS = ("inspection-events", "service-events")


def make_metrics() -> WorkerMetrics:
    return WorkerMetrics(
        topics=TOPICS, known_agencies=lambda: frozenset({"TH-A", "TH-B"}), version="0.1.0",
        role="all", python="3.11", process_metrics=False,
    )  # fmt: skip


def samples(m: WorkerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in m.registry.collect():
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m: WorkerMetrics, name: str, **labels: str) -> float:
    return samples(m)[(name, tuple(sorted(labels.items())))]


def test_every_series_of_the_closed_sets_exists_at_zero() -> None:
    m = make_metrics()
    for topic in TOPICS:
        for result in RESULTS:
            assert value(m, "parwatch_messages_total", topic=topic, result=result) == 0
        for reason in REASONS:
            assert value(m, "parwatch_refused_total", topic=topic, reason=reason) == 0
    for table in TABLES:
        assert value(m, "parwatch_rows_written_total", table=table) == 0
    for outcome in LOOKUPS:
        assert value(m, "parwatch_state_lookups_total", outcome=outcome) == 0
    for agency in ("TH-A", "TH-B", "unknown"):
        assert value(m, "parwatch_agency_messages_total", agency=agency) == 0
    assert value(m, "parwatch_build_info", version="0.1.0", python="3.11", role="all") == 1


def test_a_flush_adds_its_tally_once() -> None:
    m = make_metrics()
    t = Tally()
    t.by_topic["inspection-events"]["accepted"] += 5
    t.by_topic["inspection-events"]["refused"] += 2
    t.by_topic["service-events"]["duplicate"] += 1
    t.refused("inspection-events", "unknown_agency", "TH-NOPE")
    t.refused("inspection-events", "malformed_json", None)
    t.agencies.update(["TH-A"] * 5 + ["TH-B", "TH-NOPE", None])
    t.looked_up(2, 1)
    tp = TopicPartition("inspection-events", 3)
    m.flushed(t, 8, {"inspection_events": 5, "dead_letters": 2}, time.monotonic(), {tp: 42})
    assert value(m, "parwatch_messages_total", topic="inspection-events", result="accepted") == 5
    assert value(m, "parwatch_messages_total", topic="service-events", result="duplicate") == 1
    assert value(m, "parwatch_refused_total", topic="inspection-events",
                 reason="unknown_agency") == 1  # fmt: skip
    assert value(m, "parwatch_agency_messages_total", agency="TH-A") == 5
    assert value(m, "parwatch_agency_messages_total", agency="unknown") == 2  # not in catalog
    assert value(m, "parwatch_agency_refused_total", agency="unknown") == 2
    assert value(m, "parwatch_agency_refused_total", agency="TH-A") == 0
    assert value(m, "parwatch_rows_written_total", table="inspection_events") == 5
    assert value(m, "parwatch_state_lookups_total", outcome="restored") == 2
    assert value(m, "parwatch_state_lookups_total", outcome="cached") == 6 - 3
    assert value(m, "parwatch_committed_offset", topic="inspection-events", partition="3") == 42
    assert value(m, "parwatch_flush_messages_count") == 1
    assert value(m, "parwatch_last_accepted_timestamp_seconds") > 0

    m.ends({("inspection-events", 3): 50})
    assert value(m, "parwatch_consumer_lag", topic="inspection-events", partition="3") == 8
    m.ends({("inspection-events", 3): 10})  # a broker reporting too low: never below 0
    assert value(m, "parwatch_consumer_lag", topic="inspection-events", partition="3") == 0
    m.owned([])  # revoked: the partition's series go
    assert not [k for k in samples(m) if k[0] == "parwatch_consumer_lag"]
    assert value(m, "parwatch_assigned_partitions") == 0


@pytest.fixture
def served() -> Iterator[tuple[MetricsServer, Health]]:
    m = make_metrics()
    health = Health()
    server = MetricsServer(m.registry, health, "127.0.0.1", 0)
    server.start()
    yield server, health
    server.stop()


def get(url: str, method: str = "GET") -> tuple[int, str]:
    try:
        request = urllib.request.Request(url, method=method)  # noqa: S310 (our http URL)
        with urllib.request.urlopen(request, timeout=5) as r:  # noqa: S310
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_endpoint_serves_metrics_health_and_readiness(
    served: tuple[MetricsServer, Health],
) -> None:
    server, health = served
    base = server.url.removesuffix("/metrics")
    status, text = get(server.url)
    assert status == 200
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"parwatch_messages", "parwatch_warehouse_down", "parwatch_build_info"} <= names
    assert get(base + "/healthz") == (200, "ok\n")
    assert get(base + "/readyz") == (503, "no partitions assigned\n")
    health.partitions = 6
    assert get(base + "/readyz") == (200, "ok: 6 partitions\n")
    health.warehouse_down = True
    assert get(base + "/readyz")[0] == 503
    health.beat -= 60  # the event loop stopped ticking
    assert get(base + "/healthz")[0] == 503
    assert get(base + "/nope")[0] == 404
    assert get(server.url, method="POST")[0] == 405
