"""The events of one simulated public-service dossier (``service/2``, or ``service/1`` from
agencies that have not upgraded).

The dossier goes to a service that exists at its start (``traffic.services``), so its channel
and service level follow the service's offering: online only when the service is offered online,
``full_process`` only when it is offered so (and the procedure is eligible), prefilled fields
only when its form is designed to prefill (and then per the procedure's habit: some procedures
never prefill). ``submitted`` through a channel (online, counter, postal); an online submission
carries a service level and a form. A ``service/2`` submission also carries ``due_at`` (the
procedure's resolution time in working days), ``digitized`` (mostly, more over time) and
``reused_components`` (sometimes, more over time); its lifecycle follows (``lifecycle``). A
``service/1`` dossier is as before contract v2: ``completed`` (on time or late, per the agency's
on-time rate, told by ``on_time``) or ``rejected``; a few stay open. The applicant is identified
only by the SHA-256 of a fake ID number: no raw ID ever appears.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from producers.simulation.lifecycle import REJECT_REASONS, lifecycle
from producers.simulation.office_hours import rfc3339
from producers.simulation.traffic import Draft, ProcedureProfile, Traffic
from schemas.offering_catalog import OfferingLine

CHANNELS = ("online", "counter", "postal")


def _applicant(t: Traffic, pp: ProcedureProfile) -> tuple[str, dict[str, Any]]:
    rng = t.rng
    r = rng.random()
    if r < pp.enterprise:
        kind, raw_id = "enterprise", f"28{rng.randrange(10**8):08d}"  # a Thanh Hóa tax code
    elif r < pp.enterprise + 0.04:
        kind, raw_id = "organization", f"QHNS-{rng.randrange(10**7):07d}"
    else:
        kind, raw_id = "citizen", f"038{rng.randrange(10**9):09d}"  # a Thanh Hóa citizen ID
    applicant: dict[str, Any] = {"type": kind}
    if rng.random() < 0.95:
        applicant["id_hash"] = hashlib.sha256(raw_id.encode()).hexdigest()
    return kind, applicant


def _form(
    t: Traffic, pp: ProcedureProfile, applicant: str, progress: float, designed: bool
) -> dict[str, Any]:
    rng = t.rng
    total = min(max(pp.fields + rng.randint(-2, 2), 5), 40)
    p = min(pp.prefill + t.cfg.prefill_trend * progress, 1.0) if pp.prefill > 0 else 0.0
    prefilled = 0
    if rng.random() < p and designed:
        prefilled = total if rng.random() < pp.full_share else rng.randint(1, total - 1)
    form: dict[str, Any] = {"fields_total": total, "fields_prefilled": prefilled}
    if prefilled:
        sources = ["population_db" if applicant == "citizen" else "business_registry"]
        if rng.random() < 0.3:
            sources.append("previous_dossier")
        form["prefill_sources"] = sources
    return form


def _channel(t: Traffic, offering: OfferingLine | None) -> str:
    mix = t.cfg.channel_mix
    if offering is None or offering.level in ("full_process", "partial"):
        return t.rng.choices(CHANNELS, mix)[0]
    if mix[1] + mix[2] <= 0:
        return "counter"
    return t.rng.choices(CHANNELS[1:], mix[1:])[0]


def _service_level(t: Traffic, pp: ProcedureProfile, offering: OfferingLine | None) -> str:
    if offering is not None and offering.level != "full_process":
        return "partial"
    return "full_process" if t.rng.random() < pp.full_process else "partial"


def _v2_facts(t: Traffic, code: str, pp: ProcedureProfile, submitted: datetime,
              progress: float) -> tuple[datetime, dict[str, Any]]:  # fmt: skip
    rng, cfg = t.rng, t.cfg
    due = t.calendar.due(submitted, pp.resolution_days)
    p_digitized = min(cfg.digitized_rate + cfg.digitized_trend * progress, 1.0)
    facts: dict[str, Any] = {
        "due_at": rfc3339(due, utc=t.profile[code].utc),
        "digitized": rng.random() < p_digitized,
    }
    if rng.random() < min(cfg.reuse_rate + cfg.reuse_trend * progress, 1.0):
        facts["reused_components"] = rng.randint(1, 4)
    elif rng.random() < 0.5:
        facts["reused_components"] = 0
    return due, facts


def dossier(t: Traffic, t0: datetime, progress: float) -> list[Draft]:
    """The drafts of one dossier started at ``t0`` (office hours), in occurred order.

    Online submissions may come in after hours. ``progress`` (0..1) drives the trends.
    """
    rng, cfg, cal = t.rng, t.cfg, t.calendar
    service = t.services.pick(t0, rng)
    if service is not None:
        proc = t.procedures_by_code[service.procedure_code]
        code = service.agency_code
        offering = service.offering_at(t0)
    else:
        proc = t.pick_procedure()
        code, offering = t.procedure_agency(proc, t0.date()), None
    pp = t.procedure_profile[proc.code]
    channel = _channel(t, offering)
    submitted = t0
    if channel == "online" and rng.random() < cfg.after_hours_share:
        evening = cal.after_hours(t0, rng)
        if service is None or service.offering_at(evening) is offering:
            submitted = evening
    if service is None:
        code = t.procedure_agency(proc, submitted.date())
    v1 = t.profile[code].v1
    ids = {
        "procedure_code": proc.code,
        "dossier_id": f"HS-{submitted:%y%m%d}-{t.next_seq():07d}",
    }
    applicant_kind, applicant = _applicant(t, pp)
    schema = "service/1" if v1 else "service/2"
    payload = t.head(schema, "submitted", submitted, code) | ids | {"channel": channel}
    due = None
    if not v1:
        due, facts = _v2_facts(t, code, pp, submitted, progress)
        payload |= facts
    if channel == "online":
        payload["service_level"] = _service_level(t, pp, offering)
        designed = offering is None or offering.prefill_designed
        payload["form"] = _form(t, pp, applicant_kind, progress, designed)
    if rng.random() < 0.9:
        payload["applicant"] = applicant
    drafts = [Draft("service", submitted, t.note(payload))]

    def add(event_type: str, at: datetime, extra: dict[str, Any]) -> None:
        closing = t.head(schema, event_type, at, code) | ids | extra
        drafts.append(Draft("service", at, t.note(closing)))

    if due is not None:
        for step in lifecycle(t, code, pp, channel, submitted, due, progress):
            add(*step)
        return drafts
    r = rng.random()
    if r < cfg.completion_rate:
        on_time = rng.random() < t.profile[code].on_time
        at = cal.later(submitted, 1, 12, rng) if on_time else cal.later(submitted, 8, 30, rng)
        if at is not None:
            add("completed", at, {"on_time": on_time})
    elif r < cfg.completion_rate + cfg.rejection_rate:
        at = cal.later(submitted, 1, 8, rng)
        if at is not None:
            add("rejected", at, {"ly_do_tu_choi": rng.choice(REJECT_REASONS)})
    return drafts  # else still being processed
