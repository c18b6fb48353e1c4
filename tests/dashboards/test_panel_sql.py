"""Every panel's SQL, expanded as the plugin expands it, on the embedded ClickHouse holding
known data: it runs for every variable state and returns the columns it labels; the stat and
gauge panels over whole periods equal ``parwatch kpi --json`` (``read_kpis`` ->
``rows_to_json``); the projections equal a projection computed here from the monthly KPI rows."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dashboards.macros import ALL, TimeRange, Variable, expand, grafana_interval_ms
from dashboards.panels import plan
from dashboards.spec import VARIABLE_SQL, Panel, Targets, build_dashboards
from schemas.kpi import rows_to_json
from streams.warehouse.kpi_query import read_kpis
from streams.warehouse.reference import KpiSettings, write_kpi_settings
from tests.dashboards.conftest import INGEST_START, STEP, Loaded

pytestmark = pytest.mark.clickhouse

VN = ZoneInfo("Asia/Ho_Chi_Minh")
DASHBOARDS = build_dashboards(Targets())
PANELS = [p for d in DASHBOARDS for p in d.panels if not p.live]  # SQL ones
BY_KEY = {p.key: p for p in PANELS}
MS = timedelta(milliseconds=1)
WRITES_KEYS = {p.key for p in PANELS if p.writes}
# the simulator's services prefill exactly when designed to (test_lists checks it from the events)
MAY_BE_EMPTY = {"prefill_mismatch"}
ALL_DATA = TimeRange(datetime(2024, 1, 1, tzinfo=VN), datetime(2026, 1, 1, tzinfo=VN) - MS)


def period_range(label: str) -> TimeRange:
    """Grafana's range for a whole period in Asia/Ho_Chi_Minh (to = end - 1 ms, as it rounds)."""
    y = int(label[:4])
    if len(label) == 4:
        start, end = date(y, 1, 1), date(y + 1, 1, 1)
    elif "Q" in label:
        q = int(label[-1])
        start = date(y, 3 * q - 2, 1)
        end = date(y + (q == 4), (3 * q) % 12 + 1, 1)
    else:
        m = int(label[5:7])
        start, end = date(y, m, 1), date(y + (m == 12), m % 12 + 1, 1)
    lo = datetime.combine(start, datetime.min.time(), VN)
    return TimeRange(lo, datetime.combine(end, datetime.min.time(), VN) - MS)


def grain_of(label: str) -> str:
    return "year" if len(label) == 4 else "quarter" if "Q" in label else "month"


def variables(
    agencies: list[str] | None = None,
    sectors: list[str] | None = None,
    period: str = "2025",
) -> dict[str, Any]:
    return {
        "agency": Variable("agency", agencies or [ALL]),
        "sector": Variable("sector", sectors or [ALL]),
        "grain": Variable("grain", grain_of(period)),
        "period": Variable("period", period),
    }


def run(client: Any, panel: Panel, tr: TimeRange, vs: dict[str, Any]) -> Any:
    sql = expand(panel.sql, time_range=tr, interval_ms=grafana_interval_ms(tr, 100),
                 variables=vs)  # fmt: skip
    assert "$" not in sql.replace("'$", ""), sql  # every macro and variable expanded
    return client.query(sql)


def rows(client: Any, panel: Panel, tr: TimeRange, vs: dict[str, Any]) -> list[dict[str, Any]]:
    result = run(client, panel, tr, vs)
    return [dict(zip(result.column_names, r, strict=True)) for r in result.result_rows]


def test_variable_queries_list_agencies_sectors_and_periods(loaded: Loaded) -> None:
    agencies = loaded.client.query(VARIABLE_SQL["agency"]).result_rows
    assert len(agencies) == 216 and agencies[0][1].startswith(agencies[0][0] + " — ")
    sectors = [r[0] for r in loaded.client.query(VARIABLE_SQL["sector"]).result_rows]
    assert sectors and sectors == sorted(sectors)
    for grain, first in (("year", "2025"), ("month", "2025-12")):
        sql = VARIABLE_SQL["period"].replace("${grain}", grain)
        periods = [r[0] for r in loaded.client.query(sql).result_rows]
        assert periods[0] == first and periods == sorted(periods, reverse=True)


@pytest.mark.parametrize("state", ["all", "one", "two+sector", "month"])
def test_every_panel_runs_and_returns_its_columns(loaded: Loaded, state: str) -> None:
    two = ["TH-S-TP", "TH-S-TTTT"]
    sectors = [r[0] for r in loaded.client.query(
        "SELECT DISTINCT toString(sector) FROM counted_inspections "
        "WHERE agency_code IN {a:Array(String)} AND sector IS NOT NULL ORDER BY 1",
        parameters={"a": two},
    ).result_rows]  # fmt: skip
    assert sectors
    vs = {
        "all": variables(),
        "one": variables(["TH-S-TP"]),
        "two+sector": variables(two, sectors[:1], period="2024-Q3"),
        "month": variables(period="2025-06"),
    }[state]
    ingest = TimeRange(INGEST_START - timedelta(hours=1), loaded.last_ingest + timedelta(hours=1))
    non_empty = 0
    for panel in PANELS:
        tr = ingest if panel.key in WRITES_KEYS else ALL_DATA
        result = run(loaded.client, panel, tr, vs)
        columns = set(result.column_names) - {"time"}
        if not result.result_rows:  # an empty answer carries no column names here
            assert panel.kind not in ("stat", "gauge"), panel.key
            assert state != "all" or panel.key in MAY_BE_EMPTY, panel.key
            continue
        if panel.kind in ("stat", "gauge"):
            assert set(panel.labels) <= columns, panel.key
            assert len(result.result_rows) == 1, panel.key
        else:
            assert columns == set(panel.labels), panel.key
        if panel.time_series:
            times = [r[0] for r in result.result_rows]
            assert times == sorted(times), panel.key
        non_empty += 1
    # with every agency, every panel has rows but the lists of what the simulator does not
    # produce; one or two agencies, or one month, leave some lists empty
    assert non_empty >= len(PANELS) - (len(MAY_BE_EMPTY) if state == "all" else 10)


def _stat_values(client: Any, tr: TimeRange, vs: dict[str, Any]) -> dict[str, Any]:
    got: dict[str, Any] = {}
    for panel in PANELS:
        if not panel.kpi_keys:
            continue
        row = rows(client, panel, tr, vs)[0]
        for column, key in panel.kpi_keys.items():
            got[key] = row[column]
    return got


@pytest.mark.parametrize("hybrid", [False, True])
def test_stat_panels_equal_parwatch_kpi_json(loaded: Loaded, hybrid: bool) -> None:
    client = loaded.client
    write_kpi_settings(client, KpiSettings(hybrid_counts_as_online=hybrid))
    try:
        kinds = ("year", "quarter", "month")
        all_rows = rows_to_json([r for k in kinds for r in read_kpis(client, k)])
        by_key = {(r["agency_code"], r["period"]): r for r in all_rows}
        busiest = max(
            (r for r in all_rows if r["agency_code"] and len(r["period"]) == 4),
            key=lambda r: r["inspections_online"] + r["inspections_in_person"],
        )
        cases = [(None, "2024"), (None, "2025"), (None, "2024-06"), (None, "2025-07"),
                 (None, "2025-Q2"), (busiest["agency_code"], busiest["period"])]  # fmt: skip
        keys = {k for p in PANELS for k in p.kpi_keys.values()}
        assert {"full_process_offering_rate", "prefill_design_coverage",
                "online_inspection_share", "services_eligible"} <= keys  # fmt: skip
        compared = 0
        for agency, period in cases:
            expected = by_key[(agency, period)]
            got = _stat_values(
                client, period_range(period), variables([agency] if agency else None, None, period)
            )
            for key, value in got.items():
                want = expected[key]
                if want is None or isinstance(want, int):
                    assert value == want, (agency, period, key)
                else:
                    assert value == pytest.approx(want, rel=1e-12), (agency, period, key)
                compared += 1
        assert compared == len(cases) * len(keys)
        assert by_key[(None, "2024")]["inspections_hybrid"]
        assert (
            by_key[(None, "2025")]["services_eligible"]
            > by_key[(None, "2025")]["services_full_process"]
            > 0
        )
    finally:
        write_kpi_settings(client, KpiSettings())


def independent_projection(
    monthly: list[tuple[date, float]], months: int = plan.PROJECTION_MONTHS
) -> tuple[float | None, int, list[tuple[date, float]]]:
    """Least squares through the last ``months`` (month, value) pairs, evaluated at each month
    from the latest to December of its year, clipped to 0..1: (December's value, plan year,
    the projected points)."""
    last = sorted(monthly)[-months:]
    if len(last) < 2:
        return None, last[-1][0].year if last else 0, []
    xs = [d.year * 12 + d.month for d, _ in last]
    ys = [v for _, v in last]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    k = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    k /= sum((x - mx) ** 2 for x in xs)
    b = my - k * mx
    end = last[-1][0]
    points = [
        (date(end.year, m, 1), min(1.0, max(0.0, k * (end.year * 12 + m) + b)))
        for m in range(end.month, 13)
    ]
    return points[-1][1], end.year, points


@pytest.mark.parametrize(
    "tr",
    [ALL_DATA, TimeRange(datetime(2024, 1, 1, tzinfo=VN), datetime(2024, 10, 1, tzinfo=VN) - MS)],
    ids=["all", "to-september-2024"],
)
def test_projection_panels_equal_an_independent_projection(loaded: Loaded, tr: TimeRange) -> None:
    province = [r for r in rows_to_json(read_kpis(loaded.client, "month")) if not r["agency_code"]]
    first, last = tr.start.date(), tr.end.astimezone(VN).date()
    seen = 0
    for k in plan.KPIS:
        monthly = [
            (date(int(r["period"][:4]), int(r["period"][5:]), 1), r[k.key])
            for r in province
            if r[k.key] is not None
            and first <= date(int(r["period"][:4]), int(r["period"][5:]), 1) <= last
        ]
        want, year, points = independent_projection(monthly)
        stat = rows(loaded.client, BY_KEY[f"{k.key}_projection"], tr, variables())[0]
        trend = rows(loaded.client, BY_KEY[f"{k.key}_trend"], tr, variables())
        if want is None:
            assert stat["projected"] is None, k.key
            continue
        assert stat["projected"] == pytest.approx(want, abs=1e-9), k.key
        assert stat["plan_year"] == str(year) and stat["months"] == min(len(monthly), 6)
        # the chart: the actual months, then the projection from the latest one to December
        actual = {t.date(): r[k.key] for r in trend if (t := r["time"]) and r[k.key] is not None}
        assert actual == pytest.approx(dict(monthly), abs=1e-12), k.key
        projected = [(r["time"].date(), r["projection"]) for r in trend
                     if r["projection"] is not None]  # fmt: skip
        assert [d for d, _ in projected] == [d for d, _ in points], k.key
        assert [v for _, v in projected] == pytest.approx([v for _, v in points], abs=1e-9)
        assert all(r["target_line"] == Targets().get(k.key) for r in trend)
        seen += 1
    assert seen >= 2  # the offering KPIs at least have a monthly series


def test_pipeline_panels_count_what_the_processor_did(loaded: Loaded) -> None:
    client, res = loaded.client, loaded.results
    tr = TimeRange(INGEST_START - timedelta(minutes=5), loaded.last_ingest + timedelta(minutes=5))
    totals = run(client, BY_KEY["totals"], tr, variables())
    accepted, refused, duplicates = totals.result_rows[0]
    assert accepted == res["accepted"] and refused == res["refused"]
    assert duplicates == res["duplicate"] and refused > 0 and duplicates > 0

    per_minute = run(client, BY_KEY["ingested_per_minute"], tr, variables())
    seconds = grafana_interval_ms(tr, 100) // 1000
    sums = [sum(r[i] for r in per_minute.result_rows) * seconds / 60 for i in range(1, 6)]
    assert sums[0] + sums[1] + sums[2] == pytest.approx(accepted)
    assert sums[3:] == [pytest.approx(refused), pytest.approx(duplicates)]

    by_reason = dict(run(client, BY_KEY["dead_letters_by_reason"], tr, variables()).result_rows)
    assert by_reason == dict(loaded.refused_by_reason)
    one = run(client, BY_KEY["dead_letters_by_agency"], tr, variables(["TH-S-TP"])).result_rows
    assert {r[1] for r in one} <= {"TH-S-TP"}
    refusals = rows(client, BY_KEY["refusals_by_agency"], tr, variables())
    assert sum(r["refused"] for r in refusals) == refused

    fresh = run(client, BY_KEY["freshness"], tr, variables()).result_rows[0][0]
    newest = INGEST_START + STEP * (len(loaded.sim.messages) - 1)
    age = (datetime.now(VN) - newest).total_seconds()
    assert abs(fresh - age) < 120  # the query's now() is read a moment after ours
