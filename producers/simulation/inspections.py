"""The events of one simulated state inspection (``inspection/1``).

An ``opened`` event, 0..6 ``activity`` events whose modes follow the agency's style (all online,
all in person, or both: hybrid; none: unclassified once concluded), then usually ``concluded``.
Some inspections are ``cancelled`` (before, or sometimes after, their conclusion); some conclude
in the first hours of a month (still the previous month in UTC); some have an activity that is
overtaken by the conclusion in delivery, or that takes place after the conclusion. Events that
would fall after the simulated range are left out: such an inspection is still open.

Contract v2's optional ``kind`` rides on ``opened`` (and on ``concluded`` for ``thanh_tra``):
the inspectorate's inspections and a small share of others are ``thanh_tra``, the rest
``kiem_tra`` or without it; agencies that have not upgraded never send it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from producers.simulation.traffic import Draft, Traffic, nfc

CANCEL_REASONS = nfc("Đối tượng đã giải thể", "Trùng kế hoạch thanh tra của Bộ")
ONLINE_MODES = ("video_conference", "remote_document_review", "information_system",
                "online_reporting")  # fmt: skip
ONLINE_WEIGHTS = (0.3, 0.3, 0.25, 0.15)
IN_PERSON_MODES = ("on_site", "in_person_meeting")
IN_PERSON_WEIGHTS = (0.7, 0.3)
SYSTEMS: dict[str, tuple[str | None, ...]] = {
    "video_conference": ("HNTT-TH", None),
    "remote_document_review": ("IOFFICE-TH", "QLVB-TH"),
    "information_system": ("HTTT-TTR", "CSDL-TTKT"),
    "online_reporting": ("HTBC-TH",),
}
ACTIVITY_COUNT_WEIGHTS = (0.22, 0.28, 0.2, 0.14, 0.1, 0.06)  # of 1..6 activities
SUBJECTS = ("enterprise", "household", "individual", "organization")
SUBJECT_WEIGHTS = (0.55, 0.2, 0.15, 0.1)


def _activity(t: Traffic, online: bool) -> dict[str, Any]:
    if online:
        mode = t.rng.choices(ONLINE_MODES, ONLINE_WEIGHTS)[0]
        return {"mode": mode, "system_code": t.rng.choice(SYSTEMS[mode])}
    mode = t.rng.choices(IN_PERSON_MODES, IN_PERSON_WEIGHTS)[0]
    return {"mode": mode, "system_code": None} if t.rng.random() < 0.5 else {"mode": mode}


def _modes(t: Traffic, code: str, progress: float) -> list[bool]:
    """Online (True) or in person, one per activity; ``[]`` for an inspection without any."""
    rng, cfg = t.rng, t.cfg
    if rng.random() < cfg.no_activity_rate:
        return []
    n = rng.choices(range(1, 7), ACTIVITY_COUNT_WEIGHTS)[0]
    p_online, p_in_person = t.profile[code].style
    shift = cfg.online_trend * progress  # the reform moves agencies online over time
    p_online, p_in_person = min(p_online + shift, 1.0), max(p_in_person - shift, 0.0)
    r = rng.random()
    if r < p_online:
        return [True] * n
    if r < p_online + p_in_person:
        return [False] * n
    modes = [False, True] + [rng.random() < 0.5 for _ in range(max(n, 2) - 2)]
    rng.shuffle(modes)
    return modes


def inspection(t: Traffic, t0: datetime, progress: float) -> list[Draft]:
    """The drafts of one inspection opened at ``t0`` (office hours), in generation order.

    ``progress`` (0..1, how far through the range ``t0`` is) drives the trend to online modes.
    A draft with ``publish_after`` set must be published after that earlier draft.
    """
    rng, cfg, cal = t.rng, t.cfg, t.calendar
    code = t.pick(t0.date(), ("department",), ("province",))
    sector = t.profile[code].sector
    kind = t.inspection_kind(code)
    ids = {"inspection_id": f"{'TT' if kind == 'thanh_tra' else 'KT'}-{t0.year}-{t.next_seq():07d}"}
    tagged = {"kind": kind} if kind is not None else {}
    drafts: list[Draft] = []

    def add(event_type: str, at: datetime, extra: dict[str, Any]) -> None:
        payload = t.head("inspection/1", event_type, at, code) | ids | extra
        drafts.append(Draft("inspection", at, t.note(payload)))

    def add_activity(at: datetime, online: bool, publish_after: int | None = None) -> None:
        add("activity", at, {"activity": _activity(t, online)})
        drafts[-1].publish_after = publish_after

    subject = rng.choices(SUBJECTS, SUBJECT_WEIGHTS)[0]
    add("opened", t0, {"sector": sector, "subject_type": subject} | tagged)
    activities: list[tuple[datetime, bool]] = []
    last: datetime | None = t0
    for online in _modes(t, code, progress):
        last = cal.later(last, 0, 6, rng) if last is not None else None
        if last is not None:
            activities.append((last, online))
    if last is None:  # the range ended during the activities
        for when, online in activities:
            add_activity(when, online)
        return drafts
    if rng.random() < cfg.cancel_rate * 0.7:  # cancelled before any conclusion
        for when, online in activities:
            add_activity(when, online)
        cancelled = cal.later(last, 1, 15, rng)
        if cancelled is not None:
            add("cancelled", cancelled, {"ly_do_huy": rng.choice(CANCEL_REASONS)})
        return drafts
    if rng.random() < cfg.month_boundary_rate:
        concluded = cal.first_hours_of_next_month(last, rng)
    else:
        concluded = cal.later(last, 1, 12, rng)
    straggler = None
    if concluded is not None and activities and rng.random() < cfg.straggler_rate:
        straggler = activities.pop(rng.randrange(len(activities)))
    for when, online in activities:
        add_activity(when, online)
    if concluded is None:
        return drafts
    conclusion = len(drafts)
    add("concluded", concluded, {"sector": sector} | (tagged if kind == "thanh_tra" else {}))
    if straggler is not None:  # took place before the conclusion, delivered after it
        add_activity(*straggler, publish_after=conclusion)
    if (activities or straggler) and rng.random() < cfg.activity_after_conclusion_rate:
        follow_up = cal.later(concluded, 0, 8, rng)
        if follow_up is not None:
            add_activity(follow_up, rng.random() < 0.5, publish_after=conclusion)
    if rng.random() < cfg.cancel_rate * 0.3:  # cancelled after it was concluded
        cancelled = cal.later(concluded, 1, 20, rng)
        if cancelled is not None:
            add("cancelled", cancelled, {"ly_do_huy": rng.choice(CANCEL_REASONS)})
    return drafts
