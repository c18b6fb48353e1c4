"""Dead letters end to end: events of an agency missing from the catalog are refused, listed,
replayed once the catalog has the agency, then counted exactly once, also when replayed again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from producers.simulation.messages import message_key
from producers.simulation.raw import publish_raw
from schemas.catalog import bundled_dir
from schemas.topics import Topics
from tests.conftest import make_inspection_event, make_service_event
from tests.e2e.conftest import Pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse]

UNIT = "TH-X-THU-NGHIEM"
KNOWN = "TH-S-TTTT"


def _insp(iid: str, event_type: str, at: str, mode: str | None = None, **kw: Any) -> Any:
    extra: dict[str, Any] = {"activity": {"mode": mode, "system_code": None}} if mode else {}
    return make_inspection_event(
        agency_code=kw.pop("agency", UNIT), inspection_id=iid, event_type=event_type,
        occurred_at=at, **extra, **kw,
    )  # fmt: skip


def traffic() -> tuple[list[dict[str, Any]], list[tuple[str, bytes]]]:
    """(events of the unknown unit, all messages as (kind, value) in publish order)."""
    unit_events = [
        _insp("R1", "activity", "2024-06-03T09:00:00+07:00", "video_conference"),
        _insp("R1", "concluded", "2024-06-10T16:00:00+07:00"),
        _insp("R2", "activity", "2024-06-04T09:00:00+07:00", "on_site"),
        _insp("R2", "concluded", "2024-06-11T16:00:00+07:00"),
        make_service_event(agency_code=UNIT, dossier_id="HS-R-1",
                           occurred_at="2024-06-12T09:00:00+07:00"),
    ]  # fmt: skip
    other = [
        # Never replayable: the payload kept is redacted, and garbage stays garbage.
        ("inspection", json.dumps(_insp("R3", "opened", "2024-06-01T08:00:00+07:00")
                                  | {"ghi_chu": "Gọi 0912 345 678"}, ensure_ascii=False).encode()),
        ("service", b'{"schema": "service/1", "event_id": '),
        # A known agency: accepted at once.
        ("inspection", json.dumps(_insp("K1", "activity", "2024-06-05T09:00:00+07:00",
                                        "information_system", agency=KNOWN)).encode()),
    ]  # fmt: skip
    kinds = ["inspection"] * 4 + ["service"]
    values = [json.dumps(e, ensure_ascii=False).encode() for e in unit_events]
    messages = list(zip(kinds, values, strict=True))
    return unit_events, messages + other


def restart_worker(pipeline: Pipeline) -> None:
    # The status file counts since the worker started: a fresh worker writes a fresh one.
    (pipeline.data_dir / "worker-status.json").unlink(missing_ok=True)
    pipeline.start_worker()


def unit_counts(pipeline: Pipeline) -> dict[str, Any]:
    rows = pipeline.cli_json("sql", "--json", f"""
        SELECT (SELECT count() FROM inspection_events FINAL WHERE agency_code = '{UNIT}') AS insp,
               (SELECT count() FROM service_events FINAL WHERE agency_code = '{UNIT}') AS svc,
               (SELECT count() FROM service_submissions FINAL WHERE agency_code = '{UNIT}') AS sub,
               (SELECT count() FROM duplicates WHERE agency_code = '{UNIT}') AS dup""")  # fmt: skip
    return rows[0]  # type: ignore[no-any-return]


def test_unknown_agency_dead_letters_are_replayed_after_a_catalog_fix(
    pipeline: Pipeline, topics: Topics, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(bundled_dir(), catalog)
    pipeline.env |= {"PARWATCH_CATALOG_DIR": str(catalog)}
    unit_events, messages = traffic()
    bootstrap = pipeline.env["PARWATCH_KAFKA_BOOTSTRAP"]

    restart_worker(pipeline)
    # Keyed by entity (EVENTS.md), so no accepted event is forwarded to another partition.
    publish_raw(bootstrap, topics, ((k, message_key(v), v) for k, v in messages))
    status = pipeline.wait_for(len(messages))
    assert status["by_result"]["refused"] == 7 and status["by_result"]["accepted"] == 1
    assert pipeline.stop_worker() == 0

    # list: every column checked for the unit's five refusals.
    listed = pipeline.cli_json("dead-letters", "list", "--json", "--agency", UNIT)
    assert sorted(d["reason"] for d in listed) == ["pii_detected"] + ["unknown_agency"] * 5
    unknown = [d for d in listed if d["reason"] == "unknown_agency"]
    assert sorted(d["event_id"] for d in unknown) == sorted(e["event_id"] for e in unit_events)
    by_id = {e["event_id"]: e for e in unit_events}
    for d in unknown:
        assert json.loads(d["payload"]) == by_id[d["event_id"]]
        assert d["topic"] == topics.for_schema(by_id[d["event_id"]]["schema"])
        assert d["detail"] == f"agency_code '{UNIT}' is not in the agency catalog"
        assert (d["replays"], d["last_replayed_at"], d["errors"]) == (0, None, [])
    positions = {(d["topic"], d["partition"], d["offset"]) for d in unknown}
    assert len(positions) == 5
    malformed = pipeline.cli_json("dead-letters", "list", "--json", "--reason", "malformed_json")
    assert [d["agency_code"] for d in malformed] == [None]
    table = pipeline.cli(
        "dead-letters", "list", "--reason", "unknown_agency", "--since", "2020-01-01"
    )
    assert table.returncode == 0 and table.stdout.rstrip().endswith("(5 dead letters)")
    future = pipeline.cli_json("dead-letters", "list", "--json", "--since", "2999-01-01")
    assert future == []
    bad = pipeline.cli("dead-letters", "list", "--reason", "lost")
    assert bad.returncode == 2 and "'lost': not a reason" in bad.stderr

    # replay: what would go, then refusals of what can never go, then the real thing.
    dry = pipeline.cli("dead-letters", "replay", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.splitlines()[-1] == (
        "would replay 5 dead letters: 5 unknown_agency"
    )
    assert f"{UNIT}:R1" in dry.stdout and f"{UNIT}:HS-R-1" in dry.stdout
    never = pipeline.cli("dead-letters", "replay", "--reason", "pii_detected")
    assert never.returncode == 2 and "never replayable" in never.stderr
    with (catalog / "agencies.csv").open("a", encoding="utf-8") as f:
        f.write(f"{UNIT},Ủy ban nhân dân xã Thử Nghiệm,commune,TH,2024-01-01,\n")
    note = "catalog adds xã Thử Nghiệm"
    done = pipeline.cli("dead-letters", "replay", "--note", note)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("replayed 5 dead letters (replay ")
    again = pipeline.cli("dead-letters", "replay")
    assert (again.returncode, again.stdout) == (0, "nothing to replay\n")
    replays = pipeline.cli_json("sql", "--json", "SELECT * FROM dead_letter_replays FINAL")
    assert len(replays) == 5 and len({r["replay_id"] for r in replays}) == 1
    assert {(r["dl_topic"], r["dl_partition"], r["dl_offset"]) for r in replays} == positions
    assert all(r["note"] == note and r["reason"] == "unknown_agency" for r in replays)
    assert all(r["new_topic"] == r["dl_topic"] for r in replays)
    new_positions = {(r["new_topic"], r["new_partition"], r["new_offset"]) for r in replays}
    assert not new_positions & positions

    # The worker handles the copies as new messages: accepted, counted once.
    restart_worker(pipeline)
    status = pipeline.wait_for(5)
    assert status["by_result"]["accepted"] == 5 and status["by_result"]["refused"] == 0
    assert pipeline.stop_worker() == 0
    assert unit_counts(pipeline) == {"insp": 4, "svc": 1, "sub": 1, "dup": 0}
    kpi = pipeline.cli_json("kpi", "--json", "--agency", UNIT)
    assert [(r["period"], r["inspections_online"], r["inspections_in_person"],
             r["online_inspection_share"], r["online_submissions"]) for r in kpi] == [
        ("2024-06", 1, 1, 0.5, 1)
    ]  # fmt: skip
    listed = pipeline.cli_json("dead-letters", "list", "--json", "--reason", "unknown_agency")
    assert [d["replays"] for d in listed] == [1] * 5 and all(d["last_replayed_at"] for d in listed)

    # Replayed a second time: duplicates, nothing counted twice.
    forced = pipeline.cli("dead-letters", "replay", "--again", "--agency", UNIT)
    assert forced.stdout.startswith("replayed 5 dead letters"), forced.stderr
    restart_worker(pipeline)
    status = pipeline.wait_for(5)
    assert status["by_result"]["duplicate"] == 5 and status["by_result"]["accepted"] == 0
    assert pipeline.stop_worker() == 0
    assert unit_counts(pipeline) == {"insp": 4, "svc": 1, "sub": 1, "dup": 5}
    assert pipeline.cli_json("kpi", "--json", "--agency", UNIT) == kpi
    count = pipeline.cli_json("sql", "--json", "SELECT count() AS n FROM dead_letter_replays")
    assert count == [{"n": 10}]
