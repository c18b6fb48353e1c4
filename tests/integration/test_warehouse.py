"""The warehouse on the embedded engine: migrations, every example through decode -> classify
-> rows -> insert, and the KPI views against the reference KPI computation."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import InvalidEvent, Reason, decode
from schemas.catalog import load_catalog
from schemas.example_payloads import load_examples
from schemas.kpi import reference_kpis, rows_to_json
from streams.warehouse import migrations
from streams.warehouse.kpi_query import read_kpi_json, read_kpis
from streams.warehouse.reference import KpiSettings, load_catalog_tables, write_kpi_settings
from streams.warehouse.writer import write_tables
from streams.worker.processor import Result, RowBuffer, process
from streams.worker.rows import Origin
from tests.conftest import make_inspection_event, make_service_event

pytestmark = pytest.mark.clickhouse

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CATALOG = load_catalog()


def _run(client: Any, payloads: list[bytes], topic: str = "t") -> list[Result]:
    out, insp, doss, offers = RowBuffer(), {}, {}, {}  # type: ignore[var-annotated]
    results = []
    for offset, raw in enumerate(payloads):
        p = process(
            raw, Origin(topic, offset % 3, offset), now=NOW, known_agencies=CATALOG.agencies,
            inspection_states=insp, dossier_states=doss, offering_states=offers, out=out,
        )  # fmt: skip
        results.append(p.result)
    write_tables(client, out.take(), token=None)
    return results


def test_migrate_twice_changes_nothing(warehouse: Any) -> None:
    assert migrations.apply(warehouse) == []
    recorded = warehouse.query("SELECT count() FROM schema_migrations FINAL").result_rows[0][0]
    assert recorded == len(migrations.load_migrations()) >= 5  # more are appended over time


def test_kpi_bounds_are_the_first_and_last_event_or_null(warehouse: Any) -> None:
    """NULL bounds on an empty warehouse; then the first and last occurred_at (ms) of any
    accepted event, whichever table holds it."""
    assert warehouse.query("SELECT lo_ms, hi_ms FROM kpi_bounds").result_rows == [(None, None)]
    early = json.dumps(make_service_event(occurred_at="2024-03-01T08:00:00.123+07:00")).encode()
    late = json.dumps(make_inspection_event(occurred_at="2025-11-30T23:59:59.999+07:00")).encode()
    assert _run(warehouse, [early, late]) == [Result.ACCEPTED, Result.ACCEPTED]
    lo = int(datetime(2024, 3, 1, 1, 0, 0, 123000, tzinfo=UTC).timestamp() * 1000)
    hi = int(datetime(2025, 11, 30, 16, 59, 59, 999000, tzinfo=UTC).timestamp() * 1000)
    assert warehouse.query("SELECT lo_ms, hi_ms FROM kpi_bounds").result_rows == [(lo, hi)]


def test_every_example_lands_where_it_should(warehouse: Any) -> None:
    examples = load_examples()
    results = _run(warehouse, [e.raw for e in examples])
    for e, r in zip(examples, results, strict=True):
        assert (r is Result.REFUSED) == (e.reason is not None), e.name
    reasons = warehouse.query(
        "SELECT reason, count() FROM dead_letters GROUP BY reason ORDER BY reason"
    ).result_rows
    expected: dict[str, int] = {}
    for e in examples:
        if e.reason:
            expected[e.reason.value] = expected.get(e.reason.value, 0) + 1
    assert dict(reasons) == expected
    accepted = {json.loads(e.raw)["event_id"] for e in examples if e.reason is None}
    stored = warehouse.query(
        "SELECT toString(event_id) FROM inspection_events UNION ALL "
        "SELECT toString(event_id) FROM service_events UNION ALL "
        "SELECT toString(event_id) FROM offering_events"
    ).result_rows
    assert {r[0] for r in stored} == accepted
    pii = warehouse.query(
        "SELECT payload FROM dead_letters WHERE reason = 'pii_detected'"
    ).result_rows
    assert pii and all("[REDACTED]" in p[0] and "038190012345" not in p[0] for p in pii)
    text = warehouse.query(
        "SELECT JSONExtractString(payload, 'ghi_chu') FROM inspection_events "
        "WHERE JSONHas(payload, 'ghi_chu')"
    ).result_rows
    assert text == [("Kiểm tra qua hệ thống thông tin báo cáo của tỉnh",)]


def _scenario(
    seed: int, n_inspections: int = 60, n_dossiers: int = 200
) -> tuple[list[bytes], list[bytes]]:
    """Random inspections and dossiers, shuffled, with duplicates re-sent."""
    rng = random.Random(seed)
    agencies = ["TH-S-TP", "TH-S-TTTT", "TH-D380", "TH-D399"]
    modes = ["on_site", "in_person_meeting", "video_conference", "information_system"]
    events: list[dict[str, Any]] = []
    for i in range(n_inspections):
        agency, iid = rng.choice(agencies), f"KT-{i}"
        day = rng.randint(1, 28)
        month = rng.choice([5, 6, 7])
        for _ in range(rng.randint(0, 4)):
            events.append(make_inspection_event(
                agency_code=agency, inspection_id=iid,
                occurred_at=f"2024-{month:02d}-{day:02d}T10:00:00+07:00",
                activity={"mode": rng.choice(modes)},
            ))  # fmt: skip
        if rng.random() < 0.9:
            hour = rng.choice(["03", "12", "23"])
            events.append(make_inspection_event(
                agency_code=agency, inspection_id=iid, event_type="concluded",
                occurred_at=f"2024-{month:02d}-01T{hour}:00:00+07:00",
            ))  # fmt: skip
        if rng.random() < 0.1:
            events.append(make_inspection_event(
                agency_code=agency, inspection_id=iid, event_type="cancelled"
            ))  # fmt: skip
    for d in range(n_dossiers):
        agency = rng.choice(agencies)
        channel = rng.choice(["online", "online", "counter", "postal"])
        total = rng.randint(5, 20)
        sub = make_service_event(
            agency_code=agency, dossier_id=f"HS-{d}", channel=channel,
            procedure_code=rng.choice(["1.001193", "1.000656", "2.000908"]),
            occurred_at=f"2024-06-{rng.randint(1, 30):02d}T0{rng.randint(0, 9)}:00:00+07:00",
        )  # fmt: skip
        if channel == "online":
            sub["form"] = {"fields_total": total, "fields_prefilled": rng.choice([0, 3, total])}
            sub["service_level"] = rng.choice(["full_process", "partial"])
        else:
            for k in ("form", "service_level"):
                sub.pop(k)
        events.append(sub)
        if rng.random() < 0.7:
            events.append(make_service_event(
                agency_code=agency, dossier_id=f"HS-{d}", event_type="completed",
                on_time=rng.random() < 0.8, occurred_at="2024-07-02T08:00:00+07:00",
            ))  # fmt: skip
    rng.shuffle(events)
    raws = [json.dumps(e, ensure_ascii=False).encode() for e in events]
    return raws, [raws[i] for i in range(0, len(raws), 7)]  # duplicates, re-sent later


@pytest.mark.parametrize("hybrid", [False, True])
def test_kpi_views_equal_the_reference(warehouse: Any, hybrid: bool) -> None:
    write_kpi_settings(warehouse, KpiSettings(hybrid_counts_as_online=hybrid))
    load_catalog_tables(warehouse, CATALOG)
    originals, resent = _scenario(seed=7)
    raws = originals + resent
    results = _run(warehouse, raws)
    assert results.count(Result.DUPLICATE) == len(resent)
    assert results.count(Result.ACCEPTED) == len(originals)
    events = [decode(r, known_agency=CATALOG.agencies, now=NOW) for r in raws]
    for kind in ("month", "quarter", "year"):
        expected = reference_kpis(events, kinds=[kind], hybrid_counts_as_online=hybrid)
        measured = read_kpis(warehouse, kind)
        assert measured == expected
        assert any(r.agency_code is None for r in measured)
    june = {r.agency_code: r for r in read_kpis(warehouse, "month") if r.period == "2024-06"}
    assert june[None].online_submissions > 0


def _narrow_views_equal_the_kpi_view(client: Any, kind: str) -> None:
    """kpi_services_<kind> and kpi_inspections_<kind> (what the plan dashboard reads): each of
    their columns equals kpi_<kind>'s column of that name, on kpi_<kind>'s rows where the
    family has a fact, with the same types."""
    for family, fact in (
        ("services", "services_existing"),
        ("inspections", "inspections_online + inspections_hybrid + inspections_in_person + "
         "inspections_unclassified + inspections_thanh_tra + activities"),
    ):  # fmt: skip
        narrow = client.query(f"SELECT * FROM kpi_{family}_{kind} ORDER BY period, agency_code")
        cols = ", ".join(narrow.column_names)
        wide = client.query(
            f"SELECT {cols} FROM kpi_{kind} WHERE {fact} > 0 ORDER BY period, agency_code"
        )
        assert narrow.column_types == wide.column_types, (family, kind)
        assert narrow.result_rows == wide.result_rows, (family, kind)
        assert len(narrow.result_rows) > 0, (family, kind)


@pytest.mark.parametrize("hybrid", [False, True])
def test_kpi_views_equal_the_reference_on_v2_traffic(warehouse: Any, hybrid: bool) -> None:
    """The simulator's traffic (service/2 lifecycles with pauses, payments and open dossiers,
    offering/1 upgrades, inspection kinds, v1 agencies, duplicates and refusals): every KPI of
    every agency and period (day to year) equals ``reference_kpis`` over the same events."""
    from producers.simulation.simulator import SimulationConfig, simulate

    write_kpi_settings(warehouse, KpiSettings(hybrid_counts_as_online=hybrid))
    load_catalog_tables(warehouse, CATALOG)
    sim = simulate(SimulationConfig(seed=31, events=4000), CATALOG)
    raws = [m.value for m in sim.messages]
    results = _run(warehouse, raws)
    assert results.count(Result.ACCEPTED) > 3500
    events = []
    for raw in raws:
        try:
            events.append(decode(raw, known_agency=CATALOG.agencies, now=NOW))
        except InvalidEvent:
            continue
    for kind in ("day", "month", "quarter", "year"):
        expected = reference_kpis(events, kinds=[kind], hybrid_counts_as_online=hybrid)
        assert read_kpis(warehouse, kind) == expected, kind
        # the JSON path (no model per row) gives the model's JSON shape, in the same order
        assert read_kpi_json(warehouse, kind) == rows_to_json(expected), kind
        assert read_kpi_json(warehouse, kind, agency="TH-S-TP") == rows_to_json(
            [r for r in expected if r.agency_code == "TH-S-TP"]
        )
        _narrow_views_equal_the_kpi_view(warehouse, kind)
    year = {r.agency_code: r for r in read_kpis(warehouse, "year") if r.period == "2025"}
    province = year[None]  # the v2 facts are there to compare, not all None or 0
    assert province.services_eligible > 0 and province.full_process_offering_rate is not None
    assert province.dossiers_v2 > 0 and province.payments > 0 and province.completions_v2 > 0
    assert province.on_time_rate is not None and province.average_resolution_days is not None


def test_duplicates_are_counted_once(warehouse: Any) -> None:
    raw = json.dumps(make_service_event()).encode()
    results = _run(warehouse, [raw, raw, raw])
    assert results == [Result.ACCEPTED, Result.DUPLICATE, Result.DUPLICATE]
    assert warehouse.query("SELECT count() FROM duplicates").result_rows[0][0] == 2
    assert warehouse.query("SELECT count() FROM service_events FINAL").result_rows[0][0] == 1
    assert read_kpis(warehouse, "month")[0].online_submissions == 1


def test_reasons_in_dead_letters_are_the_closed_set(warehouse: Any) -> None:
    _run(warehouse, [b"{", b"[]", json.dumps(make_service_event(agency_code="NOPE")).encode()])
    got = {r[0] for r in warehouse.query("SELECT reason FROM dead_letters").result_rows}
    assert got == {Reason.MALFORMED_JSON.value, Reason.UNKNOWN_AGENCY.value}


def test_states_rebuilt_from_the_warehouse_equal_the_live_ones(warehouse: Any) -> None:
    """After a restart or a rebalance the worker rebuilds entity states from the raw event
    tables (streams/worker/restore.py): they must equal the states it had while running."""
    from producers.simulation.simulator import SimulationConfig, simulate
    from streams.worker.restore import load_states

    sim = simulate(SimulationConfig(seed=8, events=3000), CATALOG)
    out, insp, doss = RowBuffer(), {}, {}  # type: ignore[var-annotated]
    for offset, m in enumerate(sim.messages):
        process(
            m.value, Origin("t", offset % 3, offset), now=NOW, known_agencies=CATALOG.agencies,
            inspection_states=insp, dossier_states=doss, out=out,
        )  # fmt: skip
    write_tables(warehouse, out.take(), token=None)
    wanted_i = [tuple(k.split(":", 1)) for k in insp]
    wanted_d = [tuple(k.split(":", 1)) for k in doss]
    rebuilt_i, rebuilt_d = load_states(warehouse, wanted_i, wanted_d)
    assert len(insp) > 100 and len(doss) > 100
    assert rebuilt_i == insp
    assert rebuilt_d == doss
    unknown_i, unknown_d = load_states(warehouse, [("TH-S-TP", "nope")], [])
    assert unknown_i == {} and unknown_d == {}


def test_states_of_awkward_ids_are_rebuilt_exactly(warehouse: Any) -> None:
    """Entity ids with quotes, backslashes, control characters and Vietnamese text survive the
    IN lists of the state query, and an id asked for under another agency is not returned."""
    from streams.worker.restore import load_states
    from tests.conftest import make_inspection_event

    ids = ["it's", "back\\slash", "tab\there", "Thanh Hóa/KT-01", "x" * 64, "plain-1"]
    other = make_service_event()["agency_code"]  # a second agency of the catalog
    payloads = [make_inspection_event(inspection_id=i) for i in ids]
    payloads.append(make_inspection_event(agency_code=other, inspection_id="b-only"))
    out, insp, doss = RowBuffer(), {}, {}  # type: ignore[var-annotated]
    for offset, payload in enumerate(payloads):
        p = process(
            json.dumps(payload, ensure_ascii=False).encode(), Origin("t", 0, offset), now=NOW,
            known_agencies=CATALOG.agencies, inspection_states=insp, dossier_states=doss, out=out,
        )  # fmt: skip
        assert p.result is Result.ACCEPTED
    write_tables(warehouse, out.take(), token=None)
    agency = make_inspection_event()["agency_code"]
    assert agency != other
    asked = [i for i in ids if i != "plain-1"]
    # Both IN lists hold (agency, plain-1) and (other, b-only): pairs not asked for.
    wanted = [(agency, i) for i in asked] + [(other, "plain-1"), (agency, "b-only")]
    rebuilt, _ = load_states(warehouse, wanted, [])
    assert sorted(rebuilt) == sorted(f"{agency}:{i}" for i in asked)
    assert all(rebuilt[k] == insp[k] for k in rebuilt)


def test_rowbinary_rows_equal_the_list_rows(warehouse: Any) -> None:
    """The event tables' rows built as RowBinary (what the worker inserts) and as Python lists
    (``rows``, through clickhouse-connect) give identical tables: every column, every value,
    over the simulator's v2 traffic (service/2, offering/1, inspection kinds) and v1 events."""
    from producers.simulation.simulator import SimulationConfig, simulate
    from schemas.decoding import decode as decode_event
    from schemas.inspection import InspectionEventV1
    from schemas.offering import OfferingEventV1
    from streams.warehouse import tables
    from streams.worker import rowbinary, rows
    from streams.worker.classify import (
        DossierState,
        InspectionState,
        apply_inspection,
        apply_service,
        ticks_ms,
    )

    sim = simulate(SimulationConfig(seed=21, events=2000), CATALOG)
    raws = [m.value for m in sim.messages] + [e.raw for e in load_examples()]
    raws.append(json.dumps(make_service_event(form=None, channel="counter")).encode())
    raws.append(json.dumps(make_service_event(event_type="completed", on_time=False)).encode())
    now_ms = ticks_ms(NOW)
    as_lists: dict[str, list[Any]] = {t: [] for t in tables.COLUMNS}
    as_binary: dict[str, list[bytes]] = {t: [] for t in tables.COLUMNS}
    states: dict[str, InspectionState] = {}  # states after each event, as the worker keeps them
    dossiers: dict[str, DossierState] = {}
    for offset, raw in enumerate(raws):
        try:
            ev = decode_event(raw, known_agency=CATALOG.agencies, now=NOW)
        except InvalidEvent:
            continue
        at = Origin("topic-ả", offset % 4, 10**12 + offset)
        occ = ticks_ms(ev.occurred_at)
        if isinstance(ev, InspectionEventV1):
            as_lists["inspection_events"].append(rows.inspection_event_row(ev, raw, at, now_ms))
            as_binary["inspection_events"].append(
                rowbinary.inspection_event(ev, raw, at, now_ms, occ)
            )
            before = states.get(ev.key, InspectionState())
            states[ev.key], _ = apply_inspection(before, ev, (0, offset))
        elif isinstance(ev, OfferingEventV1):
            as_lists["offering_events"].append(rows.offering_event_row(ev, raw, at, now_ms))
            as_binary["offering_events"].append(rowbinary.offering_event(ev, raw, at, now_ms, occ))
        else:
            as_lists["service_events"].append(rows.service_event_row(ev, raw, at, now_ms))
            as_binary["service_events"].append(
                rowbinary.service_event(ev, raw, at, now_ms, occ, rowbinary.due_ms(ev))
            )
            if ev.event_type == "submitted":
                as_lists["service_submissions"].append(rows.submission_row(ev, now_ms))
                as_binary["service_submissions"].append(
                    rowbinary.submission(ev, now_ms, occ, rowbinary.due_ms(ev))
                )
            dossiers[ev.key], _ = apply_service(
                dossiers.get(ev.key, DossierState()), ev, (0, offset)
            )
    for key, st in states.items():
        agency, iid = key.split(":", 1)
        as_lists["inspection_classifications"].append(rows.classification_row(agency, iid, st, NOW))
        as_binary["inspection_classifications"].append(
            rowbinary.classification(agency, iid, st, now_ms)
        )
    for key, dossier in dossiers.items():
        agency, did = key.split(":", 1)
        lc, version = dossier.lifecycle, dossier.version
        as_lists["dossier_lifecycle"].append(rows.lifecycle_row(agency, did, lc, version, NOW))
        as_binary["dossier_lifecycle"].append(rowbinary.lifecycle(agency, did, lc, version, now_ms))
    for table in tables.COLUMNS:
        if table in ("dead_letters", "duplicates"):
            continue
        least = 50 if table == "offering_events" else 100  # 2000 events publish 66 services
        assert len(as_lists[table]) > least, table
        warehouse.command(f"CREATE TABLE {table}_b AS {table}")
        write_tables(warehouse, {table: as_lists[table]}, token=None)
        warehouse.raw_insert(
            f"{table}_b", list(tables.COLUMNS[table]), b"".join(as_binary[table]), fmt="RowBinary"
        )
        cols = ", ".join(tables.COLUMNS[table])
        order = "ORDER BY " + (
            "inspection_id" if "classif" in table else "agency_code, dossier_id"
            if "lifecycle" in table else "event_id"
        )  # fmt: skip
        listed = warehouse.query(f"SELECT {cols} FROM {table} {order}").result_rows
        binary = warehouse.query(f"SELECT {cols} FROM {table}_b {order}").result_rows
        assert listed == binary, table
        assert len(listed) > least, table  # repeated event_ids collapse (the sort key) in both


def test_the_json_path_refuses_a_column_of_another_type(warehouse: Any) -> None:
    """read_kpi_json trusts the driver's types only after checking each column's ClickHouse
    type against the shape's: a view whose count became a float, or a NULL where the shape has
    none, is an error, not a silently different JSON."""
    _run(warehouse, [json.dumps(make_service_event()).encode()])
    assert read_kpi_json(warehouse, "year")[0]["payments"] == 0
    original = warehouse.query("SELECT as_select FROM system.tables WHERE name = 'kpi_year' "
                               "AND database = currentDatabase()").result_rows[0][0]  # fmt: skip
    warehouse.command(f"CREATE OR REPLACE VIEW kpi_year AS SELECT * REPLACE "
                      f"(toFloat64(payments) AS payments) FROM ({original})")  # fmt: skip
    with pytest.raises(ValueError, match=r"kpi_year\.payments is Float64"):
        read_kpi_json(warehouse, "year")
    null = "CAST(NULL, 'Nullable(UInt64)')"
    warehouse.command(f"CREATE OR REPLACE VIEW kpi_year AS SELECT * REPLACE "
                      f"({null} AS payments) FROM ({original})")  # fmt: skip
    with pytest.raises(ValueError, match=r"kpi_year\.payments holds NULL"):
        read_kpi_json(warehouse, "year")
