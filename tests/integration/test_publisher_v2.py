"""Contract v2 through the publisher SDK and a real Tansu broker: ``offering/1`` on the
offerings topic keyed ``{agency_code}:{procedure_code}``, ``service/2`` on the services topic
keyed by dossier, an inspection's ``kind``; the spool and its drainer for all three topics; and
an offerings topic that does not exist yet is waited for, never created."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.producer.future import RecordMetadata

from parwatch.broker import EmbeddedBroker, TopicSpec, ensure_topics, free_port
from producers.sdk.publisher import Publisher, PublisherConfig, PublishError
from schemas import EVENT_ADAPTER, Reason
from schemas.catalog import load_catalog
from schemas.example_payloads import load_examples
from schemas.topics import Topics
from tests.integration.test_publisher import expected_partition, read_back

pytestmark = pytest.mark.kafka

ACCEPTED = {e.name: json.loads(e.raw) for e in load_examples() if e.reason is None}
OFFERING = ACCEPTED["service-offerings/1/full_process_prefill"]
SERVICE_2 = ACCEPTED["service-events/2/submitted_online_full_process"]
THANH_TRA = ACCEPTED["inspection-events/1/opened_thanh_tra"]


def _fresh(event: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A copy with a new ``event_id``: tests share the session's broker, never its records."""
    return {**event, "event_id": str(uuid.uuid4()), **overrides}


def _topics(broker: EmbeddedBroker, *, offerings: bool = True) -> Topics:
    suffix = uuid.uuid4().hex[:12]
    t = Topics(f"insp-{suffix}", f"svc-{suffix}", f"dl-{suffix}", f"offerings-{suffix}")
    specs = [TopicSpec(t.inspections, 6), TopicSpec(t.services, 6)]
    if offerings:
        specs.append(TopicSpec(t.offerings, 6, compacted=True))
    ensure_topics(broker.bootstrap, specs)
    return t


def _config(bootstrap: str, topics: Topics, spool: Path, **kw: Any) -> PublisherConfig:
    return PublisherConfig(
        bootstrap=bootstrap,
        topics=topics,
        spool_dir=spool,
        known_agencies=load_catalog().agencies,
        **kw,
    )


_SUBMISSION_ONLY = dict.fromkeys(
    ("channel", "due_at", "digitized", "reused_components", "service_level", "form", "applicant")
)


def _three_kinds() -> list[dict[str, Any]]:
    return [
        _fresh(OFFERING),
        _fresh(SERVICE_2),
        _fresh(THANH_TRA),
        _fresh(OFFERING, procedure_code="1.000894", level="partial", prefill_designed=False),
        _fresh(SERVICE_2, event_type="paid", payment_channel="online", **_SUBMISSION_ONLY),
    ]


def _clean(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if v is not None}


def _assert_on_their_topics(records: list[Any], events: list[dict[str, Any]], t: Topics) -> None:
    """Each event once, on its schema's topic, with the contract's key, in the partition
    murmur2 of that key picks (6 partitions each), its value the published JSON."""
    assert sorted(json.loads(r.value)["event_id"] for r in records) == sorted(
        e["event_id"] for e in events
    )
    by_id = {e["event_id"]: e for e in events}
    for record in records:
        event = by_id[json.loads(record.value)["event_id"]]
        assert json.loads(record.value) == event
        if event["schema"] == "offering/1":
            key, topic = f"{event['agency_code']}:{event['procedure_code']}", t.offerings
        elif event["schema"] == "service/2":
            key, topic = f"{event['agency_code']}:{event['dossier_id']}", t.services
        else:
            key, topic = f"{event['agency_code']}:{event['inspection_id']}", t.inspections
        assert (record.topic, record.key) == (topic, key.encode())
        assert record.partition == expected_partition(record.key, 6)


def test_each_v2_schema_goes_to_its_topic_with_its_key_and_partition(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    t = _topics(broker)
    events = [_clean(e) for e in _three_kinds()]
    acked: dict[str, tuple[str, int]] = {}
    lock = threading.Lock()

    def on_delivery(event_id: str, md: RecordMetadata | None, exc: BaseException | None) -> None:
        assert exc is None, exc
        assert md is not None
        with lock:
            acked[event_id] = (md.topic, md.partition)

    with Publisher(_config(broker.bootstrap, t, tmp_path / "spool"), on_delivery) as publisher:
        for i, event in enumerate(events):
            # As a dict, as bytes, and as a pydantic model: the same record each way.
            raw = json.dumps(event, ensure_ascii=False).encode()
            publisher.publish([event, raw, EVENT_ADAPTER.validate_json(raw)][i % 3])
        publisher.flush()
        stats = publisher.stats()
    assert (stats.accepted, stats.delivered, stats.refused, stats.spool_pending) == (5, 5, 0, 0)

    records, partitions = read_back(broker.bootstrap, [t.inspections, t.services, t.offerings], 5)
    assert partitions == {t.inspections: 6, t.services: 6, t.offerings: 6}
    _assert_on_their_topics(records, events, t)
    assert acked == {json.loads(r.value)["event_id"]: (r.topic, r.partition) for r in records}
    offering = next(r for r in records if r.topic == t.offerings and b"1.001193" in r.key)
    assert offering.key == b"TH-S-TP:1.001193"
    assert offering.partition == expected_partition(b"TH-S-TP:1.001193", 6)


def test_the_sdk_refuses_what_the_v2_contract_refuses(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    t = _topics(broker)
    with Publisher(_config(broker.bootstrap, t, tmp_path / "spool")) as publisher:
        refused = {}
        for name, bad in {
            "no_due_at": _clean(_fresh(SERVICE_2, due_at=None)),
            "paid_without_channel": _clean(_fresh(SERVICE_2, event_type="paid")),
            "level": _fresh(OFFERING, level="fully_online"),
            "kind": _fresh(THANH_TRA, kind="giam_sat"),
            "agency": _fresh(OFFERING, agency_code="XYZ"),
        }.items():
            with pytest.raises(PublishError) as info:
                publisher.publish(bad)
            refused[name] = info.value.reason
        assert publisher.stats().refused == 5
    assert refused == {
        "no_due_at": Reason.INVALID_EVENT,
        "paid_without_channel": Reason.INVALID_EVENT,
        "level": Reason.INVALID_EVENT,
        "kind": Reason.INVALID_EVENT,
        "agency": Reason.UNKNOWN_AGENCY,
    }


def test_the_spool_delivers_all_three_topics_after_an_outage(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """Published while no broker answers: all spooled; a publisher opened on the same spool
    later (a restart of the agency's process) delivers them to their three topics."""
    t = _topics(broker)
    events = [_clean(e) for e in _three_kinds()]
    spool = tmp_path / "spool"
    nowhere = f"127.0.0.1:{free_port()}"
    offline = _config(nowhere, t, spool, connect_timeout_s=0.5, close_timeout_s=0)
    with Publisher(offline) as publisher:
        for event in events:
            publisher.publish(event)
        publisher.flush()
        stats = publisher.stats()
        assert (stats.spooled, stats.spool_pending, stats.delivered) == (5, 5, 0)

    with Publisher(_config(broker.bootstrap, t, spool)) as publisher:
        assert publisher.drain(timeout=30)
        assert (publisher.stats().delivered, publisher.stats().spool_pending) == (5, 0)
    records, _ = read_back(broker.bootstrap, [t.inspections, t.services, t.offerings], 5)
    _assert_on_their_topics(records, events, t)


def test_a_missing_offerings_topic_is_waited_for_never_created(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """Dossier events flow without the offerings topic; an offering waits in the spool (and
    what comes after it waits behind it) until the topic exists. The SDK never names the
    missing topic in a metadata request, which would make Tansu create it with 4 partitions."""
    t = _topics(broker, offerings=False)
    first, offering, after = _fresh(THANH_TRA), _fresh(OFFERING), _clean(_fresh(SERVICE_2))
    cfg = _config(broker.bootstrap, t, tmp_path / "spool", connect_timeout_s=1.0)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        with Publisher(cfg) as publisher:
            publisher.publish(first)
            publisher.flush()
            assert publisher.stats().delivered == 1
            publisher.publish(offering)
            publisher.publish(after)
            publisher.flush()
            stats = publisher.stats()
            assert (stats.delivered, stats.spool_pending) == (1, 2)
            assert publisher.drain(timeout=2) is False
            assert t.offerings not in admin.list_topics()

            ensure_topics(broker.bootstrap, [TopicSpec(t.offerings, 6, compacted=True)])
            assert publisher.drain(timeout=30)
            assert (publisher.stats().delivered, publisher.stats().spool_pending) == (3, 0)
        topic = admin.describe_topics([t.offerings])[0]
        assert len(topic["partitions"]) == 6  # the one created above, not an implicit one
    finally:
        admin.close()
    records, _ = read_back(broker.bootstrap, [t.inspections, t.services, t.offerings], 3)
    _assert_on_their_topics(records, [first, offering, after], t)
