"""The province's working calendar, for the traffic simulator: when civil servants work.

Times are naive datetimes in province local time (``Asia/Ho_Chi_Minh`` is a fixed ``+07:00``, no
daylight saving), so arithmetic on them is exact. Office hours are 07:30–11:30 and 13:30–17:00 on
weekdays that are not public holidays. Pure: every random choice comes from the ``rng`` passed in.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from datetime import date, datetime, time, timedelta

LOCAL_OFFSET = timedelta(hours=7)
MORNING_START = 7 * 60 + 30
MORNING_MINUTES = 240
AFTERNOON_START = 13 * 60 + 30
AFTERNOON_MINUTES = 210
OFFICE_MINUTES = MORNING_MINUTES + AFTERNOON_MINUTES

# Fixed-date public holidays, and Tết (lunar new year) as decreed for the years simulated.
_FIXED_HOLIDAYS = ((1, 1), (4, 30), (5, 1), (9, 2))
_TET = (
    (date(2024, 2, 8), date(2024, 2, 14)),
    (date(2025, 1, 25), date(2025, 2, 2)),
    (date(2026, 2, 14), date(2026, 2, 22)),
)


def is_holiday(day: date) -> bool:
    """A public holiday (fixed dates, and Tết for 2024–2026)."""
    return (day.month, day.day) in _FIXED_HOLIDAYS or any(a <= day <= b for a, b in _TET)


def rfc3339(moment: datetime, *, utc: bool = False, millis: int | None = None) -> str:
    """Format a local time as RFC 3339: ``…+07:00`` as agencies send it, or ``…Z`` in UTC."""
    shown = moment - LOCAL_OFFSET if utc else moment
    fraction = f".{millis:03d}" if millis is not None else ""
    return f"{shown:%Y-%m-%dT%H:%M:%S}{fraction}{'Z' if utc else '+07:00'}"


class Calendar:
    """Working days between ``start`` and ``end`` (both inclusive); nothing later than ``end``.

    If the range holds no working day at all, every day of it counts as one.
    """

    def __init__(self, start: date, end: date) -> None:
        days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
        self.workdays = [d for d in days if d.weekday() < 5 and not is_holiday(d)] or days
        self.last = datetime.combine(end, time(23, 59, 59))

    def office_time(self, day: date, rng: random.Random) -> datetime:
        """A random moment of office hours on ``day``."""
        return self._at_minute(day, rng.randrange(OFFICE_MINUTES), rng.randrange(60))

    def _at_minute(self, day: date, minute: int, second: int) -> datetime:
        if minute < MORNING_MINUTES:
            offset = MORNING_START + minute
        else:
            offset = AFTERNOON_START + minute - MORNING_MINUTES
        return datetime.combine(day, time()) + timedelta(minutes=offset, seconds=second)

    def at_fraction(self, fraction: float, rng: random.Random) -> datetime:
        """The office-hours moment that lies ``fraction`` (0..1) of the way through the range.

        Monotone in ``fraction`` (to the minute), so increasing fractions give increasing times.
        """
        total = len(self.workdays) * OFFICE_MINUTES
        m = min(max(int(fraction * total), 0), total - 1)
        day = self.workdays[m // OFFICE_MINUTES]
        return self._at_minute(day, m % OFFICE_MINUTES, rng.randrange(60))

    def later(self, moment: datetime, lo: int, hi: int, rng: random.Random) -> datetime | None:
        """Office hours ``lo``..``hi`` working days after ``moment``, strictly later than it.

        ``None`` when that falls after the end of the range (the entity is still in progress).
        """
        i = bisect_right(self.workdays, moment.date()) - 1
        k = max(i + rng.randint(lo, hi), 0)
        if k >= len(self.workdays):
            return None
        out = self.office_time(self.workdays[k], rng)
        if out <= moment:
            out = moment + timedelta(minutes=rng.randint(5, 90), seconds=rng.randrange(60))
        return out if out <= self.last else None

    def after_hours(self, moment: datetime, rng: random.Random) -> datetime:
        """An evening (17:00–24:00) or early-morning (00:00–07:00 next day) moment after ``moment``.

        Citizens submit online at any hour; clamped to the end of the range.
        """
        evening = datetime.combine(moment.date(), time(17)) + timedelta(
            minutes=rng.randrange(14 * 60), seconds=rng.randrange(60)
        )
        return min(max(evening, moment + timedelta(seconds=1)), self.last)

    def due(self, moment: datetime, working_days: int) -> datetime:
        """The appointment for a dossier received at ``moment``: closing time (17:00) of the
        ``working_days``-th working day after its day. Not bounded by the range (a due date
        may lie after its end)."""
        day, left = moment.date(), max(working_days, 1)
        while left:
            day += timedelta(days=1)
            left -= day.weekday() < 5 and not is_holiday(day)
        return datetime.combine(day, time(17))

    def between(self, after: datetime, until: datetime, rng: random.Random) -> datetime | None:
        """An office-hours moment strictly after ``after`` and at or before ``until`` (and the
        end of the range); ``None`` when there is none."""
        until = min(until, self.last)
        lo = bisect_right(self.workdays, after.date()) - 1
        hi = bisect_right(self.workdays, until.date()) - 1
        for _ in range(4):
            if hi < max(lo, 0):
                return None
            out = self.office_time(self.workdays[rng.randint(max(lo, 0), hi)], rng)
            if after < out <= until:
                return out
        if until <= after:
            return None
        return after + (until - after) * rng.uniform(0.05, 0.95)

    def first_hours_of_next_month(self, moment: datetime, rng: random.Random) -> datetime | None:
        """00:00–06:59 local on the first day of the month after ``moment`` (still the previous
        month in UTC); ``None`` after the end of the range."""
        first = (moment.date().replace(day=28) + timedelta(days=4)).replace(day=1)
        out = datetime.combine(first, time()) + timedelta(
            minutes=rng.randrange(7 * 60), seconds=rng.randrange(60)
        )
        return out if out <= self.last else None
