"""The dashboards as data: panels with their SQL, in one place for Grafana's JSON and the report.

A ``Panel`` holds one query (``sql``, written for the ClickHouse datasource plugin: its macros and
Grafana's variables, see ``dashboards.macros``), the visualisation, Vietnamese labels for its
columns and, where a target applies, the thresholds. ``build_dashboards(targets)`` returns the
dashboards (``dashboards.panels.*`` hold their panels); ``dashboards.build`` turns them into
Grafana JSON and ``dashboards.report`` runs the same SQL for the HTML page.

Conventions that keep every query valid after expansion (checked by the tests):
- a KPI over a whole period reads the KPI views (``kpi_<grain>`` of
  ``schemas/clickhouse/0011_kpi_views_v2.sql``) for the period chosen with the ``grain`` and
  ``period`` variables, summing the counts of the chosen agencies' rows and dividing as the
  views do, so a gauge or stat equals that period's row of ``parwatch kpi --json``;
- time filters on DateTime64 columns use ``$__timeFilter_ms`` (exact to the millisecond);
- a macro without arguments is written in parentheses, ``($__interval_s)``, because the plugin
  takes the next ``(`` after a macro as the start of its arguments;
- the hybrid policy and the target lines come from the views' columns (``kpi_settings``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from schemas.targets import TARGETS

Kind = Literal["gauge", "stat", "timeseries", "bargauge", "table", "barchart"]

AGENCY = "$__conditionalAll(agency_code IN (${agency:singlequote}), $agency)"
SECTOR = "$__conditionalAll(sector IN (${sector:singlequote}), $sector)"
PERIOD = "${period:sqlstring}"  # the chosen period's label: 2025, 2025-Q3, 2025-07
GRAIN = "${grain}"  # year | quarter | month: kpi_${grain} is that grain's view

MONTH = "toDateTime(toStartOfMonth({col}, 'Asia/Ho_Chi_Minh'), 'Asia/Ho_Chi_Minh')"
# The local days of the dashboard's range, for the Date column period_start of the KPI views.
DAYS_IN_RANGE = (
    "period_start >= toDate(($__fromTime), 'Asia/Ho_Chi_Minh') "
    "AND period_start <= toDate(($__toTime), 'Asia/Ho_Chi_Minh')"
)
# The first day of the chosen period, parsed from its label.
PERIOD_START = (
    f"multiIf(length({PERIOD}) = 4, toDate(concat({PERIOD}, '-01-01')), "
    f"position({PERIOD}, 'Q') > 0, "
    f"makeDate(toUInt16(left({PERIOD}, 4)), toUInt8(right({PERIOD}, 1)) * 3 - 2, 1), "
    f"toDate(concat({PERIOD}, '-01')))"
)
# The end E of the chosen period in ms (the first instant of the next, Asia/Ho_Chi_Minh).
PERIOD_END_MS = (
    f"(toInt64(toUnixTimestamp(toDateTime(addMonths({PERIOD_START}, "
    f"multiIf(length({PERIOD}) = 4, 12, position({PERIOD}, 'Q') > 0, 3, 1)), "
    "'Asia/Ho_Chi_Minh'))) * 1000)"
)
# The end E of the dashboard's range (Grafana's "to" is E - 1 ms).
RANGE_END_MS = "(toUnixTimestamp64Milli($__toTime_ms) + 1)"


def default_targets() -> dict[str, float | None]:
    return {key: t.value for key, t in TARGETS.items()}


@dataclass(frozen=True)
class Targets:
    """The targets the thresholds show (KPI key -> fraction 0..1, or None: no target), from the
    settings (``PARWATCH_TARGET_<KPI>``)."""

    values: Mapping[str, float | None] = field(default_factory=default_targets)

    def get(self, key: str) -> float | None:
        return self.values.get(key)

    def pct(self, key: str) -> str:
        v = self.get(key)
        return "không có" if v is None else f"{v:.0%}"


@dataclass(frozen=True)
class Panel:
    key: str  # stable id inside the dashboard (also the report's anchor)
    kind: Kind
    title: str
    description: str
    sql: str
    labels: dict[str, str]  # column -> Vietnamese label; the columns shown, in order
    unit: str = "none"  # Grafana unit: percentunit, short, s …
    target: float | None = None  # threshold: red below, green at or above
    target_column: str | None = None  # in tables: the one column the target applies to
    # in tables: per-column targets (red below, green from), e.g. the 766 scorecard's
    column_targets: dict[str, float] = field(default_factory=dict)
    inverse_steps: tuple[tuple[float, str], ...] = ()  # other thresholds (value, colour)
    column_units: dict[str, str] = field(default_factory=dict)  # per-column unit overrides
    time_series: bool = False  # first column is the time axis
    writes: bool = False  # the time range filters write times (_ingested_at, _refused_at …)
    # the KPI-JSON key each column of a stat/gauge equals over a whole period (tests)
    kpi_keys: dict[str, str] = field(default_factory=dict)
    dashed: tuple[str, ...] = ()  # time-series columns drawn dashed (targets, projections)
    w: int = 12
    h: int = 8
    # A live panel: PromQL queries (legend, expression) on the Prometheus datasource instead of
    # ``sql``; the report leaves it to Grafana (it reads the warehouse only).
    promql: tuple[tuple[str, str], ...] = ()

    @property
    def live(self) -> bool:
        return bool(self.promql)


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    variables: tuple[str, ...]  # besides the datasource: "agency", "sector", "grain", "period"
    time_from: str = "now-3y"
    time_to: str = "now"
    refresh: str = ""
    tags: tuple[str, ...] = ("parwatch",)


VARIABLE_SQL = {
    "agency": "SELECT code, concat(code, ' — ', name) FROM agencies FINAL ORDER BY code",
    "sector": (
        "SELECT DISTINCT toString(sector) FROM inspection_classifications FINAL "
        "WHERE sector IS NOT NULL ORDER BY 1"
    ),
    "period": (
        "SELECT period FROM kpi_${grain} WHERE agency_code IS NULL ORDER BY period_start DESC"
    ),
}
VARIABLE_LABELS = {
    "agency": "Cơ quan, đơn vị",
    "sector": "Lĩnh vực",
    "grain": "Loại kỳ",
    "period": "Kỳ",
}
GRAINS = (("year", "Năm"), ("quarter", "Quý"), ("month", "Tháng"))


def build_dashboards(targets: Targets) -> tuple[Dashboard, ...]:
    from dashboards.panels import indices, inspections, pipeline, plan, quality, scorecard

    return (
        plan.dashboard(targets),
        scorecard.dashboard(targets),
        quality.dashboard(),
        indices.dashboard(),
        inspections.dashboard(targets),
        pipeline.dashboard(),
    )
