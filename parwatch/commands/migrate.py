"""``parwatch migrate``: create or update the warehouse schema, catalogs and KPI settings."""

from __future__ import annotations

import argparse

from clickhouse_connect.driver.client import Client

from parwatch import wiring
from parwatch.settings import Settings
from streams import migrations
from streams.reference import load_catalog_tables, write_kpi_settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "migrate",
        help="apply missing warehouse migrations, load catalogs and KPI targets",
        description=(
            "Apply, in order, the numbered SQL migrations under schemas/clickhouse/ that the "
            "warehouse (PARWATCH_CLICKHOUSE_URL, database PARWATCH_CLICKHOUSE_DATABASE) has not "
            "recorded yet, and record them in schema_migrations; running it twice changes "
            "nothing. Then reload the agency and procedure catalogs and write the KPI targets "
            "and the hybrid policy (PARWATCH_TARGET_*, PARWATCH_HYBRID_COUNTS_AS_ONLINE)."
        ),
    )
    p.set_defaults(run=run)


def prepare(client: Client, settings: Settings) -> list[migrations.Migration]:
    """Migrate, load the catalogs and write the KPI settings; return migrations applied now."""
    applied = migrations.apply(client)
    load_catalog_tables(client, wiring.catalog(settings))
    write_kpi_settings(client, wiring.kpi_settings(settings))
    return applied


def run(args: argparse.Namespace, settings: Settings) -> int:
    client = wiring.open_warehouse(settings, create_database=True)
    applied = prepare(client, settings)
    for m in applied:
        print(f"applied {m.version:04d}_{m.name}")
    total = len(migrations.load_migrations())
    print(f"{len(applied)} applied now, {total} in all; catalogs and KPI targets loaded")
    return 0
