"""The traffic simulator: determinism, exact size, realism of the generated data, and its truth.

Properties are checked on the generated messages (decoded with ``schemas.decode``), never on the
simulator's internals.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from producers.simulation.simulator import (
    Message,
    Simulation,
    SimulationConfig,
    describe,
    iter_messages,
    read_jsonl,
    simulate,
    write_jsonl,
    write_truth,
)
from schemas import InspectionEventV1, InvalidEvent, LatestEvent, ServiceEventV1, decode
from schemas.catalog import Agency, Catalog, Procedure, load_catalog
from schemas.events import TOPIC_KIND
from schemas.kpi import KpiRow, reference_kpis, rows_to_json
from schemas.periods import PROVINCE_TZ, PeriodKind
from schemas.service import ServiceEventV2

BIG = 20_000


@dataclass(frozen=True)
class Decoded:
    """One message as the pipeline sees it: its publish position and the event or refusal."""

    index: int
    message: Message
    event: LatestEvent | None
    refusal: InvalidEvent | None


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="module")
def timed_big(catalog: Catalog) -> tuple[Simulation, float]:
    started = time.perf_counter()
    sim = simulate(SimulationConfig(seed=1, events=BIG, invalid_share=0.01), catalog)
    return sim, time.perf_counter() - started


@pytest.fixture(scope="module")
def big(timed_big: tuple[Simulation, float]) -> Simulation:
    return timed_big[0]


def _decode_all(sim: Simulation, catalog: Catalog) -> list[Decoded]:
    out = []
    for i, m in enumerate(sim.messages):
        try:
            out.append(
                Decoded(i, m, decode(m.value, known_agency=catalog.agencies, now=sim.now), None)
            )
        except InvalidEvent as exc:
            out.append(Decoded(i, m, None, exc))
    return out


@pytest.fixture(scope="module")
def decoded(big: Simulation, catalog: Catalog) -> list[Decoded]:
    return _decode_all(big, catalog)


def _accepted(decoded: list[Decoded]) -> Iterator[tuple[int, LatestEvent]]:
    return ((d.index, d.event) for d in decoded if d.event is not None)


def _inspections(decoded: list[Decoded]) -> Iterator[tuple[int, InspectionEventV1]]:
    return ((i, e) for i, e in _accepted(decoded) if isinstance(e, InspectionEventV1))


def _submissions(decoded: list[Decoded]) -> Iterator[ServiceEventV1 | ServiceEventV2]:
    seen = set()
    for _, e in _accepted(decoded):
        if (
            isinstance(e, ServiceEventV1 | ServiceEventV2)
            and e.event_type == "submitted"
            and e.event_id not in seen
        ):
            seen.add(e.event_id)
            yield e


def _local(moment: datetime) -> datetime:
    return moment.astimezone(PROVINCE_TZ)


# --- determinism ---------------------------------------------------------------------------


def _fingerprint(sim: Simulation) -> tuple[str, str]:
    raw = b"".join(m.kind.encode() + b"\t" + m.value + b"\n" for m in sim.messages)
    truth = json.dumps(rows_to_json(sim.truth), ensure_ascii=False).encode()
    return hashlib.sha256(raw).hexdigest(), hashlib.sha256(truth).hexdigest()


def test_same_seed_gives_identical_bytes_and_truth(catalog: Catalog, tmp_path: Path) -> None:
    config = SimulationConfig(seed=1, events=3000, invalid_share=0.02)
    a, b = simulate(config, catalog), simulate(config, catalog)
    assert a.messages == b.messages
    assert a.truth == b.truth
    for name, sim in (("a", a), ("b", b)):
        write_jsonl(sim, tmp_path / f"{name}.jsonl")
        write_truth(sim, tmp_path / f"{name}.json")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_different_seeds_differ(catalog: Catalog) -> None:
    a = simulate(SimulationConfig(seed=1, events=500), catalog)
    b = simulate(SimulationConfig(seed=2, events=500), catalog)
    assert len(a.messages) == len(b.messages) == 500

    def traffic(sim: Simulation) -> set[Message]:
        return {m for m in sim.messages if m.kind != "offering"}

    assert not traffic(a) & traffic(b)
    assert a.truth != b.truth
    # Offerings are the province's catalog, not traffic: the same services and event ids.
    ids = [
        {json.loads(m.value)["event_id"] for m in sim.messages if m.kind == "offering"}
        for sim in (a, b)
    ]
    assert ids[0] and ids[0] == ids[1]


_CHILD = """
import hashlib, json, sys
from producers.simulation.simulator import SimulationConfig, simulate
from schemas.catalog import load_catalog
from schemas.kpi import rows_to_json
sim = simulate(SimulationConfig(seed=7, events=3000, invalid_share=0.02), load_catalog())
raw = b"".join(m.kind.encode() + b"\\t" + m.value + b"\\n" for m in sim.messages)
truth = json.dumps(rows_to_json(sim.truth), ensure_ascii=False).encode()
print(hashlib.sha256(raw).hexdigest(), hashlib.sha256(truth).hexdigest())
"""


def test_identical_across_processes_with_different_hash_seeds(catalog: Catalog) -> None:
    outputs = []
    for hash_seed in ("0", "1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True
        )
        outputs.append(tuple(done.stdout.split()))
    here = _fingerprint(
        simulate(SimulationConfig(seed=7, events=3000, invalid_share=0.02), catalog)
    )
    assert outputs == [here] * 3


def test_iter_messages_streams_the_same_messages(catalog: Catalog) -> None:
    config = SimulationConfig(seed=3, events=2000, invalid_share=0.01)
    assert list(iter_messages(config, catalog)) == simulate(config, catalog).messages


# --- size and validity ---------------------------------------------------------------------


@pytest.mark.parametrize("events", [0, 1, 2, 7, 999])
@pytest.mark.parametrize("invalid_share", [0.0, 0.05])
def test_exactly_the_requested_number_of_messages(
    catalog: Catalog, events: int, invalid_share: float
) -> None:
    sim = simulate(SimulationConfig(seed=5, events=events, invalid_share=invalid_share), catalog)
    assert len(sim.messages) == events
    assert sum(sim.expected_refusals.values()) == round(invalid_share * events)


def test_big_run_has_exactly_the_requested_number_of_messages(big: Simulation) -> None:
    assert len(big.messages) == BIG


def test_without_invalid_share_every_message_decodes(catalog: Catalog) -> None:
    sim = simulate(SimulationConfig(seed=11, events=4000), catalog)
    assert all(d.event is not None for d in _decode_all(sim, catalog))
    assert set(sim.expected_refusals.values()) == {0}


def test_refusals_are_exactly_the_injected_ones(big: Simulation, decoded: list[Decoded]) -> None:
    refused = Counter(d.refusal.reason.value for d in decoded if d.refusal is not None)
    assert refused == Counter({r: n for r, n in big.expected_refusals.items() if n})
    assert set(big.expected_refusals) == {
        "malformed_json", "unsupported_schema", "invalid_event", "unknown_agency",
        "future_timestamp", "pii_detected",
    }  # fmt: skip
    assert min(big.expected_refusals.values()) >= 30
    assert sum(refused.values()) == round(0.01 * BIG)


def test_pii_refusals_hold_a_phone_number_in_an_unnamed_field(decoded: list[Decoded]) -> None:
    pii = [d.refusal for d in decoded if d.refusal and d.refusal.reason.value == "pii_detected"]
    assert any(e.errors and e.errors[0].loc == "ghi_chu" for e in pii)
    assert all(b"[REDACTED]" in e.payload for e in pii)


def test_kind_and_key_match_the_event(decoded: list[Decoded]) -> None:
    for d in decoded:
        if d.event is not None:
            assert d.message.kind == TOPIC_KIND[d.event.schema_version]
            assert d.message.key == d.event.key.encode()


# --- realism: inspections ------------------------------------------------------------------


def _inspection_states(decoded: list[Decoded]) -> dict[str, dict[str, Any]]:
    states: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"online": False, "in_person": False, "concluded": [], "cancelled": []}
    )
    seen = set()
    for i, e in _inspections(decoded):
        if e.event_id in seen:
            continue
        seen.add(e.event_id)
        st = states[e.key]
        if e.event_type == "activity" and e.activity is not None:
            st["online" if e.activity.mode.is_online else "in_person"] = True
        elif e.event_type in ("concluded", "cancelled"):
            st[e.event_type].append((i, e.occurred_at))
    return states


def test_all_four_inspection_classes_occur(decoded: list[Decoded]) -> None:
    classes: Counter[str] = Counter()
    for st in _inspection_states(decoded).values():
        if st["concluded"] and not st["cancelled"]:
            online, in_person = st["online"], st["in_person"]
            cls = {(True, True): "hybrid", (True, False): "online", (False, True): "in_person"}
            classes[cls.get((online, in_person), "unclassified")] += 1
    assert set(classes) == {"online", "hybrid", "in_person", "unclassified"}
    assert min(classes.values()) >= 20


def test_cancelled_inspections_occur_also_after_conclusion(decoded: list[Decoded]) -> None:
    states = _inspection_states(decoded).values()
    cancelled = [st for st in states if st["cancelled"]]
    assert len(cancelled) >= 10
    assert any(
        c[0][1] > st["concluded"][0][1]
        for st in cancelled
        if (c := st["cancelled"]) and st["concluded"]
    )
    assert any(not st["concluded"] for st in cancelled)


def test_activities_delivered_after_the_conclusion(decoded: list[Decoded]) -> None:
    concluded = {
        e.key: (i, e.occurred_at) for i, e in _inspections(decoded) if e.event_type == "concluded"
    }
    later_in_time, overtaken = 0, 0
    for i, e in _inspections(decoded):
        if e.event_type == "activity" and e.key in concluded and i > concluded[e.key][0]:
            if e.occurred_at > concluded[e.key][1]:
                later_in_time += 1  # "activity after conclusion"
            else:
                overtaken += 1
    assert later_in_time >= 5
    assert overtaken >= 5


def test_a_june_conclusion_that_is_still_may_in_utc(decoded: list[Decoded]) -> None:
    boundary = [
        e.occurred_at
        for _, e in _inspections(decoded)
        if e.event_type == "concluded"
        and _local(e.occurred_at).month == 6
        and e.occurred_at.astimezone(UTC).month == 5
    ]
    assert boundary
    assert any(t.utcoffset() == timedelta(hours=7) for t in boundary)


def test_inspection_sectors_are_vietnamese_nfc(decoded: list[Decoded]) -> None:
    sectors = {e.sector for _, e in _inspections(decoded) if e.sector}
    assert "Tài nguyên và Môi trường" in sectors
    raw = [d.message.value.decode() for d in decoded if d.event is not None]
    assert all(unicodedata.is_normalized("NFC", r) for r in raw)
    assert any("Hồ sơ bổ sung lần 2" in r for r in raw)


# --- realism: delivery ---------------------------------------------------------------------


def test_publish_order_is_not_occurred_order_and_some_events_are_weeks_late(
    decoded: list[Decoded],
) -> None:
    times = [e.occurred_at for _, e in _accepted(decoded)]
    assert sum(b < a for a, b in zip(times, times[1:], strict=False)) > 100
    newest, weeks_late = times[0], 0
    for t in times:
        weeks_late += t < newest - timedelta(days=7)
        newest = max(newest, t)
    assert weeks_late >= 20


def test_duplicates_are_exact_resends_now_and_much_later(
    big: Simulation, decoded: list[Decoded]
) -> None:
    first: dict[bytes, int] = {}
    gaps, days_later = [], []
    for d in decoded:
        if d.event is None:
            continue
        if d.message.value in first:
            gaps.append(d.index - first[d.message.value])
            neighbour = decoded[d.index - 1].event
            if neighbour is not None:
                days_later.append(neighbour.occurred_at - d.event.occurred_at)
        else:
            first[d.message.value] = d.index
    assert len(gaps) == big.duplicates > 0.01 * BIG
    ids = Counter(e.event_id for _, e in _accepted(decoded))
    assert sum(n - 1 for n in ids.values()) == big.duplicates  # same bytes <=> same event_id
    assert sum(g <= 5 for g in gaps) > len(gaps) / 2  # mostly immediate retries
    assert sum(d > timedelta(days=3) for d in days_later) >= 20  # re-sent days later


def test_timestamps_carry_offsets_mostly_plus_seven_sometimes_z(decoded: list[Decoded]) -> None:
    values = [json.loads(d.message.value)["occurred_at"] for d in decoded if d.event is not None]
    offsets = Counter("Z" if v.endswith("Z") else v[-6:] for v in values)
    assert set(offsets) == {"+07:00", "Z"}
    assert offsets["+07:00"] > 0.8 * len(values)


def test_nothing_occurs_after_the_end_date(decoded: list[Decoded], big: Simulation) -> None:
    assert max(_local(e.occurred_at).date() for _, e in _accepted(decoded)) <= big.config.end
    assert min(_local(e.occurred_at).date() for _, e in _accepted(decoded)) >= big.config.start


# --- realism: agencies and dossiers --------------------------------------------------------


def test_entities_start_at_agencies_valid_that_day(
    decoded: list[Decoded], catalog: Catalog
) -> None:
    starts = [
        e for _, e in _accepted(decoded) if getattr(e, "event_type", "") in ("opened", "submitted")
    ]
    for e in starts:
        assert catalog.agencies[e.agency_code].valid_on(_local(e.occurred_at).date()), e
    inspecting = {e.agency_code for e in starts if isinstance(e, InspectionEventV1)}
    assert {catalog.agencies[c].kind for c in inspecting} == {"department"}
    kinds = Counter(catalog.agencies[e.agency_code].kind for e in starts)
    assert kinds["district"] > 0 and kinds["commune"] > 0
    after_reform = [e for e in starts if _local(e.occurred_at).date() >= date(2025, 7, 1)]
    assert all(catalog.agencies[e.agency_code].kind != "district" for e in after_reform)


def test_volumes_are_skewed_across_many_agencies(decoded: list[Decoded]) -> None:
    per_agency = Counter(e.agency_code for _, e in _accepted(decoded))
    assert len(per_agency) >= 100
    volumes = sorted(per_agency.values())
    assert volumes[-1] >= 20 * volumes[len(volumes) // 2]


def test_inspection_service_mix_and_channel_mix(decoded: list[Decoded]) -> None:
    kinds = Counter(d.message.kind for d in decoded)
    assert 0.27 < kinds["inspection"] / len(decoded) < 0.33
    channels = Counter(e.channel for e in _submissions(decoded))
    # 60% online where the service is offered online; some services are not (counter, postal)
    assert 0.45 < channels["online"] / sum(channels.values()) < 0.65
    assert channels["counter"] > channels["postal"] > 0


def test_online_forms_prefill_classes_and_service_levels(
    decoded: list[Decoded], catalog: Catalog
) -> None:
    online = [e for e in _submissions(decoded) if e.channel == "online"]
    assert all(e.form is not None and 5 <= e.form.fields_total <= 40 for e in online)
    assert {e.form.prefill_class for e in online if e.form} == {"full", "partial", "none"}
    for e in online:
        if e.service_level == "full_process":
            assert catalog.procedures[e.procedure_code].full_process_eligible
    assert {e.service_level for e in online} == {"full_process", "partial"}
    by_procedure: dict[str, list[int]] = defaultdict(list)
    for e in online:
        assert e.form is not None
        by_procedure[e.procedure_code].append(e.form.fields_prefilled)
    never = [p for p, n in by_procedure.items() if len(n) >= 20 and max(n) == 0]
    assert never, "some procedure must never prefill"
    hashes = [e.applicant.id_hash for e in online if e.applicant and e.applicant.id_hash]
    assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes)


def test_service_1_dossier_outcomes_and_on_time_rate(decoded: list[Decoded]) -> None:
    types = Counter(e.event_type for _, e in _accepted(decoded) if isinstance(e, ServiceEventV1))
    assert types["submitted"] > types["completed"] > types["rejected"] > 0
    assert set(types) == {"submitted", "completed", "rejected"}
    completed = [
        e
        for _, e in _accepted(decoded)
        if isinstance(e, ServiceEventV1) and e.event_type == "completed"
    ]
    on_time = sum(bool(e.on_time) for e in completed) / len(completed)
    assert 0.7 < on_time < 0.97


# --- truth ---------------------------------------------------------------------------------


def test_truth_is_reference_kpis_over_the_decoded_events(
    big: Simulation, decoded: list[Decoded]
) -> None:
    assert big.truth == reference_kpis(
        (e for _, e in _accepted(decoded)), kinds=("month", "quarter", "year")
    )
    province = [r for r in big.truth if r.agency_code is None]
    for key in ("full_process_offering_rate", "prefill_design_coverage", "on_time_rate",
                "online_dossier_rate", "digitization_rate", "online_payment_rate",
                "electronic_result_rate", "prefill_observed_coverage"):  # fmt: skip
        assert all(getattr(r, key) is not None for r in province if len(r.period) == 4), key


def test_hybrid_policy_is_passed_to_the_truth(catalog: Catalog) -> None:
    config = SimulationConfig(seed=4, events=3000, hybrid_counts_as_online=True)
    sim = simulate(config, catalog)
    events = [d.event for d in _decode_all(sim, catalog) if d.event is not None]
    kinds: tuple[PeriodKind, ...] = ("month", "quarter", "year")
    assert sim.truth == reference_kpis(events, kinds=kinds, hybrid_counts_as_online=True)
    assert sim.truth != reference_kpis(events, kinds=kinds)


def test_truth_has_a_province_row_for_every_period(big: Simulation) -> None:
    periods = {r.period for r in big.truth}
    province = {r.period for r in big.truth if r.agency_code is None}
    assert periods == province
    months = {f"{y}-{m:02d}" for y in (2024, 2025) for m in range(1, 13)}
    quarters = {f"{y}-Q{q}" for y in (2024, 2025) for q in range(1, 5)}
    assert periods == months | quarters | {"2024", "2025"}


def test_truth_shows_coverage_below_target_and_sensible_shares(big: Simulation) -> None:
    province = [r for r in big.truth if r.agency_code is None]
    assert all(r.prefill_observed_coverage is not None for r in province)
    assert all(r.prefill_observed_coverage < 1 for r in province if r.prefill_observed_coverage)
    for r in province:  # the plan's targets are not met, but measurably approached
        assert r.full_process_offering_rate is not None and r.prefill_design_coverage is not None
        assert 0.2 < r.full_process_offering_rate < 1 and 0.2 < r.prefill_design_coverage < 1
    years = {r.period: r for r in province if len(r.period) == 4}
    share_2024, share_2025 = (years[y].online_inspection_share for y in ("2024", "2025"))
    assert share_2024 is not None and share_2025 is not None
    assert 0.15 < share_2024 < share_2025 < 0.6  # the reform trend


# --- API -----------------------------------------------------------------------------------


def test_simulating_twenty_thousand_events_takes_a_few_seconds(
    timed_big: tuple[Simulation, float],
) -> None:
    assert timed_big[1] < 10.0


def test_jsonl_round_trip_and_truth_file(big: Simulation, tmp_path: Path) -> None:
    assert write_jsonl(big, tmp_path / "m.jsonl") == BIG
    assert list(read_jsonl(tmp_path / "m.jsonl")) == big.messages
    write_truth(big, tmp_path / "t.json")
    text = (tmp_path / "t.json").read_text(encoding="utf-8")
    assert text.endswith("]\n")
    assert json.loads(text) == rows_to_json(big.truth)
    assert [KpiRow(**row) for row in json.loads(text)] == big.truth


def test_describe_reports_the_counts(big: Simulation) -> None:
    text = describe(big)
    assert f"{BIG} messages" in text
    assert f"duplicates: {big.duplicates}" in text
    assert "pii_detected" in text and "hybrid" in text
    assert "offering events (distinct)" in text and "service/1 (agencies not upgraded)" in text


@pytest.mark.parametrize(
    "bad",
    [
        {"events": -1},
        {"duplicate_rate": 1.5},
        {"start": date(2025, 1, 2), "end": date(2025, 1, 1)},
        {"channel_mix": (0.0, 0.0, 0.0)},
        {"completion_rate": 0.9, "rejection_rate": 0.2},
        {"completion_rate": 0.9, "rejection_rate": 0.08, "withdrawal_rate": 0.03},
        {"now": datetime(2026, 1, 1)},
    ],
)
def test_config_refuses_nonsense(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SimulationConfig(**{"seed": 1, "events": 10, **bad})


# --- a small hand-made catalog -------------------------------------------------------------


def _agency(code: str, kind: Any, valid_from: date, valid_to: date | None = None) -> Agency:
    return Agency(
        code, f"Đơn vị {code}", kind, None if kind == "province" else "P", valid_from, valid_to
    )


def _small_catalog() -> Catalog:
    reform = date(2025, 7, 1)
    agencies = [
        _agency("P", "province", date(2000, 1, 1)),
        _agency("P-S-OLD", "department", date(2000, 1, 1), date(2025, 3, 1)),
        _agency("P-S-NEW", "department", date(2025, 3, 1)),
        _agency("P-D1", "district", date(2000, 1, 1), reform),
        _agency("P-D2", "district", date(2000, 1, 1), reform),
        _agency("P-X1", "commune", reform),
    ]
    procedures = [
        Procedure("9.000001", "Thủ tục A", "P-S-OLD", "province", True),
        Procedure("9.000002", "Thủ tục B", "P-S-OLD", "district", False),
        Procedure("9.000003", "Thủ tục C", "P-S-NEW", "commune", True),
    ]
    return Catalog({a.code: a for a in agencies}, {p.code: p for p in procedures})


def test_small_catalog_respects_validity_dates() -> None:
    catalog = _small_catalog()
    sim = simulate(SimulationConfig(seed=9, events=3000, invalid_share=0.02), catalog)
    assert len(sim.messages) == 3000
    decoded = _decode_all(sim, catalog)
    for _, e in _accepted(decoded):
        if getattr(e, "event_type", "") in ("opened", "submitted"):
            assert catalog.agencies[e.agency_code].valid_on(_local(e.occurred_at).date())
    used = {e.agency_code for _, e in _accepted(decoded)}
    assert used == {"P-S-OLD", "P-S-NEW", "P-D1", "P-D2", "P-X1"}
    online = [e for e in _submissions(decoded) if e.channel == "online"]
    assert all(e.service_level == "partial" for e in online if e.procedure_code == "9.000002")


def test_a_day_without_any_valid_agency_is_an_error() -> None:
    catalog = Catalog({"P": _agency("P", "province", date(2024, 6, 1))}, {})
    with pytest.raises(ValueError, match="no agency valid on 2024-01-01"):
        simulate(SimulationConfig(seed=1, events=10), catalog)


def test_a_catalog_without_procedures_gives_only_inspections() -> None:
    catalog = Catalog({"P": _agency("P", "province", date(2000, 1, 1))}, {})
    sim = simulate(SimulationConfig(seed=1, events=200), catalog)
    assert {m.kind for m in sim.messages} == {"inspection"}
