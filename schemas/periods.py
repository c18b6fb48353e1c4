"""Reporting periods, counted in the province's time zone (``Asia/Ho_Chi_Minh``).

``2024-06-01T03:00:00+07:00`` is 31 May in UTC but belongs to June here. "The end of P" is the
first instant of the next period, local time; "in P" means start <= t < end (EVENTS.md).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

PROVINCE_TZ = ZoneInfo("Asia/Ho_Chi_Minh")

PeriodKind = Literal["day", "month", "quarter", "year"]
PERIOD_KINDS: tuple[PeriodKind, ...] = ("day", "month", "quarter", "year")


def first_day(day: date, kind: PeriodKind) -> date:
    """The first local day of the period holding local day ``day``."""
    if kind == "day":
        return day
    if kind == "month":
        return day.replace(day=1)
    if kind == "quarter":
        return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    return date(day.year, 1, 1)


def next_first_day(start: date, kind: PeriodKind) -> date:
    """The first local day of the period after the one starting on ``start``."""
    if kind == "day":
        return start + timedelta(days=1)
    months = {"month": 1, "quarter": 3, "year": 12}[kind]
    index = start.year * 12 + start.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def label(start: date, kind: PeriodKind) -> str:
    """The label of the period starting on ``start``: ``2024-06-03``, ``2024-06``, ``2024-Q2``
    or ``2024``."""
    if kind == "day":
        return start.isoformat()
    if kind == "month":
        return f"{start.year:04d}-{start.month:02d}"
    if kind == "quarter":
        return f"{start.year:04d}-Q{(start.month - 1) // 3 + 1}"
    return f"{start.year:04d}"


def local_day_ms(ms: int) -> date:
    """The local day of an instant given in milliseconds since 1970 UTC."""
    return datetime.fromtimestamp(ms / 1000, PROVINCE_TZ).date()


def day_start_ms(day: date) -> int:
    """The first instant of local day ``day``, in milliseconds since 1970 UTC."""
    moment = datetime(day.year, day.month, day.day, tzinfo=PROVINCE_TZ)
    return int(moment.timestamp()) * 1000


def period_of(moment: datetime, kind: PeriodKind) -> str:
    """The label of the period holding ``moment``."""
    return label(first_day(moment.astimezone(PROVINCE_TZ).date(), kind), kind)


# The same periods in ClickHouse SQL, for the KPI views: each grain's first day, from a
# ``DateTime64`` column ``at``, and its label, from that day ``period_start`` (as ``period_of``).
PERIOD_SQL: dict[str, tuple[str, str]] = {
    "day": ("toDate(at, 'Asia/Ho_Chi_Minh')", "formatDateTime(period_start, '%Y-%m-%d')"),
    "month": (
        "toStartOfMonth(toDate(at, 'Asia/Ho_Chi_Minh'))",
        "formatDateTime(period_start, '%Y-%m')",
    ),
    "quarter": (
        "toStartOfQuarter(toDate(at, 'Asia/Ho_Chi_Minh'))",
        "concat(toString(toYear(period_start)), '-Q', toString(toQuarter(period_start)))",
    ),
    "year": ("toStartOfYear(toDate(at, 'Asia/Ho_Chi_Minh'))", "toString(toYear(period_start))"),
}

# For each grain: the function from a local ``Date`` to its period's first day, and the one from
# a count to an interval of that many periods (``@trunc@`` and ``@interval@`` in migrations).
PERIOD_STEP_SQL: dict[str, tuple[str, str]] = {
    "day": ("toDate", "toIntervalDay"),
    "month": ("toStartOfMonth", "toIntervalMonth"),
    "quarter": ("toStartOfQuarter", "toIntervalQuarter"),
    "year": ("toStartOfYear", "toIntervalYear"),
}
