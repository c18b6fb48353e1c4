"""The filter of entities in the warehouse never forgets one (no false negatives), and is
built from the keys the warehouse holds."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from schemas.catalog import load_catalog
from streams.warehouse.writer import write_tables
from streams.worker.known import KnownKeys
from streams.worker.processor import RowBuffer, process
from streams.worker.rows import Origin
from tests.conftest import make_inspection_event, make_service_event

CATALOG = load_catalog()


def test_no_false_negatives_and_few_false_positives() -> None:
    rng = random.Random(7)
    keys = [f"TH-{rng.randrange(10**6)}:KT-{rng.randrange(10**9)}" for _ in range(20_000)]
    known = KnownKeys(bits=1 << 20)
    for k in keys:
        known.add(k)
    assert all(k in known for k in keys)
    others = [f"X-{i}:Ả-{i}" for i in range(20_000)]
    false = sum(k in known for k in others)
    assert false < 400  # about 0.2% expected at this load (k=3, 20k keys in 2^20 bits)
    known.clear()
    assert not any(k in known for k in keys[:100])


def test_check_add_answers_as_in_then_add() -> None:
    """``check_add(k)`` gives ``k in known`` before it, and leaves the bits ``add`` leaves, in
    a filter small enough for a key's own positions to collide."""
    rng = random.Random(11)
    keys = [f"TH-{rng.randrange(500)}:HS-{rng.randrange(3000)}" for _ in range(5_000)]
    one, two = KnownKeys(bits=1 << 12), KnownKeys(bits=1 << 12)
    answers = []
    for k in keys:
        answers.append(k in two)
        two.add(k)
        assert one.check_add(k) is answers[-1], k
    assert one._array == two._array and one.count == two.count == len(keys)
    assert True in answers and False in answers


@pytest.mark.clickhouse
def test_loaded_from_the_warehouse(warehouse: Any) -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, tzinfo=UTC)
    ids = ["KT-1", "Thanh Hóa'2", "x\\y"]
    out, insp, doss = RowBuffer(), {}, {}  # type: ignore[var-annotated]
    payloads = [make_inspection_event(inspection_id=i) for i in ids]
    payloads.append(make_service_event(dossier_id="HS-Đ-1"))
    for offset, payload in enumerate(payloads):
        raw = json.dumps(payload, ensure_ascii=False).encode()
        process(raw, Origin("t", 0, offset), now=now, known_agencies=CATALOG.agencies,
                inspection_states=insp, dossier_states=doss, out=out)  # fmt: skip
    write_tables(warehouse, out.take(), token=None)
    known = KnownKeys(bits=1 << 16)
    assert known.load(warehouse) == 4
    for key in [*insp, *doss]:
        assert key in known
    assert "TH-S-TTTT:KT-2" not in known
