"""The worker's dossier lifecycles (``dossier_lifecycle``): built from the decoded facts, one row
per changed dossier per write with its latest state, written again on a redelivery and not on a
duplicate; the facts read back from a stored ``service_events`` row equal the live ones."""

from __future__ import annotations

import itertools
import json
import pickle
import uuid
from array import array
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.catalog import load_catalog
from schemas.decoding import decode
from schemas.errors import InvalidEvent
from schemas.example_payloads import load_examples
from schemas.lifecycle import (
    Ending,
    Lifecycle,
    ServiceFacts,
    Submission,
    service_facts,
    stored_facts,
)
from schemas.service import ServiceEventV1, ServiceEventV2
from streams.warehouse.tables import COLUMNS
from streams.worker import rowbinary, rows
from streams.worker.classify import DossierState, Outcome, apply_service, facts_of, ticks_ms
from streams.worker.processor import (
    SERVICE,
    Decoded,
    Result,
    RowBuffer,
    apply_decoded,
    decode_many,
    process,
)
from streams.worker.rows import Origin
from tests.conftest import make_service_event

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CATALOG = load_catalog()
AGENCY, DOSSIER = "TH-S-TP", "HS-LC-1"
KEY = f"{AGENCY}:{DOSSIER}"
NOW_MS = ticks_ms(NOW)


def _ms(text: str) -> int:
    return ticks_ms(datetime.fromisoformat(text))


def v2(event_type: str, at: str, dossier_id: str = DOSSIER, **fields: Any) -> dict[str, Any]:
    """A ``service/2`` event of ``dossier_id`` (a submission: online, full process, 3 of 10
    fields prefilled, due 06-20 17:00, digitised, 1 component reused)."""
    event = make_service_event(
        schema="service/2", event_type=event_type, occurred_at=at, dossier_id=dossier_id,
        agency_code=AGENCY,
    )  # fmt: skip
    if event_type == "submitted":
        due = "2024-06-20T17:00:00+07:00"
        form = {"fields_total": 10, "fields_prefilled": 3}
        event.update(form=form, due_at=due, digitized=True, reused_components=1)
    else:
        for k in ("channel", "service_level", "form"):
            event.pop(k)
    event.update(fields)
    return event


SUBMITTED = "2024-06-10T10:00:00+07:00"
REQUESTED = "2024-06-11T09:00:00+07:00"
RECEIVED = "2024-06-13T09:00:00+07:00"
REQUESTED_AGAIN = "2024-06-14T09:00:00+07:00"
PAID = "2024-06-10T10:30:00+07:00"
COMPLETED = "2024-06-18T15:00:00+07:00"


def lifecycle_events() -> list[dict[str, Any]]:
    return [
        v2("submitted", SUBMITTED),
        v2("supplement_requested", REQUESTED),
        v2("supplement_received", RECEIVED),
        v2("paid", PAID, payment_channel="online"),
        v2("completed", COMPLETED, result_electronic=True),
    ]


def _raw(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode()


class Run:
    """``processor.process`` with dict states, the worker's per-message path."""

    def __init__(self) -> None:
        self.out = RowBuffer()
        self.insp: dict[str, Any] = {}
        self.doss: dict[str, Any] = {}

    def feed(self, raw: bytes, offset: int, partition: int = 0) -> Result:
        return process(
            raw, Origin("services", partition, offset), now=NOW,
            known_agencies=CATALOG.agencies, inspection_states=self.insp,
            dossier_states=self.doss, out=self.out,
        ).result  # fmt: skip


def _row(state: DossierState, dossier_id: str = DOSSIER) -> dict[str, Any]:
    row = rows.lifecycle_row(AGENCY, dossier_id, state.lifecycle, state.version, NOW)
    return dict(zip(COLUMNS["dossier_lifecycle"], row, strict=True))


def test_the_lifecycle_row_holds_every_fact_of_the_dossier() -> None:
    run = Run()
    for offset, event in enumerate(lifecycle_events()):
        assert run.feed(_raw(event), offset) is Result.ACCEPTED
    assert list(run.out.dossiers) == [KEY]  # one row per changed dossier, its latest state
    agency, dossier_id, state, now = run.out.dossiers[KEY]
    assert (agency, dossier_id, now, state) == (AGENCY, DOSSIER, NOW, run.doss[KEY])
    assert _row(state) == {
        "agency_code": AGENCY, "dossier_id": DOSSIER, "procedure_code": "1.001193",
        "submitted_at": _ms(SUBMITTED), "submission_schema": "service/2", "channel": "online",
        "service_level": "full_process", "fields_total": 10, "fields_prefilled": 3,
        "due_at": _ms("2024-06-20T17:00:00+07:00"), "digitized": 1, "reused_components": 1,
        "ended_at": _ms(COMPLETED), "end_type": "completed", "end_schema": "service/2",
        "on_time": None, "result_electronic": 1, "paid_at": _ms(PAID),
        "payment_channel": "online", "pause_starts": [_ms(REQUESTED)],
        "pause_ends": [_ms(RECEIVED)],
        "effective_due_at": _ms("2024-06-22T17:00:00+07:00"),  # due_at + the 2-day pause
        "paused_ms": 2 * 86_400_000, "version": 5, "updated_at": NOW,
    }  # fmt: skip
    tables = run.out.take()
    assert len(tables["dossier_lifecycle"]) == 1 and not run.out.dossiers
    assert tables["dossier_lifecycle"][0] == rowbinary.lifecycle(
        AGENCY, DOSSIER, state.lifecycle, 5, ticks_ms(NOW)
    )


@pytest.mark.parametrize("order", list(itertools.permutations(range(5)))[::7])
def test_any_arrival_order_gives_the_same_row(order: tuple[int, ...]) -> None:
    events = lifecycle_events()
    expected = Run()
    for offset, event in enumerate(events):
        expected.feed(_raw(event), offset)
    run = Run()
    for offset, i in enumerate(order):
        run.feed(_raw(events[i]), offset)
    assert _row(run.doss[KEY]) == _row(expected.doss[KEY])


def test_pauses_a_request_while_paused_and_an_unanswered_one() -> None:
    run = Run()
    events = [
        v2("submitted", SUBMITTED),
        v2("supplement_received", "2024-06-10T11:00:00+07:00"),  # no request before: ignored
        v2("supplement_requested", REQUESTED),
        v2("supplement_requested", "2024-06-12T09:00:00+07:00"),  # already paused
        v2("supplement_received", RECEIVED),
        v2("supplement_requested", REQUESTED_AGAIN),  # not answered (yet)
    ]
    for offset, event in enumerate(reversed(events)):
        run.feed(_raw(event), offset)
    row = _row(run.doss[KEY])
    assert row["pause_starts"] == [_ms(REQUESTED), _ms(REQUESTED_AGAIN)]
    assert row["pause_ends"] == [_ms(RECEIVED), None]
    assert (row["ended_at"], row["end_type"], row["paid_at"], row["version"]) == (None, "", None, 6)
    # The answer comes: the open pause ends, the version grows.
    run.feed(_raw(v2("supplement_received", "2024-06-15T09:00:00+07:00")), 6)
    row = _row(run.doss[KEY])
    assert row["pause_ends"] == [_ms(RECEIVED), _ms("2024-06-15T09:00:00+07:00")]
    assert row["version"] == 7


def test_a_dossier_without_a_submission_yet() -> None:
    run = Run()
    run.feed(_raw(v2("supplement_requested", REQUESTED)), 0)
    row = _row(run.doss[KEY])
    assert row == {
        **row, "procedure_code": "", "submitted_at": None, "submission_schema": "",
        "channel": "", "service_level": "", "fields_total": 0, "fields_prefilled": 0,
        "due_at": None, "digitized": None, "reused_components": 0, "ended_at": None,
        "end_type": "", "end_schema": "", "on_time": None, "result_electronic": None,
        "paid_at": None, "payment_channel": "", "pause_starts": [_ms(REQUESTED)],
        "pause_ends": [None], "version": 1,
    }  # fmt: skip


def test_service_1_submission_and_completion() -> None:
    run = Run()
    run.feed(_raw(make_service_event(dossier_id=DOSSIER, channel="counter", form=None,
                                     service_level=None)), 0)  # fmt: skip
    run.feed(_raw(make_service_event(dossier_id=DOSSIER, event_type="completed", on_time=False,
                                     occurred_at=COMPLETED)), 1)  # fmt: skip
    row = _row(run.doss[KEY])
    assert row["submission_schema"] == row["end_schema"] == "service/1"
    assert (row["channel"], row["service_level"], row["fields_total"]) == ("counter", "", 0)
    assert (row["due_at"], row["digitized"], row["on_time"], row["result_electronic"]) == (
        None, None, 0, None,
    )  # fmt: skip


def test_a_redelivery_writes_the_row_again_a_duplicate_does_not() -> None:
    run = Run()
    events = [_raw(e) for e in lifecycle_events()[:3]]
    for offset, raw in enumerate(events):
        run.feed(raw, offset)
    state = run.doss[KEY]
    run.out.take()
    # The same message again (same position: after a crash or a rebalance): its rows again.
    assert run.feed(events[1], 1) is Result.REDELIVERED
    assert run.out.dossiers[KEY][2] is state and state.version == 3
    tables = run.out.take()
    assert len(tables["dossier_lifecycle"]) == 1 and len(tables["service_events"]) == 1
    # The same event_id in another message: counted as a duplicate, no lifecycle row.
    assert run.feed(events[1], 7) is Result.DUPLICATE
    assert not run.out.dossiers and run.doss[KEY] is state
    tables = run.out.take()
    assert set(tables) == {"duplicates"}


def test_states_change_in_place_and_taken_rows_do_not() -> None:
    """A dossier keeps one state, changed by each event; the rows taken for a write are built
    when taken, so a later event changes the state but not the rows already taken."""
    run = Run()
    events = lifecycle_events()
    run.feed(_raw(events[0]), 0)
    before = run.doss[KEY]
    first = run.out.take()["dossier_lifecycle"]
    alone = Run()  # the first event only, in a state of its own
    alone.feed(_raw(events[0]), 0)
    expected_first = rowbinary.lifecycle(AGENCY, DOSSIER, alone.doss[KEY].lifecycle, 1, NOW_MS)
    run.feed(_raw(events[1]), 1)
    after = run.doss[KEY]
    assert after is before and after.version == 2 and after.lifecycle.supplements
    second = run.out.take()["dossier_lifecycle"]
    assert first != second
    assert first == [expected_first]
    assert second == [rowbinary.lifecycle(AGENCY, DOSSIER, after.lifecycle, 2, NOW_MS)]


def test_one_row_per_dossier_per_write() -> None:
    run = Run()
    for offset, event in enumerate(lifecycle_events()):
        run.feed(_raw(event), 2 * offset)
        run.feed(_raw({**event, "event_id": str(uuid.uuid4()), "dossier_id": "HS-LC-2"}),
                 2 * offset + 1)  # fmt: skip
    tables = run.out.take()
    assert len(tables["dossier_lifecycle"]) == 2
    assert len(tables["service_events"]) == 10
    assert len(run.out) == 0


def test_the_decoding_process_sends_the_facts() -> None:
    """``decode_many`` (what the decoding process runs) puts the event's ``ServiceFacts`` in
    its ``Decoded`` (as plain tuples); they survive pickling, and applying them equals applying
    the event."""
    raws = [_raw(e) for e in lifecycle_events()]
    blob = b"".join(raws)
    lengths = array("Q", [len(r) for r in raws])
    decoded = decode_many(blob, lengths, [("s", 0, array("q", range(5)))], NOW, CATALOG.agencies)
    decoded = pickle.loads(pickle.dumps(decoded, protocol=pickle.HIGHEST_PROTOCOL))  # noqa: S301
    lc, direct = DossierState(), DossierState()
    out = RowBuffer()
    states: dict[str, Any] = {}
    for offset, (d, raw) in enumerate(zip(decoded, raws, strict=True)):
        assert isinstance(d, Decoded) and d.kind == SERVICE
        ev = decode(raw, known_agency=CATALOG.agencies, now=NOW)
        assert isinstance(ev, ServiceEventV2)
        assert type(d.facts) is tuple  # plain tuples: they pickle without a Python call
        facts = facts_of(d.facts)  # type: ignore[arg-type]  # a service event's
        assert type(facts) is ServiceFacts and facts == service_facts(ev, ticks_ms(ev.occurred_at))
        assert facts.submission is None or type(facts.submission) is Submission
        assert facts.ending is None or type(facts.ending) is Ending
        lc, outcome = apply_service(lc, d.event_key, (0, offset), facts)
        assert outcome is Outcome.NEW
        direct, _ = apply_service(direct, ev, (0, offset))
        apply_decoded(d, "s", 0, offset, NOW, {}, states, {}, out)
    assert lc == direct == states[KEY]


def _service_events() -> list[ServiceEventV1 | ServiceEventV2]:
    from producers.simulation.simulator import SimulationConfig, simulate

    sim = simulate(SimulationConfig(seed=5, events=4000), CATALOG)
    raws = [m.value for m in sim.messages] + [e.raw for e in load_examples()]
    raws += [_raw(make_service_event(form=None, channel="counter"))]
    # A form on a postal submission: not online, so no form facts.
    raws += [_raw(make_service_event(channel="postal", service_level="partial"))]
    out = []
    for raw in raws:
        try:
            ev = decode(raw, known_agency=CATALOG.agencies, now=NOW)
        except InvalidEvent:
            continue
        if isinstance(ev, ServiceEventV1 | ServiceEventV2):
            out.append(ev)
    return out


def test_facts_read_back_from_a_stored_row_equal_the_live_ones() -> None:
    """``stored_facts`` over a ``service_events`` row (what the warehouse keeps) gives what
    ``service_facts`` gave for the event: every event type, v1 and v2, with and without
    forms."""
    now_ms = ticks_ms(NOW)
    names = COLUMNS["service_events"]
    events = _service_events()
    kinds = set()
    for offset, ev in enumerate(events):
        stored = dict(zip(names, rows.service_event_row(ev, b"{}", Origin("s", 0, offset), now_ms),
                          strict=True))  # fmt: skip
        got = stored_facts(
            stored["event_type"], stored["occurred_at"], stored["procedure_code"],
            stored["schema"], stored["channel"], stored["service_level"],
            stored["fields_total"], stored["fields_prefilled"], stored["due_at"],
            stored["digitized"], stored["reused_components"], stored["on_time"],
            stored["result_electronic"], stored["payment_channel"],
        )  # fmt: skip
        assert got == service_facts(ev, ticks_ms(ev.occurred_at)), ev
        kinds.add((ev.schema_version, ev.event_type, ev.channel))
    assert len(events) > 1000
    assert {k[:2] for k in kinds} >= {
        ("service/1", "submitted"), ("service/1", "completed"), ("service/2", "submitted"),
        ("service/2", "supplement_requested"), ("service/2", "supplement_received"),
        ("service/2", "paid"), ("service/2", "completed"), ("service/2", "rejected"),
        ("service/2", "withdrawn"),
    }  # fmt: skip


def test_lifecycle_of_an_empty_state_is_not_shared() -> None:
    """A new dossier's state is its own (states change in place): one dossier's events never
    show in another's, nor in a fresh state."""
    run = Run()
    run.feed(_raw(v2("supplement_requested", REQUESTED)), 0)
    run.feed(_raw(v2("submitted", SUBMITTED, dossier_id="HS-LC-9")), 1)
    assert run.doss["TH-S-TP:HS-LC-9"].lifecycle.supplements == []
    assert DossierState().lifecycle == Lifecycle()
