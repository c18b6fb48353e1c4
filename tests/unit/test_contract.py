"""The event contract: every example payload gives what it names, in the models and in the
exported JSON Schema; timestamps, periods, PII and the classification rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import get_args

import jsonschema  # type: ignore[import-untyped]  # no types-jsonschema in the environment
import pytest

from schemas import InspectionEventV1, InvalidEvent, Reason, decode
from schemas.catalog import load_catalog
from schemas.events import MODELS, LatestEvent
from schemas.example_payloads import load_examples
from schemas.jsonschema_export import export, json_schemas, schema_file
from schemas.kpi import classify_inspection
from schemas.offering import OfferingEventV1
from schemas.periods import period_of
from schemas.service import ServiceEventV1, ServiceEventV2
from schemas.topics import Topics
from tests.conftest import make_inspection_event, make_service_event

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CATALOG = load_catalog()
EXAMPLES = load_examples()


def _decode(raw: bytes) -> LatestEvent:
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
        "offering-1.schema.json",
        "service-1.schema.json",
        "service-2.schema.json",
    ]
    for p in paths:
        doc = json.loads(p.read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator.check_schema(doc)
        assert "unknown_agency" in doc["description"]
        assert doc["$id"] == p.name
    docs = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in paths}
    # Each file lists the pipeline-only rules of its own fields: offerings have no form.
    assert "fields_prefilled" not in docs["offering-1.schema.json"]["description"]
    assert "fields_prefilled" in docs["service-2.schema.json"]["description"]
    assert "due_at may lie in the future" in docs["service-2.schema.json"]["description"]
    assert docs["service-2.schema.json"]["title"] == "service/2"
    assert docs["offering-1.schema.json"]["required"] == [
        "schema", "event_id", "occurred_at", "agency_code", "procedure_code", "level",
        "prefill_designed",
    ]  # fmt: skip


def _example_schema(example) -> str | None:  # type: ignore[no-untyped-def]
    try:
        schema = json.loads(example.raw).get("schema")
    except (UnicodeDecodeError, ValueError, AttributeError):
        return None
    return schema if schema in MODELS else None


@pytest.mark.parametrize(
    "example", [e for e in EXAMPLES if _example_schema(e)], ids=lambda e: e.name
)
def test_versioned_schema_file_agrees_with_models(example) -> None:  # type: ignore[no-untyped-def]
    """Each example also gets its verdict from its own schema's file, not only from the union."""
    schema = _example_schema(example)
    assert schema is not None  # the parametrization keeps only examples that name a schema
    document = json_schemas()[schema_file(schema)]
    validator = jsonschema.Draft202012Validator(
        document, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    assert validator.is_valid(json.loads(example.raw)) is example.json_schema_valid


def test_examples_sit_under_the_topic_and_version_of_their_schema() -> None:
    topics = Topics()
    for example in EXAMPLES:
        schema = _example_schema(example)
        if schema is None or example.name.startswith("refused/"):
            continue
        topic, version, _ = example.name.split("/")
        assert (topic, version) == (topics.for_schema(schema), schema.split("/")[1]), example.name


def test_v2_examples_cover_every_event_type_and_level() -> None:
    accepted = [json.loads(e.raw) for e in EXAMPLES if e.reason is None]
    v2 = {p["event_type"] for p in accepted if p["schema"] == "service/2"}
    assert v2 == set(get_args(ServiceEventV2.model_fields["event_type"].annotation))
    levels = {(p["level"], p["prefill_designed"]) for p in accepted if p["schema"] == "offering/1"}
    assert {level for level, _ in levels} == {
        "full_process", "partial", "not_online", "not_offered"
    }  # fmt: skip
    assert {prefill for _, prefill in levels} == {True, False}
    kinds = {p.get("kind") for p in accepted if p["schema"] == "inspection/1"}
    assert kinds == {None, "kiem_tra", "thanh_tra"}


def _v2_errors(payload: dict) -> list[str]:  # type: ignore[type-arg]
    validator = jsonschema.Draft202012Validator(json_schemas()["service-2.schema.json"])
    return sorted(e.message for e in validator.iter_errors(payload))


def test_service_2_if_then_rules_name_the_missing_field() -> None:
    base = {
        "schema": "service/2", "event_id": "5c1d2e3f-4a5b-4c6d-8e7f-000000000001",
        "occurred_at": "2024-06-10T08:30:00+07:00", "agency_code": "TH-S-TP",
        "procedure_code": "1.001193", "dossier_id": "D-1",
    }  # fmt: skip
    submitted = {**base, "event_type": "submitted", "channel": "counter",
                 "due_at": "2024-06-14T17:00:00+07:00", "digitized": False}  # fmt: skip
    assert _v2_errors(submitted) == []
    for field in ("channel", "due_at", "digitized"):
        without = {k: v for k, v in submitted.items() if k != field}
        assert _v2_errors(without) == [f"'{field}' is a required property"], field
    assert _v2_errors({**submitted, "digitized": None}) == ["None is not of type 'boolean'"]
    online = {**submitted, "channel": "online"}
    assert _v2_errors(online) == [
        "'form' is a required property", "'service_level' is a required property"
    ]  # fmt: skip
    paid = {**base, "event_type": "paid"}
    assert _v2_errors(paid) == ["'payment_channel' is a required property"]
    assert _v2_errors({**paid, "payment_channel": "online"}) == []
    completed = {**base, "event_type": "completed", "on_time": True}
    assert _v2_errors(completed) == ["'result_electronic' is a required property"]
    assert _v2_errors({**completed, "result_electronic": True}) == []
    for kind in ("supplement_requested", "supplement_received", "rejected", "withdrawn"):
        assert _v2_errors({**base, "event_type": kind}) == [], kind


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
    assert isinstance(event, ServiceEventV1)
    assert event.dossier_id == "038190012345"


def test_unnamed_fields_are_kept_and_text_is_nfc() -> None:
    decomposed = "Thanh Ho\u0301a"  # "Hóa" with a combining accent on the o
    raw = json.dumps(make_inspection_event(sector=decomposed, ghi_chu="Đoàn kiểm tra số 3"))
    event = _decode(raw.encode())
    assert isinstance(event, InspectionEventV1)
    assert event.sector == "Thanh Hóa"
    assert event.model_extra == {"ghi_chu": "Đoàn kiểm tra số 3"}


def test_future_timestamp_boundary() -> None:
    def at(s: str) -> bytes:
        return json.dumps(make_inspection_event(occurred_at=s)).encode()

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


def test_contract_keys_and_topics_of_v2_schemas() -> None:
    by_name = {e.name: e for e in EXAMPLES}
    offering = _decode(by_name["service-offerings/1/partial_no_prefill"].raw)
    assert isinstance(offering, OfferingEventV1)
    assert offering.key == "TH-S-TP:1.000894"
    dossier = _decode(by_name["service-events/2/paid_online"].raw)
    assert isinstance(dossier, ServiceEventV2)
    assert dossier.key == "TH-S-TP:000.00.16.H56-240610-0101"
    inspection = _decode(by_name["inspection-events/1/opened_thanh_tra"].raw)
    assert isinstance(inspection, InspectionEventV1)
    assert (inspection.key, inspection.kind) == ("TH-S-TTTT:TT-TTTT-2024-003", "thanh_tra")
    topics = Topics()
    assert [topics.for_schema(s) for s in ("offering/1", "service/2", "service/1")] == [
        "service-offerings", "service-events", "service-events"
    ]  # fmt: skip
