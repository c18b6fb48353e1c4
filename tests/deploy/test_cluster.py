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
    ]


def test_views_and_ledger() -> None:
    views = [s for s in SQL if s.startswith("CREATE VIEW")]
    assert len(views) == 6 and all(" ON CLUSTER pw AS" in v for v in views)
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


ROWS = {
    "inspection_classifications": (
        "agency_code, inspection_id, classification, has_online, has_in_person, activities, "
        "opened_at, concluded_at, cancelled, version, updated_at",
        [
            "('TH-S-TP', 'K1', 'in_person', 0, 1, 1, NULL, '2024-05-31 20:00:00', 0, 1, now64())",
            "('TH-S-TP', 'K1', 'online', 1, 0, 1, NULL, '2024-05-31 20:00:00', 0, 2, now64())",
            "('TH-S-TP', 'K2', 'hybrid', 1, 1, 2, NULL, '2024-07-01 01:00:00', 0, 3, now64())",
            "('TH-S-TP', 'K3', 'in_person', 0, 1, 1, NULL, '2024-08-01 01:00:00', 0, 1, now64())",
            "('TH-S-TP', 'K4', 'online', 1, 0, 1, NULL, '2024-08-01 01:00:00', 1, 2, now64())",
        ],
    ),
    "service_submissions": (
        "event_id, occurred_at, agency_code, procedure_code, dossier_id, channel, service_level, "
        "fields_total, fields_prefilled, prefill_class, _ingested_at",
        [
            "(generateUUIDv4(), '2024-03-01 01:00:00', 'TH-S-TP', 'P1', 'D1', 'online', "
            "'full_process', 10, 10, 'full', now64())",
            "(generateUUIDv4(), '2024-03-02 01:00:00', 'TH-S-TP', 'P2', 'D2', 'online', "
            "'partial', 10, 0, 'none', now64())",
        ],
    ),
}


def kpis(client: Any, suffix: str) -> list[tuple[Any, ...]]:
    for table, (columns, values) in ROWS.items():
        client.command(f"INSERT INTO {table}{suffix} ({columns}) VALUES {', '.join(values)}")
    return list(client.query(
        "SELECT agency_code, period, online_inspection_share, prefilled_submission_share, "
        "full_process_share, inspections_classified FROM kpi_year ORDER BY agency_code"
    ).result_rows)  # fmt: skip


@pytest.mark.clickhouse
def test_cluster_schema_gives_the_kpis_of_the_plain_schema(
    cluster_shaped: Any, warehouse: Any
) -> None:
    shaped = kpis(cluster_shaped, "_local")
    assert shaped == kpis(warehouse, "")
    # K1's latest version is online; K4 is cancelled: online 1, hybrid 1, in person 1.
    assert shaped[0][:3] == ("TH-S-TP", "2024", pytest.approx(1 / 3))
    assert shaped[0][3:] == (0.5, 0.5, 3)
    assert migrations.apply(cluster_shaped) == []  # the ledger inserts recorded every file
