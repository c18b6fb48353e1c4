"""The simulator's contract-v2 traffic: dossier lifecycles, agencies not upgraded, inspection
kinds and service offerings. Checked on the decoded messages, never on the simulator's internals.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import pytest

from producers.simulation.simulator import Message, Simulation, SimulationConfig, simulate
from schemas import InspectionEventV1, InvalidEvent, LatestEvent, ServiceEventV1, decode
from schemas.catalog import Catalog, load_catalog
from schemas.offering import OfferingEventV1
from schemas.offering_catalog import bundled_offerings, offering_event
from schemas.periods import PROVINCE_TZ
from schemas.service import ServiceEventV2

EVENTS = 12_000


@dataclass(frozen=True)
class Decoded:
    index: int
    message: Message
    event: LatestEvent | None
    refusal: InvalidEvent | None


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="module")
def sim(catalog: Catalog) -> Simulation:
    return simulate(SimulationConfig(seed=3, events=EVENTS, invalid_share=0.02), catalog)


@pytest.fixture(scope="module")
def decoded(sim: Simulation, catalog: Catalog) -> list[Decoded]:
    out = []
    for i, m in enumerate(sim.messages):
        try:
            out.append(
                Decoded(i, m, decode(m.value, known_agency=catalog.agencies, now=sim.now), None)
            )
        except InvalidEvent as exc:
            out.append(Decoded(i, m, None, exc))
    return out


def _distinct(decoded: list[Decoded]) -> list[LatestEvent]:
    seen: set[object] = set()
    out = []
    for d in decoded:
        if d.event is not None and d.event.event_id not in seen:
            seen.add(d.event.event_id)
            out.append(d.event)
    return out


@pytest.fixture(scope="module")
def events(decoded: list[Decoded]) -> list[LatestEvent]:
    return _distinct(decoded)


@pytest.fixture(scope="module")
def dossiers(events: list[LatestEvent]) -> dict[str, list[ServiceEventV2]]:
    """service/2 dossiers: their distinct events in occurred order."""
    out: dict[str, list[ServiceEventV2]] = defaultdict(list)
    for e in events:
        if isinstance(e, ServiceEventV2):
            out[e.key].append(e)
    for evs in out.values():
        evs.sort(key=lambda e: e.occurred_at)
    return out


def _local(moment: datetime) -> datetime:
    return moment.astimezone(PROVINCE_TZ).replace(tzinfo=None)


def _progress_half(e: LatestEvent) -> int:
    """0 for events in 2024, 1 for 2025 (the trends rise over the range)."""
    return int(_local(e.occurred_at).year >= 2025)


def _pauses(evs: list[ServiceEventV2], until: datetime) -> timedelta:
    total, asked = timedelta(0), None
    for e in evs:
        if e.occurred_at >= until:
            break
        if e.event_type == "supplement_requested" and asked is None:
            asked = e.occurred_at
        elif e.event_type == "supplement_received" and asked is not None:
            total += e.occurred_at - asked
            asked = None
    if asked is not None:
        total += until - asked
    return total


# --- size and validity ------------------------------------------------------------------------


def test_exact_size_and_only_the_injected_refusals(sim: Simulation, decoded: list[Decoded]) -> None:
    assert len(sim.messages) == EVENTS
    refused = Counter(d.refusal.reason.value for d in decoded if d.refusal is not None)
    assert refused == Counter({r: n for r, n in sim.expected_refusals.items() if n})
    assert sum(refused.values()) == round(0.02 * EVENTS)


def test_every_schema_version_is_sent(events: list[LatestEvent]) -> None:
    versions = Counter(e.schema_version for e in events)
    assert set(versions) == {"inspection/1", "service/1", "service/2", "offering/1"}
    assert versions["service/2"] > 5 * versions["service/1"] > 0


def test_refusals_include_new_events(decoded: list[Decoded]) -> None:
    kinds = Counter(d.message.kind for d in decoded if d.refusal is not None)
    assert kinds["service"] and kinds["inspection"]
    refused_v2 = [d for d in decoded if d.refusal is not None and b'"service/2"' in d.message.value]
    assert refused_v2


# --- agencies that have not upgraded ------------------------------------------------------------


def test_some_agencies_still_send_service_1_and_only_that(events: list[LatestEvent]) -> None:
    versions: dict[str, set[str]] = defaultdict(set)
    for e in events:
        if isinstance(e, ServiceEventV1 | ServiceEventV2):
            versions[e.agency_code].add(e.schema_version)
    assert all(len(v) == 1 for v in versions.values())  # an agency has upgraded or not
    v1 = sum(v == {"service/1"} for v in versions.values())
    assert 0.05 < v1 / len(versions) < 0.3
    types = {e.event_type for e in events if isinstance(e, ServiceEventV1)}
    assert types == {"submitted", "completed", "rejected"}
    v1_agencies = {a for a, v in versions.items() if v == {"service/1"}}
    kinds = {
        e.kind for e in events if isinstance(e, InspectionEventV1) and e.agency_code in v1_agencies
    }
    assert kinds <= {None}


# --- dossier lifecycles ------------------------------------------------------------------------


def test_lifecycle_invariants(dossiers: dict[str, list[ServiceEventV2]]) -> None:
    ends = ("completed", "rejected", "withdrawn")
    for key, evs in dossiers.items():
        assert evs[0].event_type == "submitted", key
        assert [e.event_type for e in evs].count("submitted") == 1
        first = evs[0]
        assert first.due_at is not None and first.due_at > first.occurred_at
        assert first.digitized is not None
        closing = [e for e in evs if e.event_type in ends]
        assert len(closing) <= 1
        if closing:  # nothing occurs after a dossier's end
            assert evs[-1] is closing[0]
        pending = 0
        for e in evs:  # a supplement is received only after it was asked for
            if e.event_type == "supplement_requested":
                assert pending == 0
                pending = 1
            elif e.event_type == "supplement_received":
                assert pending == 1
                pending = 0
        assert [e.event_type for e in evs].count("paid") <= 1


def test_due_dates_are_three_to_fifteen_working_days_at_closing_time(
    dossiers: dict[str, list[ServiceEventV2]],
) -> None:
    spans: Counter[int] = Counter()
    for evs in dossiers.values():
        first = evs[0]
        assert first.due_at is not None
        due = _local(first.due_at)
        assert due.time() == time(17) and due.weekday() < 5
        days = (due.date() - _local(first.occurred_at).date()).days
        assert 3 <= days <= 15 + 16  # weekends and Tết lie in between
        spans[days] += 1
    assert len(spans) >= 8


def test_most_complete_on_time_some_late(dossiers: dict[str, list[ServiceEventV2]]) -> None:
    on_time = late = 0
    for evs in dossiers.values():
        end = evs[-1]
        if end.event_type != "completed":
            continue
        assert evs[0].due_at is not None
        if end.occurred_at <= evs[0].due_at + _pauses(evs, end.occurred_at):
            on_time += 1
        else:
            late += 1
    assert 0.72 < on_time / (on_time + late) < 0.92


def test_outcomes_pauses_and_open_dossiers(
    dossiers: dict[str, list[ServiceEventV2]], sim: Simulation
) -> None:
    types = Counter(e.event_type for evs in dossiers.values() for e in evs)
    n = types["submitted"]
    assert 0.65 < types["completed"] / n < 0.9
    assert 0.05 < types["rejected"] / n < 0.15
    assert 0.01 < types["withdrawn"] / n < 0.06
    assert 0.08 < types["supplement_requested"] / n < 0.3
    assert types["supplement_received"] < types["supplement_requested"]
    end = datetime.combine(sim.config.end + timedelta(days=1), time(), tzinfo=PROVINCE_TZ)
    open_at_end = [evs for evs in dossiers.values() if evs[-1].event_type not in
                   ("completed", "rejected", "withdrawn")]  # fmt: skip
    assert len(open_at_end) >= 20
    unanswered = [evs for evs in open_at_end if evs[-1].event_type == "supplement_requested"]
    assert unanswered  # some requests are never answered by the end
    overdue_at_month_end = 0
    for evs in dossiers.values():  # open and overdue at the end of the month it was due in
        first, closing = evs[0], evs[-1]
        assert first.due_at is not None
        due = _local(first.due_at)
        month_end = datetime.combine((due.replace(day=28) + timedelta(days=4)).replace(day=1),
                                     time(), tzinfo=PROVINCE_TZ)  # fmt: skip
        if month_end >= end:
            continue
        still_open = closing.event_type not in ("completed", "rejected", "withdrawn") or (
            closing.occurred_at >= month_end
        )
        if still_open and first.due_at + _pauses(evs, month_end) < month_end:
            overdue_at_month_end += 1
    assert overdue_at_month_end >= 20


def test_closing_events_fall_in_office_hours(dossiers: dict[str, list[ServiceEventV2]]) -> None:
    inside = total = 0
    for evs in dossiers.values():
        for e in evs:
            if e.event_type in ("completed", "rejected", "withdrawn", "supplement_requested"):
                t = _local(e.occurred_at)
                total += 1
                minutes = t.hour * 60 + t.minute
                inside += t.weekday() < 5 and (450 <= minutes < 690 or 810 <= minutes < 1020)
    assert inside / total > 0.99


def test_v2_facts_are_mostly_true_and_rise_over_time(
    dossiers: dict[str, list[ServiceEventV2]],
) -> None:
    digitized: Counter[int] = Counter()
    reused: Counter[int] = Counter()
    n: Counter[int] = Counter()
    paid: Counter[int] = Counter()
    paid_online: Counter[int] = Counter()
    electronic: dict[str, Counter[int]] = {ch: Counter() for ch in ("online", "other")}
    completed: dict[str, Counter[int]] = {ch: Counter() for ch in ("online", "other")}
    for evs in dossiers.values():
        first = evs[0]
        half = _progress_half(first)
        n[half] += 1
        digitized[half] += bool(first.digitized)
        reused[half] += (first.reused_components or 0) > 0
        channel = "online" if first.channel == "online" else "other"
        for e in evs:
            if e.event_type == "paid":
                paid[half] += 1
                paid_online[half] += e.payment_channel == "online"
            if e.event_type == "completed":
                completed[channel][half] += 1
                electronic[channel][half] += bool(e.result_electronic)
    assert 0.7 < digitized[0] / n[0] < digitized[1] / n[1] <= 1
    assert 0.05 < reused[0] / n[0] < reused[1] / n[1] < 0.6
    assert 0.1 < paid_online[0] / paid[0] < paid_online[1] / paid[1] < 0.9
    for half in (0, 1):
        assert electronic["online"][half] / completed["online"][half] > 0.6
        assert electronic["other"][half] / completed["other"][half] < 0.6
    assert (electronic["online"][0] / completed["online"][0]
            < electronic["online"][1] / completed["online"][1])  # fmt: skip


# --- inspections ---------------------------------------------------------------------------------


def test_inspection_kinds(events: list[LatestEvent]) -> None:
    kinds: dict[str, Counter[str | None]] = defaultdict(Counter)
    for e in events:
        if isinstance(e, InspectionEventV1) and e.event_type == "opened":
            kinds[e.agency_code][e.kind] += 1
    assert set(kinds["TH-TTR"]) == {"thanh_tra"}
    others: Counter[str | None] = Counter()
    for code, counts in kinds.items():
        if code != "TH-TTR":
            others.update(counts)
    total = sum(others.values())
    assert 0.01 < others["thanh_tra"] / total < 0.1
    assert others["kiem_tra"] > 0.3 * total and others[None] > 0.3 * total


# --- offerings -----------------------------------------------------------------------------------


def test_offering_messages_topic_key_and_catalog_lines(
    sim: Simulation, decoded: list[Decoded]
) -> None:
    offered = [(d.message, d.event) for d in decoded if isinstance(d.event, OfferingEventV1)]
    assert offered
    for message, event in offered:
        assert message.kind == "offering"
        assert message.key == f"{event.agency_code}:{event.procedure_code}".encode()
    lines: dict[str, list[dict[str, object]]] = defaultdict(list)
    for line in bundled_offerings():
        if _local(line.effective_at).date() <= sim.config.end:
            lines[f"{line.agency_code}:{line.procedure_code}"].append(offering_event(line))
    sent: dict[str, set[str]] = defaultdict(set)
    for _, event in offered:
        sent[event.key].add(str(event.event_id))
    assert len(sent) >= 100
    for key, ids in sent.items():  # whole services: the catalog's own events, every line
        assert ids == {str(e["event_id"]) for e in lines[key]}
    distinct = sum(len(ids) for ids in sent.values())
    assert distinct <= round(sim.config.offering_share * EVENTS * 0.98)
    assert len(offered) > distinct  # some are sent twice
    values = [json.loads(message.value) for message, _ in offered]
    assert any(v["occurred_at"].endswith("Z") for v in values)
    assert any("ghi_chu" in v for v in values) or len(values) < 300


def test_offerings_scale_with_the_run(catalog: Catalog, sim: Simulation) -> None:
    small = simulate(SimulationConfig(seed=3, events=1500), catalog)
    small_services = {m.key for m in small.messages if m.kind == "offering"}
    big_services = {m.key for m in sim.messages if m.kind == "offering"}
    assert 0 < len(small_services) < len(big_services) / 4
    assert sum(m.kind == "offering" for m in small.messages) <= 0.03 * 1500 + 5


def _states(events: list[LatestEvent]) -> dict[str, list[OfferingEventV1]]:
    out: dict[str, list[OfferingEventV1]] = defaultdict(list)
    for e in events:
        if isinstance(e, OfferingEventV1):
            out[e.key].append(e)
    for evs in out.values():
        evs.sort(key=lambda e: e.occurred_at)
    return out


def test_dossiers_go_to_services_that_exist_and_follow_their_offering(
    events: list[LatestEvent],
) -> None:
    states = _states(events)
    submissions = [
        e for e in events
        if isinstance(e, ServiceEventV1 | ServiceEventV2) and e.event_type == "submitted"
    ]  # fmt: skip
    for e in submissions:
        offered = [o for o in states[f"{e.agency_code}:{e.procedure_code}"]
                   if o.occurred_at <= e.occurred_at]  # fmt: skip
        assert offered, e  # the service exists
        state = offered[-1]
        assert state.level != "not_offered"
        if e.channel == "online":
            assert state.level in ("full_process", "partial")
            assert e.service_level == "partial" or state.level == "full_process"
            assert e.form is not None
            assert e.form.fields_prefilled == 0 or state.prefill_designed
    levels: Counter[str] = Counter()
    for e in submissions:
        key = f"{e.agency_code}:{e.procedure_code}"
        levels[[o for o in states[key] if o.occurred_at <= e.occurred_at][-1].level] += 1
    assert levels["full_process"] and levels["partial"] and levels["not_online"]


def test_offering_kpis_are_populated_with_dossier_kpis(sim: Simulation) -> None:
    both = [
        r for r in sim.truth
        if r.agency_code is not None and len(r.period) == 4
        and r.full_process_offering_rate is not None and r.online_dossier_rate is not None
    ]  # fmt: skip
    assert len(both) >= 50
    years = {r.period: r for r in sim.truth if r.agency_code is None and len(r.period) == 4}
    for r in years.values():
        assert r.full_process_offering_rate is not None and 0 < r.full_process_offering_rate < 1
        assert r.prefill_design_coverage is not None and 0 < r.prefill_design_coverage < 1
        assert r.online_inspection_share is not None and r.on_time_rate is not None
        assert r.inspections_thanh_tra > 0
        assert 0.6 < r.on_time_rate < 0.95


def test_a_run_without_offering_budget_still_works(catalog: Catalog) -> None:
    sim = simulate(SimulationConfig(seed=2, events=400, offering_share=0.0), catalog)
    assert len(sim.messages) == 400
    assert not any(m.kind == "offering" for m in sim.messages)


def test_explicit_offering_lines_and_the_start_of_the_range(catalog: Catalog) -> None:
    lines = [x for x in bundled_offerings() if x.agency_code == "TH-S-TP"]
    config = SimulationConfig(seed=4, events=3000, start=date(2024, 6, 1), end=date(2024, 12, 31))
    sim = simulate(config, catalog, lines)
    offered = [json.loads(m.value) for m in sim.messages if m.kind == "offering"]
    keys = {f"{o['agency_code']}:{o['procedure_code']}" for o in offered}
    assert keys and all(k.startswith("TH-S-TP:") for k in keys)
    for key in keys:  # one state on or before the start, then the changes within the range
        mine = [x for x in lines if f"{x.agency_code}:{x.procedure_code}" == key]
        before = [x for x in mine if _local(x.effective_at).date() <= config.start]
        expected = before[-1:] + [
            x for x in mine if config.start < _local(x.effective_at).date() <= config.end
        ]
        got = {o["event_id"] for o in offered if f"{o['agency_code']}:{o['procedure_code']}" == key}
        assert got == {offering_event(x)["event_id"] for x in expected}
