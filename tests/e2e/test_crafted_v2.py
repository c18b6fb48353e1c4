"""The crafted contract-v2 scenario (``tests/e2e/crafted_v2.py``) through the real broker and a
real worker: every monthly KPI equals the figure computed by hand, and every row of every view
(day, month, quarter, year) equals ``reference_kpis``. The events are published in reverse
order, so every dossier's end arrives before its submission and every offering change before
the state it replaces: the figures must not depend on arrival order."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from producers.simulation.raw import publish_raw
from schemas.catalog import load_catalog
from schemas.decoding import decode
from schemas.events import TOPIC_KIND
from schemas.kpi import reference_kpis, rows_to_json
from tests.e2e import crafted_v2
from tests.e2e.conftest import Pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse]


def _key(event: dict[str, Any]) -> bytes:
    entity = event.get("inspection_id") or event.get("dossier_id") or event["procedure_code"]
    return f"{event['agency_code']}:{entity}".encode()


def _close(got: Any, want: Any) -> bool:
    if isinstance(want, float) and got is not None:
        return math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-15)
    return bool(got == want)


def test_crafted_scenario_equals_hand_computed_kpis(pipeline: Pipeline, topics: Any) -> None:
    events = list(reversed(crafted_v2.EVENTS))
    messages = [
        (TOPIC_KIND[e["schema"]], _key(e), json.dumps(e, ensure_ascii=False).encode())
        for e in events
    ]
    pipeline.start_worker()
    publish_raw(pipeline.env["PARWATCH_KAFKA_BOOTSTRAP"], topics, messages)
    status = pipeline.wait_for(len(messages))
    assert status["by_result"]["accepted"] == len(messages)
    assert pipeline.stop_worker() == 0

    months = pipeline.cli_json("kpi", "--json", "--period", "month")
    by_key = {(r["agency_code"], r["period"]): r for r in months}
    assert set(by_key) == crafted_v2.EXPECTED_ROWS_MONTH
    wrong = [
        (key, name, by_key[key][name], want)
        for key, expected in crafted_v2.EXPECTED_MONTH.items()
        for name, want in expected.items()
        if not _close(by_key[key][name], want)
    ]
    assert not wrong, wrong

    known = load_catalog().agencies
    now = datetime(2025, 1, 1, tzinfo=UTC)
    decoded = [decode(json.dumps(e).encode(), known_agency=known, now=now) for e in events]
    for grain in ("day", "month", "quarter", "year"):
        measured = pipeline.cli_json("kpi", "--json", "--period", grain)
        expected = rows_to_json(reference_kpis(decoded, kinds=[grain]))
        assert len(measured) == len(expected) > 0, grain
        assert sorted(measured, key=json.dumps) == sorted(expected, key=json.dumps), grain
