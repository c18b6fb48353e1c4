"""``dossier_lifecycle`` on the embedded ClickHouse: a dossier's events in shuffled orders through
``processor.process`` and the writer give the row of its whole lifecycle (read with FINAL);
states evicted and rebuilt from ``service_events`` equal the live ones, and a late event after
the rebuild gives the full lifecycle; a crash between the event's insert and the lifecycle's
heals on the redelivery."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from streams.warehouse.tables import COLUMNS
from streams.warehouse.writer import write_tables
from streams.worker.partitioning import key_hash
from streams.worker.processor import Result, RowBuffer, process
from streams.worker.restore import load_states
from streams.worker.rows import Origin
from tests.unit.test_lifecycle_rows import (
    AGENCY,
    CATALOG,
    COMPLETED,
    PAID,
    RECEIVED,
    REQUESTED,
    SUBMITTED,
    _raw,
    lifecycle_events,
    v2,
)

pytestmark = pytest.mark.clickhouse

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _at(text: str) -> datetime:
    """A ``DateTime64(3, 'UTC')`` value as clickhouse-connect reads it back."""
    return datetime.fromisoformat(text).astimezone(UTC)


def _expected(dossier_id: str, version: int = 5) -> dict[str, Any]:
    return {
        "agency_code": AGENCY, "dossier_id": dossier_id, "procedure_code": "1.001193",
        "submitted_at": _at(SUBMITTED), "submission_schema": "service/2", "channel": "online",
        "service_level": "full_process", "fields_total": 10, "fields_prefilled": 3,
        "due_at": _at("2024-06-20T17:00:00+07:00"), "digitized": 1, "reused_components": 1,
        "ended_at": _at(COMPLETED), "end_type": "completed", "end_schema": "service/2",
        "on_time": None, "result_electronic": 1, "paid_at": _at(PAID),
        "payment_channel": "online", "pause_starts": [_at(REQUESTED)],
        "pause_ends": [_at(RECEIVED)], "effective_due_at": _at("2024-06-22T17:00:00+07:00"),
        "paused_ms": 2 * 86_400_000, "version": version, "updated_at": NOW,
    }  # fmt: skip


class Run:
    def __init__(self) -> None:
        self.out = RowBuffer()
        self.insp: dict[str, Any] = {}
        self.doss: dict[str, Any] = {}

    def feed(self, raw: bytes, offset: int, partition: int = 0) -> Result:
        return process(
            raw, Origin("services", partition, offset), now=NOW,
            known_agencies=CATALOG.agencies, inspection_states=self.insp,
            dossier_states=self.doss, out=self.out,
        ).result  # fmt: skip

    def write(self, warehouse: Any, tables: tuple[str, ...] | None = None) -> None:
        taken = self.out.take()
        write_tables(
            warehouse, {t: r for t, r in taken.items() if tables is None or t in tables}, None
        )


def _lifecycles(warehouse: Any) -> dict[str, dict[str, Any]]:
    names = COLUMNS["dossier_lifecycle"]
    got = warehouse.query(
        f"SELECT {', '.join(names)} FROM dossier_lifecycle FINAL ORDER BY dossier_id"
    ).result_rows
    out = {}
    for r in got:
        row = dict(zip(names, r, strict=True))
        for col in ("submitted_at", "due_at", "ended_at", "paid_at", "effective_due_at",
                    "updated_at"):  # fmt: skip
            if row[col] is not None:
                row[col] = row[col].replace(tzinfo=UTC)
        row["pause_starts"] = [t.replace(tzinfo=UTC) for t in row["pause_starts"]]
        row["pause_ends"] = [
            None if t is None else t.replace(tzinfo=UTC) for t in row["pause_ends"]
        ]
        out[row["dossier_id"]] = row
    return out


def test_shuffled_events_give_the_whole_lifecycle_row(warehouse: Any) -> None:
    rng = random.Random(766)
    run = Run()
    offset = 0
    names = []
    for n in range(6):
        dossier_id = f"HS-SHUF-{n}"
        names.append(dossier_id)
        events = [{**e, "dossier_id": dossier_id} for e in lifecycle_events()]
        rng.shuffle(events)
        for i, event in enumerate(events):
            assert run.feed(_raw(event), offset) is Result.ACCEPTED
            offset += 1
            if i in (1, 3):  # several writes per dossier: FINAL keeps the highest version
                run.write(warehouse)
        run.write(warehouse)
    rows = _lifecycles(warehouse)
    assert sorted(rows) == names
    for dossier_id in names:
        got, want = rows[dossier_id], _expected(dossier_id)
        for col in COLUMNS["dossier_lifecycle"]:
            assert got[col] == want[col], (dossier_id, col)
    versions = warehouse.query(
        "SELECT dossier_id, groupArray(version) FROM dossier_lifecycle GROUP BY dossier_id"
    ).result_rows
    assert all(max(v) == 5 for _, v in versions)


def test_states_rebuilt_from_the_warehouse_equal_the_live_ones(warehouse: Any) -> None:
    """Every dossier of a simulation (v1 and v2, every event type), processed live, written,
    then rebuilt from ``service_events`` alone: equal states, lifecycles included."""
    from producers.simulation.simulator import SimulationConfig, simulate

    sim = simulate(SimulationConfig(seed=11, events=3000), CATALOG)
    run = Run()
    for offset, m in enumerate(sim.messages):  # on their key's partition, as the worker reads
        run.feed(m.value, offset, partition=key_hash((m.key or b"").decode()) % 3)
    run.write(warehouse)
    live = {k: v for k, v in run.doss.items() if v is not None}
    assert len(live) > 300
    wanted = [(k.split(":", 1)[0], k.split(":", 1)[1]) for k in live]
    _, rebuilt = load_states(warehouse, [], wanted)
    assert rebuilt == live
    assert sum(1 for s in live.values() if s.lifecycle.supplements) > 10
    # The table holds every dossier's latest lifecycle.
    stored = dict(warehouse.query(
        "SELECT concat(agency_code, ':', dossier_id), version FROM dossier_lifecycle FINAL"
    ).result_rows)  # fmt: skip
    assert stored == {k: s.version for k, s in live.items()}


def test_a_late_event_after_the_state_was_evicted(warehouse: Any) -> None:
    events = [_raw({**e, "dossier_id": "HS-LATE"}) for e in lifecycle_events()]
    run = Run()
    for offset, raw in enumerate(events[:4]):
        run.feed(raw, offset)
    run.write(warehouse)
    live = run.doss["TH-S-TP:HS-LATE"]
    run.doss.clear()  # evicted from the cache (or another worker took the partition over)
    _, rebuilt = load_states(warehouse, [], [(AGENCY, "HS-LATE")])
    assert rebuilt == {"TH-S-TP:HS-LATE": live}
    run.doss.update(rebuilt)
    assert run.feed(events[4], 4) is Result.ACCEPTED  # the completion, late
    assert run.feed(events[0], 0) is Result.REDELIVERED  # the submission read again
    assert run.feed(events[1], 9) is Result.DUPLICATE  # another copy of a known event
    run.write(warehouse)
    assert _lifecycles(warehouse) == {"HS-LATE": _expected("HS-LATE")}


def test_a_crash_between_the_inserts_heals_on_redelivery(warehouse: Any) -> None:
    """The event's rows are in, the lifecycle's are not (the write stopped between the two
    inserts, nothing committed): the message is read again, its state rebuilt from the
    warehouse, and its lifecycle row written."""
    events = [_raw({**e, "dossier_id": "HS-CRASH"}) for e in lifecycle_events()]
    run = Run()
    for offset, raw in enumerate(events[:4]):
        run.feed(raw, offset)
    run.write(warehouse)
    run.feed(events[4], 4)
    run.write(warehouse, tables=("service_events",))  # crashed before dossier_lifecycle
    assert _lifecycles(warehouse)["HS-CRASH"]["version"] == 4
    restarted = Run()  # a new process: states from the warehouse
    _, restarted.doss = load_states(warehouse, [], [(AGENCY, "HS-CRASH")])
    assert restarted.feed(events[4], 4) is Result.REDELIVERED
    restarted.write(warehouse)
    assert _lifecycles(warehouse) == {"HS-CRASH": _expected("HS-CRASH")}


def test_a_service_1_dossier_and_an_open_pause(warehouse: Any) -> None:
    from tests.conftest import make_service_event

    run = Run()
    run.feed(_raw(make_service_event(dossier_id="HS-V1", channel="counter", form=None,
                                     service_level=None)), 0)  # fmt: skip
    run.feed(_raw(make_service_event(dossier_id="HS-V1", event_type="completed", on_time=True,
                                     occurred_at=COMPLETED)), 1)  # fmt: skip
    run.feed(_raw(v2("supplement_requested", REQUESTED, dossier_id="HS-OPEN")), 2)
    run.feed(_raw(v2("withdrawn", COMPLETED, dossier_id="HS-OPEN")), 3)
    run.write(warehouse)
    rows = _lifecycles(warehouse)
    v1 = rows["HS-V1"]
    assert (v1["submission_schema"], v1["channel"], v1["due_at"], v1["digitized"]) == (
        "service/1", "counter", None, None,
    )  # fmt: skip
    assert (v1["end_type"], v1["end_schema"], v1["on_time"], v1["result_electronic"]) == (
        "completed", "service/1", 1, None,
    )  # fmt: skip
    opened = rows["HS-OPEN"]
    assert (opened["submitted_at"], opened["procedure_code"], opened["end_type"]) == (
        None, "", "withdrawn",
    )  # fmt: skip
    assert opened["pause_starts"] == [_at(REQUESTED)] and opened["pause_ends"] == [None]
