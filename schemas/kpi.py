"""KPI definitions (EVENTS.md version 2) and the reference computation every measurement equals.

``reference_kpis(events)`` is the specification in executable form: pure Python over accepted
events (any order; each ``event_id`` once, the first accepted copy wins). The simulator's ground
truth is computed with it, and the warehouse's KPI views are tested against it. The JSON shape
(``KpiRow``) is shared by ``parwatch simulate --truth`` and ``parwatch kpi --json``: one row per
agency and period, plus one per period for the whole province (``agency_code`` null), computed
over all agencies' facts, not averaged. Shares are fractions in 0..1, ``None`` when the
denominator is 0. Instants are compared in whole milliseconds (what the warehouse stores).

The rules, as EVENTS.md states them, with the choices it leaves open made explicit:

* Inspections: classified from all their ``activity`` events; counted in the period of their
  latest ``concluded``; a ``cancelled`` one leaves every KPI. ``kind`` is the one carried by
  the latest event (by ``occurred_at``, ties: the later in order) that carries one, else
  ``kiem_tra``. The inspection KPIs count ``kiem_tra`` only; concluded ``thanh_tra`` ones are
  counted in ``inspections_thanh_tra``. ``online_activity_share`` counts the activities in P of
  ``kiem_tra`` inspections that are not cancelled, concluded or not.
* A dossier (agency x ``dossier_id``) is read by ``schemas.lifecycle.Lifecycle``: submission
  facts from its first ``submitted``, its end from its first ``completed``/``rejected``/
  ``withdrawn``, its payment from its first ``paid``, its pauses from its supplement events.
* A completion is judged on time by its effective due (``due_at`` plus the pauses before the
  completion) when the dossier's first ``submitted`` is ``service/2``; else by the ``on_time``
  flag of the completing event (``service/1``); a completion with neither cannot be judged and
  leaves the on-time rate (it still counts where the rate does not need a due date).
* Open at the end E of P: submitted before E, no end before E, and a ``due_at`` (service/1
  dossiers are never counted while open). Overdue at E: effective due at E before E.
* A service (agency x procedure) at instant t is in the state of its offering event with the
  latest ``occurred_at`` <= t (ties: the later in order, i.e. published later); it exists when
  there is one and its level is not ``not_offered``. Eligible: the procedure catalog's
  ``full_process_eligible``.
* Rows: for each period kind, the periods from the first to the last holding the
  ``occurred_at`` of an accepted event (of any kind); within them, an agency's row exists when
  it has a counted fact in P (a conclusion, an activity, a submission, a judged or electronic
  completion, a first payment), an open dossier at the end of P, or a service existing at the
  end of P; the province's row when any agency's does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from schemas.inspection import IN_PERSON_MODES, InspectionEventV1
from schemas.lifecycle import Lifecycle, paused_before, service_facts
from schemas.offering import ONLINE_LEVELS, OfferingEventV1
from schemas.periods import (
    PERIOD_KINDS,
    PeriodKind,
    day_start_ms,
    first_day,
    label,
    local_day_ms,
    next_first_day,
)
from schemas.service import ServiceEventV1, ServiceEventV2

InspectionClass = Literal["online", "hybrid", "in_person", "unclassified"]

RATE_KEYS = (
    "online_inspection_share", "online_activity_share", "online_dossier_rate",
    "full_process_dossier_rate", "data_reuse_rate", "digitization_rate",
    "prefilled_submission_share", "prefill_depth", "prefill_observed_coverage",
    "full_process_offering_rate", "prefill_design_coverage", "on_time_rate",
    "average_resolution_days", "electronic_result_rate", "online_payment_rate",
)  # fmt: skip
"""Every KPI of EVENTS.md version 2, in its order."""

COUNT_KEYS = (
    "inspections_online", "inspections_hybrid", "inspections_in_person",
    "inspections_unclassified", "inspections_thanh_tra", "activities", "activities_online",
    "dossiers_submitted", "online_submissions", "online_full_process", "dossiers_reusing",
    "dossiers_v2", "dossiers_digitized", "online_prefilled", "form_fields_total",
    "form_fields_prefilled", "services_with_online_dossiers", "services_with_prefilled_dossiers",
    "services_existing", "services_eligible", "services_full_process", "services_online",
    "services_prefill_designed", "dossiers_completed", "dossiers_completed_on_time",
    "dossiers_open", "dossiers_overdue", "dossiers_resolved", "resolution_ms_total",
    "completions_v2", "results_electronic", "payments", "payments_online",
)  # fmt: skip
"""The counts behind the KPIs (EVENTS.md names the first of them; the rest make each share
checkable: numerator and denominator)."""

KPI_KEYS = ("agency_code", "period", *RATE_KEYS, *COUNT_KEYS)
"""The columns of ``KpiRow``, in order: what ``parwatch kpi --json`` and ``--truth`` print."""

DAY_MS = 86_400_000


def classify_inspection(has_online: bool, has_in_person: bool) -> InspectionClass:
    """The class of one inspection from the kinds of its activities (EVENTS.md)."""
    if has_online and has_in_person:
        return "hybrid"
    if has_online:
        return "online"
    if has_in_person:
        return "in_person"
    return "unclassified"


class KpiRow(BaseModel):
    """One row of the KPI JSON shape: an agency (or the province, ``None``) and a period."""

    model_config = ConfigDict(frozen=True)

    agency_code: str | None
    period: str
    online_inspection_share: float | None
    online_activity_share: float | None
    online_dossier_rate: float | None
    full_process_dossier_rate: float | None
    data_reuse_rate: float | None
    digitization_rate: float | None
    prefilled_submission_share: float | None
    prefill_depth: float | None
    prefill_observed_coverage: float | None
    full_process_offering_rate: float | None
    prefill_design_coverage: float | None
    on_time_rate: float | None
    average_resolution_days: float | None
    electronic_result_rate: float | None
    online_payment_rate: float | None
    inspections_online: int
    inspections_hybrid: int
    inspections_in_person: int
    inspections_unclassified: int
    inspections_thanh_tra: int
    activities: int
    activities_online: int
    dossiers_submitted: int
    online_submissions: int
    online_full_process: int
    dossiers_reusing: int
    dossiers_v2: int
    dossiers_digitized: int
    online_prefilled: int
    form_fields_total: int
    form_fields_prefilled: int
    services_with_online_dossiers: int
    services_with_prefilled_dossiers: int
    services_existing: int
    services_eligible: int
    services_full_process: int
    services_online: int
    services_prefill_designed: int
    dossiers_completed: int
    dossiers_completed_on_time: int
    dossiers_open: int
    dossiers_overdue: int
    dossiers_resolved: int
    resolution_ms_total: int
    completions_v2: int
    results_electronic: int
    payments: int
    payments_online: int


def _share(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _ms(moment: datetime) -> int:
    """Milliseconds since 1970 UTC, floored, as a ``DateTime64(3)`` column stores them."""
    return (int(moment.timestamp()) * 1_000_000 + moment.microsecond) // 1000


@dataclass
class _Tally:
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    services_online: set[tuple[str, str]] = field(default_factory=set)
    services_prefilled: set[tuple[str, str]] = field(default_factory=set)

    def has_fact(self) -> bool:
        return any(self.counts.values()) or bool(self.services_online)

    def row(self, agency: str | None, period: str, hybrid_counts: bool) -> KpiRow:
        c = dict(self.counts)
        c["services_with_online_dossiers"] = len(self.services_online)
        c["services_with_prefilled_dossiers"] = len(self.services_prefilled)
        get = c.get
        classified = get("inspections_online", 0) + get("inspections_hybrid", 0)
        classified += get("inspections_in_person", 0)
        online = get("inspections_online", 0)
        online += get("inspections_hybrid", 0) if hybrid_counts else 0
        submitted = get("dossiers_submitted", 0)
        judged = get("dossiers_completed", 0) + get("dossiers_open", 0)
        good = get("dossiers_completed_on_time", 0) + get("dossiers_open", 0)
        good -= get("dossiers_overdue", 0)
        resolved = get("dossiers_resolved", 0)
        return KpiRow(
            agency_code=agency,
            period=period,
            online_inspection_share=_share(online, classified),
            online_activity_share=_share(get("activities_online", 0), get("activities", 0)),
            online_dossier_rate=_share(get("online_submissions", 0), submitted),
            full_process_dossier_rate=_share(get("online_full_process", 0), submitted),
            data_reuse_rate=_share(get("dossiers_reusing", 0), submitted),
            digitization_rate=_share(get("dossiers_digitized", 0), get("dossiers_v2", 0)),
            prefilled_submission_share=_share(
                get("online_prefilled", 0), get("online_submissions", 0)
            ),
            prefill_depth=_share(get("form_fields_prefilled", 0), get("form_fields_total", 0)),
            prefill_observed_coverage=_share(
                len(self.services_prefilled), len(self.services_online)
            ),
            full_process_offering_rate=_share(
                get("services_full_process", 0), get("services_eligible", 0)
            ),
            prefill_design_coverage=_share(
                get("services_prefill_designed", 0), get("services_online", 0)
            ),
            on_time_rate=_share(good, judged),
            average_resolution_days=(
                get("resolution_ms_total", 0) / resolved / DAY_MS if resolved else None
            ),
            electronic_result_rate=_share(get("results_electronic", 0), get("completions_v2", 0)),
            online_payment_rate=_share(get("payments_online", 0), get("payments", 0)),
            **{k: c.get(k, 0) for k in COUNT_KEYS},
        )


@dataclass
class _Inspection:
    has_online: bool = False
    has_in_person: bool = False
    concluded_ms: int | None = None
    cancelled: bool = False
    kind: str = "kiem_tra"
    kind_ms: int | None = None
    activities: list[tuple[int, bool]] = field(default_factory=list)  # (ms, online)


def reference_kpis(
    events: Iterable[InspectionEventV1 | ServiceEventV1 | ServiceEventV2 | OfferingEventV1],
    *,
    kinds: Iterable[PeriodKind] = PERIOD_KINDS,
    hybrid_counts_as_online: bool = False,
    eligible_procedures: Collection[str] | None = None,
) -> list[KpiRow]:
    """KPIs of accepted events, per agency and period and for the province.

    ``eligible_procedures``: the procedure codes flagged ``full_process_eligible``; default the
    bundled procedure catalog's.
    """
    if eligible_procedures is None:
        from schemas.catalog import load_catalog

        eligible_procedures = {
            p.code for p in load_catalog().procedures.values() if p.full_process_eligible
        }
    kinds = tuple(kinds)
    seen: set[Any] = set()
    inspections: dict[tuple[str, str], _Inspection] = defaultdict(_Inspection)
    dossiers: dict[tuple[str, str], Lifecycle] = defaultdict(Lifecycle)
    offerings: dict[tuple[str, str], list[tuple[int, int, str, bool]]] = defaultdict(list)
    lo: int | None = None
    hi: int | None = None
    for position, ev in enumerate(events):
        if ev.event_id in seen:
            continue
        seen.add(ev.event_id)
        ms = _ms(ev.occurred_at)
        lo = ms if lo is None or ms < lo else lo
        hi = ms if hi is None or ms > hi else hi
        if isinstance(ev, InspectionEventV1):
            _apply_inspection(inspections[(ev.agency_code, ev.inspection_id)], ev, ms)
        elif isinstance(ev, OfferingEventV1):
            offerings[(ev.agency_code, ev.procedure_code)].append(
                (ms, position, ev.level, ev.prefill_designed)
            )
        else:
            dossiers[(ev.agency_code, ev.dossier_id)].apply(service_facts(ev, ms), ev.event_id.int)

    rows: list[KpiRow] = []
    if lo is None or hi is None:
        return rows
    for kind in kinds:
        facts = _Facts(kind, lo, hi)
        _inspection_facts(facts, inspections)
        _dossier_facts(facts, dossiers)
        _open_dossier_facts(facts, dossiers)
        _offering_facts(facts, offerings, eligible_procedures)
        rows += facts.rows(hybrid_counts_as_online)
    return sort_rows(rows)


def _apply_inspection(st: _Inspection, ev: InspectionEventV1, ms: int) -> None:
    if ev.kind is not None and (st.kind_ms is None or ms >= st.kind_ms):
        st.kind, st.kind_ms = ev.kind, ms
    if ev.event_type == "activity" and ev.activity is not None:
        online = ev.activity.mode not in IN_PERSON_MODES
        st.activities.append((ms, online))
        if online:
            st.has_online = True
        else:
            st.has_in_person = True
    elif ev.event_type == "concluded":
        if st.concluded_ms is None or ms > st.concluded_ms:
            st.concluded_ms = ms
    elif ev.event_type == "cancelled":
        st.cancelled = True


class _Facts:
    """The tallies of one period kind, and the range of periods holding timed facts."""

    def __init__(self, kind: PeriodKind, lo_ms: int, hi_ms: int) -> None:
        self.kind = kind
        self.tallies: dict[tuple[str | None, date], _Tally] = defaultdict(_Tally)
        self.first = self.start_of(lo_ms)
        self.last = self.start_of(hi_ms)

    def start_of(self, ms: int) -> date:
        return first_day(local_day_ms(ms), self.kind)

    def timed(self, ms: int) -> date:
        """The first day of the period holding ``ms`` (always within the range)."""
        return self.start_of(ms)

    def add(self, agency: str, start: date, **counts: int) -> None:
        for t in (self.tallies[(agency, start)], self.tallies[(None, start)]):
            for name, n in counts.items():
                t.counts[name] += n

    def ends_between(self, after_ms: int, until_ms: int | None) -> Iterable[tuple[date, int]]:
        """The periods P in range whose end E satisfies after_ms < E <= until_ms (None: no
        bound): (P's first day, E in ms)."""
        start = self.start_of(after_ms)
        start = max(start, self.first)
        while start <= self.last:
            end_ms = day_start_ms(next_first_day(start, self.kind))
            if until_ms is not None and end_ms > until_ms:
                break
            if end_ms > after_ms:
                yield start, end_ms
            start = next_first_day(start, self.kind)

    def rows(self, hybrid_counts: bool) -> list[KpiRow]:
        out = []
        agencies_with_rows: set[date] = set()
        for (agency, start), t in self.tallies.items():
            if agency is None or not t.has_fact():
                continue
            agencies_with_rows.add(start)
            out.append(t.row(agency, label(start, self.kind), hybrid_counts))
        for start in agencies_with_rows:
            province = self.tallies[(None, start)]
            out.append(province.row(None, label(start, self.kind), hybrid_counts))
        return out


def _inspection_facts(facts: _Facts, inspections: dict[tuple[str, str], _Inspection]) -> None:
    for (agency, _), st in inspections.items():
        if st.cancelled:
            continue
        if st.kind == "kiem_tra":
            for ms, online in st.activities:
                facts.add(agency, facts.timed(ms), activities=1, activities_online=int(online))
        if st.concluded_ms is None:
            continue
        start = facts.timed(st.concluded_ms)
        if st.kind == "thanh_tra":
            facts.add(agency, start, inspections_thanh_tra=1)
        else:
            cls = classify_inspection(st.has_online, st.has_in_person)
            facts.add(agency, start, **{f"inspections_{cls}": 1})


def _dossier_facts(facts: _Facts, dossiers: dict[tuple[str, str], Lifecycle]) -> None:
    for (agency, _), d in dossiers.items():
        sub = d.submission
        v2 = sub is not None and sub.schema == "service/2"
        if sub is not None and d.submitted is not None:
            start = facts.timed(d.submitted[0])
            online = sub.channel == "online"
            prefilled = sub.fields_prefilled if online else 0
            facts.add(
                agency, start,
                dossiers_submitted=1,
                online_submissions=int(online),
                online_full_process=int(online and sub.service_level == "full_process"),
                dossiers_reusing=int(sub.reused_components >= 1 or prefilled >= 1),
                dossiers_v2=int(v2),
                dossiers_digitized=int(v2 and bool(sub.digitized)),
                online_prefilled=int(prefilled >= 1),
                form_fields_total=sub.fields_total if online else 0,
                form_fields_prefilled=prefilled,
            )  # fmt: skip
            if online:
                service = (agency, sub.procedure_code)
                for key in ((agency, start), (None, start)):
                    facts.tallies[key].services_online.add(service)
                    if prefilled >= 1:
                        facts.tallies[key].services_prefilled.add(service)
        if d.paid is not None:
            online_paid = int(d.payment_channel == "online")
            facts.add(agency, facts.timed(d.paid[0]), payments=1, payments_online=online_paid)
        if d.ended is None or d.ending is None or d.ending.event_type != "completed":
            continue
        end_ms, ended = d.ended[0], d.ending
        counts: dict[str, int] = {}
        if ended.schema == "service/2":
            counts["completions_v2"] = 1
            counts["results_electronic"] = int(bool(ended.result_electronic))
        if v2 and sub is not None and d.submitted is not None and sub.due_ms is not None:
            paused = paused_before(d.pauses(), end_ms)
            on_time = end_ms <= sub.due_ms + paused
            counts.update(dossiers_completed=1, dossiers_completed_on_time=int(on_time))
            counts.update(dossiers_resolved=1, resolution_ms_total=end_ms - d.submitted[0] - paused)
        elif ended.on_time is not None:
            counts.update(dossiers_completed=1, dossiers_completed_on_time=int(ended.on_time))
        if counts:
            facts.add(agency, facts.timed(end_ms), **counts)


def _open_dossier_facts(facts: _Facts, dossiers: dict[tuple[str, str], Lifecycle]) -> None:
    for (agency, _), d in dossiers.items():
        sub = d.submission
        if sub is None or d.submitted is None or sub.schema != "service/2" or sub.due_ms is None:
            continue
        pauses = d.pauses()
        until = d.ended[0] if d.ended is not None else None
        for start, end_ms in facts.ends_between(d.submitted[0], until):
            overdue = sub.due_ms + paused_before(pauses, end_ms) < end_ms
            facts.add(agency, start, dossiers_open=1, dossiers_overdue=int(overdue))


def _offering_facts(
    facts: _Facts,
    offerings: dict[tuple[str, str], list[tuple[int, int, str, bool]]],
    eligible: Collection[str],
) -> None:
    for (agency, procedure), history in offerings.items():
        states = sorted(history)  # by occurred_at, then publication order
        for i, (ms, _, level, prefill) in enumerate(states):
            if level == "not_offered":
                continue
            following = states[i + 1][0] if i + 1 < len(states) else None
            # E holds this state when ms <= E < the next state's occurred_at.
            until = None if following is None else following - 1
            for start, _end in facts.ends_between(ms - 1, until):
                online = level in ONLINE_LEVELS
                is_eligible = procedure in eligible
                facts.add(
                    agency, start,
                    services_existing=1,
                    services_eligible=int(is_eligible),
                    services_full_process=int(is_eligible and level == "full_process"),
                    services_online=int(online),
                    services_prefill_designed=int(online and prefill),
                )  # fmt: skip


def order_key(period: str, agency_code: str | None) -> tuple[int, str, str]:
    """Canonical order of KPI rows: by period label, province row first, then agency code."""
    return (len(period), period, agency_code or "")


def sort_rows(rows: Iterable[KpiRow]) -> list[KpiRow]:
    """``rows`` in the canonical order (``order_key``)."""
    return sorted(rows, key=lambda r: order_key(r.period, r.agency_code))


def rows_to_json(rows: Iterable[KpiRow]) -> list[dict[str, Any]]:
    return [r.model_dump(mode="json") for r in sort_rows(rows)]
