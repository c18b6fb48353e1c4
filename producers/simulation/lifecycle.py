"""What happens to a ``service/2`` dossier after its submission: the steps of its lifecycle.

A fee is ``paid`` minutes after the submission (online more and more often, above all for online
dossiers). Some dossiers wait for a supplement: ``supplement_requested`` then
``supplement_received`` (once or twice), each pause moving the effective due date. Then the end:

* ``completed`` (``completion_rate``): on time (the agency's on-time rate) at an office-hours
  moment before the effective due, or late, 1–15 working days after it; the result electronic
  mostly for online dossiers, more often over time;
* ``rejected`` / ``withdrawn``: soon, or 10–60 working days after a supplement request that was
  never answered (such a dossier is open, paused, until then);
* the rest stall: completed 20–80 working days after the effective due, overdue at the month
  ends in between.

A step that would fall after the range is left out with every later one: the dossier is still
open at the end. Pure: every choice from ``t.rng``; times are naive province-local.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NamedTuple

from producers.simulation.traffic import ProcedureProfile, Traffic, nfc

REJECT_REASONS = nfc(
    "Hồ sơ không đầy đủ thành phần", "Không thuộc thẩm quyền giải quyết",
    "Thông tin kê khai không chính xác",
)  # fmt: skip
WITHDRAW_REASONS = nfc("Người nộp xin rút hồ sơ", "Không bổ sung hồ sơ theo yêu cầu")


class Step(NamedTuple):
    """One event of the lifecycle after ``submitted``: type, local time, type-specific fields."""

    event_type: str
    at: datetime
    fields: dict[str, Any]


def _rate(base: float, trend: float, progress: float) -> float:
    return min(max(base + trend * progress, 0.0), 1.0)


def lifecycle(
    t: Traffic,
    code: str,
    pp: ProcedureProfile,
    channel: str,
    submitted: datetime,
    due: datetime,
    progress: float,
) -> list[Step]:
    """The steps after a dossier of agency ``code`` was submitted at ``submitted`` with the
    appointment ``due``, in occurred order (see the module docstring)."""
    rng, cfg, cal = t.rng, t.cfg, t.calendar
    steps: list[Step] = []
    last = submitted
    if pp.fee:
        p = _rate(cfg.online_payment_rate, cfg.online_payment_trend, progress)
        paid = submitted + timedelta(minutes=rng.uniform(1, 40))
        if paid <= cal.last:
            online = rng.random() < (p if channel == "online" else p * 0.3)
            steps.append(Step("paid", paid, {"payment_channel": "online" if online else "counter"}))
            last = paid
    r = rng.random()
    if r < cfg.completion_rate:
        outcome = "completed"
    elif r < cfg.completion_rate + cfg.rejection_rate:
        outcome = "rejected"
    elif r < cfg.completion_rate + cfg.rejection_rate + cfg.withdrawal_rate:
        outcome = "withdrawn"
    else:
        outcome = "stalled"
    paused, unanswered = timedelta(0), False
    if rng.random() < cfg.supplement_rate * (2 if outcome in ("rejected", "withdrawn") else 1):
        rounds = 2 if rng.random() < 0.2 else 1
        for i in range(rounds):
            asked = cal.later(last, 1, max(2, pp.resolution_days // 2), rng)
            if asked is None:
                return steps
            steps.append(Step("supplement_requested", asked, {}))
            last = asked
            if outcome in ("rejected", "withdrawn") and i == rounds - 1 and rng.random() < 0.5:
                unanswered = True
                break
            received = cal.later(asked, 1, 8, rng)
            if received is None:
                return steps
            steps.append(Step("supplement_received", received, {}))
            paused += received - asked
            last = received
    effective = due + paused
    if outcome == "completed":
        on_time = rng.random() < t.profile[code].on_time
        at = cal.between(last, effective, rng) if on_time else None
        if at is None:
            at = cal.later(max(last, effective), 1, 15, rng)
    elif outcome == "stalled":
        at = cal.later(max(last, effective), 20, 80, rng)
    else:
        at = cal.later(last, 10, 60, rng) if unanswered else cal.later(last, 1, 8, rng)
    if at is None:
        return steps
    if outcome in ("completed", "stalled"):
        p = _rate(cfg.electronic_result_rate, cfg.electronic_result_trend, progress)
        electronic = rng.random() < (p if channel == "online" else p / 2)
        steps.append(Step("completed", at, {"result_electronic": electronic}))
    elif outcome == "rejected":
        steps.append(Step("rejected", at, {"ly_do_tu_choi": rng.choice(REJECT_REASONS)}))
    else:
        steps.append(Step("withdrawn", at, {"ly_do_rut": rng.choice(WITHDRAW_REASONS)}))
    return steps
