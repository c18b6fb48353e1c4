"""Reference data in the warehouse: the catalogs and the KPI settings (targets, policies).

``load_catalog_tables`` replaces the ``agencies``, ``procedures`` and ``annual_indices`` tables
with the catalog's rows (reloadable at any time; the KPI views do not depend on them).
``write_kpi_settings`` records targets and the hybrid policy, which the KPI views read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from schemas.catalog import AnnualIndex, Catalog

ANNUAL_INDEX_TABLE_COLUMNS = [
    "index_name", "year", "score", "scale", "rank", "ranked_of", "publisher", "source",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class KpiSettings:
    target_online_inspection_share: float = 0.40
    target_service_prefill_coverage: float = 1.00
    target_full_process_share: float = 1.00
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
    now = datetime.now(UTC)
    rows = [
        ["target_online_inspection_share", settings.target_online_inspection_share, now],
        ["target_service_prefill_coverage", settings.target_service_prefill_coverage, now],
        ["target_full_process_share", settings.target_full_process_share, now],
        ["hybrid_counts_as_online", float(settings.hybrid_counts_as_online), now],
    ]
    client.insert("kpi_settings", rows, column_names=["name", "value", "updated_at"])
