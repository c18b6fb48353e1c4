"""Known data for the dashboards' tests: seeded simulator traffic through the real processor
and writer into a migrated database of the session's embedded ClickHouse (one per module)."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from producers.simulation.simulator import Simulation, SimulationConfig, simulate
from schemas.catalog import load_catalog
from streams.warehouse import migrations
from streams.warehouse.client import WarehouseConfig, connect
from streams.warehouse.reference import load_catalog_tables
from streams.warehouse.writer import write_tables
from streams.worker.processor import Result, RowBuffer, process
from streams.worker.rows import Origin

# Rows are written as if the worker ran on 2026-01-02 from 10:00:00 UTC, one message every
# 250 ms: the pipeline panels see a 12.5-minute burst.
INGEST_START = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)
STEP = timedelta(milliseconds=250)


def accepted_events(sim: Simulation) -> list[Any]:
    """The events the worker accepted, decoded as it decodes them (each event_id once, the
    first copy wins), in publish order: what the tests compute their expected lists from."""
    from schemas.decoding import decode
    from schemas.errors import InvalidEvent

    catalog = load_catalog()
    seen, out = set(), []
    for offset, m in enumerate(sim.messages):
        try:
            ev = decode(m.value, known_agency=catalog.agencies, now=INGEST_START + offset * STEP)
        except InvalidEvent:
            continue
        if ev.event_id not in seen:
            seen.add(ev.event_id)
            out.append(ev)
    return out


@dataclass
class Loaded:
    client: Any
    client_url: str
    database: str
    sim: Simulation
    results: Counter[str]  # processor result -> messages
    refused_by_reason: Counter[str]
    last_ingest: datetime


def load(client: Any, sim: Simulation) -> tuple[Counter[str], Counter[str], datetime]:
    catalog = load_catalog()
    load_catalog_tables(client, catalog)
    out, insp, doss = RowBuffer(), {}, {}  # type: ignore[var-annotated]
    results: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    at = INGEST_START
    for offset, m in enumerate(sim.messages):
        at = INGEST_START + offset * STEP
        p = process(
            m.value, Origin(f"{m.kind}-events", offset % 6, offset), now=at,
            known_agencies=catalog.agencies, inspection_states=insp, dossier_states=doss,
            out=out,
        )  # fmt: skip
        results[p.result.value] += 1
        if p.result is Result.REFUSED and p.refusal is not None:
            reasons[p.refusal.reason.value] += 1
    write_tables(client, out.take(), token=None)
    return results, reasons, at


@pytest.fixture(scope="module")
def loaded(chdb_url: str) -> Iterator[Loaded]:
    config = WarehouseConfig(chdb_url, database=f"d_{uuid.uuid4().hex[:12]}")
    client = connect(config, create_database=True)
    migrations.apply(client)
    sim = simulate(SimulationConfig(seed=11, events=3000, invalid_share=0.02), load_catalog())
    results, reasons, last = load(client, sim)
    yield Loaded(client, chdb_url, config.database, sim, results, reasons, last)
    client.command(f"DROP DATABASE IF EXISTS {config.database}")
