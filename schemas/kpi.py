"""KPI definitions (EVENTS.md) and the reference computation that every measurement must equal.

``reference_kpis(events)`` is the specification in executable form: pure Python over accepted
events. The simulator's ground truth is computed with it, and the warehouse's KPI views are
tested against it. The JSON shape (``KpiRow``) is shared by ``parwatch simulate --truth`` and
``parwatch kpi --json``: one row per agency and period, plus one per period for the whole
province (``agency_code`` null). Shares are fractions in 0..1, ``None`` when the denominator is 0.

Rules, in the order EVENTS.md states them:

* Inspections: classified from all of their ``activity`` events, in any arrival order; counted in
  the period of their ``concluded`` event (the latest one, if an agency sends several); an
  inspection with any ``cancelled`` event leaves every KPI. Share = online / (online + hybrid +
  in_person); with ``hybrid_counts_as_online`` the numerator is online + hybrid.
* Services (per ``submitted`` event, each ``event_id`` once): online submissions; prefilled share
  = (full + partial) / online; depth = sum(prefilled) / sum(total); coverage = distinct procedures
  with a prefilled online submission / distinct procedures with an online submission;
  full-process share = online full_process / all submissions; on-time rate = on-time
  ``completed`` / all ``completed``.
* A row exists for an agency and period with at least one counted inspection, submission or
  completion.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from schemas.inspection import IN_PERSON_MODES, InspectionEventV1
from schemas.periods import PERIOD_KINDS, PeriodKind, period_of
from schemas.service import ServiceEventV1

InspectionClass = Literal["online", "hybrid", "in_person", "unclassified"]

KPI_KEYS = (
    "agency_code", "period",
    "inspections_online", "inspections_hybrid", "inspections_in_person",
    "inspections_unclassified", "online_inspection_share",
    "online_submissions", "prefilled_submission_share", "prefill_depth",
    "service_prefill_coverage", "full_process_share", "on_time_rate",
)  # fmt: skip


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
    """One row of the KPI JSON shape."""

    model_config = ConfigDict(frozen=True)

    agency_code: str | None
    period: str
    inspections_online: int
    inspections_hybrid: int
    inspections_in_person: int
    inspections_unclassified: int
    online_inspection_share: float | None
    online_submissions: int
    prefilled_submission_share: float | None
    prefill_depth: float | None
    service_prefill_coverage: float | None
    full_process_share: float | None
    on_time_rate: float | None


def _share(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


@dataclass
class _Tally:
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    procedures_online: set[str] = field(default_factory=set)
    procedures_prefilled: set[str] = field(default_factory=set)

    def row(self, agency: str | None, period: str, hybrid_counts: bool) -> KpiRow:
        c = self.counts
        classified = c["online"] + c["hybrid"] + c["in_person"]
        return KpiRow(
            agency_code=agency,
            period=period,
            inspections_online=c["online"],
            inspections_hybrid=c["hybrid"],
            inspections_in_person=c["in_person"],
            inspections_unclassified=c["unclassified"],
            online_inspection_share=_share(
                c["online"] + (c["hybrid"] if hybrid_counts else 0), classified
            ),
            online_submissions=c["online_submissions"],
            prefilled_submission_share=_share(c["prefilled"], c["online_submissions"]),
            prefill_depth=_share(c["fields_prefilled"], c["fields_total"]),
            service_prefill_coverage=_share(
                len(self.procedures_prefilled), len(self.procedures_online)
            ),
            full_process_share=_share(c["full_process"], c["submissions"]),
            on_time_rate=_share(c["on_time"], c["completed"]),
        )


@dataclass
class _Inspection:
    has_online: bool = False
    has_in_person: bool = False
    concluded_at: datetime | None = None
    cancelled: bool = False


def reference_kpis(
    events: Iterable[InspectionEventV1 | ServiceEventV1],
    *,
    kinds: Iterable[PeriodKind] = PERIOD_KINDS,
    hybrid_counts_as_online: bool = False,
) -> list[KpiRow]:
    """KPIs of accepted events; duplicates (same ``event_id``) count once, the first wins."""
    kinds = tuple(kinds)
    tallies: dict[tuple[str | None, str], _Tally] = defaultdict(_Tally)
    inspections: dict[tuple[str, str], _Inspection] = defaultdict(_Inspection)
    seen: set[Any] = set()

    def buckets(agency: str, moment: datetime) -> list[_Tally]:
        out = []
        for kind in kinds:
            p = period_of(moment, kind)
            out += [tallies[(agency, p)], tallies[(None, p)]]
        return out

    for ev in events:
        if ev.event_id in seen:
            continue
        seen.add(ev.event_id)
        if isinstance(ev, InspectionEventV1):
            st = inspections[(ev.agency_code, ev.inspection_id)]
            if ev.event_type == "activity" and ev.activity is not None:
                if ev.activity.mode in IN_PERSON_MODES:
                    st.has_in_person = True
                else:
                    st.has_online = True
            elif ev.event_type == "concluded":
                if st.concluded_at is None or ev.occurred_at > st.concluded_at:
                    st.concluded_at = ev.occurred_at
            elif ev.event_type == "cancelled":
                st.cancelled = True
            continue
        if ev.event_type == "rejected":  # counted by no KPI
            continue
        for t in buckets(ev.agency_code, ev.occurred_at):
            c = t.counts
            if ev.event_type == "completed":
                c["completed"] += 1
                c["on_time"] += bool(ev.on_time)
            elif ev.event_type == "submitted":
                c["submissions"] += 1
                if ev.channel == "online" and ev.form is not None:
                    c["online_submissions"] += 1
                    c["full_process"] += ev.service_level == "full_process"
                    c["fields_total"] += ev.form.fields_total
                    c["fields_prefilled"] += ev.form.fields_prefilled
                    t.procedures_online.add(ev.procedure_code)
                    if ev.form.fields_prefilled > 0:
                        c["prefilled"] += 1
                        t.procedures_prefilled.add(ev.procedure_code)

    for (agency, _), st in inspections.items():
        if st.cancelled or st.concluded_at is None:
            continue
        cls = classify_inspection(st.has_online, st.has_in_person)
        for t in buckets(agency, st.concluded_at):
            t.counts[cls] += 1

    rows = [t.row(a, p, hybrid_counts_as_online) for (a, p), t in tallies.items()]
    return sort_rows(rows)


def sort_rows(rows: Iterable[KpiRow]) -> list[KpiRow]:
    """Canonical order: by period label, province row first, then agency code."""
    return sorted(rows, key=lambda r: (len(r.period), r.period, r.agency_code or ""))


def rows_to_json(rows: Iterable[KpiRow]) -> list[dict[str, Any]]:
    return [r.model_dump(mode="json") for r in sort_rows(rows)]
