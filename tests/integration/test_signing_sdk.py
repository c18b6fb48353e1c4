"""Signed publishing on the real broker: every message the SDK sends (directly, from the spool,
from a spool reopened by another Publisher, and through `parwatch publish`) carries headers that
verify against the keyring."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka.consumer.fetcher import ConsumerRecord

from parwatch.broker import EmbeddedBroker, free_port
from producers.sdk.publisher import Publisher, PublisherConfig
from schemas.signing import (
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    Keyring,
    SigningKey,
    check_signature,
    keyring_document,
)
from schemas.topics import Topics
from tests.conftest import make_inspection_event, make_service_event
from tests.integration.test_publisher import read_back
from tests.integration.test_spool import FAST, start_broker

pytestmark = pytest.mark.kafka

TP = "TH-S-TP"
KEY = SigningKey("TH-S-TP.test.1", TP, bytes(range(32)))
OTHER = SigningKey("TH-S-YT.test.1", "TH-S-YT", bytes(range(1, 33)))
KEYRING = Keyring({KEY.key_id: KEY, OTHER.key_id: OTHER})


def events(n: int, tag: str) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        if i % 2:
            out.append(make_inspection_event(agency_code=TP, inspection_id=f"{tag}-{i % 17}"))
        else:
            out.append(make_service_event(agency_code=TP, dossier_id=f"{tag}-{i % 23}"))
    return out


def assert_signed(records: list[ConsumerRecord], expected: list[dict[str, Any]]) -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    assert sorted(json.loads(r.value)["event_id"] for r in records) == sorted(
        e["event_id"] for e in expected
    )
    for r in records:
        headers = list(r.headers)
        assert [name for name, _ in headers] == [KEY_ID_HEADER, SIGNATURE_HEADER]
        assert dict(headers)[KEY_ID_HEADER] == KEY.key_id.encode()
        assert check_signature(r.value, headers, KEYRING, TP, now=now) is None
        # The same headers on other bytes, or checked for another agency, are refused.
        assert check_signature(r.value + b" ", headers, KEYRING, TP, now=now) is not None
        assert check_signature(r.value, headers, KEYRING, "TH-S-YT", now=now) is not None


def test_direct_spooled_and_reopened_spool_messages_are_signed(tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:10]
    topics = Topics(f"insp-{suffix}", f"svc-{suffix}", f"dl-{suffix}")
    port = free_port()
    spool = tmp_path / "spool"
    cfg = PublisherConfig(
        bootstrap=f"127.0.0.1:{port}", topics=topics, spool_dir=spool, signing_key=KEY, **FAST
    )
    left_in_spool, spooled, direct = events(200, "A"), events(200, "B"), events(200, "C")
    # 1. Broker down, the publisher closes: the signed records stay on disk.
    with Publisher(cfg) as first:
        for e in left_in_spool:
            first.publish(e)
        first.close(timeout=0)
        assert first.stats().spool_pending == 200
    broker: EmbeddedBroker | None = None
    try:
        with Publisher(cfg) as publisher:
            for e in spooled:  # 2. still down: spooled behind the first 200
                publisher.publish(e)
            publisher.flush()
            assert publisher.stats().spool_pending == 400
            broker = start_broker(port, topics)
            assert publisher.drain(timeout=40), publisher.stats()
            for e in direct:  # 3. broker back: straight to Kafka
                publisher.publish(e)
            publisher.flush()
            stats = publisher.stats()
            assert (stats.delivered, stats.spool_pending, stats.direct) == (600, 0, True)
        records, _ = read_back(broker.bootstrap, [topics.inspections, topics.services], 600)
        assert_signed(records, left_in_spool + spooled + direct)
    finally:
        if broker is not None:
            broker.stop()


def test_parwatch_publish_signs_with_the_configured_key(
    broker: EmbeddedBroker, topics: Topics, tmp_path: Path
) -> None:
    keyring = tmp_path / "agency-key.json"
    keyring.write_text(json.dumps(keyring_document([KEY])))
    good = events(30, "P")
    lines = [json.dumps(e, ensure_ascii=False) for e in good]
    lines.append(json.dumps(make_inspection_event(agency_code="TH-S-YT")))  # not this agency's
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {
        **os.environ,
        "PARWATCH_KAFKA_BOOTSTRAP": broker.bootstrap,
        "PARWATCH_DATA_DIR": str(tmp_path / "data"),
        "PARWATCH_TOPIC_INSPECTIONS": topics.inspections,
        "PARWATCH_TOPIC_SERVICES": topics.services,
        "PARWATCH_SIGNING_KEY_FILE": str(keyring),
        "PARWATCH_SIGNING_KEY_ID": KEY.key_id,
    }
    cmd = [sys.executable, "-m", "parwatch.cli", "publish", str(path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    assert f"{path}:31: bad_signature: agency_code 'TH-S-YT' is not the signing key's" in (
        done.stdout
    )
    records, _ = read_back(broker.bootstrap, [topics.inspections, topics.services], 30)
    assert_signed(records, good)

    env["PARWATCH_SIGNING_KEY_ID"] = "TH-S-TP.nope"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert (
        done.stderr == f"parwatch: error: PARWATCH_SIGNING_KEY_ID TH-S-TP.nope: not in {keyring}\n"
    )
