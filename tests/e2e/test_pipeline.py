"""Producer -> real broker -> real worker process -> embedded ClickHouse -> `parwatch kpi`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from producers.simulation.messages import message_key
from producers.simulation.raw import publish_raw
from producers.simulation.simulator import SimulationConfig, simulate
from schemas.catalog import bundled_dir, load_catalog
from schemas.decoding import decode
from schemas.errors import InvalidEvent
from schemas.kpi import reference_kpis, rows_to_json
from tests.conftest import make_inspection_event, make_service_event, read_topic
from tests.e2e.conftest import Pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse]

A, B = "TH-S-TTTT", "TH-S-TP"


def _insp(iid: str, event_type: str, at: str, mode: str | None = None, agency: str = A) -> Any:
    extra: dict[str, Any] = {"activity": {"mode": mode, "system_code": None}} if mode else {}
    return make_inspection_event(
        agency_code=agency, inspection_id=iid, event_type=event_type, occurred_at=at, **extra
    )


def _sub(did: str, channel: str, proc: str, form: tuple[int, int] | None, level: str | None) -> Any:
    event = make_service_event(
        agency_code=B, dossier_id=did, channel=channel, procedure_code=proc,
        occurred_at="2024-06-12T09:00:00+07:00",
    )  # fmt: skip
    event.pop("form")
    event.pop("service_level")
    if form:
        event["form"] = {"fields_total": form[0], "fields_prefilled": form[1]}
    if level:
        event["service_level"] = level
    return event


def _done(did: str, on_time: bool) -> Any:
    return make_service_event(
        agency_code=B, dossier_id=did, event_type="completed", on_time=on_time,
        occurred_at="2024-06-25T15:00:00+07:00",
    )  # fmt: skip


def crafted() -> tuple[list[bytes], int, dict[str, int]]:
    """Hand-made traffic; returns (payloads in publish order, duplicates, refusals by reason)."""
    i1_acts = [
        _insp("I1", "activity", "2024-06-03T09:00:00+07:00", "video_conference"),
        _insp("I1", "activity", "2024-06-04T09:00:00+07:00", "information_system"),
    ]
    i3_concluded = _insp("I3", "concluded", "2024-06-01T03:00:00+07:00")  # 31 May in UTC
    events = [
        _insp("I1", "opened", "2024-06-01T08:00:00+07:00"),
        _insp("I1", "concluded", "2024-06-10T16:00:00+07:00"),  # before its activities: online
        *i1_acts,
        _insp("I2", "activity", "2024-06-11T09:00:00+07:00", "on_site"),
        _insp("I2", "concluded", "2024-06-15T16:00:00+07:00"),
        _insp("I2", "activity", "2024-06-20T09:00:00+07:00", "video_conference"),  # after: hybrid
        _insp("I3", "activity", "2024-05-28T09:00:00+07:00", "in_person_meeting"),
        _insp("I3", "activity", "2024-05-29T09:00:00+07:00", "on_site"),
        i3_concluded,  # in person, June
        _insp("I4", "activity", "2024-06-02T09:00:00+07:00", "video_conference"),
        _insp("I4", "concluded", "2024-06-05T16:00:00+07:00"),
        _insp("I4", "cancelled", "2024-06-06T08:00:00+07:00"),  # leaves every KPI
        _insp("I5", "concluded", "2024-06-20T16:00:00+07:00"),  # no activity: unclassified
        _insp("I6", "activity", "2024-05-20T09:00:00+07:00", "remote_document_review", B),
        _insp("I6", "concluded", "2024-05-31T23:30:00+07:00", agency=B),  # May: online
        _sub("D1", "online", "1.001193", (10, 10), "full_process"),
        _sub("D2", "online", "1.001193", (10, 4), "partial"),
        _sub("D3", "online", "1.000656", (8, 0), "full_process"),
        _sub("D4", "counter", "1.000656", None, None),
        _sub("D5", "postal", "2.000908", None, None),
        _done("D1", True), _done("D2", False), _done("D4", True),
        make_service_event(agency_code=B, dossier_id="D3", event_type="rejected"),
    ]  # fmt: skip
    payloads = [json.dumps(e, ensure_ascii=False).encode() for e in events]
    # Re-sent later with the same event_id: counted once.
    duplicates = [json.dumps(e, ensure_ascii=False).encode() for e in (i1_acts[0], i3_concluded)]
    no_form = _sub("D9", "online", "1.001193", None, "partial")
    invalid = {
        "malformed_json": b'{"schema": "service/1", "event_id": ',
        "unsupported_schema": json.dumps(_insp("I7", "opened", "2024-06-01T08:00:00+07:00")
                                         | {"schema": "inspection/2"}).encode(),
        "invalid_event": json.dumps(no_form).encode(),
        "unknown_agency": json.dumps(_insp("I8", "opened", "2024-06-01T08:00:00+07:00",
                                           agency="TH-S-KHONG-CO")).encode(),
        "future_timestamp": json.dumps(_insp("I9", "opened", "2099-01-01T08:00:00+07:00")).encode(),
        "pii_detected": json.dumps(_insp("I10", "opened", "2024-06-01T08:00:00+07:00")
                                   | {"ghi_chu": "Liên hệ 0912 345 678"},
                                   ensure_ascii=False).encode(),
    }  # fmt: skip
    return payloads + duplicates + list(invalid.values()), 2, dict.fromkeys(invalid, 1)


def _kind(raw: bytes) -> str:
    return "inspection" if b"inspection" in raw else "service"


# Hand-computed figures of the crafted traffic (contract v2's KPIs over v1 events: the dossiers
# are service/1, never counted while open, on time by their flag).
INSPECTIONS_JUNE = {
    "inspections_online": 1, "inspections_hybrid": 1, "inspections_in_person": 1,
    "inspections_unclassified": 1, "online_inspection_share": 1 / 3,
    # June activities of checks not cancelled: I1's two online, I2's on-site and online ones.
    "activities": 4, "activities_online": 3, "online_activity_share": 3 / 4,
}  # fmt: skip
SERVICES_JUNE = {
    "dossiers_submitted": 5, "online_submissions": 3, "online_dossier_rate": 3 / 5,
    "online_full_process": 2, "full_process_dossier_rate": 2 / 5,
    "prefilled_submission_share": 2 / 3, "prefill_depth": 14 / 28,
    "prefill_observed_coverage": 1 / 2, "data_reuse_rate": 2 / 5, "digitization_rate": None,
    "dossiers_completed": 3, "dossiers_completed_on_time": 2, "on_time_rate": 2 / 3,
    "dossiers_open": 0, "average_resolution_days": None, "electronic_result_rate": None,
    "full_process_offering_rate": None,
}  # fmt: skip
# May: I6 concluded online (B); I3's two in-person activities (A; I3 concludes in June).
MAY_ONLINE = {"inspections_online": 1, "online_inspection_share": 1.0}
EXPECTED_MONTHS: dict[tuple[str | None, str], dict[str, Any]] = {
    (None, "2024-05"): MAY_ONLINE | {"activities": 3, "activities_online": 1},
    (B, "2024-05"): MAY_ONLINE | {"activities": 1, "activities_online": 1},
    (A, "2024-05"): {
        "activities": 2,
        "activities_online": 0,
        "online_activity_share": 0.0,
        "online_inspection_share": None,
    },
    (None, "2024-06"): INSPECTIONS_JUNE | SERVICES_JUNE,
    (B, "2024-06"): SERVICES_JUNE,
    (A, "2024-06"): INSPECTIONS_JUNE,
}


def _assert_rows(rows: list[dict[str, Any]], expected: dict[Any, dict[str, Any]]) -> None:
    by_key = {(r["agency_code"], r["period"]): r for r in rows}
    assert set(by_key) == set(expected)
    for key, values in expected.items():
        for name, want in values.items():
            got = by_key[key][name]
            if isinstance(want, float):
                assert got == pytest.approx(want, rel=1e-12), (key, name)
            else:
                assert got == want, (key, name)


ENGINES = pytest.mark.parametrize("engine", ["batch", "faust"])


@ENGINES
def test_crafted_scenario_gives_hand_computed_kpis(
    pipeline: Pipeline, topics: Any, engine: str
) -> None:
    pipeline.use_engine(engine)
    payloads, duplicates, refusals = crafted()
    pipeline.start_worker()
    publish_raw(pipeline.env["PARWATCH_KAFKA_BOOTSTRAP"], topics,
                ((_kind(p), message_key(p), p) for p in payloads))  # fmt: skip
    status = pipeline.wait_for(len(payloads))
    assert status["by_result"]["duplicate"] == duplicates
    assert status["by_result"]["refused"] == sum(refusals.values())
    assert pipeline.stop_worker() == 0

    dead_topic = read_topic(pipeline.env["PARWATCH_KAFKA_BOOTSTRAP"], topics.dead_letters, 6)
    letters = [json.loads(m.value) for m in dead_topic]
    assert sorted(d["reason"] for d in letters) == sorted(refusals)
    assert all(d["topic"] in (topics.inspections, topics.services) for d in letters)
    _assert_rows(pipeline.cli_json("kpi", "--json"), EXPECTED_MONTHS)
    quarter = pipeline.cli_json("kpi", "--json", "--period", "quarter", "--agency", A)
    _assert_rows(
        quarter,
        {(A, "2024-Q2"): INSPECTIONS_JUNE | {"activities": 6, "online_activity_share": 3 / 6}},
    )
    dead = pipeline.cli_json(
        "sql", "--json", "SELECT reason, count() AS n FROM dead_letters GROUP BY reason"
    )
    assert {r["reason"]: r["n"] for r in dead} == refusals
    pii = pipeline.cli_json("sql", "--json", "SELECT payload FROM dead_letters "
                            "WHERE reason = 'pii_detected'")  # fmt: skip
    assert "0912" not in pii[0]["payload"] and "[REDACTED]" in pii[0]["payload"]
    dup = pipeline.cli_json("sql", "--json", "SELECT count() AS n FROM duplicates")
    assert dup == [{"n": duplicates}]
    cls = pipeline.cli_json(
        "sql",
        "--json",
        "SELECT inspection_id, classification, cancelled "
        "FROM inspection_classifications FINAL ORDER BY inspection_id",
    )
    assert [(r["inspection_id"], r["classification"], r["cancelled"]) for r in cls] == [
        ("I1", "online", 0), ("I2", "hybrid", 0), ("I3", "in_person", 0),
        ("I4", "online", 1), ("I5", "unclassified", 0), ("I6", "online", 0),
    ]  # fmt: skip


@ENGINES
def test_simulated_traffic_equals_ground_truth(
    pipeline: Pipeline, topics: Any, engine: str
) -> None:
    pipeline.use_engine(engine)
    sim = simulate(SimulationConfig(seed=11, events=20_000), load_catalog())
    pipeline.start_worker()
    publish_raw(pipeline.env["PARWATCH_KAFKA_BOOTSTRAP"], topics,
                ((m.kind, m.key, m.value) for m in sim.messages))  # fmt: skip
    status = pipeline.wait_for(len(sim.messages), timeout_s=400)
    assert status["by_result"]["duplicate"] == sim.duplicates
    assert pipeline.stop_worker() == 0
    pipeline.assert_kpis_equal_truth(sim.truth)
    # The day view too (the simulator's truth stops at months): reference_kpis over the
    # accepted events, each once.
    catalog, now = load_catalog(), datetime.now(UTC)
    accepted: dict[Any, Any] = {}
    for m in sim.messages:
        try:
            event = decode(m.value, known_agency=catalog.agencies, now=now)
        except InvalidEvent:
            continue
        accepted.setdefault(event.event_id, event)
    eligible = {c for c, p in catalog.procedures.items() if p.full_process_eligible}
    days = reference_kpis(accepted.values(), kinds=["day"], eligible_procedures=eligible)
    measured = pipeline.cli_json("kpi", "--json", "--period", "day")
    assert len(measured) == len(days) > 1000
    assert sorted(measured, key=json.dumps) == sorted(rows_to_json(days), key=json.dumps)


def test_catalog_reload_without_restart(pipeline: Pipeline, topics: Any, tmp_path: Any) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(bundled_dir(), catalog)
    pipeline.env |= {"PARWATCH_CATALOG_DIR": str(catalog), "PARWATCH_CATALOG_CHECK_S": "0.5"}
    unit = "TH-X-THU-NGHIEM"
    bootstrap = pipeline.env["PARWATCH_KAFKA_BOOTSTRAP"]

    def send_one() -> None:
        event = _insp("R1", "activity", "2024-06-01T08:00:00+07:00", "on_site", agency=unit)
        raw = json.dumps(event).encode()
        publish_raw(bootstrap, topics, [("inspection", message_key(raw), raw)])

    pipeline.start_worker()
    send_one()
    assert pipeline.wait_for(1)["by_result"]["refused"] == 1
    with (catalog / "agencies.csv").open("a", encoding="utf-8") as f:
        f.write(f"{unit},Ủy ban nhân dân xã Thử Nghiệm,commune,TH,2025-07-01,\n")
    sent, deadline = 1, time.monotonic() + 30
    status = {"by_result": {"accepted": 0}}
    while not status["by_result"]["accepted"] and time.monotonic() < deadline:
        send_one()  # refused until the worker has seen the new file, then accepted
        sent += 1
        status = pipeline.wait_for(sent)
    assert status["by_result"]["accepted"] == 1
    assert pipeline.stop_worker() == 0
    names = pipeline.cli_json("sql", "--json", f"SELECT name FROM agencies WHERE code = '{unit}'")
    assert names == [{"name": "Ủy ban nhân dân xã Thử Nghiệm"}]


@ENGINES
def test_tiny_state_cache_still_equals_ground_truth(
    pipeline: Pipeline, topics: Any, engine: str
) -> None:
    """States evicted from the worker's cache are rebuilt from the warehouse: with room for
    500 entities most events need that, and the KPIs must not change."""
    pipeline.use_engine(engine)
    pipeline.env |= {"PARWATCH_WORKER_STATE_CACHE": "500", "PARWATCH_WORKER_MAX_ROWS": "2000"}
    sim = simulate(SimulationConfig(seed=12, events=20_000), load_catalog())
    publish_raw(pipeline.env["PARWATCH_KAFKA_BOOTSTRAP"], topics,
                ((m.kind, m.key, m.value) for m in sim.messages))  # fmt: skip
    pipeline.start_worker()
    status = pipeline.wait_for(len(sim.messages), timeout_s=400)
    assert status["by_result"]["duplicate"] == sim.duplicates
    assert status["by_result"]["redelivered"] == 0
    assert pipeline.stop_worker() == 0
    pipeline.assert_kpis_equal_truth(sim.truth)


def _decoding_process(parent: int, timeout_s: float = 60) -> int:
    """The pid of the worker's decoding process (a spawned child, not the resource tracker)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
                cmdline = (stat.parent / "cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(text[text.rindex(")") + 2 :].split()[1])
            if ppid == parent and b"spawn_main" in cmdline:
                return int(stat.parent.name)
        time.sleep(0.2)
    raise TimeoutError("the worker started no decoding process")


def test_killed_decoding_process_stops_the_worker_and_loses_nothing(
    pipeline: Pipeline, topics: Any
) -> None:
    sim = simulate(SimulationConfig(seed=12, events=8_000, invalid_share=0.01), load_catalog())
    half = len(sim.messages) // 2
    bootstrap = pipeline.env["PARWATCH_KAFKA_BOOTSTRAP"]
    pipeline.start_worker()
    assert pipeline.proc is not None
    child = _decoding_process(pipeline.proc.pid)
    publish_raw(bootstrap, topics, ((m.kind, m.key, m.value) for m in sim.messages[:half]))
    pipeline.wait_for(half)
    os.kill(child, signal.SIGKILL)
    publish_raw(bootstrap, topics, ((m.kind, m.key, m.value) for m in sim.messages[half:]))
    code = pipeline.proc.wait(60)  # the next batch finds the process gone
    assert code == 2
    log = (pipeline.data_dir / "worker.log").read_text(errors="replace")
    assert "decoding process died" in log and "Traceback" not in log
    pipeline.start_worker()  # reads again whatever was not committed
    pipeline.wait_committed(len(sim.messages))
    assert pipeline.stop_worker() == 0
    pipeline.assert_kpis_equal_truth(sim.truth)
