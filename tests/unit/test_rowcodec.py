"""The warehouse-rows messages: a classified batch survives the trip, split under Kafka's
default message size, with the source message count once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from streams.warehouse.tables import Row
from streams.worker.rowcodec import decode_batch, encode_batch


def test_a_batch_round_trips_in_bounded_messages() -> None:
    when = datetime(2024, 6, 1, 3, 0, 0, 123000, tzinfo=UTC)
    events = [[uuid.UUID(int=i), when, "Thanh Hóa", None, [1, 2]] for i in range(1203)]
    tables: dict[str, list[Row]] = {
        "inspection_events": events,
        "duplicates": [[uuid.UUID(int=7), "TH-S-TP", 3]] * 3,
    }
    messages = encode_batch(tables, "tok", 77, rows_per_message=500)
    decoded = [decode_batch(m) for m in messages]
    assert [t for _, t, _ in decoded] == ["tok:0", "tok:1", "tok:2"]
    assert [n for _, _, n in decoded] == [77, 0, 0]
    assert [sum(len(r) for r in t.values()) for t, _, _ in decoded] == [500, 500, 206]
    back: dict[str, list[list[object]]] = {}
    for t, _, _ in decoded:
        for name, rows in t.items():
            back.setdefault(name, []).extend(rows)
    assert back == tables
    assert all(len(m) < 1_000_000 for m in messages)
