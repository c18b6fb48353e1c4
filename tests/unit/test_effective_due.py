"""``schemas.lifecycle.effective_due`` decides overdue and on-time exactly as EVENTS.md's rule
(``due_at`` plus the pauses before t, compared with t), which the KPI views rely on."""

from __future__ import annotations

import random

from schemas.lifecycle import effective_due, paused_before


def _random_pauses(rng: random.Random) -> list[tuple[int, int | None]]:
    pauses: list[tuple[int, int | None]] = []
    t = rng.randint(0, 60)
    for _ in range(rng.randint(0, 3)):
        start = t + rng.randint(0, 40)
        end = start + rng.randint(1, 40)
        pauses.append((start, end))
        t = end + rng.randint(0, 10)
    if pauses and rng.random() < 0.3:
        pauses[-1] = (pauses[-1][0], None)  # the last request not answered yet
    return pauses


def test_overdue_exactly_after_the_effective_due() -> None:
    rng = random.Random(20241)
    for _ in range(5000):
        due = rng.randint(0, 100)
        pauses = _random_pauses(rng)
        deadline = effective_due(due, pauses)
        for t in range(0, 300):
            literal = due + paused_before(pauses, t) < t
            assert literal == (deadline is not None and t > deadline), (due, pauses, t)


def test_cases_by_hand() -> None:
    day = 86_400_000
    assert effective_due(10 * day, []) == 10 * day
    # A 5-day pause that starts before the due date moves it by 5 days.
    assert effective_due(10 * day, [(7 * day, 12 * day)]) == 15 * day
    # A pause that starts after the due date (already overdue) moves nothing.
    assert effective_due(10 * day, [(11 * day, 12 * day)]) == 10 * day
    # A pause that starts exactly at the deadline still counts; unanswered: never overdue.
    assert effective_due(10 * day, [(10 * day, 11 * day)]) == 11 * day
    assert effective_due(10 * day, [(9 * day, None)]) is None
