"""``parwatch migrate``: create or update the warehouse schema, catalogs and KPI settings."""

from __future__ import annotations

import argparse

from clickhouse_connect.driver.client import Client

from parwatch import wiring
from parwatch.errors import UsageError
from parwatch.settings import Settings
from streams.warehouse import cluster, migrations
from streams.warehouse.reference import load_catalog_tables, write_kpi_settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "migrate",
        help="apply missing warehouse migrations, load catalogs and KPI targets",
        description=(
            "Apply, in order, the numbered SQL migrations under schemas/clickhouse/ that the "
            "warehouse (PARWATCH_CLICKHOUSE_URL, database PARWATCH_CLICKHOUSE_DATABASE) has not "
            "recorded yet, and record them in schema_migrations; running it twice changes "
            "nothing. Then reload the agency and procedure catalogs and write the KPI targets "
            "and the hybrid policy (PARWATCH_TARGET_*, PARWATCH_HYBRID_COUNTS_AS_ONLINE). "
            "With --cluster NAME, print instead the same schema for a ClickHouse cluster: "
            "each fact table as a Replicated <table>_local ON CLUSTER NAME behind a Distributed "
            "table of the original name, reference tables replicated to every node, views ON "
            "CLUSTER (see deploy/README.md)."
        ),
    )
    p.add_argument(
        "--cluster", metavar="NAME",
        help="print the DDL for the ClickHouse cluster NAME (remote_servers) instead of migrating",
    )  # fmt: skip
    p.add_argument(
        "--apply", action="store_true",
        help="with --cluster: run that DDL on PARWATCH_CLICKHOUSE_URL, a node of the cluster "
        "(migrations not yet in schema_migrations only), then load catalogs and KPI targets; "
        "the user needs the CLUSTER privilege",
    )  # fmt: skip
    p.set_defaults(run=run)


def prepare(client: Client, settings: Settings) -> list[migrations.Migration]:
    """Migrate, load the catalogs and write the KPI settings; return migrations applied now."""
    applied = migrations.apply(client)
    load_catalog_tables(client, wiring.catalog(settings))
    write_kpi_settings(client, wiring.kpi_settings(settings))
    return applied


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.apply and not args.cluster:
        raise UsageError("--apply needs --cluster NAME")
    if args.cluster:
        return run_cluster(args.cluster, settings, apply=args.apply)
    client = wiring.open_warehouse(settings, create_database=True)
    applied = prepare(client, settings)
    for m in applied:
        print(f"applied {m.version:04d}_{m.name}")
    total = len(migrations.load_migrations())
    print(f"{len(applied)} applied now, {total} in all; catalogs and KPI targets loaded")
    return 0


def run_cluster(name: str, settings: Settings, *, apply: bool) -> int:
    """Print the cluster DDL, or apply the part the node's ledger lacks, then prepare."""
    try:
        statements = cluster.cluster_ddl(
            migrations.load_migrations(), name, settings.clickhouse_database
        )
    except cluster.ClusterDDLError as exc:
        raise UsageError(str(exc)) from None
    if not apply:
        print(cluster.render(statements), end="")
        return 0
    if settings.warehouse_url.startswith("chdb:"):
        raise UsageError("--apply needs a ClickHouse server: PARWATCH_CLICKHOUSE_URL=http(s)://...")
    client = wiring.open_warehouse(settings, create_database=True)
    for s in (s for s in statements if s.version == 0):  # database and replicated ledger
        client.command(s.sql)
    done = migrations.applied(client)
    for m in migrations.load_migrations():
        if m.version in done:
            if done[m.version] != m.checksum:
                raise UsageError(f"migration {m.version:04d}_{m.name} changed after it was applied")
            continue
        for s in (s for s in statements if s.version == m.version):
            client.command(s.sql)
        print(f"applied {m.version:04d}_{m.name} on cluster {name}")
    prepare(client, settings)
    print(f"cluster {name}: schema up to date; catalogs and KPI targets loaded")
    return 0
