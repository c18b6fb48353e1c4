"""Blocking, idempotent batch writes to the warehouse.

``write_tables`` inserts each table's rows in one insert, in a fixed table order, with an
``insert_deduplication_token`` derived from the batch's Kafka positions: the same batch inserted
again (a retry after a timeout whose insert had in fact succeeded) leaves one copy. Across
crashes, batches differ, and the tables' ReplacingMergeTree keys collapse repeated rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from streams.warehouse.client import WarehouseError
from streams.warehouse.tables import COLUMNS, Row

TABLE_ORDER = (
    "dead_letters",
    "duplicates",
    "inspection_events",
    "service_events",
    "dossier_lifecycle",
    "service_submissions",
    "offering_events",
    "inspection_classifications",
)


def batch_token(positions: Iterable[tuple[str, int, int]]) -> str:
    """A token from the (topic, partition, offset) set of a batch: same batch, same token."""
    h = hashlib.sha256()
    for topic, partition, offset in sorted(positions):
        h.update(f"{topic}/{partition}/{offset};".encode())
    return h.hexdigest()[:32]


def write_tables(
    client: Client, tables: Mapping[str, list[Row] | list[bytes]], token: str | None
) -> int:
    """Insert every non-empty table; return rows written. A table's rows are all lists (its
    ``COLUMNS``), or all RowBinary bytes. Raises ``ValueError``, before inserting anything, when
    ``tables`` names a table not in ``TABLE_ORDER``; ``WarehouseError`` when an insert fails."""
    unknown = set(tables) - set(TABLE_ORDER)
    if unknown:
        raise ValueError(f"no such tables: {sorted(unknown)}")
    written = 0
    for table in TABLE_ORDER:
        batch = tables.get(table)
        if not batch:
            continue
        settings = {"insert_deduplication_token": f"{token}:{table}"} if token else {}
        try:
            if isinstance(batch[0], bytes):  # rows already RowBinary (``rowbinary``)
                client.raw_insert(
                    table, list(COLUMNS[table]), b"".join(batch), settings=settings,
                    fmt="RowBinary",
                )  # fmt: skip
            else:
                client.insert(table, batch, column_names=list(COLUMNS[table]), settings=settings)
        except ClickHouseError as exc:
            raise WarehouseError(f"insert into {table} failed: {exc}") from exc
        written += len(batch)
    return written
