"""``parwatch dead-letters replay`` against the real broker and the embedded ClickHouse: every
send Kafka acknowledged is recorded in ``dead_letter_replays``, also when waiting for the
acknowledgements times out."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from parwatch.broker import EmbeddedBroker
from parwatch.cli import main
from parwatch.commands import dead_letters
from schemas.catalog import load_catalog
from schemas.topics import Topics
from streams.warehouse.writer import write_tables
from streams.worker.processor import Result, RowBuffer, process
from streams.worker.rows import Origin
from tests.conftest import make_inspection_event, read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

UNIT = "TH-X-KHONG-CO"  # not in the catalog: refused as unknown_agency, which is replayable


def _dead_letters(client: Any, topic: str, n: int) -> None:
    catalog = load_catalog()
    out, insp, doss = RowBuffer(), {}, {}  # type: ignore[var-annotated]
    for offset in range(n):
        payload = make_inspection_event(agency_code=UNIT, inspection_id=f"KT-R-{offset}")
        p = process(json.dumps(payload).encode(), Origin(topic, 0, offset),
                    now=datetime(2026, 1, 1, tzinfo=UTC), known_agencies=catalog.agencies,
                    inspection_states=insp, dossier_states=doss, out=out)  # fmt: skip
        assert p.result is Result.REFUSED
    write_tables(client, out.take(), token=None)


def test_acknowledged_sends_are_recorded_when_the_flush_times_out(
    warehouse: Any,
    chdb_url: str,
    broker: EmbeddedBroker,
    topics: Topics,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _dead_letters(warehouse, topics.inspections, 5)
    monkeypatch.setenv("PARWATCH_CLICKHOUSE_URL", chdb_url)
    monkeypatch.setenv(
        "PARWATCH_CLICKHOUSE_DATABASE", warehouse.command("SELECT currentDatabase()")
    )
    monkeypatch.setenv("PARWATCH_KAFKA_BOOTSTRAP", broker.bootstrap)
    # The flush gives up at once: the acknowledgements arrive while the producer closes.
    monkeypatch.setattr(dead_letters, "FLUSH_TIMEOUT_S", 0.0)
    assert main(["dead-letters", "replay", "--note", "catalog fixed"]) == 0
    assert "replayed 5 dead letters" in capsys.readouterr().out

    copies = read_topic(broker.bootstrap, topics.inspections, 5, timeout_s=30)
    assert len(copies) == 5
    recorded = warehouse.query(
        "SELECT dl_offset, new_topic, new_partition, new_offset, note FROM dead_letter_replays"
        " ORDER BY dl_offset"
    ).result_rows
    sent = {
        (dict(c.headers)[dead_letters.REPLAY_HEADER].decode(), c.partition, c.offset)
        for c in copies
    }
    assert {(f"{t}/0/{o}", p, no) for o, t, p, no, _ in recorded} == sent
    assert [r[0] for r in recorded] == [0, 1, 2, 3, 4]
    assert {r[4] for r in recorded} == {"catalog fixed"}
    # recorded, so a second run has nothing left to send
    assert main(["dead-letters", "replay"]) == 0
    assert capsys.readouterr().out.strip() == "nothing to replay"
