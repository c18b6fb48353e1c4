"""Shared fixtures: the real Tansu broker (one per session), uuid-named topics per test,
and factories with keyword overrides for events."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from parwatch.broker import EmbeddedBroker, TopicSpec, ensure_topics
from schemas.topics import Topics

pytest_plugins = ["pytester"]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test that reaches the embedded ClickHouse (``chdb_url``, directly or through another
    fixture) must say so with the ``clickhouse`` marker, and one that uses the broker fixture
    with the ``kafka`` marker, so ``-m 'not clickhouse'`` or ``-m 'not kafka'`` deselects it."""
    names = getattr(item, "fixturenames", ())
    for fixture, marker in (("chdb_url", "clickhouse"), ("broker", "kafka")):
        if fixture in names and item.get_closest_marker(marker) is None:
            pytest.fail(f"{item.nodeid} uses {fixture} without @pytest.mark.{marker}", False)


@pytest.fixture(autouse=True)
def _components_need_their_markers(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In this process, opening chdb without the ``clickhouse`` marker, or starting a broker
    without the ``kafka`` marker, fails the test (whatever helper or fixture does it)."""
    import chdb

    node = request.node
    if node.get_closest_marker("clickhouse") is None:
        real_connect = chdb.connect

        def refuse_chdb(*args: Any, **kwargs: Any) -> Any:
            pytest.fail(f"{node.nodeid} opens ClickHouse without @pytest.mark.clickhouse", False)
            return real_connect(*args, **kwargs)  # not reached

        monkeypatch.setattr(chdb, "connect", refuse_chdb)
    if node.get_closest_marker("kafka") is None:

        def refuse_broker(self: EmbeddedBroker) -> EmbeddedBroker:
            pytest.fail(f"{node.nodeid} starts a broker without @pytest.mark.kafka", False)
            return self  # not reached

        monkeypatch.setattr(EmbeddedBroker, "start", refuse_broker)


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """One real Tansu broker process for the whole session, on a free loopback port."""
    with EmbeddedBroker() as b:
        yield b


@pytest.fixture
def topics(broker: EmbeddedBroker) -> Topics:
    """Fresh, uuid-named topics so that tests never share data: inspections, services and
    offerings (6 partitions each, offerings compacted as ``Settings.topic_specs`` creates it)
    and dead letters (3)."""
    suffix = uuid.uuid4().hex[:12]
    t = Topics(
        f"inspection-events-{suffix}", f"service-events-{suffix}", f"dead-letters-{suffix}",
        f"service-offerings-{suffix}",
    )  # fmt: skip
    ensure_topics(
        broker.bootstrap,
        [
            TopicSpec(t.inspections, 6),
            TopicSpec(t.services, 6),
            TopicSpec(t.offerings, 6, compacted=True),
            TopicSpec(t.dead_letters, 3),
        ],
    )
    return t


def _event_id() -> str:
    return str(uuid.uuid4())


def make_inspection_event(**overrides: Any) -> dict[str, Any]:
    """A valid ``inspection/1`` payload (a video-conference activity); override any key."""
    event: dict[str, Any] = {
        "schema": "inspection/1",
        "event_id": _event_id(),
        "event_type": "activity",
        "occurred_at": "2024-06-10T09:30:00+07:00",
        "agency_code": "TH-S-TTTT",
        "inspection_id": "KT-2024-0001",
        "activity": {"mode": "video_conference", "system_code": "VNPT-IOFFICE"},
        "sector": "Thông tin và Truyền thông",
        "subject_type": "enterprise",
    }
    event.update(overrides)
    if event["event_type"] != "activity" and "activity" not in overrides:
        event.pop("activity")
    return event


def make_service_event(**overrides: Any) -> dict[str, Any]:
    """A valid ``service/1`` online submission with a partly prefilled form; override any key."""
    event: dict[str, Any] = {
        "schema": "service/1",
        "event_id": _event_id(),
        "event_type": "submitted",
        "occurred_at": "2024-06-10T10:00:00+07:00",
        "agency_code": "TH-S-TP",
        "procedure_code": "1.001193",
        "dossier_id": "HS-2024-000001",
        "channel": "online",
        "service_level": "full_process",
        "form": {"fields_total": 12, "fields_prefilled": 9, "prefill_sources": ["population_db"]},
        "applicant": {"type": "citizen", "id_hash": "a" * 64},
    }
    event.update(overrides)
    return event


@pytest.fixture
def inspection_event() -> Any:
    return make_inspection_event


@pytest.fixture
def service_event() -> Any:
    return make_service_event


@pytest.fixture(scope="session")
def chdb_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One embedded ClickHouse path for this test process (chdb allows one path a process)."""
    return f"chdb://{tmp_path_factory.mktemp('chdb') / 'warehouse'}"


@pytest.fixture
def warehouse(chdb_url: str) -> Iterator[Any]:
    """A migrated, uuid-named database in the embedded ClickHouse; dropped afterwards."""
    from streams.warehouse import migrations
    from streams.warehouse.client import WarehouseConfig, connect

    config = WarehouseConfig(chdb_url, database=f"t_{uuid.uuid4().hex[:12]}")
    client = connect(config, create_database=True)
    migrations.apply(client)
    yield client
    client.command(f"DROP DATABASE IF EXISTS {config.database}")


def read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0) -> list[Any]:
    """Read ``expected`` messages from every partition of ``topic`` (or fail at the deadline).

    Stops on the count, not on end offsets: Tansu reports high watermarks that are too low.
    """
    import time

    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(records)
        return out
    finally:
        consumer.close()
