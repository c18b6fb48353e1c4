"""Hostile input never escapes decode() as anything but InvalidEvent, and every refusal can be
stored (its payload is bytes that encode, its reason is in the closed set)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest

from schemas import InvalidEvent, Reason, decode
from schemas.example_payloads import load_examples
from tests.conftest import make_inspection_event, make_service_event

NOW = datetime(2026, 1, 1, tzinfo=UTC)
AGENCIES = {"TH-S-TTTT", "TH-S-TP"}

HOSTILE = [
    b"", b"null", b"0", b'"x"', b"{}", b"\x00" * 10, b"\xff\xfe{}", b"{" * 100_000,
    b'{"schema": "inspection/1", "n": NaN}', b'{"a": "\\ud800"}',
    json.dumps(make_inspection_event(ghi_chu="\ud800 0912 345 678"), ensure_ascii=True).encode(),
    json.dumps(make_inspection_event(x=0))[:-1].encode() + b', "big": ' + b"9" * 5000 + b"}",
    json.dumps(make_inspection_event(inspection_id="x" * 1_000_000)).encode(),
    json.dumps(make_service_event(form={"fields_total": 10**40, "fields_prefilled": 1})).encode(),
    json.dumps(make_inspection_event(occurred_at="0001-01-01T00:00:00Z")).encode(),
    json.dumps(make_inspection_event(occurred_at="9999-12-31T23:59:59+14:00")).encode(),
    json.dumps(make_inspection_event(occurred_at="2024-02-30T00:00:00+07:00")).encode(),
    json.dumps(make_inspection_event(event_id=None)).encode(),
    json.dumps(make_service_event(on_time=1, event_type="completed")).encode(),
]  # fmt: skip


def _check(raw: bytes) -> Reason | None:
    try:
        decode(raw, known_agency=AGENCIES, now=NOW)
    except InvalidEvent as refusal:
        assert refusal.reason in set(Reason)
        assert isinstance(refusal.payload, bytes)
        refusal.payload.decode("utf-8")  # storable as text
        return refusal.reason
    return None


@pytest.mark.parametrize("raw", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_payloads_are_refused_cleanly(raw: bytes) -> None:
    assert _check(raw) is not None


def test_ten_thousand_mutations() -> None:
    rng = random.Random(20241)
    seeds = [e.raw for e in load_examples()]
    outcomes: dict[str, int] = {}
    for _ in range(10_000):
        raw = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            i = rng.randrange(len(raw) + 1)
            if op < 0.4 and raw:
                raw[min(i, len(raw) - 1)] = rng.randrange(256)
            elif op < 0.7:
                raw[i:i] = bytes([rng.randrange(256)])
            else:
                del raw[i : i + rng.randint(1, 20)]
        reason = _check(bytes(raw))
        key = reason.value if reason else "accepted"
        outcomes[key] = outcomes.get(key, 0) + 1
    assert sum(outcomes.values()) == 10_000
    assert outcomes.get("malformed_json", 0) > 1000
    assert outcomes.get("accepted", 0) > 0
