"""Counts of a simulation run for people: ``Tally`` over the accepted events, ``describe``.

Counted from the events themselves, not from the truth's rows, so the summary does not depend on
which KPI columns the truth has. Each ``event_id`` is to be added once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from schemas.events import LatestEvent
from schemas.inspection import InspectionEventV1
from schemas.offering import OfferingEventV1

if TYPE_CHECKING:
    from producers.simulation.simulator import Simulation

CLASSES = ("online", "hybrid", "in_person", "unclassified")
_CLASS_OF = {(True, True): "hybrid", (True, False): "online", (False, True): "in_person"}


@dataclass
class _Inspection:
    online: bool = False
    in_person: bool = False
    concluded: bool = False
    cancelled: bool = False
    kind: str = "kiem_tra"


@dataclass
class Tally:
    """Distinct accepted events by kind and type, agencies, inspections by class and kind,
    online submissions, dossiers by schema version, services offered."""

    events: Counter[str] = field(default_factory=Counter)
    agencies: set[str] = field(default_factory=set)
    inspections: dict[str, _Inspection] = field(default_factory=dict)
    services: set[str] = field(default_factory=set)

    def add(self, event: LatestEvent) -> None:
        self.agencies.add(event.agency_code)
        if isinstance(event, OfferingEventV1):
            self.events[f"offering.{event.level}"] += 1
            self.services.add(event.key)
            return
        self.events[f"{event.schema_version.split('/')[0]}.{event.event_type}"] += 1
        if not isinstance(event, InspectionEventV1):
            if event.event_type == "submitted":
                self.events[f"dossiers.{event.schema_version}"] += 1
                self.events["online_submissions"] += event.channel == "online"
            return
        st = self.inspections.setdefault(event.key, _Inspection())
        if event.activity is not None:
            if event.activity.mode.is_online:
                st.online = True
            else:
                st.in_person = True
        if event.kind is not None:  # the latest carrying it decides; near enough for a summary
            st.kind = event.kind
        st.concluded |= event.event_type == "concluded"
        st.cancelled |= event.event_type == "cancelled"

    def counts(self) -> dict[str, int]:
        out = {k: self.events[k] for k in sorted(self.events) if "." in k}
        out["agencies"] = len(self.agencies)
        out["services_offered"] = len(self.services)
        out["online_submissions"] = self.events["online_submissions"]
        for cls in CLASSES:
            out[f"inspections_{cls}"] = 0
        out["inspections_thanh_tra"] = 0
        for st in self.inspections.values():
            if not st.concluded or st.cancelled:
                continue
            if st.kind == "thanh_tra":
                out["inspections_thanh_tra"] += 1
                continue
            cls = _CLASS_OF.get((st.online, st.in_person), "unclassified")
            out[f"inspections_{cls}"] += 1
        return out


def describe(sim: Simulation) -> str:
    """A few lines of counts for people: events per type, agencies, inspections by class…"""
    c, cfg = sim.counts, sim.config
    lines = [f"{len(sim.messages)} messages, seed {cfg.seed}, {cfg.start} to {cfg.end}"]
    for kind in ("inspection", "service", "offering"):
        types = [(k.split(".")[1], v) for k, v in c.items() if k.startswith(f"{kind}.")]
        listed = ", ".join(f"{t} {v}" for t, v in types)
        lines.append(f"{kind} events (distinct): {sum(v for _, v in types)} ({listed})")
    lines += [
        f"agencies sending: {c['agencies']}; services offered: {c['services_offered']}",
        f"dossiers: service/2 {c.get('dossiers.service/2', 0)}, "
        f"service/1 (agencies not upgraded) {c.get('dossiers.service/1', 0)}; "
        f"online submissions: {c['online_submissions']}",
        "kiem_tra inspections concluded and counted: "
        + ", ".join(f"{cls.replace('_', ' ')} {c[f'inspections_{cls}']}" for cls in CLASSES)
        + f"; thanh_tra concluded: {c['inspections_thanh_tra']}",
        f"duplicates: {sim.duplicates}",
        "refusals: "
        + (", ".join(f"{r} {n}" for r, n in sim.expected_refusals.items() if n) or "none"),
    ]
    return "\n".join(lines)
