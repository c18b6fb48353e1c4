"""Event authenticity, end to end: with signing enforced, the worker accepts events signed by a
valid key of their own agency (either of two rotated keys) and refuses every forgery as
`bad_signature`, before any KPI sees it."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import pytest
from kafka import KafkaProducer

from producers.simulation.messages import message_key
from schemas.signing import SIGNATURE_HEADER, SigningKey, keyring_document, sign
from tests.e2e.conftest import Pipeline
from tests.e2e.test_pipeline import A, B, _insp

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse]


def _key(key_id: str, agency: str) -> SigningKey:
    return SigningKey(key_id=key_id, agency_code=agency, secret=secrets.token_bytes(32))


def test_forged_events_are_refused_and_never_counted(pipeline: Pipeline, topics: Any) -> None:
    a_old, a_new, b = _key("a-2024", A), _key("a-2025", A), _key("b-2025", B)
    keyring = pipeline.data_dir / "keyring.json"
    keyring.write_text(json.dumps(keyring_document([a_old, a_new, b])), encoding="utf-8")
    pipeline.env["PARWATCH_SIGNING_KEYRING"] = str(keyring)

    def enc(event: Any) -> bytes:
        return json.dumps(event, ensure_ascii=False).encode()

    genuine = [  # one online inspection signed with the old key, one in person with the new one
        (enc(_insp("G1", "activity", "2024-06-03T09:00:00+07:00", "video_conference")), a_old),
        (enc(_insp("G1", "concluded", "2024-06-10T16:00:00+07:00")), a_old),
        (enc(_insp("G2", "activity", "2024-06-04T09:00:00+07:00", "on_site")), a_new),
        (enc(_insp("G2", "concluded", "2024-06-11T16:00:00+07:00")), a_new),
    ]
    sent: list[tuple[bytes, list[tuple[str, bytes]]]] = [(v, sign(v, k)) for v, k in genuine]

    def forged_event(n: int) -> bytes:  # would count as an online inspection of A if accepted
        return enc(_insp(f"F{n}", "concluded", "2024-06-12T16:00:00+07:00"))

    wrong_secret = SigningKey(key_id=a_old.key_id, agency_code=A, secret=b"x" * 32)
    replayed = sign(genuine[1][0], a_old)  # a valid signature, moved onto other bytes
    sent += [
        (forged_event(1), sign(forged_event(1), b)),  # another agency's key
        (forged_event(2), sign(forged_event(2), wrong_secret)),  # a wrong key
        (forged_event(3), replayed),  # a replayed signature on changed bytes
        (forged_event(4), []),  # unsigned
        (forged_event(5), [("parwatch-key-id", b"nobody"), (SIGNATURE_HEADER, b"v1=00")]),
    ]
    pipeline.start_worker()
    producer = KafkaProducer(bootstrap_servers=pipeline.env["PARWATCH_KAFKA_BOOTSTRAP"], acks="all")
    for value, headers in sent:
        producer.send(topics.inspections, key=message_key(value), value=value, headers=headers)
    producer.flush()
    producer.close()
    status = pipeline.wait_for(len(sent))
    assert status["by_result"]["accepted"] == 4
    assert status["by_result"]["refused"] == 5
    assert pipeline.stop_worker() == 0

    letters = pipeline.cli_json(
        "sql", "--json", "SELECT reason, detail, payload FROM dead_letters ORDER BY _offset"
    )
    assert [d["reason"] for d in letters] == ["bad_signature"] * 5
    assert all(a_old.secret.hex() not in d["detail"] for d in letters)
    assert {json.loads(d["payload"])["inspection_id"] for d in letters} == {
        "F1", "F2", "F3", "F4", "F5"
    }  # fmt: skip
    kpi = pipeline.cli_json("kpi", "--json", "--agency", A)
    assert [(r["period"], r["inspections_online"], r["inspections_in_person"],
             r["inspections_unclassified"]) for r in kpi] == [("2024-06", 1, 1, 0)]  # fmt: skip


def test_a_key_retired_while_the_worker_runs_refuses_its_next_event(
    pipeline: Pipeline, topics: Any
) -> None:
    old, new = _key("a-old", A), _key("a-new", A)
    keyring = pipeline.data_dir / "keyring.json"
    keyring.write_text(json.dumps(keyring_document([old, new])), encoding="utf-8")
    pipeline.env |= {"PARWATCH_SIGNING_KEYRING": str(keyring), "PARWATCH_CATALOG_CHECK_S": "0.5"}
    log = pipeline.data_dir / "worker.log"
    pipeline.start_worker("--loglevel", "info")
    producer = KafkaProducer(bootstrap_servers=pipeline.env["PARWATCH_KAFKA_BOOTSTRAP"], acks="all")

    def send(iid: str, key: SigningKey) -> None:
        value = json.dumps(_insp(iid, "activity", "2024-06-03T09:00:00+07:00", "on_site")).encode()
        producer.send(
            topics.inspections, key=message_key(value), value=value, headers=sign(value, key)
        ).get(timeout=30)

    try:
        send("RT1", old)
        assert pipeline.wait_for(1)["by_result"]["accepted"] == 1
        text = log.read_text(errors="replace")
        assert f"signing enforced: keyring {keyring}, 2 keys (2 active) of 1 agencies" in text

        retired = pipeline.cli("keys", "retire", "--keyring", str(keyring), "--key-id", "a-old")
        assert retired.returncode == 0, retired.stderr
        deadline = time.monotonic() + 60
        while "signing keyring reloaded" not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-2000:]
            assert pipeline.proc is not None and pipeline.proc.poll() is None
            time.sleep(0.1)
        assert f"reloaded from {keyring}: 2 keys (1 active) of 1 agencies" in log.read_text()

        send("RT2", old)  # the retired key's next event
        send("RT3", new)
        status = pipeline.wait_for(3)
        assert status["by_result"]["accepted"] == 2
        assert status["by_result"]["refused"] == 1
    finally:
        producer.close()
    assert pipeline.stop_worker() == 0
    letters = pipeline.cli_json("sql", "--json", "SELECT reason, detail, payload FROM dead_letters")
    assert [(d["reason"], d["detail"]) for d in letters] == [
        ("bad_signature", f"key a-old of {A} is retired")
    ]
    assert json.loads(letters[0]["payload"])["inspection_id"] == "RT2"
