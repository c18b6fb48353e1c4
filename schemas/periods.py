"""Reporting periods, counted in the province's time zone (``Asia/Ho_Chi_Minh``).

``2024-06-01T03:00:00+07:00`` is 31 May in UTC but belongs to June here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

PROVINCE_TZ = ZoneInfo("Asia/Ho_Chi_Minh")

PeriodKind = Literal["month", "quarter", "year"]
PERIOD_KINDS: tuple[PeriodKind, ...] = ("month", "quarter", "year")


def period_of(moment: datetime, kind: PeriodKind) -> str:
    """The label of the period holding ``moment``: ``2024-06``, ``2024-Q2`` or ``2024``."""
    local = moment.astimezone(PROVINCE_TZ)
    if kind == "month":
        return f"{local.year:04d}-{local.month:02d}"
    if kind == "quarter":
        return f"{local.year:04d}-Q{(local.month - 1) // 3 + 1}"
    return f"{local.year:04d}"


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
