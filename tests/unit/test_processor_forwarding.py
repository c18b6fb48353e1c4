"""The decoding step's partition check (``processor.decode_many`` with partition counts): a
valid event whose entity key maps under murmur2 to another partition becomes a ``Forward`` to
that partition; refusals stay where they are read; the hash equals kafka-python's."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from kafka.partitioner.default import murmur2 as kafka_murmur2

from schemas.catalog import load_catalog
from streams.worker.partitioning import KEY_HASHES, key_hash, murmur2, partition_of
from streams.worker.processor import (
    FORWARD,
    Decoded,
    Forward,
    Refusal,
    RowBuffer,
    apply_decoded,
    decode_many,
)
from tests.conftest import make_inspection_event, make_service_event

NOW = datetime(2026, 1, 1, tzinfo=UTC)
AGENCIES = load_catalog().agencies


class _Message:
    def __init__(self, value: bytes, offset: int) -> None:
        self.value, self.offset = value, offset


def _decode(
    topic: str, partition: int, payloads: list[dict[str, Any] | bytes], counts: Any
) -> list[Any]:
    from streams.worker.processor import pack_batch

    values = [p if isinstance(p, bytes) else json.dumps(p).encode() for p in payloads]
    msgs = [_Message(v, i) for i, v in enumerate(values)]
    return decode_many(*pack_batch([(topic, partition, msgs)]), NOW, AGENCIES, counts)


def test_murmur2_equals_kafka_pythons() -> None:
    rng = random.Random(5)
    keys = [rng.randbytes(n) for n in range(0, 300) for _ in range(3)]
    keys += [k.encode() for k in ("TH-S-TP:D1", "TH-S-TP:D2", "TH-S-YT:KT-2024-017", "Hóa:ả")]
    for k in keys:
        assert murmur2(k) == kafka_murmur2(k), k


@pytest.mark.parametrize(
    ("key", "expected"),  # FACTS.md: where kafka-python's murmur2 puts them among 6 partitions
    [("TH-S-TP:D1", 0), ("TH-S-TP:D2", 0), ("TH-S-YT:KT-2024-017", 2), ("TH-S-TP:X9", 0)],
)
def test_known_keys_map_where_kafka_puts_them(key: str, expected: int) -> None:
    assert partition_of(key, 6) == expected
    assert KEY_HASHES[key] == key_hash(key) == murmur2(key.encode()) & 0x7FFFFFFF


def test_an_event_read_on_another_partition_becomes_a_forward() -> None:
    ev = make_service_event(dossier_id="D1")  # TH-S-TP:D1 -> 0 of 6
    here = _decode("svc", 0, [ev], {"svc": 6})
    assert isinstance(here[0], Decoded)
    away = _decode("svc", 4, [ev], {"svc": 6})
    assert away == [Forward(FORWARD, "TH-S-TP:D1", 0, "TH-S-TP", uuid.UUID(ev["event_id"]).int)]
    # No count for the topic (or none at all): processed where it is read.
    assert isinstance(_decode("svc", 4, [ev], {"other": 6})[0], Decoded)
    assert isinstance(_decode("svc", 4, [ev], None)[0], Decoded)


def test_the_entity_key_decides_not_the_message_key_and_refusals_stay() -> None:
    insp = make_inspection_event(agency_code="TH-S-YT", inspection_id="KT-2024-017")  # -> 2
    bad = make_service_event(dossier_id="D1", channel=None)  # invalid: refused where read
    got = _decode("t", 1, [insp, bad, b"{not json"], {"t": 6})
    assert isinstance(got[0], Forward) and got[0].partition == 2
    assert isinstance(got[1], Refusal) and isinstance(got[2], Refusal)
    assert [type(d) for d in _decode("t", 2, [insp], {"t": 6})] == [Decoded]


def test_offerings_are_keyed_by_agency_and_procedure() -> None:
    offering = {
        "schema": "offering/1", "event_id": str(uuid.uuid4()),
        "occurred_at": "2024-06-01T00:00:00+07:00", "agency_code": "TH-S-TP",
        "procedure_code": "1.001193", "level": "full_process", "prefill_designed": True,
    }  # fmt: skip
    right = partition_of("TH-S-TP:1.001193", 6)
    (d,) = _decode("o", right, [offering], {"o": 6})
    assert isinstance(d, Decoded) and d.key == "TH-S-TP:1.001193"
    (f,) = _decode("o", (right + 1) % 6, [offering], {"o": 6})
    assert isinstance(f, Forward) and f.partition == right
    # Applied in the offerings' own map: a dossier with the same key string is another entity.
    out, offs, doss = RowBuffer(), {}, {}  # type: ignore[var-annotated]
    assert apply_decoded(d, "o", right, 0, NOW, {}, doss, offs, out) == "accepted"
    assert apply_decoded(d, "o", right, 1, NOW, {}, doss, offs, out) == "duplicate"
    assert set(offs) == {"TH-S-TP:1.001193"} and doss == {}
    assert len(out.tables["offering_events"]) == 1 and len(out.tables["duplicates"]) == 1
