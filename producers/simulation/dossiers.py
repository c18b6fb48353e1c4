"""The events of one simulated public-service dossier (``service/1``).

``submitted`` through a channel (online, counter, postal); an online submission carries a service
level (``full_process`` only for eligible procedures) and a form whose prefilled fields follow the
procedure's habit (some procedures never prefill). Then ``completed`` (on time or late, per the
agency's on-time rate) or ``rejected``; a few dossiers stay open. The applicant is identified
only by the SHA-256 of a fake ID number: no raw ID ever appears.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from producers.simulation.traffic import Draft, ProcedureProfile, Traffic, nfc

CHANNELS = ("online", "counter", "postal")
REJECT_REASONS = nfc(
    "Hồ sơ không đầy đủ thành phần", "Không thuộc thẩm quyền giải quyết",
    "Thông tin kê khai không chính xác",
)  # fmt: skip


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


def _form(t: Traffic, pp: ProcedureProfile, applicant: str, progress: float) -> dict[str, Any]:
    rng = t.rng
    total = min(max(pp.fields + rng.randint(-2, 2), 5), 40)
    p = min(pp.prefill + t.cfg.prefill_trend * progress, 1.0) if pp.prefill > 0 else 0.0
    prefilled = 0
    if rng.random() < p:
        prefilled = total if rng.random() < pp.full_share else rng.randint(1, total - 1)
    form: dict[str, Any] = {"fields_total": total, "fields_prefilled": prefilled}
    if prefilled:
        sources = ["population_db" if applicant == "citizen" else "business_registry"]
        if rng.random() < 0.3:
            sources.append("previous_dossier")
        form["prefill_sources"] = sources
    return form


def dossier(t: Traffic, t0: datetime, progress: float) -> list[Draft]:
    """The drafts of one dossier started at ``t0`` (office hours), in occurred order.

    Online submissions may come in after hours. ``progress`` (0..1) drives the prefill trend.
    """
    rng, cfg, cal = t.rng, t.cfg, t.calendar
    proc = t.pick_procedure()
    pp = t.procedure_profile[proc.code]
    channel = rng.choices(CHANNELS, cfg.channel_mix)[0]
    submitted = t0
    if channel == "online" and rng.random() < cfg.after_hours_share:
        submitted = cal.after_hours(t0, rng)
    code = t.procedure_agency(proc, submitted.date())
    ids = {
        "procedure_code": proc.code,
        "dossier_id": f"HS-{submitted:%y%m%d}-{t.next_seq():07d}",
    }
    applicant_kind, applicant = _applicant(t, pp)
    payload = t.head("service/1", "submitted", submitted, code) | ids | {"channel": channel}
    if channel == "online":
        payload["service_level"] = "full_process" if rng.random() < pp.full_process else "partial"
        payload["form"] = _form(t, pp, applicant_kind, progress)
    if rng.random() < 0.9:
        payload["applicant"] = applicant
    drafts = [Draft("service", submitted, t.note(payload))]
    r = rng.random()
    if r < cfg.completion_rate:
        on_time = rng.random() < t.profile[code].on_time
        at = cal.later(submitted, 1, 12, rng) if on_time else cal.later(submitted, 8, 30, rng)
        extra: dict[str, Any] = {"on_time": on_time}
        event_type = "completed"
    elif r < cfg.completion_rate + cfg.rejection_rate:
        at = cal.later(submitted, 1, 8, rng)
        extra = {"ly_do_tu_choi": rng.choice(REJECT_REASONS)}
        event_type = "rejected"
    else:
        return drafts  # still being processed
    if at is not None:
        closing = t.head("service/1", event_type, at, code) | ids | extra
        drafts.append(Draft("service", at, t.note(closing)))
    return drafts
