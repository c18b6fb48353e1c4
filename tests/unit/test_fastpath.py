"""The fast models (``schemas.fastpath``) accept only what the contract's models accept, with
equal values; everything else is left to the contract's models."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from producers.simulation.simulator import SimulationConfig, simulate
from schemas.catalog import load_catalog
from schemas.decoding import (
    MAX_FUTURE_SKEW,
    _named,
    _nested,
    accept_fast,
    decode,
    has_unnamed_fields,
)
from schemas.errors import InvalidEvent, Reason
from schemas.events import EVENT_ADAPTER
from schemas.example_payloads import load_examples
from schemas.fastpath import FAST_ADAPTER, NESTED, has_unnamed, nfc_safe
from tests.conftest import make_inspection_event, make_service_event


def _fast(raw: bytes) -> Any:
    try:
        return FAST_ADAPTER.validate_json(raw)
    except ValidationError:
        return None


def _full(raw: bytes) -> Any:
    try:
        return EVENT_ADAPTER.validate_json(raw)
    except ValidationError:
        return None


def _same(fast: Any, full: Any) -> None:
    assert isinstance(fast, type(full))  # a subclass of the contract's model
    assert fast.model_dump() == full.model_dump()  # unnamed fields included
    assert fast.model_extra == full.model_extra
    assert has_unnamed(fast) == has_unnamed_fields(full)
    assert fast.occurred_at.utcoffset() == full.occurred_at.utcoffset()


def test_simulated_payloads_give_the_same_events() -> None:
    sim = simulate(SimulationConfig(seed=11, events=3000), load_catalog())
    fast_count = unnamed = 0
    for m in sim.messages:
        full = _full(m.value)
        fast = _fast(m.value) if nfc_safe(m.value) else None
        if fast is not None:
            fast_count += 1
            unnamed += has_unnamed(fast)
            assert full is not None, m.value
            _same(fast, full)
    assert fast_count > 0.95 * len(sim.messages)  # the common case does take the fast path
    assert unnamed > 0.02 * len(sim.messages)  # agencies' own fields among them


def test_fast_models_name_the_same_fields_and_nest_the_same_way() -> None:
    """``has_unnamed`` and the PII check see the fast models as the contract's."""
    for fast, nested in NESTED.items():
        contract = fast.__mro__[1]
        assert set(_named(fast)) == set(_named(contract))
        assert nested == _nested(fast) == _nested(contract)
        for name in nested:
            inner, inner_contract = _named(fast)[name], _named(contract)[name]
            assert inner is not None and inner_contract is not None
            assert issubclass(inner, inner_contract) and set(_named(inner)) == set(
                _named(inner_contract)
            )


def test_examples_give_the_same_events() -> None:
    examples = load_examples()
    assert examples
    for ex in examples:
        full, fast = _full(ex.raw), _fast(ex.raw)
        if fast is not None:
            assert full is not None
            _same(fast, full)


@pytest.mark.parametrize(
    "when",
    [
        "2024-06-10t09:30:00+07:00",  # lower-case t: valid, contract's path
        "2024-06-10T09:30:00z",
        "2024-06-10T09:30:00.123456789Z",  # nanoseconds: truncated by the contract's path
        "2024-06-10T09:30:00.1234567+07:00",
    ],
)
def test_rarer_timestamp_forms_take_the_contracts_path(when: str) -> None:
    raw = json.dumps(make_inspection_event(occurred_at=when)).encode()
    assert _fast(raw) is None
    assert _full(raw) is not None


@pytest.mark.parametrize(
    "when",
    [
        "2024-02-30T00:00:00+07:00",
        "2024-06-10T24:00:00Z",
        "2024-06-10T09:30:60Z",
        "2024-06-10T09:30:00+24:00",
        "1970-01-01T00:00:00+00:01",  # before 1970-01-01Z
        "1969-12-31T23:59:59Z",
        "2024-06-10T09:30:00",
        "2024-06-10 09:30:00Z",
        "1718000000",
    ],
)
def test_both_refuse_bad_timestamps(when: str) -> None:
    raw = json.dumps(make_inspection_event(occurred_at=when)).encode()
    assert _fast(raw) is None
    assert _full(raw) is None


def test_earliest_moment_is_accepted_by_both() -> None:
    raw = json.dumps(make_inspection_event(occurred_at="1970-01-01T07:00:00+07:00")).encode()
    _same(_fast(raw), _full(raw))


@pytest.mark.parametrize(
    "event_id",
    ["6F9619FF-8B86-D011-B42D-00C04FC964FF", "6f9619ff8b86d011b42d00c04fc964ff",
     "{6f9619ff-8b86-d011-b42d-00c04fc964ff}", "urn:uuid:6f9619ff-8b86-d011-b42d-00c04fc964ff"],
)  # fmt: skip
def test_event_ids_agree(event_id: str) -> None:
    raw = json.dumps(make_service_event(event_id=event_id)).encode()
    full, fast = _full(raw), _fast(raw)
    assert (full is None) == (fast is None)
    if fast is not None:
        _same(fast, full)


def test_unnamed_fields_are_kept_and_seen_as_on_the_contracts_path() -> None:
    raw = json.dumps(make_inspection_event(ghi_chu="Đoàn 3"), ensure_ascii=False).encode()
    assert nfc_safe(raw)
    _same(_fast(raw), _full(raw))
    assert _fast(raw).model_extra == {"ghi_chu": "Đoàn 3"}
    for where in ("form", "applicant"):
        nested = make_service_event()
        nested[where]["ghi_chu"] = {"x": [1, "y"]}
        raw = json.dumps(nested).encode()
        fast = _fast(raw)
        assert has_unnamed(fast)
        assert getattr(fast, where).model_extra == {"ghi_chu": {"x": [1, "y"]}}
        _same(fast, _full(raw))
    activity = make_inspection_event()
    activity["activity"]["ghi_chu"] = 1
    _same(_fast(json.dumps(activity).encode()), _full(json.dumps(activity).encode()))
    assert has_unnamed(_fast(json.dumps(activity).encode()))


@pytest.mark.parametrize("where", ["", "form", "applicant"])
def test_personal_data_in_unnamed_fields_is_refused_on_the_fast_path(where: str) -> None:
    event = make_service_event()
    (event[where] if where else event)["so_dien_thoai"] = "0912 345 678"
    raw = json.dumps(event).encode()
    assert _fast(raw) is not None  # the fast models take it: decode must check it
    with pytest.raises(InvalidEvent) as refused:
        decode(raw, known_agency=[event["agency_code"]], now=datetime.now(UTC))
    assert refused.value.reason is Reason.PII_DETECTED
    assert b"0912" not in refused.value.payload


def test_text_not_in_nfc_is_not_fast() -> None:
    decomposed = unicodedata.normalize("NFD", "Thông tin và Truyền thông")
    raw = json.dumps(make_inspection_event(sector=decomposed), ensure_ascii=False).encode()
    assert not nfc_safe(raw)
    assert _full(raw).sector == "Thông tin và Truyền thông"
    escaped = json.dumps(make_inspection_event(sector=decomposed), ensure_ascii=True).encode()
    assert escaped.isascii() and not nfc_safe(escaped)  # \u escapes can spell anything
    composed = json.dumps(make_inspection_event(), ensure_ascii=False).encode()
    assert nfc_safe(composed)
    assert not nfc_safe(b'{"a": "\xff"}')


@pytest.mark.parametrize(
    "change",
    [
        {"inspection_id": ""}, {"inspection_id": "x" * 65}, {"sector": 5},
        {"activity": None}, {"activity": {"mode": "telepathy"}}, {"subject_type": "robot"},
    ],
)  # fmt: skip
def test_fast_refuses_what_the_contract_refuses(change: dict[str, Any]) -> None:
    raw = json.dumps(make_inspection_event(**change), ensure_ascii=False).encode()
    assert _full(raw) is None
    assert _fast(raw) is None


def test_service_rules_hold_on_the_fast_path() -> None:
    bad = [
        make_service_event(form={"fields_total": 3, "fields_prefilled": 4}),
        make_service_event(form=None),
        make_service_event(procedure_code="p" * 33),
        make_service_event(event_type="completed"),
    ]
    for payload in bad:
        raw = json.dumps(payload).encode()
        assert _full(raw) is None and _fast(raw) is None
    payload = make_inspection_event()
    payload["event_type"] = "concluded"  # activity only on 'activity' events
    raw = json.dumps(payload).encode()
    assert _full(raw) is None and _fast(raw) is None


def _decode_or_none(raw: bytes, known: Any, now: datetime) -> Any:
    try:
        return decode(raw, known_agency=known, now=now)
    except InvalidEvent:
        return None


def test_accept_fast_says_yes_only_where_decode_accepts_with_the_same_event() -> None:
    """The publisher's shortcut: a yes equals decode's event; a None leaves decode to decide,
    and it is rare on realistic traffic (invalid ones, ~1%, and the rarer timestamp forms)."""
    catalog = load_catalog()
    sim = simulate(SimulationConfig(seed=12, events=3000, invalid_share=0.05), catalog)
    now = datetime(2030, 1, 1, tzinfo=UTC)
    limit = (now + MAX_FUTURE_SKEW).timestamp()
    yes = refused = 0
    for m in sim.messages:
        raw = m.value if nfc_safe(m.value) else None  # the publisher normalises first
        if raw is None:
            continue
        fast = accept_fast(raw, catalog.agencies, limit)
        full = _decode_or_none(raw, catalog.agencies, now)
        if fast is None:
            refused += full is None
            continue
        yes += 1
        assert full is not None, raw
        _same(fast, full)
    assert yes > 0.9 * len(sim.messages)
    assert refused > 0.02 * len(sim.messages)  # the invalid ones were there, and said no to


def test_accept_fast_leaves_every_refusal_to_decode() -> None:
    known = ["TH-S-TP"]
    now = datetime(2024, 6, 10, 2, 30, tzinfo=UTC)  # the test event's own moment
    limit = (now + MAX_FUTURE_SKEW).timestamp()

    def raw(**change: Any) -> bytes:
        event = make_inspection_event(**{"agency_code": "TH-S-TP", **change})
        return json.dumps(event, ensure_ascii=False).encode()

    assert accept_fast(raw(), known, limit) is not None
    pii = make_inspection_event(agency_code="TH-S-TP", so_dien_thoai="0912 345 678")
    harmless = make_inspection_event(agency_code="TH-S-TP", ghi_chu="Đoàn 3")
    for bad in (
        raw(agency_code="TH-S-XX"),  # unknown agency
        raw(occurred_at="2024-06-10T09:40:01+07:00"),  # 10 min and 1 s ahead of now
        raw(inspection_id=""),  # invalid
        json.dumps(pii).encode(),  # personal data in an unnamed field
        b'{"schema": "inspection/9"}',
        b"not json",
        b'{"a": "\xff"}',
    ):
        assert accept_fast(bad, known, limit) is None
        assert _decode_or_none(bad, known, now) is None
    # Unnamed fields without personal data: accepted, kept.
    kept = accept_fast(json.dumps(harmless, ensure_ascii=False).encode(), known, limit)
    assert kept is not None and kept.model_extra == {"ghi_chu": "Đoàn 3"}
    # Exactly at the limit: accepted, as decode does; \u escapes: decode's to decide.
    at_limit = raw(occurred_at="2024-06-10T09:40:00+07:00")
    assert accept_fast(at_limit, known, limit) is not None
    assert _decode_or_none(at_limit, known, now) is not None
    escaped = json.dumps(make_inspection_event(agency_code="TH-S-TP", sector="Tài chính")).encode()
    assert b"\\u" in escaped and accept_fast(escaped, known, limit) is None
    assert _decode_or_none(escaped, known, now) is not None
