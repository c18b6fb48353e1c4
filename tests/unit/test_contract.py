"""The event contract: every example payload gives what it names, in the models and in the
exported JSON Schema; timestamps, periods, PII and the classification rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import jsonschema
import pytest

from schemas import InspectionEventV1, InvalidEvent, Reason, ServiceEventV1, decode
from schemas.catalog import load_catalog
from schemas.example_payloads import load_examples
from schemas.jsonschema_export import export, json_schemas
from schemas.kpi import classify_inspection
from schemas.periods import period_of
from tests.conftest import make_inspection_event, make_service_event

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CATALOG = load_catalog()
EXAMPLES = load_examples()


def _decode(raw: bytes) -> InspectionEventV1 | ServiceEventV1:
    return decode(raw, known_agency=CATALOG.agencies, now=NOW)


def test_examples_cover_every_reason_but_signatures() -> None:
    reasons = {e.reason for e in EXAMPLES}
    assert reasons == {None} | (set(Reason) - {Reason.BAD_SIGNATURE})
    assert len(EXAMPLES) >= 40


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_example_gives_what_it_names(example) -> None:  # type: ignore[no-untyped-def]
    if example.reason is None:
        event = _decode(example.raw)
        assert str(event.event_id) == json.loads(example.raw)["event_id"]
        return
    with pytest.raises(InvalidEvent) as info:
        _decode(example.raw)
    assert info.value.reason == example.reason, info.value.detail
    assert info.value.detail
    if example.reason is Reason.INVALID_EVENT:
        assert info.value.errors, "field errors are reported"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_json_schema_agrees_with_models(example) -> None:  # type: ignore[no-untyped-def]
    validator = jsonschema.Draft202012Validator(
        json_schemas()["event.schema.json"],
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )
    try:
        instance = json.loads(example.raw)
    except (UnicodeDecodeError, ValueError):
        assert not example.json_schema_valid
        return
    errors = [e.message for e in validator.iter_errors(instance)]
    assert validator.is_valid(instance) is example.json_schema_valid, errors


def test_json_schema_export_writes_valid_schemas(tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths = export(tmp_path)
    assert sorted(p.name for p in paths) == [
        "event.schema.json",
        "inspection-1.schema.json",
        "service-1.schema.json",
    ]
    for p in paths:
        doc = json.loads(p.read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator.check_schema(doc)
        assert "unknown_agency" in doc["description"]


def test_pii_payload_is_redacted() -> None:
    raw = json.dumps(make_inspection_event(ghi_chu="Gọi 0912.345.678 hoặc CCCD 038190012345"))
    with pytest.raises(InvalidEvent) as info:
        _decode(raw.encode())
    refusal = info.value
    assert refusal.reason is Reason.PII_DETECTED
    stored = refusal.payload.decode()
    assert "0912" not in stored and "038190012345" not in stored
    assert json.loads(stored)["ghi_chu"] == "Gọi [REDACTED] hoặc CCCD [REDACTED]"


def test_named_fields_with_digits_are_not_pii() -> None:
    event = _decode(json.dumps(make_service_event(dossier_id="038190012345")).encode())
    assert event.dossier_id == "038190012345"


def test_unnamed_fields_are_kept_and_text_is_nfc() -> None:
    decomposed = "Thanh Ho\u0301a"  # "Hóa" with a combining accent on the o
    raw = json.dumps(make_inspection_event(sector=decomposed, ghi_chu="Đoàn kiểm tra số 3"))
    event = _decode(raw.encode())
    assert isinstance(event, InspectionEventV1)
    assert event.sector == "Thanh Hóa"
    assert event.model_extra == {"ghi_chu": "Đoàn kiểm tra số 3"}


def test_future_timestamp_boundary() -> None:
    at = lambda s: json.dumps(make_inspection_event(occurred_at=s)).encode()  # noqa: E731
    _decode(at("2026-01-01T07:10:00+07:00"))  # exactly 10 minutes ahead: accepted
    with pytest.raises(InvalidEvent) as info:
        _decode(at("2026-01-01T07:10:01+07:00"))
    assert info.value.reason is Reason.FUTURE_TIMESTAMP


def test_periods_are_local_to_ho_chi_minh() -> None:
    moment = datetime.fromisoformat("2024-06-01T03:00:00+07:00")
    assert moment.astimezone(UTC).month == 5
    assert period_of(moment, "month") == "2024-06"
    assert period_of(moment, "quarter") == "2024-Q2"
    assert period_of(datetime.fromisoformat("2024-12-31T17:00:00Z"), "year") == "2025"


def test_classification_rule() -> None:
    assert classify_inspection(True, False) == "online"
    assert classify_inspection(False, True) == "in_person"
    assert classify_inspection(True, True) == "hybrid"
    assert classify_inspection(False, False) == "unclassified"


def test_contract_key() -> None:
    event = _decode(json.dumps(make_service_event(dossier_id="HS-1")).encode())
    assert event.key == "TH-S-TP:HS-1"
