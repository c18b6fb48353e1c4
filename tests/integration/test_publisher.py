"""Publisher -> real Tansu broker -> KafkaConsumer: keys, partitions, order, refusals."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.partitioner import Partitioner
from kafka.partitioner.default import murmur2
from kafka.producer.future import RecordMetadata

from parwatch.broker import EmbeddedBroker, TopicSpec, ensure_topics
from producers.sdk.bulk import publish_jsonl
from producers.sdk.publisher import Publisher, PublisherConfig, PublishError
from schemas import EVENT_ADAPTER, Reason
from schemas.catalog import load_catalog
from schemas.topics import Topics
from tests.conftest import make_inspection_event, make_service_event

pytestmark = pytest.mark.kafka

AGENCIES = ("TH-S-TTTT", "TH-S-TP", "TH-S-YT", "TH-TTR")
MODES = ("on_site", "video_conference", "information_system", "in_person_meeting")


def mixed_events(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """Inspection and service events of several agencies, inspections and dossiers, so that
    keys repeat (for the per-key order check)."""
    rng = random.Random(seed)
    events = []
    for _ in range(n):
        agency = rng.choice(AGENCIES)
        if rng.random() < 0.5:
            kind = rng.choice(("opened", "activity", "activity", "concluded"))
            extra: dict[str, Any] = {}
            if kind == "activity":
                extra["activity"] = {"mode": rng.choice(MODES), "system_code": None}
            events.append(
                make_inspection_event(
                    agency_code=agency,
                    inspection_id=f"KT-2024-{rng.randrange(40):04d}",
                    event_type=kind,
                    **extra,
                )
            )
        elif rng.random() < 0.7:
            events.append(
                make_service_event(agency_code=agency, dossier_id=f"HS-{rng.randrange(60):06d}")
            )
        else:
            events.append(
                make_service_event(
                    agency_code=agency,
                    dossier_id=f"HS-{rng.randrange(60):06d}",
                    event_type="completed",
                    on_time=rng.random() < 0.8,
                )
            )
    return events


def contract_key(event: dict[str, Any]) -> bytes:
    """The contract's key of each schema (EVENTS.md "Transport")."""
    field = {"inspection/1": "inspection_id", "offering/1": "procedure_code"}.get(
        event["schema"], "dossier_id"
    )
    return f"{event['agency_code']}:{event[field]}".encode()


def expected_partition(key: bytes, partitions: int) -> int:
    """What kafka-python's DefaultPartitioner (murmur2, as the Java client) picks."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def read_back(
    bootstrap: str, topics: Sequence[str], expected: int, timeout_s: float = 45.0
) -> tuple[list[ConsumerRecord], dict[str, int]]:
    """Every record of ``topics`` from the beginning, until ``expected`` are read (Tansu's end
    offsets are too low to stop at), then one more short poll so extras would show.
    Returns the records and each topic's partition count."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        counts = {t: len(consumer.partitions_for_topic(t) or ()) for t in topics}
        tps = [TopicPartition(t, p) for t in topics for p in range(counts[t])]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        grace = time.monotonic() + 0.5
        while time.monotonic() < grace:
            for batch in consumer.poll(timeout_ms=100).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records, counts


def assert_delivered(
    records: Sequence[ConsumerRecord],
    events: Sequence[dict[str, Any]],
    topics: Topics,
    partitions: dict[str, int],
) -> None:
    """Exactly ``events``, once each; contract keys; murmur2 partitions; per-key publish order."""
    ids = [json.loads(r.value)["event_id"] for r in records]
    dupes = sorted({i for i in ids if ids.count(i) > 1}) if len(ids) != len(set(ids)) else []
    assert not dupes, f"{len(ids) - len(set(ids))} duplicates, e.g. {dupes[:3]}"
    by_id = {e["event_id"]: e for e in events}
    assert set(ids) == set(by_id), (
        f"missing {len(set(by_id) - set(ids))}, unexpected {len(set(ids) - set(by_id))}"
    )
    position = {e["event_id"]: i for i, e in enumerate(events)}
    per_key: dict[bytes, list[tuple[int, int, int]]] = defaultdict(list)
    for record, event_id in zip(records, ids, strict=True):
        event = by_id[event_id]
        assert record.key == contract_key(event)
        assert record.topic == topics.for_schema(event["schema"])
        assert record.partition == expected_partition(record.key, partitions[record.topic])
        assert json.loads(record.value) == event
        per_key[record.key].append((record.partition, record.offset, position[event_id]))
    for key, seen in per_key.items():
        assert len({p for p, _, _ in seen}) == 1, f"{key!r} spread over partitions"
        in_log_order = [i for _, _, i in sorted(seen)]
        assert in_log_order == sorted(in_log_order), f"{key!r} out of publish order"
    assert max(len(seen) for seen in per_key.values()) >= 3  # the order check had work to do


def config(bootstrap: str, topics: Topics, spool_dir: Path, **kw: Any) -> PublisherConfig:
    return PublisherConfig(bootstrap=bootstrap, topics=topics, spool_dir=spool_dir, **kw)


def test_published_events_arrive_once_keyed_partitioned_and_in_order(
    broker: EmbeddedBroker, topics: Topics, tmp_path: Path
) -> None:
    events = mixed_events(3000)
    # The three input forms: bytes as given, a dict, a pydantic model.
    inputs: list[Any] = []
    for i, event in enumerate(events):
        raw = json.dumps(event, ensure_ascii=False).encode()
        inputs.append(
            raw if i % 3 == 0 else event if i % 3 == 1 else EVENT_ADAPTER.validate_json(raw)
        )
    acked: dict[str, tuple[str, int, int]] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def on_delivery(event_id: str, md: RecordMetadata | None, exc: BaseException | None) -> None:
        with lock:
            if md is not None:
                acked[event_id] = (md.topic, md.partition, md.offset)
            if exc is not None:
                errors.append(exc)

    cfg = config(
        broker.bootstrap, topics, tmp_path / "spool", known_agencies=load_catalog().agencies
    )
    with Publisher(cfg, on_delivery=on_delivery) as publisher:
        for item in inputs:
            publisher.publish(item)
        publisher.flush()
        stats = publisher.stats()
    assert (stats.accepted, stats.delivered, stats.in_flight) == (3000, 3000, 0)
    assert (stats.spooled, stats.failed, stats.refused, stats.spool_pending) == (0, 0, 0, 0)
    assert stats.direct

    records, partitions = read_back(broker.bootstrap, [topics.inspections, topics.services], 3000)
    assert partitions == {topics.inspections: 6, topics.services: 6}
    assert_delivered(records, events, topics, partitions)
    given = {e["event_id"]: item for e, item in zip(events, inputs, strict=True)}
    for record in records:
        event_id = json.loads(record.value)["event_id"]
        assert acked[event_id] == (record.topic, record.partition, record.offset)
        if isinstance(given[event_id], bytes):
            assert record.value == given[event_id]  # sent exactly as given
    assert errors == []


def test_invalid_events_are_refused_at_the_caller_and_never_sent(
    broker: EmbeddedBroker, topics: Topics, tmp_path: Path
) -> None:
    missing_id = make_inspection_event()
    del missing_id["inspection_id"]
    cases: list[tuple[Any, Reason, str | None]] = [
        (missing_id, Reason.INVALID_EVENT, "inspection_id"),
        (make_service_event(event_type="completed"), Reason.INVALID_EVENT, None),
        (make_service_event(ghi_chu="gọi 0912 345 678"), Reason.PII_DETECTED, "ghi_chu"),
        (make_inspection_event(agency_code="XX-KHONG-CO"), Reason.UNKNOWN_AGENCY, None),
        (
            make_inspection_event(occurred_at="2999-01-01T00:00:00+07:00"),
            Reason.FUTURE_TIMESTAMP,
            None,
        ),
        (make_inspection_event(schema="inspection/9"), Reason.UNSUPPORTED_SCHEMA, None),
        (make_inspection_event(occurred_at="2024-06-10T09:30:00"), Reason.INVALID_EVENT, None),
        (b'{"schema": "inspection/1", ', Reason.MALFORMED_JSON, None),
        (b"\xff\xfe not utf-8", Reason.MALFORMED_JSON, None),
        (make_service_event(form={"fields_total": float("nan")}), Reason.MALFORMED_JSON, None),
    ]
    markers = [make_inspection_event(), make_service_event()]
    cfg = config(
        broker.bootstrap, topics, tmp_path / "spool", known_agencies=load_catalog().agencies
    )
    with Publisher(cfg) as publisher:
        for event, reason, field in cases:
            with pytest.raises(PublishError) as caught:
                publisher.publish(event)
            assert isinstance(caught.value, ValueError)
            assert caught.value.reason is reason, caught.value
            if field is not None:
                assert field in {e.loc for e in caught.value.invalid.errors}
            if reason is Reason.PII_DETECTED:
                assert b"345 678" not in caught.value.invalid.payload  # redacted
        for marker in markers:
            publisher.publish(marker)
        publisher.flush()
        stats = publisher.stats()
    assert (stats.refused, stats.accepted, stats.delivered) == (len(cases), 2, 2)

    records, partitions = read_back(broker.bootstrap, [topics.inspections, topics.services], 2)
    assert_delivered_exactly(records, markers)


def assert_delivered_exactly(records: Sequence[ConsumerRecord], events: Sequence[Any]) -> None:
    ids = sorted(json.loads(r.value)["event_id"] for r in records)
    assert ids == sorted(e["event_id"] for e in events)


def test_a_missing_topic_is_waited_for_not_created(broker: EmbeddedBroker, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:12]
    topics = Topics(f"inspection-events-{suffix}", f"service-events-{suffix}", f"dl-{suffix}")
    events = mixed_events(300, seed=11)
    cfg = config(broker.bootstrap, topics, tmp_path / "spool", connect_timeout_s=2.0)
    with Publisher(cfg) as publisher:
        for event in events:
            publisher.publish(event)
        publisher.flush()
        stats = publisher.stats()
        assert (stats.spooled, stats.spool_pending, stats.delivered) == (300, 300, 0)
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        try:
            assert not {topics.inspections, topics.services} & set(admin.list_topics())
        finally:
            admin.close()

        ensure_topics(
            broker.bootstrap,
            [TopicSpec(topics.inspections, 6), TopicSpec(topics.services, 6)],
        )
        assert publisher.drain(timeout=30)
        assert publisher.stats().delivered == 300

    records, partitions = read_back(broker.bootstrap, [topics.inspections, topics.services], 300)
    assert partitions == {topics.inspections: 6, topics.services: 6}
    assert_delivered(records, events, topics, partitions)


def test_publish_jsonl_sends_the_good_lines_and_reports_the_bad_ones(
    broker: EmbeddedBroker, topics: Topics, tmp_path: Path
) -> None:
    good = mixed_events(500, seed=61)
    lines = [json.dumps(e, ensure_ascii=False) for e in good]
    lines.insert(10, "{not json")  # line 11
    lines.insert(20, "")  # line 21, blank: skipped, not bad
    lines.insert(30, json.dumps(make_inspection_event(agency_code="XX-KHONG-CO")))  # line 31
    lines.insert(40, json.dumps(make_service_event(ghi_chu="CCCD 038123456789")))  # line 41
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    calls: list[tuple[int, int]] = []
    cfg = config(
        broker.bootstrap, topics, tmp_path / "spool", known_agencies=load_catalog().agencies
    )
    with Publisher(cfg) as publisher:
        report = publish_jsonl(source, publisher, progress=lambda d, t: calls.append((d, t)))
    assert (report.accepted, report.blank, report.already_waiting) == (500, 1, 0)
    assert publisher.stats().spool_pending == 0
    assert [(b.line, b.reason) for b in report.bad] == [
        (11, "malformed_json"),
        (31, "unknown_agency"),
        (41, "pii_detected"),
    ]
    assert "038123456789" not in repr(report.bad)
    assert report.bad_summary() == (
        "3 bad lines not sent (malformed_json: 1, pii_detected: 1, unknown_agency: 1)"
    )
    assert calls == [(504, 504)]  # fewer than 1,000 lines: only the final call

    records, partitions = read_back(broker.bootstrap, [topics.inspections, topics.services], 500)
    assert_delivered(records, good, topics, partitions)


def test_outcomes_are_recorded_without_a_flush_and_reported_on_the_drainer_thread(
    broker: EmbeddedBroker, topics: Topics, tmp_path: Path
) -> None:
    events = mixed_events(500, seed=71)
    calls: list[tuple[str, str, bool]] = []
    lock = threading.Lock()

    def on_delivery(event_id: str, md: RecordMetadata | None, exc: BaseException | None) -> None:
        with lock:
            calls.append((event_id, threading.current_thread().name, md is not None))

    def reported() -> int:
        with lock:
            return len(calls)

    cfg = config(broker.bootstrap, topics, tmp_path / "spool")
    with Publisher(cfg, on_delivery=on_delivery) as publisher:
        for event in events:
            publisher.publish(event)
        # No flush: the drainer settles direct sends on its own, every SETTLE_INTERVAL_S.
        deadline = time.monotonic() + 20
        while reported() < len(events) and time.monotonic() < deadline:
            time.sleep(0.02)
        stats = publisher.stats()
    assert (stats.accepted, stats.sent, stats.delivered, stats.in_flight) == (500, 500, 500, 0)
    assert (stats.failed, stats.spooled) == (0, 0)
    assert sorted(i for i, _, _ in calls) == sorted(e["event_id"] for e in events)
    assert {(name, ok) for _, name, ok in calls} == {("parwatch-publisher-drainer", True)}


class _FirstPartition(Partitioner):  # type: ignore[misc]  # kafka-python is untyped
    """Every record to the lowest partition: visibly not the default partitioner."""

    def partition(
        self, topic: str, key: Any, serialized_key: Any, value: Any, serialized_value: Any,
        cluster: Any,
    ) -> int:  # fmt: skip
        return int(min(cluster.partitions_for_topic(topic)))


def test_a_partitioner_set_in_kafka_options_chooses_the_partitions(
    broker: EmbeddedBroker, topics: Topics, tmp_path: Path
) -> None:
    events = mixed_events(200, seed=81)
    options = {"partitioner": _FirstPartition()}
    cfg = config(broker.bootstrap, topics, tmp_path / "spool", kafka_options=options)
    with Publisher(cfg) as publisher:
        for event in events:
            publisher.publish(event)
        publisher.flush()
        assert publisher.stats().delivered == 200
    records, _ = read_back(broker.bootstrap, [topics.inspections, topics.services], 200)
    assert len(records) == 200
    assert {r.partition for r in records} == {0}


def test_publishing_from_several_threads_counts_and_delivers_every_event(
    broker: EmbeddedBroker, topics: Topics, tmp_path: Path
) -> None:
    events = mixed_events(2000, seed=91)
    shares = [events[i::4] for i in range(4)]
    cfg = config(broker.bootstrap, topics, tmp_path / "spool")
    with Publisher(cfg) as publisher:

        def publish_all(share: list[dict[str, Any]]) -> None:
            for event in share:
                publisher.publish(event)

        threads = [threading.Thread(target=publish_all, args=(s,)) for s in shares]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        publisher.flush()
        stats = publisher.stats()
    assert (stats.accepted, stats.sent, stats.delivered, stats.in_flight) == (2000,) * 3 + (0,)
    records, partitions = read_back(broker.bootstrap, [topics.inspections, topics.services], 2000)
    ids = [json.loads(r.value)["event_id"] for r in records]
    assert sorted(ids) == sorted(e["event_id"] for e in events)
    for record in records:
        assert record.partition == expected_partition(record.key, partitions[record.topic])
