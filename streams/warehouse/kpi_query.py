"""Reading the KPI views: the rows of ``parwatch kpi`` and the report, in the contract's shape."""

from __future__ import annotations

from datetime import date
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.query import QueryResult

from schemas.kpi import KPI_KEYS, RATE_KEYS, KpiRow, order_key, sort_rows
from schemas.periods import PeriodKind

GRAINS = ("day", "month", "quarter", "year")


def _select(
    client: Client,
    kind: PeriodKind | str,
    agency: str | None,
    start: date | None,
    end: date | None,
    include_province: bool,
) -> QueryResult:
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
    return client.query(sql, parameters=params)


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
    result = _select(client, kind, agency, start, end, include_province)
    return sort_rows(KpiRow(**dict(zip(KPI_KEYS, r, strict=True))) for r in result.result_rows)


# The ClickHouse types each key of the JSON shape may come in (the driver reads Float64 as
# float, the integers as int, String as str, so the values have KpiRow's types without a model
# per row), and the keys where the shape allows NULL.
_RATE_TYPES = frozenset({"Float64", "Nullable(Float64)"})
_COUNT_TYPES = frozenset({"UInt64", "Int64", "Nullable(UInt64)", "Nullable(Int64)"})
_TEXT_TYPES = frozenset({"String", "Nullable(String)"})
_ALLOWED_TYPES = tuple(
    _RATE_TYPES if key in RATE_KEYS else _TEXT_TYPES if key in ("agency_code", "period")
    else _COUNT_TYPES
    for key in KPI_KEYS
)  # fmt: skip
_NULLABLE_KEYS = frozenset({*RATE_KEYS, "agency_code"})


def read_kpi_json(
    client: Client,
    kind: PeriodKind | str = "month",
    *,
    agency: str | None = None,
    start: date | None = None,
    end: date | None = None,
    include_province: bool = True,
) -> list[dict[str, Any]]:
    """``rows_to_json(read_kpis(...))`` (the same dicts, in the same order), built without a
    model per row: the columns' types are checked once, against the shape's (a rate is a
    float or null, a count an int, ``agency_code`` a text or null, ``period`` a text), and a
    NULL where the shape has none raises ``ValueError``, as the model would."""
    result = _select(client, kind, agency, start, end, include_province)
    never_null: list[int] = []
    columns = zip(KPI_KEYS, _ALLOWED_TYPES, result.column_types, strict=True)
    for i, (key, allowed, ch_type) in enumerate(columns):
        if ch_type.name not in allowed:
            raise ValueError(
                f"kpi_{kind}.{key} is {ch_type.name}, expected one of {sorted(allowed)}"
            )
        if ch_type.nullable and key not in _NULLABLE_KEYS:
            never_null.append(i)
    rows = result.result_rows
    for i in never_null:
        if any(r[i] is None for r in rows):
            raise ValueError(f"kpi_{kind}.{KPI_KEYS[i]} holds NULL")
    out = [dict(zip(KPI_KEYS, r, strict=True)) for r in rows]
    out.sort(key=lambda d: order_key(d["period"], d["agency_code"]))
    return out
