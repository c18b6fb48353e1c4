"""The lists an operator acts on equal lists computed here from the accepted events (decoded as
the worker decodes them), the procedure catalog and the simulator's truth; the scorecard equals
``parwatch kpi --json`` row by row; the annual indices equal the reference file."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dashboards.macros import TimeRange
from dashboards.panels.scorecard import COLUMNS, PROVINCE
from schemas.catalog import load_catalog
from schemas.inspection import IN_PERSON_MODES, InspectionEventV1
from schemas.kpi import rows_to_json
from schemas.offering import OfferingEventV1
from streams.warehouse.kpi_query import read_kpis
from tests.dashboards.conftest import Loaded, accepted_events
from tests.dashboards.test_panel_sql import (
    ALL_DATA,
    BY_KEY,
    MS,
    VN,
    period_range,
    rows,
    variables,
)

pytestmark = pytest.mark.clickhouse

PERIODS = ("2024", "2025", "2024-Q3", "2025-06")


def _ms(t: datetime) -> int:
    return (int(t.timestamp()) * 1_000_000 + t.microsecond) // 1000


def services_at(events: list[Any], end_ms: int) -> dict[tuple[str, str], tuple[str, bool]]:
    """Each service's state at E: its offering event with the latest occurred_at <= E (ties: the
    later published); services whose state is not_offered left out."""
    latest: dict[tuple[str, str], tuple[int, int, str, bool]] = {}
    for position, ev in enumerate(events):
        if not isinstance(ev, OfferingEventV1) or _ms(ev.occurred_at) > end_ms:
            continue
        key = (ev.agency_code, ev.procedure_code)
        cand = (_ms(ev.occurred_at), position, ev.level, ev.prefill_designed)
        if key not in latest or cand[:2] > latest[key][:2]:
            latest[key] = cand
    return {k: (v[2], v[3]) for k, v in latest.items() if v[2] != "not_offered"}


@pytest.mark.parametrize("period", PERIODS)
def test_service_gap_lists_equal_the_offering_events_and_the_truth(
    loaded: Loaded, period: str
) -> None:
    events = accepted_events(loaded.sim)
    catalog = load_catalog()
    eligible = {c for c, p in catalog.procedures.items() if p.full_process_eligible}
    end_ms = _ms(period_range(period).end) + 1
    state = services_at(events, end_ms)
    want_full = sorted(
        (a, p, level) for (a, p), (level, _) in state.items()
        if p in eligible and level != "full_process"
    )  # fmt: skip
    want_prefill = sorted(
        (a, p, level) for (a, p), (level, designed) in state.items()
        if level in ("full_process", "partial") and not designed
    )  # fmt: skip
    vs = variables(period=period)
    got = {
        key: rows(loaded.client, BY_KEY[f"{key}_gaps"], ALL_DATA, vs)
        for key in ("full_process_offering_rate", "prefill_design_coverage")
    }
    as_list = {k: [(r["agency_code"], r["procedure_code"], r["level"]) for r in v]
               for k, v in got.items()}  # fmt: skip
    assert as_list["full_process_offering_rate"] == want_full
    assert as_list["prefill_design_coverage"] == want_prefill
    for r in got["full_process_offering_rate"]:  # with names, for the operator
        assert r["procedure_name"] == catalog.procedures[r["procedure_code"]].name
        assert r["agency_name"] == catalog.agencies[r["agency_code"]].name
    truth = {(r.agency_code, r.period): r for r in loaded.sim.truth}
    province = truth[(None, period)]
    assert len(want_full) == province.services_eligible - province.services_full_process
    assert len(want_prefill) == province.services_online - province.services_prefill_designed
    # one agency: its own rows only
    if want_full:
        agency = want_full[0][0]
        one = rows(loaded.client, BY_KEY["full_process_offering_rate_gaps"], ALL_DATA,
                   variables([agency], period=period))  # fmt: skip
        assert [(r["agency_code"], r["procedure_code"], r["level"]) for r in one] == [
            w for w in want_full if w[0] == agency
        ]


@pytest.mark.parametrize("period", PERIODS)
def test_agencies_below_40_percent_equal_the_truth(loaded: Loaded, period: str) -> None:
    truth = [r for r in loaded.sim.truth if r.period == period and r.agency_code]
    want = sorted(
        (
            r.online_inspection_share, r.agency_code,
            r.inspections_online + r.inspections_hybrid + r.inspections_in_person,
            r.inspections_online, r.inspections_hybrid, r.inspections_in_person,
            r.inspections_unclassified,
        )
        for r in truth
        if r.online_inspection_share is not None and r.online_inspection_share < 0.4
    )  # fmt: skip
    got = rows(loaded.client, BY_KEY["online_inspection_share_gaps"], ALL_DATA,
               variables(period=period))  # fmt: skip
    assert [(r["online_inspection_share"], r["agency_code"], r["classified"], r["online"],
             r["hybrid"], r["in_person"], r["unclassified"]) for r in got] == [
        pytest.approx(w) for w in want
    ]  # fmt: skip
    for r in got:  # the online checks still needed reach 40% exactly
        assert (r["online"] + r["needed"]) / r["classified"] >= 0.4 - 1e-12
        assert (r["online"] + r["needed"] - 1) / r["classified"] < 0.4
    if period == "2025":
        assert got


@pytest.mark.parametrize("period", ["2025", "2024-Q3", "2025-06"])
def test_scorecard_rows_equal_parwatch_kpi_json(loaded: Loaded, period: str) -> None:
    kind = "year" if len(period) == 4 else "quarter" if "Q" in period else "month"
    expected = [r for r in rows_to_json(read_kpis(loaded.client, kind)) if r["period"] == period]
    got = rows(loaded.client, BY_KEY["scorecard"], ALL_DATA, variables(period=period))
    assert got[0]["agency"] == PROVINCE and len(got) == len(expected)
    names = {c: a.name for c, a in load_catalog().agencies.items()}
    for g, e in zip(got, expected, strict=True):  # both: province first, then by code
        code = e["agency_code"]
        assert g["agency"] == (PROVINCE if code is None else f"{code} — {names[code]}")
        for column in (*COLUMNS, "dossiers_submitted"):
            want = e[column]
            assert g[column] == (want if want is None else pytest.approx(want, rel=1e-12)), (
                code,
                column,
            )
    assert any(r["on_time_rate"] is not None for r in got)


def test_data_quality_lists_equal_the_events(loaded: Loaded) -> None:
    events = accepted_events(loaded.sim)
    lo, hi = _ms(ALL_DATA.start), _ms(ALL_DATA.end)
    # unclassified: concluded (latest concluded in range), not cancelled, no activity
    insp: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"concluded": None, "cancelled": False, "activities": 0}
    )
    for ev in events:
        if isinstance(ev, InspectionEventV1):
            st = insp[(ev.agency_code, ev.inspection_id)]
            if ev.event_type == "concluded":
                ms = _ms(ev.occurred_at)
                st["concluded"] = max(st["concluded"] or ms, ms)
            st["cancelled"] |= ev.event_type == "cancelled"
            st["activities"] += ev.event_type == "activity"
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (agency, _), st in insp.items():
        if st["cancelled"] or st["concluded"] is None or not lo <= st["concluded"] <= hi:
            continue
        counts[agency][1] += 1
        counts[agency][0] += st["activities"] == 0
    want = sorted(((-u, a, u, n) for a, (u, n) in counts.items() if u), key=lambda w: w[:2])
    got = rows(loaded.client, BY_KEY["unclassified_inspections"], ALL_DATA, variables())
    assert [(r["agency_code"], r["unclassified"], r["concluded"]) for r in got] == [
        (a, u, n) for _, a, u, n in want
    ]
    assert got
    assert IN_PERSON_MODES  # the classification itself is tested with the worker

    # service/1 submissions by agency
    sent_v1 = set()
    for m in loaded.sim.messages:
        try:
            raw = json.loads(m.value)
        except ValueError:
            continue
        if isinstance(raw, dict) and raw.get("schema") == "service/1":
            sent_v1.add(str(raw.get("event_id")))
    v1: dict[str, int] = defaultdict(int)
    for ev in events:
        submitted = getattr(ev, "dossier_id", None) and ev.event_type == "submitted"
        if submitted and lo <= _ms(ev.occurred_at) <= hi and str(ev.event_id) in sent_v1:
            v1[ev.agency_code] += 1
    got_v1 = rows(loaded.client, BY_KEY["service_v1_dossiers"], ALL_DATA, variables())
    assert {r["agency_code"]: r["v1"] for r in got_v1} == dict(v1)

    # agencies silent in the last 30 days of the range
    last: dict[str, int] = {}
    for ev in events:
        if isinstance(ev, OfferingEventV1) or not lo <= _ms(ev.occurred_at) <= hi:
            continue
        last[ev.agency_code] = max(last.get(ev.agency_code, 0), _ms(ev.occurred_at))
    silent = {a for a, t in last.items() if t < hi + 1 - 30 * 86_400_000}
    got_silent = rows(loaded.client, BY_KEY["silent_agencies"], ALL_DATA, variables())
    assert {r["agency_code"] for r in got_silent} == silent and silent

    # prefill design contradicted by the dossiers (state at the end of the range)
    state = services_at(events, hi + 1)
    seen: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for ev in events:
        if getattr(ev, "dossier_id", None) and ev.event_type == "submitted" \
                and ev.channel == "online" and lo <= _ms(ev.occurred_at) <= hi:  # fmt: skip
            s = seen[(ev.agency_code, ev.procedure_code)]
            s[0] += 1
            s[1] += bool(ev.form and ev.form.fields_prefilled > 0)
    mismatch = {
        k for k, (n, pre) in seen.items()
        if k in state and state[k][0] in ("full_process", "partial")
        and (state[k][1] and pre == 0 or not state[k][1] and pre > 0)
    }  # fmt: skip
    got_mismatch = rows(loaded.client, BY_KEY["prefill_mismatch"], ALL_DATA, variables())
    assert {(r["agency_code"], r["procedure_code"]) for r in got_mismatch} == mismatch


def test_annual_indices_equal_the_reference_file(loaded: Loaded) -> None:
    path = Path(__file__).parents[2] / "schemas/reference/annual_indices.csv"
    with path.open(encoding="utf-8") as f:
        want = {(r["index_name"], int(r["year"])): r for r in csv.DictReader(f)}
    tr = TimeRange(datetime(2000, 1, 1, tzinfo=VN), datetime(2027, 1, 1, tzinfo=VN) - MS)
    got = rows(loaded.client, BY_KEY["annual_indices"], tr, variables())
    assert len(got) == len(want)
    for r in got:
        name = next(k for k in ("PAR_INDEX", "SIPAS", "PAPI", "PCI")
                    if r["index_title"].startswith(k.replace("_", " ")))  # fmt: skip
        w = want[(name, r["year"])]
        assert r["score"] == float(w["score"]) and r["source"] == w["source"]
        assert r["rank_text"] == (f"{w['rank']}/{w['ranked_of']}" if w["rank"] else "—")
    ranks = rows(loaded.client, BY_KEY["annual_ranks"], tr, variables())
    for r in ranks:
        year = (r["time"] + timedelta(hours=7)).year
        for name in ("PAR_INDEX", "SIPAS", "PAPI", "PCI"):
            ref = want.get((name, year))
            rank = int(ref["rank"]) if ref and ref["rank"] else None
            assert r[name.lower()] == rank, (name, year)
