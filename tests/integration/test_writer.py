"""``write_tables`` against the embedded ClickHouse: a batch naming a table it does not know is
refused before anything is inserted."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.catalog import load_catalog
from streams.warehouse.writer import batch_token, write_tables
from streams.worker.processor import RowBuffer, process
from streams.worker.rows import Origin
from tests.conftest import make_inspection_event, make_service_event

pytestmark = pytest.mark.clickhouse


def _batch() -> dict[str, Any]:
    out, insp, doss = RowBuffer(), {}, {}  # type: ignore[var-annotated]
    catalog = load_catalog()
    payloads = [make_inspection_event(inspection_id="KT-W-1"), make_service_event()]
    for offset, payload in enumerate(payloads):
        process(json.dumps(payload).encode(), Origin("t", 0, offset),
                now=datetime(2026, 1, 1, tzinfo=UTC), known_agencies=catalog.agencies,
                inspection_states=insp, dossier_states=doss, out=out)  # fmt: skip
    return dict(out.take())


def _counts(client: Any) -> dict[str, int]:
    tables = ("inspection_events", "service_events", "service_submissions", "dead_letters")
    return {t: int(client.command(f"SELECT count() FROM {t}")) for t in tables}


def test_an_unknown_table_inserts_nothing(warehouse: Any) -> None:
    tables = _batch()
    assert tables["inspection_events"] and tables["service_events"]
    row = tables["inspection_events"][0]
    with pytest.raises(ValueError, match=r"no such tables: \['inspection_event'\]"):
        write_tables(
            warehouse, {**tables, "inspection_event": [row]}, token=batch_token([("t", 0, 1)])
        )
    assert set(_counts(warehouse).values()) == {0}


def test_known_tables_are_all_written(warehouse: Any) -> None:
    tables = _batch()
    written = write_tables(warehouse, tables, token=batch_token([("t", 0, 2)]))
    assert written == sum(len(rows) for rows in tables.values())
    counts = _counts(warehouse)
    assert counts["inspection_events"] == 1
    assert counts["service_events"] == 1
    assert counts["dead_letters"] == 0
