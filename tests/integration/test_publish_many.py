"""``Publisher.publish_many`` and the hand-over to kafka-python on the real broker: every event
once, keyed, partitioned and in order per key, refusals as values, delivery callbacks, the spool
when the broker is down or goes away, and the backpressure on a sender that cannot send."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.producer.future import RecordMetadata
from kafka.structs import TopicPartition

from parwatch.broker import EmbeddedBroker
from producers.sdk.bulk import CHUNK_LINES, publish_jsonl
from producers.sdk.handover import Handover
from producers.sdk.publisher import Publisher, PublisherConfig, Refusal
from schemas import EVENT_ADAPTER, Reason
from schemas.catalog import load_catalog
from schemas.topics import Topics
from tests.conftest import make_inspection_event, make_service_event
from tests.integration.test_publisher import assert_delivered, config, mixed_events, read_back
from tests.integration.test_spool import FAST, start_broker, wait_for

pytestmark = pytest.mark.kafka


def with_bad_ones(good: list[Any]) -> tuple[list[Any], dict[int, Reason]]:
    """``good`` with refused events put in at known positions: (all events, position ->
    reason)."""
    bad = {
        5: (make_inspection_event(agency_code="XX-KHONG-CO"), Reason.UNKNOWN_AGENCY),
        400: (b'{"schema": "inspection/1", ', Reason.MALFORMED_JSON),
        401: (make_service_event(ghi_chu="gọi 0912 345 678"), Reason.PII_DETECTED),
        1200: (make_service_event(event_type="completed"), Reason.INVALID_EVENT),
    }
    events = list(good)
    for position in sorted(bad):
        events.insert(position, bad[position][0])
    return events, {position: reason for position, (_, reason) in bad.items()}


def test_publish_many_delivers_each_event_once_in_order_and_returns_the_refused(
    broker: EmbeddedBroker, topics: Topics, tmp_path: Path
) -> None:
    good = mixed_events(3000, seed=101)
    # The three input forms, as publish takes them: bytes as given, a dict, a pydantic model.
    inputs: list[Any] = []
    for i, event in enumerate(good):
        raw = json.dumps(event, ensure_ascii=False).encode()
        inputs.append(
            raw if i % 3 == 0 else event if i % 3 == 1 else EVENT_ADAPTER.validate_json(raw)
        )
    events, refused_at = with_bad_ones(inputs)
    acked: dict[str, list[tuple[str, int, int]]] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def on_delivery(event_id: str, md: RecordMetadata | None, exc: BaseException | None) -> None:
        with lock:
            if md is not None:
                acked.setdefault(event_id, []).append((md.topic, md.partition, md.offset))
            if exc is not None:
                errors.append(exc)

    # A small request size: the events are handed over in many runs of about 40 KB.
    cfg = config(
        broker.bootstrap, topics, tmp_path / "spool", known_agencies=load_catalog().agencies,
        kafka_options={"max_request_size": 40_000},
    )  # fmt: skip
    with Publisher(cfg, on_delivery=on_delivery) as publisher:
        refusals = publisher.publish_many(iter(events))  # any iterable, consumed once
        publisher.flush()
        stats = publisher.stats()
        handover = publisher._handover
    assert [(r.position, r.error.reason) for r in refusals] == sorted(refused_at.items())
    assert all(isinstance(r, Refusal) and r.error.__traceback__ is None for r in refusals)
    assert (stats.accepted, stats.refused, stats.delivered, stats.in_flight) == (3000, 4, 3000, 0)
    assert (stats.spooled, stats.failed, stats.spool_pending) == (0, 0, 0)
    assert handover is not None and handover.direct  # kafka-python's accumulator, not send()

    records, partitions = read_back(broker.bootstrap, [topics.inspections, topics.services], 3000)
    assert_delivered(records, good, topics, partitions)
    # One callback per event, with the record's own place in the log.
    assert errors == []
    placed = {json.loads(r.value)["event_id"]: (r.topic, r.partition, r.offset) for r in records}
    assert {event_id: places[0] for event_id, places in acked.items()} == placed
    assert all(len(places) == 1 for places in acked.values())
    given = {e["event_id"]: item for e, item in zip(good, inputs, strict=True)}
    for record in records:
        item = given[json.loads(record.value)["event_id"]]
        if isinstance(item, bytes):
            assert record.value == item  # sent exactly as given


def test_publish_many_after_publish_keeps_the_order_of_both(
    broker: EmbeddedBroker, topics: Topics, tmp_path: Path
) -> None:
    events = mixed_events(1200, seed=103)
    with Publisher(config(broker.bootstrap, topics, tmp_path / "spool")) as publisher:
        for event in events[:200]:
            publisher.publish(event)
        assert publisher.publish_many(events[200:700]) == []
        for event in events[700:900]:
            publisher.publish(event)
        assert publisher.publish_many(events[900:]) == []
        assert publisher.publish_many([]) == []
    records, partitions = read_back(broker.bootstrap, [topics.inspections, topics.services], 1200)
    assert_delivered(records, events, topics, partitions)


def test_publish_many_with_the_broker_down_spools_everything_then_delivers_it_in_order(
    port: int, fresh_topics: Topics, tmp_path: Path
) -> None:
    topics = fresh_topics
    good = mixed_events(1500, seed=107)
    events, refused_at = with_bad_ones(good)
    cfg = PublisherConfig(
        bootstrap=f"127.0.0.1:{port}", topics=topics, spool_dir=tmp_path / "spool",
        known_agencies=load_catalog().agencies, **FAST,
    )  # fmt: skip
    broker: EmbeddedBroker | None = None
    try:
        with Publisher(cfg) as publisher:
            started = time.monotonic()
            refusals = publisher.publish_many(events)
            assert time.monotonic() - started < 5.0  # no waiting for the broker
            assert [(r.position, r.error.reason) for r in refusals] == sorted(refused_at.items())
            publisher.flush()
            stats = publisher.stats()
            assert (stats.accepted, stats.refused, stats.spooled) == (1500, 4, 1500)
            assert (stats.spool_pending, stats.delivered, stats.direct) == (1500, 0, False)

            broker = start_broker(port, topics)
            assert publisher.drain(timeout=40), publisher.stats()
            stats = publisher.stats()
            assert (stats.delivered, stats.spool_pending, stats.direct) == (1500, 0, True)
        records, partitions = read_back(
            broker.bootstrap, [topics.inspections, topics.services], 1500
        )
        # The spool keeps publish order, so per-key order survives the outage too.
        assert_delivered(records, good, topics, partitions)
    finally:
        if broker is not None:
            broker.stop()


def test_publish_many_into_a_broker_that_went_away_spools_and_resends_each_event_once(
    port: int, fresh_topics: Topics, tmp_path: Path
) -> None:
    topics = fresh_topics
    before, after = mixed_events(300, seed=109), mixed_events(2000, seed=110)
    cfg = PublisherConfig(
        bootstrap=f"127.0.0.1:{port}", topics=topics, spool_dir=tmp_path / "spool", **FAST
    )
    broker = start_broker(port, topics)
    try:
        with Publisher(cfg) as publisher:
            assert publisher.publish_many(before) == []
            publisher.flush()
            assert publisher.stats().delivered == 300

            broker.stop()  # memory only: the first 300 are gone with it
            started = time.monotonic()
            assert publisher.publish_many(after) == []  # direct sends into a dead connection
            assert time.monotonic() - started < 5.0
            publisher.flush()  # returns once every failed send is in the spool (fsynced)
            stats = publisher.stats()
            assert (stats.in_flight, stats.delivered, stats.spool_pending) == (0, 300, 2000)
            assert stats.failed >= 2000 and not stats.direct
            wait_for(lambda: not publisher.stats().connected, 15, "the old producer to close")

            broker = start_broker(port, topics)
            assert publisher.drain(timeout=40), publisher.stats()
        records, _ = read_back(broker.bootstrap, [topics.inspections, topics.services], 2000)
        ids = [json.loads(r.value)["event_id"] for r in records]
        assert len(ids) == len(set(ids)) == 2000
        assert set(ids) == {e["event_id"] for e in after}
    finally:
        broker.stop()


def test_a_sender_that_cannot_send_holds_the_publishing_thread_back_linger_per_batch(
    port: int,
) -> None:
    # Nothing listens on the port: kafka-python's sender can take no batch into a request.
    producer = KafkaProducer(
        bootstrap_servers=f"127.0.0.1:{port}", api_version=(2, 8), linger_ms=20,
        batch_size=16_384, max_request_size=65_536, request_timeout_ms=1000,
        delivery_timeout_ms=1500, reconnect_backoff_max_ms=200, enable_idempotence=False,
    )  # fmt: skip
    try:
        handover = Handover(producer)
        assert handover.direct
        tp = TopicPartition("t", 0)
        value = b"x" * 4000  # four records fill a 16 KiB batch; 65,536 / 16,384 = 4 a request
        futures = []
        started = time.monotonic()
        for i in range(100):
            futures.append(handover.send(tp, "t", str(i).encode(), value, ()))
        elapsed = time.monotonic() - started
        # 25 batches of 4 records; from the fifth on, each one opened finds four or more
        # complete batches waiting for the sender, and waits.
        assert handover.waits == 21
        assert elapsed >= handover.waits * 0.020 * 0.9  # each wait took its linger
        assert elapsed < handover.waits * 0.020 + 1.0  # and no more
        assert not any(f.is_done for f in futures)  # all still in kafka-python's hands
        # kafka-python fails them when the delivery timeout runs out, as for any send.
        wait_for(lambda: all(f.is_done for f in futures), 15, "the delivery timeout")
        assert all(f.failed() for f in futures)
    finally:
        producer.close(timeout=1)


def test_parwatch_publish_path_reports_bad_lines_in_order_across_calls_with_progress(
    broker: EmbeddedBroker, topics: Topics, tmp_path: Path
) -> None:
    good = mixed_events(2 * CHUNK_LINES + 500, seed=113)
    lines = [json.dumps(e, ensure_ascii=False) for e in good]
    # Bad lines on both sides of a call's boundary (line 1000 is the first call's last line).
    for number, line in sorted(
        [
            (999, json.dumps(make_inspection_event(agency_code="XX-KHONG-CO"))),
            (1000, "{not json"),
            (1001, json.dumps(make_service_event(ghi_chu="CCCD 038123456789"))),
            (2003, ""),
        ]
    ):
        lines.insert(number - 1, line)
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    calls: list[tuple[int, int]] = []
    cfg = config(
        broker.bootstrap, topics, tmp_path / "spool", known_agencies=load_catalog().agencies
    )
    with Publisher(cfg) as publisher:
        report = publish_jsonl(source, publisher, progress=lambda d, t: calls.append((d, t)))
    total = len(lines)
    assert (report.accepted, report.blank) == (len(good), 1)
    assert [(b.line, b.reason) for b in report.bad] == [
        (999, "unknown_agency"),
        (1000, "malformed_json"),
        (1001, "pii_detected"),
    ]
    assert calls == [(1000, total), (2000, total), (total, total)]
    records, partitions = read_back(
        broker.bootstrap, [topics.inspections, topics.services], len(good)
    )
    assert_delivered(records, good, topics, partitions)
