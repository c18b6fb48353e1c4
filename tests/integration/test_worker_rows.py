"""Contract v2 in the worker's rows, on the embedded ClickHouse: every example (service/2,
offering/1, inspection kinds) through decode -> classify -> rows -> insert, the RowBinary rows
equal to the list rows for every table, and states (kind, offerings) rebuilt from the warehouse
equal to the live ones."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import InvalidEvent
from schemas.catalog import load_catalog
from schemas.decoding import decode
from schemas.example_payloads import load_examples
from schemas.inspection import InspectionEventV1
from schemas.offering import OfferingEventV1
from streams.warehouse import tables
from streams.warehouse.writer import write_tables
from streams.worker import rowbinary, rows
from streams.worker.classify import (
    DossierState,
    InspectionState,
    apply_inspection,
    apply_service,
    ticks_ms,
)
from streams.worker.processor import Result, RowBuffer, process
from streams.worker.restore import load_offering_states, load_states
from streams.worker.rows import Origin
from tests.conftest import make_inspection_event, make_service_event

pytestmark = pytest.mark.clickhouse

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CATALOG = load_catalog()


def _v2(**overrides: Any) -> dict[str, Any]:
    """A valid ``service/2`` online submission; override any key."""
    event = make_service_event(
        schema="service/2", due_at="2024-06-14T17:00:00+07:00", digitized=True,
        reused_components=2,
    )  # fmt: skip
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not None}  # None: leave the field out


def _offering(**overrides: Any) -> dict[str, Any]:
    event = {
        "schema": "offering/1", "event_id": str(uuid.uuid4()),
        "occurred_at": "2024-06-01T00:00:00+07:00", "agency_code": "TH-S-TP",
        "procedure_code": "1.001193", "level": "full_process", "prefill_designed": True,
    }  # fmt: skip
    event.update(overrides)
    return event


def _raw(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode()


class Run:
    def __init__(self) -> None:
        self.out = RowBuffer()
        self.insp: dict[str, Any] = {}
        self.doss: dict[str, Any] = {}
        self.offs: dict[str, Any] = {}

    def feed(self, payloads: list[bytes], partition: int = 0, first: int = 0) -> list[Result]:
        return [
            process(
                raw, Origin("t", partition, first + i), now=NOW,
                known_agencies=CATALOG.agencies, inspection_states=self.insp,
                dossier_states=self.doss, out=self.out, offering_states=self.offs,
            ).result
            for i, raw in enumerate(payloads)
        ]  # fmt: skip


def test_every_example_lands_in_its_table_with_the_v2_columns(warehouse: Any) -> None:
    examples = load_examples()
    run = Run()
    results = run.feed([e.raw for e in examples])
    for e, r in zip(examples, results, strict=True):
        assert (r is Result.REFUSED) == (e.reason is not None), e.name
    write_tables(warehouse, run.out.take(), token=None)
    accepted = {json.loads(e.raw)["event_id"] for e in examples if e.reason is None}
    stored = warehouse.query(
        "SELECT toString(event_id) FROM inspection_events UNION ALL "
        "SELECT toString(event_id) FROM service_events UNION ALL "
        "SELECT toString(event_id) FROM offering_events"
    ).result_rows
    assert sorted(r[0] for r in stored) == sorted(accepted)
    assert any(e.name.startswith("service-offerings/") and e.reason is None for e in examples)

    def one(sql: str) -> tuple[Any, ...]:
        got = warehouse.query(sql).result_rows
        assert len(got) == 1, (sql, got)
        return tuple(got[0])

    # service/2: the lifecycle columns as sent; service/1: NULL.
    due = datetime(2024, 6, 14, 10, 0, tzinfo=UTC)
    assert one(
        "SELECT due_at, digitized, reused_components, payment_channel, result_electronic, schema "
        "FROM service_events WHERE event_id = '5c1d2e3f-4a5b-4c6d-8e7f-202406100001'"
    ) == (due.replace(tzinfo=None), 1, 2, None, None, "service/2")  # fmt: skip
    assert one(
        "SELECT due_at, digitized, reused_components, schema FROM service_submissions "
        "WHERE event_id = '5c1d2e3f-4a5b-4c6d-8e7f-202406100001'"
    ) == (due.replace(tzinfo=None), 1, 2, "service/2")  # fmt: skip
    v1 = warehouse.query(
        "SELECT DISTINCT tuple(due_at, digitized, reused_components, payment_channel, "
        "result_electronic) FROM service_events WHERE schema = 'service/1'"
    ).result_rows
    assert v1 == [((None, None, None, None, None),)]
    v1_subs = warehouse.query(
        "SELECT DISTINCT tuple(due_at, digitized, reused_components, schema) "
        "FROM service_submissions WHERE schema = 'service/1'"
    ).result_rows
    assert v1_subs == [((None, None, 0, "service/1"),)]
    paid = warehouse.query(
        "SELECT payment_channel, count() FROM service_events WHERE event_type = 'paid' "
        "GROUP BY payment_channel ORDER BY payment_channel"
    ).result_rows
    assert [p for p, _ in paid] == ["counter", "online"]
    assert warehouse.query(
        "SELECT count() FROM service_events WHERE event_type = 'completed' "
        "AND schema = 'service/2' AND result_electronic IS NULL"
    ).result_rows[0][0] == 0  # fmt: skip
    # offering/1: prefill_designed as 0/1.
    offerings = warehouse.query(
        "SELECT level, prefill_designed FROM offering_events ORDER BY event_id"
    ).result_rows
    assert offerings and {p for _, p in offerings} == {0, 1}
    assert one(
        "SELECT level, prefill_designed, agency_code, procedure_code FROM offering_events "
        "WHERE event_id = '7a0f3b2c-1d4e-4f5a-9b6c-202406010001'"
    ) == ("full_process", 1, "TH-S-TP", "1.001193")
    # inspection kind: as sent on the event; the classification's from the latest carrier.
    kinds = dict(warehouse.query(
        "SELECT inspection_id, kind FROM inspection_events WHERE kind IS NOT NULL"
    ).result_rows)  # fmt: skip
    assert kinds["TT-TTTT-2024-003"] == "thanh_tra" and kinds["KT-TTTT-2024-018"] == "kiem_tra"
    classified = dict(warehouse.query(
        "SELECT inspection_id, kind FROM inspection_classifications FINAL"
    ).result_rows)  # fmt: skip
    assert classified["TT-TTTT-2024-003"] == "thanh_tra"
    assert set(classified.values()) == {"kiem_tra", "thanh_tra"}


def test_offering_duplicates_go_to_the_duplicates_table(warehouse: Any) -> None:
    first = _raw(_offering())
    other = _raw(_offering(level="partial", occurred_at="2024-07-01T00:00:00+07:00"))
    # A dossier whose key string equals the service's: its own map, so no false duplicate.
    same_key = _raw(_v2(dossier_id="1.001193", event_id=json.loads(first)["event_id"]))
    run = Run()
    assert run.feed([first, other, first, same_key]) == [
        Result.ACCEPTED, Result.ACCEPTED, Result.DUPLICATE, Result.ACCEPTED,
    ]  # fmt: skip
    assert run.feed([first], first=0) == [Result.REDELIVERED]  # same position: a redelivery
    write_tables(warehouse, run.out.take(), token=None)
    assert warehouse.query("SELECT count() FROM offering_events FINAL").result_rows[0][0] == 2
    dups = warehouse.query(
        "SELECT entity_key, first_partition, first_offset, _offset FROM duplicates"
    ).result_rows
    assert dups == [("TH-S-TP:1.001193", 0, 0, 2)]
    assert set(run.offs) == {"TH-S-TP:1.001193"} and set(run.doss) == {"TH-S-TP:1.001193"}


def test_states_rebuilt_from_the_warehouse_keep_kind_and_offerings(warehouse: Any) -> None:
    """Kind (including a tie on occurred_at: the event applied later wins) and the offerings'
    dedup states come back from the warehouse as they were live."""
    at = "2024-06-05T09:00:00+07:00"
    inspection = [
        make_inspection_event(inspection_id="K-1", event_type="opened", kind="thanh_tra",
                              occurred_at="2024-06-01T08:00:00+07:00"),
        make_inspection_event(inspection_id="K-1", kind="kiem_tra", occurred_at=at),
        make_inspection_event(inspection_id="K-1", event_type="concluded", kind="thanh_tra",
                              occurred_at=at),  # same instant, applied later: it decides
        make_inspection_event(inspection_id="K-1", occurred_at="2024-06-03T09:00:00+07:00",
                              kind="kiem_tra"),  # older: changes nothing
        make_inspection_event(inspection_id="K-2", event_type="opened"),  # no kind at all
    ]  # fmt: skip
    offerings = [
        _offering(procedure_code=f"P-{i}", level=lvl)
        for i, lvl in enumerate(["full_process", "partial", "not_online", "not_offered"])
    ]
    run = Run()
    # Inspection K-1's events on partition 2 (its key's partition is irrelevant here).
    run.feed([_raw(e) for e in inspection], partition=2, first=100)
    run.feed([_raw(e) for e in offerings], partition=1, first=10)
    write_tables(warehouse, run.out.take(), token=None)
    agency = inspection[0]["agency_code"]
    assert run.insp[f"{agency}:K-1"].kind == "thanh_tra"
    assert run.insp[f"{agency}:K-2"].kind == "kiem_tra"
    rebuilt, _ = load_states(warehouse, [(agency, "K-1"), (agency, "K-2")], [])
    assert rebuilt == run.insp
    services = load_offering_states(warehouse, [("TH-S-TP", f"P-{i}") for i in range(5)])
    assert services == run.offs and len(services) == 4
    kinds = dict(warehouse.query(
        "SELECT inspection_id, argMax(kind, version) FROM inspection_classifications "
        "GROUP BY inspection_id"
    ).result_rows)  # fmt: skip
    assert kinds == {"K-1": "thanh_tra", "K-2": "kiem_tra"}


def test_rowbinary_rows_equal_the_list_rows_for_every_event_kind(warehouse: Any) -> None:
    """What the worker inserts (RowBinary, ``rowbinary``) and the list rows (``rows``, through
    clickhouse-connect) give identical tables, every column, for v1 and v2 events alike."""
    raws = [e.raw for e in load_examples()]
    raws += [_raw(_v2(dossier_id=f"D-{i}", reused_components=i % 3 or None))
             for i in range(5)]  # fmt: skip
    bare = {"form": None, "channel": None, "service_level": None, "due_at": None,
            "digitized": None, "reused_components": None}  # fmt: skip
    raws += [_raw(_v2(event_type="completed", result_electronic=b, **bare)) for b in (True, False)]
    raws += [_raw(_v2(channel="counter", form=None, service_level=None, digitized=False))]
    raws += [_raw(_v2(event_type="paid", payment_channel="online", **bare))]
    raws += [_raw(_v2(event_type=t, dossier_id="D-1", occurred_at=at, **bare)) for t, at in [
        ("supplement_requested", "2024-06-11T09:00:00+07:00"),
        ("supplement_received", "2024-06-12T09:00:00+07:00"),
        ("supplement_requested", "2024-06-13T09:00:00+07:00"),
    ]]  # fmt: skip
    raws += [_raw(_offering(procedure_code=f"Q-{i}", prefill_designed=i % 2 == 0))
             for i in range(4)]  # fmt: skip
    raws += [_raw(make_inspection_event(inspection_id=f"I-{i}", kind=k))
             for i, k in enumerate(["kiem_tra", "thanh_tra", None])]  # fmt: skip
    raws += [_raw(make_inspection_event(inspection_id="I-0", occurred_at=at, activity={"mode": m}))
             for at, m in [("2024-06-12T09:00:00+07:00", "on_site"),
                           ("2024-06-01T09:00:00.123+07:00", "information_system"),
                           ("2024-06-12T09:00:00+07:00", "video_conference")]]  # fmt: skip
    # One inspection with 130 activities (its arrays' counts take two bytes), in reverse order.
    raws += [_raw(make_inspection_event(
        inspection_id="I-many", activity={"mode": "on_site" if i % 3 else "online_reporting"},
        occurred_at=f"2024-07-{1 + i // 24:02d}T{i % 24:02d}:00:00+07:00",
    )) for i in reversed(range(130))]  # fmt: skip
    raws += [_raw(make_service_event(dossier_id="V1", event_type="completed", on_time=True))]
    now_ms = ticks_ms(NOW)
    as_lists: dict[str, list[Any]] = {t: [] for t in tables.COLUMNS}
    as_binary: dict[str, list[bytes]] = {t: [] for t in tables.COLUMNS}
    states: dict[str, InspectionState] = {}
    dossiers: dict[str, DossierState] = {}
    accepted = 0
    # Refused messages: the invalid examples, and hostile bytes (invalid UTF-8, a lone
    # surrogate escape, Vietnamese text, an agency code no catalog holds).
    hostile = [b"\xff\xfe{", b'{"schema": "service/2", "agency_code": "\\udc80"}',
               '{"schema": "x", "event_id": "Hồ sơ ả"}'.encode(),
               _raw(_v2(agency_code="TH-NO-SUCH-AGENCY-Ư" * 3))]  # fmt: skip
    for offset, raw in enumerate(raws + hostile):
        at = Origin("topic-ả", offset % 4, 10**12 + offset)
        try:
            ev = decode(raw, known_agency=CATALOG.agencies, now=NOW)
        except InvalidEvent as invalid:
            assert offset < len(load_examples()) or offset >= len(raws), raw
            invalid.at(at.topic, at.partition, at.offset)
            as_lists["dead_letters"].append(rows.dead_letter_row(invalid, NOW))
            as_binary["dead_letters"].append(rowbinary.dead_letter(invalid, now_ms))
            continue
        if offset >= len(raws):
            raise AssertionError(f"hostile bytes accepted: {raw!r}")
        accepted += 1
        if offset % 5 == 0:  # a duplicate of it, seen at another position
            first = (at.partition, at.offset)
            dup_at = Origin("topic-ả", (offset + 1) % 4, 2 * 10**12 + offset)
            as_lists["duplicates"].append(
                rows.duplicate_row(ev.event_id.int, ev.agency_code, ev.key, first, dup_at, NOW)
            )
            as_binary["duplicates"].append(
                rowbinary.duplicate(ev.event_id.int, ev.agency_code, ev.key, first, dup_at, now_ms)
            )
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
    for key, dossier in dossiers.items():
        agency, did = key.split(":", 1)
        lc, version = dossier.lifecycle, dossier.version
        as_lists["dossier_lifecycle"].append(rows.lifecycle_row(agency, did, lc, version, NOW))
        as_binary["dossier_lifecycle"].append(rowbinary.lifecycle(agency, did, lc, version, now_ms))
    for key, st in states.items():
        agency, iid = key.split(":", 1)
        as_lists["inspection_classifications"].append(rows.classification_row(agency, iid, st, NOW))
        as_binary["inspection_classifications"].append(
            rowbinary.classification(agency, iid, st, now_ms)
        )
    for table in tables.COLUMNS:
        assert as_lists[table], table
        warehouse.command(f"CREATE TABLE {table}_b AS {table}")
        write_tables(warehouse, {table: as_lists[table]}, token=None)
        warehouse.raw_insert(
            f"{table}_b", list(tables.COLUMNS[table]), b"".join(as_binary[table]), fmt="RowBinary"
        )
        cols = ", ".join(tables.COLUMNS[table])
        order = "ORDER BY " + (
            "inspection_id" if "classif" in table else "dossier_id" if "lifecycle" in table
            else "_offset" if table in ("dead_letters", "duplicates") else "event_id"
        )  # fmt: skip
        listed = warehouse.query(f"SELECT {cols} FROM {table} {order}").result_rows
        binary = warehouse.query(f"SELECT {cols} FROM {table}_b {order}").result_rows
        assert listed == binary, table
        assert len(listed) >= 3, table
    # The lifecycles written cover pauses answered and not, ends, payments, no submission.
    lifecycles = warehouse.query(
        "SELECT submitted_at IS NULL, pause_ends, end_type, payment_channel "
        "FROM dossier_lifecycle_b"
    ).result_rows
    assert any(ends and ends[-1] is None for _, ends, _, _ in lifecycles)
    assert any(ends and ends[0] is not None for _, ends, _, _ in lifecycles)
    assert {e for _, _, e, _ in lifecycles} >= {"", "completed"}
    assert {p for _, _, _, p in lifecycles} >= {"", "online"}
    assert {n for n, _, _, _ in lifecycles} == {0, 1}
    # The classifications written cover no activity, several, and more than 127.
    counts = dict(warehouse.query(
        "SELECT inspection_id, length(activities_at) FROM inspection_classifications_b"
    ).result_rows)  # fmt: skip
    assert counts["I-many"] == 130 and counts["I-0"] == 4 and 0 in counts.values()


def _activities(warehouse: Any, inspection_id: str) -> tuple[int, list[tuple[int, int]]]:
    """The classification row's (FINAL) activity count and (ms, online) pairs, in its order."""
    got = warehouse.query(
        "SELECT activities, arrayMap(t -> toUnixTimestamp64Milli(t), activities_at), "
        "activities_online FROM inspection_classifications FINAL "
        f"WHERE inspection_id = '{inspection_id}'"
    ).result_rows
    assert len(got) == 1, got
    count, at, online = got[0]
    assert len(at) == len(online) == count
    return count, list(zip(at, online, strict=True))


def _stored_activities(warehouse: Any, inspection_id: str) -> list[tuple[int, int]]:
    """The inspection's activity events in ``inspection_events`` (each event_id once)."""
    return sorted(
        (int(ms), int(online)) for ms, online in warehouse.query(
            "SELECT toUnixTimestamp64Milli(occurred_at), activity_online FROM inspection_events "
            f"FINAL WHERE inspection_id = '{inspection_id}' AND event_type = 'activity'"
        ).result_rows
    )  # fmt: skip


def test_classification_holds_each_activity_once_in_any_order_and_after_a_restore(
    warehouse: Any,
) -> None:
    """An inspection's events in a shuffled order, over two writes, with duplicates and a
    redelivery: its classification row (FINAL) holds each activity once, by (time, online);
    a state rebuilt from the warehouse equals the live one and goes on from there."""
    agency = "TH-S-TTTT"
    modes = ["on_site", "video_conference", "information_system", "in_person_meeting"]
    days = [12, 3, 7, 7, 20, 15, 3]  # two pairs at one instant: ordered by online there
    activities = [
        make_inspection_event(inspection_id="A-1", occurred_at=f"2024-06-{d:02d}T09:00:00+07:00",
                              activity={"mode": modes[i % 4]})
        for i, d in enumerate(days)
    ]  # fmt: skip
    others = [
        make_inspection_event(inspection_id="A-1", event_type="opened",
                              occurred_at="2024-06-01T08:00:00+07:00"),
        make_inspection_event(inspection_id="A-1", event_type="concluded",
                              occurred_at="2024-06-25T08:00:00+07:00"),
        make_inspection_event(inspection_id="A-2", activity={"mode": "on_site"}),
    ]  # fmt: skip
    payloads = [_raw(e) for e in activities + others]
    random.Random(20240610).shuffle(payloads)
    arrived = [json.loads(p)["occurred_at"] for p in payloads if b'"A-1"' in p]
    assert arrived != sorted(arrived)  # out of time order
    run = Run()
    assert run.feed(payloads[:5], partition=3) == [Result.ACCEPTED] * 5
    write_tables(warehouse, run.out.take(), token=None)
    # The rest, then two events again as other messages (duplicates) and one redelivered.
    results = run.feed(payloads[5:] + payloads[:2], partition=3, first=5)
    assert results == [Result.ACCEPTED] * (len(payloads) - 5) + [Result.DUPLICATE] * 2
    assert run.feed(payloads[3:4], partition=3, first=3) == [Result.REDELIVERED]
    write_tables(warehouse, run.out.take(), token=None)

    def ms(day: int) -> int:
        return ticks_ms(datetime.fromisoformat(f"2024-06-{day:02d}T09:00:00+07:00"))

    online = [int(modes[i % 4] not in ("on_site", "in_person_meeting")) for i in range(7)]
    expected = sorted((ms(d), online[i]) for i, d in enumerate(days))
    assert _stored_activities(warehouse, "A-1") == expected
    assert _activities(warehouse, "A-1") == (7, expected)
    assert [m for m, _ in expected].count(ms(7)) == 2 and (ms(7), 0) < (ms(7), 1)
    assert _activities(warehouse, "A-2") == (1, _stored_activities(warehouse, "A-2"))
    live = run.insp[f"{agency}:A-1"]
    assert [(m, int(o)) for m, o in live.activity_log] == expected

    # A restart: the states rebuilt from inspection_events equal the live ones.
    rebuilt, _ = load_states(warehouse, [(agency, "A-1"), (agency, "A-2")], [])
    assert rebuilt == run.insp
    # And go on: an activity earlier than all, a duplicate, a redelivery.
    after = Run()
    after.insp = rebuilt
    earliest = make_inspection_event(inspection_id="A-1", occurred_at="2024-06-02T09:00:00+07:00",
                                     activity={"mode": "online_reporting"})  # fmt: skip
    assert after.feed([_raw(earliest), payloads[6]], partition=3, first=50) == [
        Result.ACCEPTED, Result.DUPLICATE,
    ]  # fmt: skip
    assert after.feed(payloads[6:7], partition=3, first=6) == [Result.REDELIVERED]
    write_tables(warehouse, after.out.take(), token=None)
    expected = sorted([*expected, (ms(2), 1)])
    assert _stored_activities(warehouse, "A-1") == expected
    assert _activities(warehouse, "A-1") == (8, expected)
    version = warehouse.query(
        "SELECT version FROM inspection_classifications FINAL WHERE inspection_id = 'A-1'"
    ).result_rows[0][0]
    assert version == len(activities) + 2 + 1
