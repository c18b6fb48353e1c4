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


def _simulated_batch(n: int) -> dict[str, list[bytes]]:
    """Every table's RowBinary rows from ``n`` simulated messages (duplicates and refusals
    included), with hostile text in a refused message."""
    from producers.simulation.simulator import SimulationConfig, simulate

    catalog = load_catalog()
    sim = simulate(SimulationConfig(seed=7, events=n), catalog)
    out, insp, doss, offs = RowBuffer(), {}, {}, {}  # type: ignore[var-annotated]
    hostile = [b"{\"agency_code\": \"x'); DROP TABLE service_events; --\\\\\"}",
               "Hồ sơ ả \\' \" \\\\".encode(), b"\xff\xfe"]  # fmt: skip
    values = [m.value for m in sim.messages] + hostile
    for offset, value in enumerate(values):
        process(value, Origin("topic-ả", offset % 3, offset),
                now=datetime(2026, 1, 1, tzinfo=UTC), known_agencies=catalog.agencies,
                inspection_states=insp, dossier_states=doss, out=out,
                offering_states=offs)  # fmt: skip
    return out.take()


def test_rowbinary_through_the_embedded_file_insert_equals_raw_insert(warehouse: Any) -> None:
    """The embedded engine's inserts (a scratch file read with LowCardinality unwrapped) give
    the same tables, every column, as clickhouse-connect's raw RowBinary insert of the same
    bytes; a batch written again with its token leaves one copy; no scratch file is left."""
    from streams.warehouse.client import is_embedded, scratch_folder
    from streams.warehouse.tables import COLUMNS

    assert is_embedded(warehouse)
    scratch = scratch_folder(warehouse)
    before = set(scratch.glob("parwatch-insert-*"))
    tables = _simulated_batch(3000)
    assert set(tables) == set(COLUMNS), sorted(tables)
    token = batch_token([("t", 0, 3000)])
    written = write_tables(warehouse, tables, token=token)
    assert written == sum(len(rows) for rows in tables.values())
    assert write_tables(warehouse, tables, token=token) == written  # counted, not inserted
    for table, rows in tables.items():
        assert isinstance(rows[0], bytes), table
        warehouse.command(f"CREATE TABLE {table}_raw AS {table}")
        warehouse.raw_insert(f"{table}_raw", list(COLUMNS[table]), b"".join(rows), fmt="RowBinary")
        cols = ", ".join(COLUMNS[table])
        mine = warehouse.query(f"SELECT {cols} FROM {table} ORDER BY {cols}").result_rows
        theirs = warehouse.query(f"SELECT {cols} FROM {table}_raw ORDER BY {cols}").result_rows
        assert mine == theirs and len(mine) == len(rows), table
    dead = warehouse.query("SELECT payload FROM dead_letters ORDER BY _offset").result_rows
    assert any("DROP TABLE service_events" in p for (p,) in dead)
    assert any("Hồ sơ ả \\' \" \\\\" in p for (p,) in dead)
    assert set(scratch.glob("parwatch-insert-*")) == before


TOKEN = batch_token([("t", 1, 200)])


def test_a_failed_embedded_insert_leaves_no_scratch_file_and_is_retried(warehouse: Any) -> None:
    """An insert that fails (its table is gone) raises ``WarehouseError`` and removes its
    scratch file; once the table is back, the same batch goes in."""
    from streams.warehouse.client import WarehouseError, scratch_folder

    scratch = scratch_folder(warehouse)
    before = set(scratch.glob("parwatch-insert-*"))
    tables = {"service_events": _simulated_batch(200)["service_events"]}
    warehouse.command("RENAME TABLE service_events TO service_events_away")
    with pytest.raises(WarehouseError, match="service_events"):
        write_tables(warehouse, tables, token=TOKEN)
    assert set(scratch.glob("parwatch-insert-*")) == before
    warehouse.command("RENAME TABLE service_events_away TO service_events")
    assert write_tables(warehouse, tables, token=TOKEN) == len(tables["service_events"])
    assert int(warehouse.command("SELECT count() FROM service_events")) == len(
        tables["service_events"]
    )


def test_a_scratch_file_that_cannot_be_written_is_a_retryable_warehouse_error(
    warehouse: Any,
) -> None:
    """The scratch folder unusable (here a file stands in its place): ``WarehouseError``,
    which the sink retries, not a crash; once the way is clear the folder is made again and
    the batch goes in, leaving no scratch file."""
    import shutil

    from streams.warehouse.client import WarehouseError, scratch_folder

    rows = _simulated_batch(100)["service_events"]
    folder = scratch_folder(warehouse)
    shutil.rmtree(folder)
    folder.write_bytes(b"not a folder")
    try:
        with pytest.raises(WarehouseError, match="scratch file"):
            write_tables(warehouse, {"service_events": rows}, token=TOKEN)
    finally:
        folder.unlink()
    assert write_tables(warehouse, {"service_events": rows}, token=TOKEN) == len(rows)
    assert int(warehouse.command("SELECT count() FROM service_events")) == len(rows)
    assert folder.is_dir() and not list(folder.iterdir())


def test_scratch_files_a_killed_process_left_are_removed_when_the_path_is_opened(
    tmp_path: Any,
) -> None:
    """A process killed mid-insert leaves its scratch file beside the warehouse; the next
    process to open that path (the only one that may: chdb allows one) removes it, and only
    the writer's files. Run in a child process: this one holds the tests' chdb path."""
    import subprocess
    import sys

    path = tmp_path / "warehouse"
    folder = tmp_path / "warehouse.scratch"
    folder.mkdir()
    (folder / "parwatch-insert-dead1234.rowbinary").write_bytes(b"\x00" * 4096)
    (folder / "notes.txt").write_text("not ours")
    code = (
        "import sys\n"
        "from streams.warehouse.client import WarehouseConfig, connect, scratch_folder\n"
        "c = connect(WarehouseConfig(sys.argv[1]), create_database=True)\n"
        "print(scratch_folder(c))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, f"chdb://{path}"], capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
