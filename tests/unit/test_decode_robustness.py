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
_EXAMPLES = {e.name: json.loads(e.raw) for e in load_examples() if e.reason is None}
_V2 = _EXAMPLES["service-events/2/submitted_online_full_process"]
_OFFERING = _EXAMPLES["service-offerings/1/full_process_prefill"]


def _v2(**overrides: object) -> bytes:
    return json.dumps({**_V2, **overrides}).encode()


def _offering(**overrides: object) -> bytes:
    return json.dumps({**_OFFERING, **overrides}).encode()


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

INV, UNS, PII = Reason.INVALID_EVENT, Reason.UNSUPPORTED_SCHEMA, Reason.PII_DETECTED
HOSTILE_V2 = {
    "reused_huge": (_v2(reused_components=10**40), INV),
    "reused_bool": (_v2(reused_components=True), INV),
    "reused_float": (_v2(reused_components=1.5), INV),
    "due_year_1": (_v2(due_at="0001-01-01T00:00:00Z"), INV),
    "due_unix": (_v2(due_at=1718000000), INV),
    "due_null": (_v2(due_at=None), INV),
    "digitized_text": (_v2(digitized="yes"), INV),
    "paid_cash": (_v2(event_type="paid", payment_channel="cash"), INV),
    "completed_null_result": (_v2(event_type="completed", result_electronic=None), INV),
    "service_3": (_v2(schema="service/3"), UNS),
    "phone_nested": (_v2(ghi_chu={"sdt": ["+84 912 345 678"]}), PII),
    "level_null": (_offering(level=None), INV),
    "prefill_zero": (_offering(prefill_designed=0), INV),
    "procedure_empty": (_offering(procedure_code=""), INV),
    "occurred_space": (_offering(occurred_at="2024-06-01 00:00:00+07:00"), INV),
    "offering_2": (_offering(schema="offering/2"), UNS),
    "citizen_id_unnamed": (_offering(ma_dvc="038190012345"), PII),
}


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


@pytest.mark.parametrize("name", HOSTILE_V2)
def test_hostile_v2_payloads_get_the_reason_they_earn(name: str) -> None:
    raw, reason = HOSTILE_V2[name]
    assert _check(raw) is reason
