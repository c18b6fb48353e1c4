"""Reading the KPI views: the rows of ``parwatch kpi`` and the report, in the contract's shape."""

from __future__ import annotations

from datetime import date

from clickhouse_connect.driver.client import Client

from schemas.kpi import KPI_KEYS, KpiRow, sort_rows
from schemas.periods import PeriodKind

GRAINS = ("day", "month", "quarter", "year")


def read_kpis(
    client: Client,
    kind: PeriodKind | str = "month",
    *,
    agency: str | None = None,
    start: date | None = None,
    end: date | None = None,
    include_province: bool = True,
) -> list[KpiRow]:
    """Rows of ``kpi_<kind>``: periods whose start lies in [start, end], one agency or all."""
    if kind not in GRAINS:
        raise ValueError(f"period must be one of {', '.join(GRAINS)}")
    where: list[str] = ["1"]
    params: dict[str, object] = {}
    if agency is not None:
        where.append("agency_code = {agency:String}")
        params["agency"] = agency
    elif not include_province:
        where.append("agency_code IS NOT NULL")
    if start is not None:
        where.append("period_start >= {start:Date}")
        params["start"] = start
    if end is not None:
        where.append("period_start <= {end:Date}")
        params["end"] = end
    sql = (
        f"SELECT {', '.join(KPI_KEYS)} FROM kpi_{kind} "  # noqa: S608 (kind is from GRAINS)
        f"WHERE {' AND '.join(where)}"
    )
    result = client.query(sql, parameters=params)
    return sort_rows(KpiRow(**dict(zip(KPI_KEYS, r, strict=True))) for r in result.result_rows)
