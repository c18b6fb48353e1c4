"""`parwatch migrate --cluster`: the cluster DDL built from the real migrations (warehouse.cluster),
and that DDL run on the embedded engine with its cluster parts replaced by single-node ones."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from parwatch.cli import main
from streams.warehouse import cluster, migrations
from streams.warehouse.client import WarehouseConfig, connect

DDL = cluster.cluster_ddl(migrations.load_migrations(), "pw", "parwatch")
SQL = [s.sql for s in DDL]
TABLES = {
    m.group(1)
    for mig in migrations.load_migrations()
    for s in mig.statements()
    if (m := re.match(r"CREATE TABLE IF NOT EXISTS (\w+)", s))
}


def created(name: str) -> str:
    (sql,) = [s for s in SQL if s.startswith(f"CREATE TABLE IF NOT EXISTS parwatch.{name} ")]
    return sql


def test_every_table_is_sharded_or_replicated_everywhere() -> None:
    assert (
        set(cluster.SHARDING_KEYS) | (cluster.REPLICATED_EVERYWHERE - {"schema_migrations"})
        == TABLES
    )
    for t in cluster.SHARDING_KEYS:
        local, dist = created(f"{t}_local"), created(t)
        assert "ON CLUSTER pw" in local and "ON CLUSTER pw" in dist
        assert (
            "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', "
            "'{replica}'" in local
        )
        assert dist.endswith(
            f"ENGINE = Distributed(pw, parwatch, {t}_local, {cluster.SHARDING_KEYS[t]})"
        )
        assert f"AS parwatch.{t}_local" in dist
    for t in cluster.REPLICATED_EVERYWHERE:
        assert "/clickhouse/tables/all/{database}/{table}" in created(t)
        assert not [s for s in SQL if f"parwatch.{t}_local" in s]


def test_every_statement_is_one_statement() -> None:
    """A ``;`` followed by a comment on its line ends a statement too: a ClickHouse server
    refuses several statements in one query, and this transform rewrites only the first."""
    for m in migrations.load_migrations():
        for s in m.statements():
            starts = re.findall(r"^(?:ALTER|CREATE|INSERT|DROP|TRUNCATE)\b", s, re.M)
            assert len(starts) == 1, (m.name, s)


def test_engine_arguments_order_by_and_settings_are_kept() -> None:
    classifications = created("inspection_classifications_local")
    assert "'{replica}', version)\nORDER BY (agency_code, inspection_id)\n" in classifications
    assert classifications.endswith("SETTINGS non_replicated_deduplication_window = 1000")
    assert "'{replica}', updated_at)\nORDER BY name" in created("kpi_settings")
    for m in migrations.load_migrations():
        for s in m.statements():
            if (t := re.match(r"CREATE TABLE IF NOT EXISTS (\w+)", s)) is None:
                continue
            name = t.group(1)
            out = created(f"{name}_local" if name in cluster.SHARDING_KEYS else name)
            for clause in re.findall(r"^(?:ORDER BY|SETTINGS) .*$", s, re.M):
                assert clause in out, (name, clause)


def test_sharding_keys_are_made_of_order_by_columns() -> None:
    for t, key in cluster.SHARDING_KEYS.items():
        order_by = re.search(r"ORDER BY \(([^)]*)\)", created(f"{t}_local"))
        assert order_by, t
        columns = {c.strip() for c in order_by.group(1).split(",")}
        used = {c.strip() for c in re.fullmatch(r"cityHash64\((.*)\)", key).group(1).split(",")}  # type: ignore[union-attr]
        assert used <= columns, t


def test_alters_reach_local_tables_and_column_changes_the_distributed_ones() -> None:
    alters = [s for s in SQL if s.startswith("ALTER TABLE parwatch.inspection_events")]
    assert [a.split(" ON CLUSTER pw ")[0] for a in alters] == [
        "ALTER TABLE parwatch.inspection_events_local",  # ADD COLUMN
        "ALTER TABLE parwatch.inspection_events",
        "ALTER TABLE parwatch.inspection_events_local",  # MATERIALIZE: data, local only
        "ALTER TABLE parwatch.inspection_events_local",  # MODIFY COLUMN
        "ALTER TABLE parwatch.inspection_events",
        "ALTER TABLE parwatch.inspection_events_local",  # MODIFY COLUMN (payload codec)
        "ALTER TABLE parwatch.inspection_events",
        "ALTER TABLE parwatch.inspection_events_local",  # ADD COLUMN kind (contract v2)
        "ALTER TABLE parwatch.inspection_events",
    ]


def test_views_and_ledger() -> None:
    views = [s for s in DDL if re.match(r"CREATE (OR REPLACE )?VIEW ", s.sql)]
    # 0005: 6 views; 0009: kpi_<grain> x 4; 0011: offering history, bounds, facts and KPIs x 4;
    # 0012: per grain, three family facts views, the facts union and two narrow KPI views;
    # 0013: kpi_bounds from min() and max(); 0014 and 0015: the dossier facts view x 4
    assert [v.version for v in views] == (
        [5] * 6 + [9] * 4 + [11] * 10 + [12] * 24 + [13] + [14] * 4 + [15] * 4
    )
    assert all(" ON CLUSTER pw AS" in v.sql for v in views)
    inserts = [s for s in DDL if s.sql.startswith("INSERT INTO parwatch.schema_migrations")]
    assert [s.version for s in inserts] == [m.version for m in migrations.load_migrations()]


def test_a_table_without_a_sharding_decision_is_refused(tmp_path: Any) -> None:
    (tmp_path / "0001_x.sql").write_text(
        "CREATE TABLE IF NOT EXISTS x (a UInt8) ENGINE = MergeTree ORDER BY a;\n"
    )
    with pytest.raises(cluster.ClusterDDLError, match="0001_x: table x: no sharding decision"):
        cluster.cluster_ddl(migrations.load_migrations(tmp_path), "pw", "parwatch")
    with pytest.raises(cluster.ClusterDDLError, match="bad cluster name"):
        cluster.cluster_ddl([], "pw; DROP", "parwatch")


def test_cli_prints_the_ddl_and_refuses_apply_alone(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--cluster", "pw"]) == 0
    out = capsys.readouterr().out
    assert out == cluster.render(DDL)
    assert out.count(";\n") == len(DDL)
    assert main(["migrate", "--apply"]) == 2
    assert capsys.readouterr().err == "parwatch: error: --apply needs --cluster NAME\n"


def single_node(sql: str) -> str:
    """The cluster DDL as one node without Keeper would run it: Merge stands for Distributed."""
    sql = re.sub(r" ON CLUSTER \w+", "", sql)
    sql = re.sub(r"Replicated(\w*MergeTree)\('[^']*', '[^']*'(?:, ([^)]*))?\)",
                 lambda m: m.group(1) + (f"({m.group(2)})" if m.group(2) else ""), sql)  # fmt: skip
    return re.sub(r"ENGINE = Distributed\(\w+, (\w+), (\w+), .*\)$",
                  r"ENGINE = Merge(\1, '^\2$')", sql)  # fmt: skip


@pytest.fixture
def cluster_shaped(chdb_url: str) -> Iterator[Any]:
    database = f"c_{uuid.uuid4().hex[:12]}"
    client = connect(WarehouseConfig(chdb_url, database=database), create_database=True)
    for s in cluster.cluster_ddl(migrations.load_migrations(), "pw", database):
        client.command(single_node(s.sql))
    yield client
    client.command(f"DROP DATABASE IF EXISTS {database}")


# Contract v2: the KPI views read inspection classifications, dossier lifecycles (one row per
# dossier, as the worker writes them), offering events and the procedure catalog (eligibility).
LIFECYCLE_COLUMNS = (
    "agency_code, dossier_id, procedure_code, submitted_at, submission_schema, channel, "
    "service_level, fields_total, fields_prefilled, due_at, digitized, reused_components, "
    "ended_at, end_type, end_schema, on_time, result_electronic, paid_at, payment_channel, "
    "pause_starts, pause_ends, effective_due_at, paused_ms, version, updated_at"
)
ROWS = {
    "inspection_classifications": (
        "agency_code, inspection_id, classification, has_online, has_in_person, activities, "
        "opened_at, concluded_at, cancelled, version, updated_at, kind",
        [
            "('TH-S-TP', 'K1', 'in_person', 0, 1, 1, NULL, '2024-05-31 20:00:00', 0, 1, now64(), "
            "'kiem_tra')",
            "('TH-S-TP', 'K1', 'online', 1, 0, 1, NULL, '2024-05-31 20:00:00', 0, 2, now64(), "
            "'kiem_tra')",
            "('TH-S-TP', 'K2', 'hybrid', 1, 1, 2, NULL, '2024-07-01 01:00:00', 0, 3, now64(), "
            "'kiem_tra')",
            "('TH-S-TP', 'K3', 'in_person', 0, 1, 1, NULL, '2024-08-01 01:00:00', 0, 1, now64(), "
            "'kiem_tra')",
            "('TH-S-TP', 'K4', 'online', 1, 0, 1, NULL, '2024-08-01 01:00:00', 1, 2, now64(), "
            "'kiem_tra')",
            "('TH-S-TP', 'K5', 'online', 1, 0, 1, NULL, '2024-08-01 01:00:00', 0, 1, now64(), "
            "'thanh_tra')",
        ],
    ),
    "dossier_lifecycle": (
        LIFECYCLE_COLUMNS,
        [
            # D1: online full-process, 10 of 10 prefilled, digitised, paid online, completed
            # after 4 days, before its due date, electronic result.
            "('TH-S-TP', 'D1', '1.001193', '2024-03-01 01:00:00', 'service/2', 'online', "
            "'full_process', 10, 10, '2024-03-10 01:00:00', 1, 0, '2024-03-05 01:00:00', "
            "'completed', 'service/2', NULL, 1, '2024-03-02 01:00:00', 'online', [], [], "
            "'2024-03-10 01:00:00', 0, 3, now64())",
            # D2: online partial, nothing prefilled, 1 component reused, not digitised; a one-day
            # pause moves its due date to 03-06; completed 03-08: late, 6 - 1 = 5 days.
            "('TH-S-TP', 'D2', '1.000656', '2024-03-02 01:00:00', 'service/2', 'online', "
            "'partial', 10, 0, '2024-03-05 01:00:00', 0, 1, '2024-03-08 01:00:00', "
            "'completed', 'service/2', NULL, 0, NULL, '', ['2024-03-03 01:00:00'], "
            "['2024-03-04 01:00:00'], '2024-03-06 01:00:00', 86400000, 4, now64())",
            # D3: a service/1 counter dossier, completed on time by its flag.
            "('TH-S-TP', 'D3', '1.000894', '2024-04-01 01:00:00', 'service/1', 'counter', '', "
            "0, 0, NULL, NULL, 0, '2024-04-03 01:00:00', 'completed', 'service/1', 1, NULL, "
            "NULL, '', [], [], NULL, 0, 2, now64())",
        ],
    ),
    "offering_events": (
        "event_id, occurred_at, agency_code, procedure_code, level, prefill_designed, schema, "
        "payload, _topic, _partition, _offset, _ingested_at",
        [
            # eligible, full-process, prefill designed
            "(generateUUIDv4(), '2024-01-01 01:00:00', 'TH-S-TP', '1.001193', 'full_process', 1, "
            "'offering/1', '{}', 't', 0, 0, now64())",
            # eligible, partial, no prefill
            "(generateUUIDv4(), '2024-01-01 01:00:00', 'TH-S-TP', '1.000656', 'partial', 0, "
            "'offering/1', '{}', 't', 0, 1, now64())",
            # not eligible (the catalog's flag), full-process, prefill designed
            "(generateUUIDv4(), '2024-01-01 01:00:00', 'TH-S-TP', '1.000894', 'full_process', 1, "
            "'offering/1', '{}', 't', 0, 2, now64())",
        ],
    ),
}
KPI_COLUMNS = (
    "agency_code, period, online_inspection_share, inspections_thanh_tra, online_dossier_rate, "
    "full_process_dossier_rate, data_reuse_rate, digitization_rate, prefilled_submission_share, "
    "prefill_depth, on_time_rate, average_resolution_days, electronic_result_rate, "
    "online_payment_rate, full_process_offering_rate, prefill_design_coverage"
)


def kpis(client: Any, suffix: str) -> list[tuple[Any, ...]]:
    from schemas.catalog import load_catalog
    from streams.warehouse.reference import load_catalog_tables

    load_catalog_tables(client, load_catalog())  # reference tables: whole on every node
    for table, (columns, values) in ROWS.items():
        client.command(f"INSERT INTO {table}{suffix} ({columns}) VALUES {', '.join(values)}")
    return list(client.query(
        f"SELECT {KPI_COLUMNS} FROM kpi_year ORDER BY agency_code"
    ).result_rows)  # fmt: skip


@pytest.mark.clickhouse
def test_cluster_schema_gives_the_kpis_of_the_plain_schema(
    cluster_shaped: Any, warehouse: Any
) -> None:
    shaped = kpis(cluster_shaped, "_local")
    assert shaped == kpis(warehouse, "")
    assert [r[:2] for r in shaped] == [("TH-S-TP", "2024"), (None, "2024")]
    assert shaped[0][2:] == shaped[1][2:]  # one agency: the province's row is the same
    # K1's latest version is online; K4 is cancelled; K5 is a thanh_tra inspection, outside
    # the share: online 1, hybrid 1, in person 1.
    assert shaped[0][2:4] == (pytest.approx(1 / 3), 1)
    assert shaped[0][4:] == (
        pytest.approx(2 / 3),  # online_dossier_rate: D1, D2 of 3
        pytest.approx(1 / 3),  # full_process_dossier_rate: D1
        pytest.approx(2 / 3),  # data_reuse_rate: D1 prefilled, D2 reused
        0.5,  # digitization_rate: D1 of the service/2 dossiers D1, D2
        0.5,  # prefilled_submission_share: D1 of the online D1, D2
        0.5,  # prefill_depth: 10 of 20 fields
        pytest.approx(2 / 3),  # on_time_rate: D1 (due), D3 (flag); D2 late despite its pause
        4.5,  # average_resolution_days: (4 + 5) / 2, service/2 only
        0.5,  # electronic_result_rate: D1 of D1, D2
        1.0,  # online_payment_rate: D1's payment
        0.5,  # full_process_offering_rate: 1.001193 of the eligible 1.001193, 1.000656
        pytest.approx(2 / 3),  # prefill_design_coverage: 1.001193, 1.000894 of 3 online
    )
    assert migrations.apply(cluster_shaped) == []  # the ledger inserts recorded every file
