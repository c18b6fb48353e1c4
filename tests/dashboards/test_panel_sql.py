"""Every panel's SQL, expanded as the plugin expands it, on the embedded ClickHouse holding
known data: it runs for every variable state, returns the columns it labels, and the stat and
gauge panels equal ``parwatch kpi --json`` (``read_kpis`` -> ``rows_to_json``) over whole
periods."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dashboards.macros import ALL, TimeRange, Variable, expand, grafana_interval_ms
from dashboards.spec import VARIABLE_SQL, Panel, Targets, build_dashboards
from schemas.kpi import rows_to_json
from streams.warehouse.kpi_query import read_kpis
from streams.warehouse.reference import KpiSettings, write_kpi_settings
from tests.dashboards.conftest import INGEST_START, STEP, Loaded

pytestmark = pytest.mark.clickhouse

VN = ZoneInfo("Asia/Ho_Chi_Minh")
PANELS = [p for d in build_dashboards(Targets()) for p in d.panels if not p.live]  # SQL ones
MS = timedelta(milliseconds=1)


def _period(kind: str, label: str) -> TimeRange:
    """Grafana's range for a whole period in Asia/Ho_Chi_Minh (to = end - 1 ms, as it rounds)."""
    y = int(label[:4])
    if kind == "year":
        start, end = date(y, 1, 1), date(y + 1, 1, 1)
    else:
        m = int(label[5:7])
        start, end = date(y, m, 1), date(y + (m == 12), m % 12 + 1, 1)
    lo = datetime.combine(start, datetime.min.time(), VN)
    return TimeRange(lo, datetime.combine(end, datetime.min.time(), VN) - MS)


def _vars(agencies: list[str] | None = None, sectors: list[str] | None = None) -> dict[str, Any]:
    return {
        "agency": Variable("agency", agencies or [ALL]),
        "sector": Variable("sector", sectors or [ALL]),
    }


def _run(client: Any, panel: Panel, tr: TimeRange, variables: dict[str, Any]) -> Any:
    sql = expand(panel.sql, time_range=tr, interval_ms=grafana_interval_ms(tr, 100),
                 variables=variables)  # fmt: skip
    assert "$" not in sql.replace("'$", ""), sql  # every macro and variable expanded
    return client.query(sql)


def test_variable_queries_list_agencies_and_sectors(loaded: Loaded) -> None:
    agencies = loaded.client.query(VARIABLE_SQL["agency"]).result_rows
    assert len(agencies) == 216 and agencies[0][1].startswith(agencies[0][0] + " — ")
    sectors = [r[0] for r in loaded.client.query(VARIABLE_SQL["sector"]).result_rows]
    assert sectors and sectors == sorted(sectors)


@pytest.mark.parametrize("state", ["all", "one", "two+sector"])
def test_every_panel_runs_and_returns_its_columns(loaded: Loaded, state: str) -> None:
    two = ["TH-S-TP", "TH-S-TTTT"]
    sectors = [r[0] for r in loaded.client.query(
        "SELECT DISTINCT toString(sector) FROM counted_inspections "
        "WHERE agency_code IN {a:Array(String)} AND sector IS NOT NULL ORDER BY 1",
        parameters={"a": two},
    ).result_rows]  # fmt: skip
    assert sectors
    variables = {
        "all": _vars(),
        "one": _vars(["TH-S-TP"]),
        "two+sector": _vars(two, sectors[:1]),
    }[state]
    kpi_range = TimeRange(datetime(2024, 1, 1, tzinfo=VN), datetime(2026, 1, 1, tzinfo=VN))
    ingest = TimeRange(INGEST_START - timedelta(hours=1), loaded.last_ingest + timedelta(hours=1))
    non_empty = 0
    for panel in PANELS:
        tr = ingest if panel.key in PIPELINE_KEYS else kpi_range
        result = _run(loaded.client, panel, tr, variables)
        columns = set(result.column_names) - {"time"}
        if not result.result_rows:  # an empty answer carries no column names here
            assert panel.kind not in ("stat", "gauge"), panel.key
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
    # with every agency, every panel has rows; one or two agencies leave a few tables empty
    assert non_empty == len(PANELS) if state == "all" else non_empty >= len(PANELS) - 4


PIPELINE_KEYS = {p.key for p in build_dashboards(Targets())[2].panels}


def _stat_values(client: Any, tr: TimeRange, variables: dict[str, Any]) -> dict[str, Any]:
    got: dict[str, Any] = {}
    for panel in PANELS:
        if not panel.kpi_keys:
            continue
        result = _run(client, panel, tr, variables)
        row = dict(zip(result.column_names, result.result_rows[0], strict=True))
        for column, key in panel.kpi_keys.items():
            got[key] = row[column]
    return got


@pytest.mark.parametrize("hybrid", [False, True])
def test_stat_panels_equal_parwatch_kpi_json(loaded: Loaded, hybrid: bool) -> None:
    client = loaded.client
    write_kpi_settings(client, KpiSettings(hybrid_counts_as_online=hybrid))
    try:
        rows = rows_to_json(read_kpis(client, "year") + read_kpis(client, "month"))
        by_key = {(r["agency_code"], r["period"]): r for r in rows}
        busiest = max(
            (r for r in rows if r["agency_code"] and len(r["period"]) == 4),
            key=lambda r: r["inspections_online"] + r["inspections_in_person"],
        )
        cases = [(None, "2024"), (None, "2025"), (None, "2024-06"), (None, "2025-07"),
                 (busiest["agency_code"], busiest["period"])]  # fmt: skip
        compared = 0
        for agency, period in cases:
            kind = "year" if len(period) == 4 else "month"
            expected = by_key[(agency, period)]
            variables = _vars([agency] if agency else None)
            got = _stat_values(client, _period(kind, period), variables)
            assert got, "no stat panel declares kpi_keys"
            for key, value in got.items():
                want = expected[key]
                if want is None or isinstance(want, int):
                    assert value == want, (agency, period, key)
                else:
                    assert value == pytest.approx(want, rel=1e-12), (agency, period, key)
                compared += 1
        keys = {k for p in PANELS for k in p.kpi_keys.values()}
        assert compared == 5 * len(keys) and len(keys) >= 7
        assert any(by_key[(None, "2024")][k] for k in ("inspections_hybrid",))
    finally:
        write_kpi_settings(client, KpiSettings())


def test_pipeline_panels_count_what_the_processor_did(loaded: Loaded) -> None:
    client, res = loaded.client, loaded.results
    tr = TimeRange(INGEST_START - timedelta(minutes=5), loaded.last_ingest + timedelta(minutes=5))
    panels = {p.key: p for p in PANELS}
    totals = _run(client, panels["totals"], tr, _vars())
    accepted, refused, duplicates = totals.result_rows[0]
    assert accepted == res["accepted"] and refused == res["refused"]
    assert duplicates == res["duplicate"] and refused > 0 and duplicates > 0

    per_minute = _run(client, panels["ingested_per_minute"], tr, _vars())
    seconds = grafana_interval_ms(tr, 100) // 1000
    sums = [sum(r[i] for r in per_minute.result_rows) * seconds / 60 for i in range(1, 6)]
    assert sums[0] + sums[1] + sums[2] == pytest.approx(accepted)
    sums = sums[:2] + sums[3:]
    assert sums[2:] == [pytest.approx(refused), pytest.approx(duplicates)]

    by_reason = dict(_run(client, panels["dead_letters_by_reason"], tr, _vars()).result_rows)
    assert by_reason == dict(loaded.refused_by_reason)
    one = _run(client, panels["dead_letters_by_agency"], tr, _vars(["TH-S-TP"])).result_rows
    assert {r[1] for r in one} <= {"TH-S-TP"}

    fresh = _run(client, panels["freshness"], tr, _vars()).result_rows[0][0]
    newest = INGEST_START + STEP * (len(loaded.sim.messages) - 1)
    age = (datetime.now(VN) - newest).total_seconds()
    assert abs(fresh - age) < 120  # the query's now() is read a moment after ours
