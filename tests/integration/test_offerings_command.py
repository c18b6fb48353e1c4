"""``parwatch offerings``: import publishes the good lines to the real Tansu broker (read back
with kafka-python), list reads the state at an instant from the embedded warehouse, directly
and through the query endpoint, by EVENTS.md's rule.

The worker's offering path is not used here: ``list`` reads offering_events rows inserted as the
worker writes them (columns of migration 0010)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from parwatch.broker import EmbeddedBroker, TopicSpec, ensure_topics
from parwatch.cli import main
from producers.sdk.partitioning import murmur2
from schemas.catalog import load_catalog
from schemas.offering_catalog import MAX_CATALOG_BYTES, offering_event, read_offerings
from streams.warehouse.reference import load_catalog_tables
from tests.conftest import read_topic

HEADER = "agency_code,procedure_code,level,prefill_designed,effective_at\n"
GOOD = [
    "TH-S-TP,2.000890,partial,false,2024-01-01",  # 2
    "TH-D380,2.000908,partial,true,2024-01-01",  # 3
    "TH-S-TP,2.000890,full_process,true,2024-05-02T08:15:00+07:00",  # 4
    "TH-D380,2.000908,not_offered,false,2025-07-01",  # 6
    "TH-X14797,1.001193,full_process,true,2025-07-01",  # 7
]
FILE = HEADER + "\n".join([
    *GOOD[:3],
    "TH-D999,2.000908,partial,true,2024-01-01",  # 5: unknown agency
    *GOOD[3:],
    "TH-S-TP,2.000890,partial,true,2099-01-01",  # 8: in the future: the contract refuses it
])  # fmt: skip


@pytest.fixture
def kafka_env(
    broker: EmbeddedBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:12]
    names = {
        "PARWATCH_TOPIC_INSPECTIONS": f"inspection-events-{suffix}",
        "PARWATCH_TOPIC_SERVICES": f"service-events-{suffix}",
        "PARWATCH_TOPIC_OFFERINGS": f"service-offerings-{suffix}",
        "PARWATCH_TOPIC_DEAD_LETTERS": f"dead-letters-{suffix}",
    }
    specs = [TopicSpec(names["PARWATCH_TOPIC_INSPECTIONS"], 6),
             TopicSpec(names["PARWATCH_TOPIC_SERVICES"], 6),
             TopicSpec(names["PARWATCH_TOPIC_OFFERINGS"], 6, compacted=True),
             TopicSpec(names["PARWATCH_TOPIC_DEAD_LETTERS"], 3)]  # fmt: skip
    ensure_topics(broker.bootstrap, specs)
    env = {**names, "PARWATCH_KAFKA_BOOTSTRAP": broker.bootstrap,
           "PARWATCH_DATA_DIR": str(tmp_path / "data")}  # fmt: skip
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.mark.kafka
def test_import_sends_the_good_lines_once_per_line_and_lists_the_bad(
    kafka_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "offerings.csv"
    path.write_text(FILE, encoding="utf-8")
    assert main(["offerings", "import", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{path}:5: unknown agency 'TH-D999' (not in the agency catalog)"
    assert out[1].startswith(f"{path}:8: future_timestamp: ")
    assert out[2] == "sent 5 events; 2 bad lines not sent"
    topic = kafka_env["PARWATCH_TOPIC_OFFERINGS"]
    records = read_topic(kafka_env["PARWATCH_KAFKA_BOOTSTRAP"], topic, expected=5)
    assert len(records) == 5
    lines, _ = read_offerings(HEADER + "\n".join(GOOD))
    expected = {offering_event(line)["event_id"]: offering_event(line) for line in lines}
    got = {json.loads(r.value)["event_id"]: r for r in records}
    assert set(got) == set(expected)
    for event_id, record in got.items():
        event = expected[event_id]
        assert json.loads(record.value) == event
        key = f"{event['agency_code']}:{event['procedure_code']}".encode()
        assert record.key == key
        assert record.partition == (murmur2(key) & 0x7FFFFFFF) % 6  # Kafka's default partitioner
    # Importing again sends the very same events (same ids): the pipeline counts each once.
    assert main(["offerings", "import", str(path)]) == 1
    capsys.readouterr()
    again = read_topic(kafka_env["PARWATCH_KAFKA_BOOTSTRAP"], topic, expected=10)
    assert sorted(json.loads(r.value)["event_id"] for r in again) == sorted(list(expected) * 2)


@pytest.mark.kafka
def test_dry_run_and_usage_errors_send_nothing(
    kafka_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "offerings.csv"
    path.write_text(HEADER + "\n".join(GOOD) + "\n", encoding="utf-8")
    assert main(["offerings", "import", "--dry-run", str(path)]) == 0
    assert capsys.readouterr().out == "5 good lines (dry run: nothing sent); no bad lines\n"
    path.write_text("agency,procedure\nTH-S-TP,1\n", encoding="utf-8")
    assert main(["offerings", "import", str(path)]) == 2
    assert "header must be agency_code,procedure_code" in capsys.readouterr().err
    assert main(["offerings", "import", str(tmp_path / "missing.csv")]) == 2
    path.write_bytes(b"\xff\xfe")
    assert main(["offerings", "import", str(path)]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    with path.open("r+b") as f:  # sparse: refused by its size, before anything is read
        f.truncate(MAX_CATALOG_BYTES + 1)
    assert main(["offerings", "import", str(path)]) == 2
    assert "larger than 64 MiB" in capsys.readouterr().err
    topic = kafka_env["PARWATCH_TOPIC_OFFERINGS"]
    assert read_topic(kafka_env["PARWATCH_KAFKA_BOOTSTRAP"], topic, expected=1, timeout_s=3) == []


# -- list ---------------------------------------------------------------------------------------


def _row(agency: str, procedure: str, level: str, prefill: bool, at: str, offset: int,
         event_id: str | None = None) -> list[Any]:  # fmt: skip
    occurred = datetime.fromisoformat(at).astimezone(UTC)
    event_id = event_id or str(uuid.uuid4())
    return [uuid.UUID(event_id), occurred, agency, procedure, level, int(prefill), "offering/1",
            "{}", "service-offerings", 0, offset, occurred]  # fmt: skip


COLUMNS = ["event_id", "occurred_at", "agency_code", "procedure_code", "level",
           "prefill_designed", "schema", "payload", "_topic", "_partition", "_offset",
           "_ingested_at"]  # fmt: skip
ROWS = [
    _row("TH-S-TP", "2.000890", "partial", False, "2024-01-01T00:00:00+07:00", 1),
    _row("TH-S-TP", "2.000890", "full_process", True, "2024-05-02T08:15:00+07:00", 2),
    # a tie at one instant: the later offset wins
    _row("TH-D380", "2.000908", "not_online", False, "2024-01-01T00:00:00+07:00", 3),
    _row("TH-D380", "2.000908", "partial", True, "2024-01-01T00:00:00+07:00", 4),
    _row("TH-D380", "2.000908", "not_offered", False, "2025-07-01T00:00:00+07:00", 5),
    # a tie again, the later offset first in the table
    _row("TH-D380", "1.001612", "full_process", False, "2024-02-01T00:00:00+07:00", 7),
    _row("TH-D380", "1.001612", "partial", False, "2024-02-01T00:00:00+07:00", 6),
    # a procedure the catalog does not know, and a commune that starts later
    _row("TH-D380", "9.999999", "partial", False, "2024-03-01T00:00:00+07:00", 9),
    _row("TH-X14797", "1.001193", "full_process", True, "2025-07-01T00:00:00+07:00", 10),
]


@pytest.fixture
def loaded(warehouse: Any, chdb_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    load_catalog_tables(warehouse, load_catalog())
    warehouse.insert("offering_events", ROWS, column_names=COLUMNS)
    # a batch written again after a crash: the same records at the same offsets change nothing
    warehouse.insert("offering_events", ROWS[5:7], column_names=COLUMNS)
    monkeypatch.setenv("PARWATCH_CLICKHOUSE_URL", chdb_url)
    monkeypatch.setenv(
        "PARWATCH_CLICKHOUSE_DATABASE", warehouse.command("SELECT currentDatabase()")
    )
    monkeypatch.setenv("PARWATCH_QUERY_PORT", "1")  # no endpoint there: read directly
    return warehouse


def _list(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    assert main(["offerings", "list", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.clickhouse
def test_list_is_the_state_at_the_instant(loaded: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert _list(capsys, "--at", "2024-01-01T00:00:00+07:00") == [
        {"agency_code": "TH-D380", "procedure_code": "2.000908",
         "procedure_name": "Cấp bản sao từ sổ gốc", "full_process_eligible": True,
         "level": "partial", "prefill_designed": True, "since": "2024-01-01T00:00:00+07:00"},
        {"agency_code": "TH-S-TP", "procedure_code": "2.000890",
         "procedure_name": "Cấp phép thành lập văn phòng giám định tư pháp",
         "full_process_eligible": True, "level": "partial", "prefill_designed": False,
         "since": "2024-01-01T00:00:00+07:00"},
    ]  # fmt: skip
    assert _list(capsys, "--at", "2023-12-31") == []  # before any event: no service
    mid = {(s["agency_code"], s["procedure_code"]): s for s in _list(capsys, "--at", "2025-06-30")}
    assert {k: (s["level"], s["prefill_designed"]) for k, s in mid.items()} == {
        ("TH-D380", "1.001612"): ("full_process", False),
        ("TH-D380", "2.000908"): ("partial", True),
        ("TH-D380", "9.999999"): ("partial", False),
        ("TH-S-TP", "2.000890"): ("full_process", True),
    }
    assert mid[("TH-D380", "9.999999")]["procedure_name"] is None
    assert mid[("TH-D380", "9.999999")]["full_process_eligible"] is None
    assert mid[("TH-S-TP", "2.000890")]["since"] == "2024-05-02T08:15:00+07:00"
    after = {(s["agency_code"], s["procedure_code"]): s["level"]
             for s in _list(capsys, "--at", "2025-07-01", "--agency", "TH-D380")}  # fmt: skip
    assert after == {("TH-D380", "1.001612"): "full_process",
                     ("TH-D380", "2.000908"): "not_offered",
                     ("TH-D380", "9.999999"): "partial"}  # fmt: skip
    # the table, with the offering KPIs at t (not_offered services excluded)
    assert main(["offerings", "list", "--at", "2025-07-01"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["agency", "procedure", "level", "prefill", "eligible", "since",
                              "name"]  # fmt: skip
    assert out[-3:] == [
        "4 services at 2025-07-01 00:00 (Asia/Ho_Chi_Minh), 1 more not offered any longer",
        "eligible services at full process: 3/3 (100.0%)",
        "online services with prefill designed: 2/4 (50.0%)",
    ]


@pytest.mark.clickhouse
def test_list_reads_through_the_query_endpoint(
    loaded: Any, chdb_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """As when a worker owns the embedded warehouse: the command reads through its endpoint."""
    from streams.warehouse.query_endpoint import QueryServer, ensure_password, password_path
    from streams.warehouse.query_endpoint.server import warehouse_identity

    direct = _list(capsys, "--at", "2025-06-30")
    server = QueryServer(
        loaded, password=ensure_password(password_path(chdb_url)), port=0,
        database=loaded.command("SELECT currentDatabase()"), identity=warehouse_identity(chdb_url),
    ).start()  # fmt: skip
    try:
        monkeypatch.setenv("PARWATCH_QUERY_PORT", str(server.port))
        assert _list(capsys, "--at", "2025-06-30") == direct
        assert len(direct) == 4
    finally:
        server.stop()
