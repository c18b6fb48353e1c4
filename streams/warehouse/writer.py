"""Blocking, idempotent batch writes to the warehouse.

``write_tables`` inserts each table's rows in one insert, in a fixed table order, with an
``insert_deduplication_token`` derived from the batch's Kafka positions: the same batch inserted
again (a retry after a timeout whose insert had in fact succeeded) leaves one copy. Across
crashes, batches differ, and the tables' ReplacingMergeTree keys collapse repeated rows.

RowBinary rows reach the embedded engine as ``INSERT … SELECT * FROM file(…)`` of a scratch
file, read with each ``LowCardinality(T)`` column declared as ``T``: the engine then converts
whole columns, where RowBinary read straight into ``LowCardinality`` columns costs about twice
the CPU (measured: 7.4-9.1 against 3.5-4.4 us a ``service_events`` row on the 2-core
machine). A ClickHouse server gets the same bytes by ``raw_insert``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path

from clickhouse_connect.driver.binding import format_query_value, quote_identifier
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from streams.warehouse.client import (
    SCRATCH_PREFIX,
    SCRATCH_SUFFIX,
    WarehouseError,
    is_embedded,
    scratch_folder,
)
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


# Inserts into the embedded engine run on one thread: the worker's own two processes keep the
# two cores busy, and an insert's pipeline threads competing with them for the cores cost more
# CPU than they saved (figures in docs/benchmark.md).
EMBEDDED_INSERT_SETTINGS = {"max_threads": "1", "max_insert_threads": "1"}


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
                data = b"".join(batch)
                if is_embedded(client):
                    _insert_from_file(client, table, data, {**EMBEDDED_INSERT_SETTINGS, **settings})
                else:
                    client.raw_insert(
                        table, list(COLUMNS[table]), data, settings=settings, fmt="RowBinary"
                    )
            else:
                client.insert(table, batch, column_names=list(COLUMNS[table]), settings=settings)
        except ClickHouseError as exc:
            raise WarehouseError(f"insert into {table} failed: {exc}") from exc
        written += len(batch)
    return written


_STRUCTURES: weakref.WeakKeyDictionary[Client, dict[str, str]] = weakref.WeakKeyDictionary()


def _plain_type(column_type: str) -> str:
    """``T`` for ``LowCardinality(T)``, any other type as it is."""
    if column_type.startswith("LowCardinality(") and column_type.endswith(")"):
        return column_type[len("LowCardinality(") : -1]
    return column_type


def _structure(client: Client, table: str) -> str:
    """``COLUMNS[table]`` with the table's own types (``LowCardinality`` unwrapped), as a
    ``file()`` structure; read from the engine once per client and table."""
    known = _STRUCTURES.setdefault(client, {})
    structure = known.get(table)
    if structure is None:
        found = client.query(
            "SELECT name, type FROM system.columns "
            "WHERE database = currentDatabase() AND table = {table:String}",
            parameters={"table": table},
        ).result_rows
        types = {str(name): str(column_type) for name, column_type in found}
        missing = [c for c in COLUMNS[table] if c not in types]
        if missing:
            raise WarehouseError(f"table {table} has no columns {missing}: run parwatch migrate")
        structure = ", ".join(
            f"{quote_identifier(c)} {_plain_type(types[c])}" for c in COLUMNS[table]
        )
        known[table] = structure
    return structure


def _insert_from_file(client: Client, table: str, data: bytes, settings: dict[str, str]) -> None:
    """Insert RowBinary ``data`` (``COLUMNS[table]``, in order) into ``table`` of the embedded
    engine through a scratch file in the client's ``scratch_folder``, removed afterwards (one a
    killed process left is removed when the path is opened again); a file that cannot be
    written raises ``WarehouseError``: retried, like an outage. ``table`` is one of ``TABLE_ORDER``
    (checked by the caller); the file name and the settings' values travel as quoted literals
    or query parameters, never as SQL text."""
    folder = scratch_folder(client)
    try:
        folder.mkdir(parents=True, exist_ok=True)  # removed meanwhile: made again
        fd, name = tempfile.mkstemp(prefix=SCRATCH_PREFIX, suffix=SCRATCH_SUFFIX, dir=folder)
    except OSError as exc:  # a full or missing temp folder: retried like an outage
        raise WarehouseError(f"cannot create the insert's scratch file: {exc}") from exc
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except OSError as exc:
            raise WarehouseError(f"cannot write the insert's scratch file: {exc}") from exc
        columns = ", ".join(quote_identifier(c) for c in COLUMNS[table])
        if not all(k.isidentifier() for k in settings):
            raise ValueError(f"not setting names: {sorted(settings)}")
        clause = ", ".join(f"{k} = {format_query_value(v)}" for k, v in settings.items())
        sql = (
            f"INSERT INTO {quote_identifier(table)} ({columns})"
            + (f" SETTINGS {clause}" if clause else "")
            + " SELECT * FROM file({path:String}, 'RowBinary', {structure:String})"
        )
        try:
            client.command(sql, parameters={"path": name, "structure": _structure(client, table)})
        except ClickHouseError:
            _STRUCTURES.get(client, {}).pop(table, None)  # read the types again next time
            raise
    finally:
        Path(name).unlink(missing_ok=True)
