"""`parwatch publish` with a file that mixes the three topics' schemas: each event on its topic
with its contract key, each bad line reported with the reason the contract gives it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from parwatch.broker import EmbeddedBroker, TopicSpec, ensure_topics
from schemas.example_payloads import load_examples
from schemas.topics import Topics
from tests.integration.test_publisher import contract_key, expected_partition, read_back

pytestmark = pytest.mark.kafka

V2_EXAMPLES = [
    e
    for e in load_examples()
    if e.name.startswith(("service-events/2/", "service-offerings/1/"))
    or e.name in ("inspection-events/1/opened_thanh_tra", "inspection-events/1/invalid_kind")
]


def test_help_names_the_three_topics() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "parwatch.cli", "publish", "--help"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    text = " ".join(done.stdout.split())
    for setting, default in (
        ("PARWATCH_TOPIC_INSPECTIONS", "inspection-events"),
        ("PARWATCH_TOPIC_SERVICES", "service-events"),
        ("PARWATCH_TOPIC_OFFERINGS", "service-offerings"),
    ):
        assert f"{setting} ({default})" in text
    assert "offering/1 to PARWATCH_TOPIC_OFFERINGS" in text


def test_publish_sends_every_schema_to_its_topic(broker: EmbeddedBroker, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:12]
    t = Topics(f"insp-{suffix}", f"svc-{suffix}", f"dl-{suffix}", f"off-{suffix}")
    ensure_topics(
        broker.bootstrap,
        [TopicSpec(t.inspections, 6), TopicSpec(t.services, 6),
         TopicSpec(t.offerings, 6, compacted=True)],
    )  # fmt: skip
    file = tmp_path / "mixed.jsonl"
    file.write_bytes(b"".join(e.raw + b"\n" for e in V2_EXAMPLES))
    done = subprocess.run(
        [sys.executable, "-m", "parwatch.cli", "publish", str(file), "--max-errors", "100"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PARWATCH_KAFKA_BOOTSTRAP": broker.bootstrap,
             "PARWATCH_DATA_DIR": str(tmp_path), "PARWATCH_TOPIC_INSPECTIONS": t.inspections,
             "PARWATCH_TOPIC_SERVICES": t.services, "PARWATCH_TOPIC_OFFERINGS": t.offerings},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # bad lines, every good line sent
    good = [json.loads(e.raw) for e in V2_EXAMPLES if e.reason is None]
    bad = [(n, e.reason.value) for n, e in enumerate(V2_EXAMPLES, 1) if e.reason is not None]
    out = done.stdout.splitlines()
    reported = [line.removeprefix(f"{file}:").split(": ")[:2] for line in out[: len(bad)]]
    assert [(int(n), reason) for n, reason in reported] == bad
    assert out[-1].startswith(f"sent {len(good)} events; {len(bad)} bad lines not sent")
    assert len(good) >= 17 and len(bad) >= 15

    records, partitions = read_back(
        broker.bootstrap, [t.inspections, t.services, t.offerings], len(good)
    )
    assert partitions == {t.inspections: 6, t.services: 6, t.offerings: 6}
    by_id = {e["event_id"]: e for e in good}
    assert sorted(json.loads(r.value)["event_id"] for r in records) == sorted(by_id)
    for record in records:
        event = by_id[json.loads(record.value)["event_id"]]
        assert record.topic == t.for_schema(event["schema"])
        assert record.key == contract_key(event)
        assert record.partition == expected_partition(record.key, 6)
    topics_used = {r.topic for r in records}
    assert topics_used == {t.inspections, t.services, t.offerings}
