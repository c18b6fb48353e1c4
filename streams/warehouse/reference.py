"""Reference data in the warehouse: the catalogs and the KPI settings (targets, policies).

``load_catalog_tables`` replaces the ``agencies``, ``procedures`` and ``annual_indices`` tables
with the catalog's rows (reloadable at any time; the KPI views do not depend on them).
``write_kpi_settings`` replaces the targets and the hybrid policy, which the KPI views read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from schemas.catalog import AnnualIndex, Catalog
from schemas.targets import TARGETS

ANNUAL_INDEX_TABLE_COLUMNS = [
    "index_name", "year", "score", "scale", "rank", "ranked_of", "publisher", "source",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class KpiSettings:
    """Targets (KPI key -> target, None: no target) and the hybrid policy."""

    targets: dict[str, float | None] = field(
        default_factory=lambda: {key: t.value for key, t in TARGETS.items()}
    )
    hybrid_counts_as_online: bool = False


def load_catalog_tables(client: Client, catalog: Catalog) -> tuple[int, int]:
    """Replace the catalog tables (agencies, procedures, annual index results); return
    (agencies, procedures) loaded."""
    agencies = [
        [a.code, a.name, a.kind, a.parent, a.valid_from, a.valid_to]
        for a in catalog.agencies.values()
    ]
    procedures = [
        [p.code, p.name, p.agency, p.level, int(p.full_process_eligible)]
        for p in catalog.procedures.values()
    ]
    client.command("TRUNCATE TABLE IF EXISTS agencies")
    client.insert(
        "agencies",
        agencies,
        column_names=["code", "name", "kind", "parent", "valid_from", "valid_to"],
    )
    client.command("TRUNCATE TABLE IF EXISTS procedures")
    client.insert(
        "procedures",
        procedures,
        column_names=["code", "name", "agency", "level", "full_process_eligible"],
    )
    load_annual_indices_table(client, catalog.annual_indices)
    return len(agencies), len(procedures)


def load_annual_indices_table(client: Client, indices: Sequence[AnnualIndex]) -> int:
    """Replace the ``annual_indices`` table with ``indices``; return how many were loaded."""
    rows = [
        [i.index_name, i.year, i.score, i.scale, i.rank, i.ranked_of, i.publisher, i.source]
        for i in indices
    ]
    client.command("TRUNCATE TABLE IF EXISTS annual_indices")
    if rows:
        client.insert("annual_indices", rows, column_names=ANNUAL_INDEX_TABLE_COLUMNS)
    return len(rows)


def write_kpi_settings(client: Client, settings: KpiSettings) -> None:
    """Replace the ``kpi_settings`` table: one ``target_<kpi>`` row per KPI with a target, and
    ``hybrid_counts_as_online``. A KPI without a target has no row (its view column is NULL)."""
    now = datetime.now(UTC)
    rows: list[list[object]] = [
        [f"target_{key}", float(value), now]
        for key, value in settings.targets.items()
        if value is not None
    ]
    rows.append(["hybrid_counts_as_online", float(settings.hybrid_counts_as_online), now])
    client.command("TRUNCATE TABLE IF EXISTS kpi_settings")
    client.insert("kpi_settings", rows, column_names=["name", "value", "updated_at"])
