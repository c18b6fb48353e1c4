"""Pure classification: order independence, redelivery versus duplicate, versions."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from schemas import decode
from schemas.inspection import InspectionEventV1
from schemas.service import ServiceEventV1
from streams.worker.classify import (
    DossierState,
    InspectionState,
    Outcome,
    apply_inspection,
    apply_service,
    prefill_class,
    ticks_ms,
)
from tests.conftest import make_inspection_event, make_service_event

NOW = datetime(2026, 1, 1, tzinfo=UTC)
AGENCIES = {"TH-S-TTTT", "TH-S-TP"}


def _ev(**kw: object) -> InspectionEventV1:
    e = decode(json.dumps(make_inspection_event(**kw)).encode(), known_agency=AGENCIES, now=NOW)
    assert isinstance(e, InspectionEventV1)
    return e


def _run(events: list[InspectionEventV1]) -> InspectionState:
    state = InspectionState()
    for offset, e in enumerate(events):
        state, _ = apply_inspection(state, e, (0, offset))
    return state


EVENTS = [
    _ev(activity={"mode": "video_conference"}),
    _ev(activity={"mode": "on_site"}),
    _ev(event_type="concluded", occurred_at="2024-06-10T16:00:00+07:00"),
    _ev(event_type="concluded", occurred_at="2024-06-12T16:00:00+07:00"),
    _ev(event_type="opened", occurred_at="2024-06-01T08:00:00+07:00"),
]


@pytest.mark.parametrize("order", list(itertools.permutations(range(len(EVENTS)))))
def test_final_state_does_not_depend_on_arrival_order(order: tuple[int, ...]) -> None:
    state = _run([EVENTS[i] for i in order])
    assert state.classification == "hybrid"
    assert state.activities == 2
    assert state.version == 5
    assert state.concluded_at == ticks_ms(datetime.fromisoformat("2024-06-12T16:00:00+07:00"))
    assert state.opened_at == ticks_ms(datetime.fromisoformat("2024-06-01T08:00:00+07:00"))


def test_classes() -> None:
    online = _run([_ev(activity={"mode": m}) for m in ("information_system", "online_reporting")])
    assert online.classification == "online"
    person = _run([_ev(activity={"mode": m}) for m in ("on_site", "in_person_meeting")])
    assert person.classification == "in_person"
    assert _run([_ev(event_type="concluded")]).classification == "unclassified"
    assert _run([_ev(event_type="cancelled")]).cancelled


def test_redelivery_is_not_a_duplicate() -> None:
    e = EVENTS[0]
    state, first = apply_inspection(InspectionState(), e, (2, 40))
    again, redelivered = apply_inspection(state, e, (2, 40))
    same, duplicate = apply_inspection(state, e, (2, 41))
    assert (first, redelivered, duplicate) == (Outcome.NEW, Outcome.REDELIVERED, Outcome.DUPLICATE)
    assert again == state == same
    assert state.version == 1


def test_service_dedup_and_prefill_class() -> None:
    raw = json.dumps(make_service_event(form={"fields_total": 4, "fields_prefilled": 4}))
    e = decode(raw.encode(), known_agency=AGENCIES, now=NOW)
    assert isinstance(e, ServiceEventV1)
    state, first = apply_service(DossierState(), e, (1, 7))
    _, dup = apply_service(state, e, (3, 9))
    assert (first, dup) == (Outcome.NEW, Outcome.DUPLICATE)
    assert prefill_class(e) == "full"
    partial = e.model_copy(update={"form": e.form.model_copy(update={"fields_prefilled": 1})})  # type: ignore[union-attr]
    assert prefill_class(partial) == "partial"
    counter = e.model_copy(update={"channel": "counter"})
    assert prefill_class(counter) == "not_online"


def _kinded(kind: str | None, at: str, event_type: str = "activity") -> InspectionEventV1:
    extra = {} if kind is None else {"kind": kind}
    return _ev(event_type=event_type, occurred_at=at, **extra)


KIND_EVENTS = [
    _kinded("thanh_tra", "2024-06-01T08:00:00+07:00", "opened"),
    _kinded(None, "2024-06-30T08:00:00+07:00"),  # the latest, but carries no kind
    _kinded("kiem_tra", "2024-06-10T08:00:00+07:00"),  # the latest carrier: it decides
    _kinded("thanh_tra", "2024-06-05T08:00:00+07:00", "concluded"),
]


@pytest.mark.parametrize("order", list(itertools.permutations(range(len(KIND_EVENTS)))))
def test_kind_is_the_latest_carriers_in_any_arrival_order(order: tuple[int, ...]) -> None:
    state = _run([KIND_EVENTS[i] for i in order])
    assert state.kind == "kiem_tra"
    assert state.kind_at == ticks_ms(datetime.fromisoformat("2024-06-10T08:00:00+07:00"))
    assert state.classification == "online" and state.version == 4


def test_kind_defaults_to_kiem_tra_and_ties_go_to_the_later_applied() -> None:
    assert InspectionState().kind == "kiem_tra"
    assert _run([_kinded(None, "2024-06-01T08:00:00+07:00")]).kind == "kiem_tra"
    assert _run([_kinded("thanh_tra", "2024-06-01T08:00:00+07:00")]).kind == "thanh_tra"
    at = "2024-06-03T08:00:00+07:00"
    a, b = _kinded("thanh_tra", at), _kinded("kiem_tra", at)
    assert _run([a, b]).kind == "kiem_tra"
    assert _run([b, a]).kind == "thanh_tra"
    # A duplicate or a redelivery changes nothing, kind included.
    state, _ = apply_inspection(InspectionState(), a, (0, 1))
    again, outcome = apply_inspection(state, a, (0, 2))
    assert outcome is Outcome.DUPLICATE and again.kind == "thanh_tra"


def test_offering_dedup_uses_its_own_state() -> None:
    from schemas.offering import OfferingEventV1
    from streams.worker.classify import OfferingState, apply_offering

    raw = json.dumps({
        "schema": "offering/1", "event_id": "7a0f3b2c-1d4e-4f5a-9b6c-202406010001",
        "occurred_at": "2024-06-01T00:00:00+07:00", "agency_code": "TH-S-TP",
        "procedure_code": "1.001193", "level": "partial", "prefill_designed": False,
    })  # fmt: skip
    e = decode(raw.encode(), known_agency=AGENCIES, now=NOW)
    assert isinstance(e, OfferingEventV1)
    state, first = apply_offering(OfferingState(), e, (1, 7))
    same, redelivered = apply_offering(state, e, (1, 7))
    _, dup = apply_offering(state, e, (1, 9))
    assert (first, redelivered, dup) == (Outcome.NEW, Outcome.REDELIVERED, Outcome.DUPLICATE)
    assert same is state and state.seen == {e.event_id.int: (1, 7)}


def _ms(at: str) -> int:
    return ticks_ms(datetime.fromisoformat(at))


# Activities at three instants, two of them at one instant (one online, one in person), and
# other events between them: the log holds the activities only, by (time, online).
LOG_EVENTS = [
    _ev(occurred_at="2024-06-12T09:00:00+07:00", activity={"mode": "on_site"}),
    _ev(occurred_at="2024-06-03T09:00:00+07:00", activity={"mode": "information_system"}),
    _ev(occurred_at="2024-06-07T09:00:00+07:00", activity={"mode": "video_conference"}),
    _ev(occurred_at="2024-06-07T09:00:00+07:00", activity={"mode": "in_person_meeting"}),
    _ev(event_type="opened", occurred_at="2024-06-01T08:00:00+07:00"),
    _ev(event_type="concluded", occurred_at="2024-06-20T08:00:00+07:00"),
]
EXPECTED_LOG = (
    (_ms("2024-06-03T09:00:00+07:00"), True),
    (_ms("2024-06-07T09:00:00+07:00"), False),
    (_ms("2024-06-07T09:00:00+07:00"), True),
    (_ms("2024-06-12T09:00:00+07:00"), False),
)


@pytest.mark.parametrize("order", list(itertools.permutations(range(len(LOG_EVENTS)))))
def test_activity_log_is_each_activity_once_by_time_then_online(order: tuple[int, ...]) -> None:
    events = [LOG_EVENTS[i] for i in order]
    state = InspectionState()
    for offset, e in enumerate(events + events[:3]):  # then three of them again, other offsets
        state, outcome = apply_inspection(state, e, (0, offset))
        assert outcome is (Outcome.NEW if offset < len(events) else Outcome.DUPLICATE)
    # A redelivery (same position) adds nothing either.
    state, outcome = apply_inspection(state, events[0], (0, 0))
    assert outcome is Outcome.REDELIVERED
    assert state.activity_log == EXPECTED_LOG
    assert state.activities == 4 and state.version == 6
    assert state.classification == "hybrid"
    # Equal states, whatever the arrival order (but for the positions the events came at).
    in_order = _run(LOG_EVENTS)
    assert replace(state, seen={}) == replace(in_order, seen={})
    assert state.seen.keys() == in_order.seen.keys()


def test_activity_log_is_replaced_not_mutated() -> None:
    first, _ = apply_inspection(InspectionState(), LOG_EVENTS[0], (0, 0))
    second, _ = apply_inspection(first, LOG_EVENTS[1], (0, 1))  # earlier: inserted before
    assert first.activity_log == ((_ms("2024-06-12T09:00:00+07:00"), False),)
    assert second.activity_log == (
        (_ms("2024-06-03T09:00:00+07:00"), True), (_ms("2024-06-12T09:00:00+07:00"), False),
    )  # fmt: skip
    third, _ = apply_inspection(second, LOG_EVENTS[4], (0, 2))  # not an activity
    assert third.activity_log is second.activity_log
    assert InspectionState().activity_log == () and InspectionState().activities == 0


def test_classification_row_carries_the_activity_arrays() -> None:
    from streams.warehouse.tables import COLUMNS
    from streams.worker.rows import classification_row

    row = classification_row("TH-S-TTTT", "KT-1", _run(LOG_EVENTS), NOW)
    columns = COLUMNS["inspection_classifications"]
    assert len(row) == len(columns) and columns[-2:] == ("activities_at", "activities_online")
    assert row[-2:] == [[ms for ms, _ in EXPECTED_LOG], [1, 0, 1, 0]]
    assert classification_row("TH-S-TTTT", "KT-2", InspectionState(), NOW)[-2:] == [[], []]
