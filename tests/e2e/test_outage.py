"""Warehouse outage (issue 6): the ClickHouse server goes away for 30 s mid-stream. The worker
waits (alive, retrying, memory bounded, no offset committed), and when the server is back it
catches up by itself: nothing lost, nothing doubled.

The server is ``tests.chfront.ChFront``, a ClickHouse HTTP front over this test process's chdb
(the only ClickHouse here); the worker talks to it with its real clickhouse-connect HTTP client.
"""

from __future__ import annotations

import json
import time
from typing import Any

import clickhouse_connect
import pytest

from producers.simulation.raw import publish_raw
from producers.simulation.simulator import SimulationConfig, simulate
from schemas.catalog import load_catalog
from schemas.kpi import rows_to_json
from streams.warehouse.kpi_query import read_kpis
from streams.worker.status import read_status
from tests.chfront import ChFront
from tests.e2e.conftest import Pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse]

EVENTS = 60_000
OUTAGE_S = 30.0
RSS_GROWTH_LIMIT_KB = 10 * 1024  # far below what is published during the outage


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def test_warehouse_outage_loses_nothing_and_recovers(
    pipeline: Pipeline, topics: Any, warehouse: Any, front: ChFront
) -> None:
    sim = simulate(SimulationConfig(seed=31, events=EVENTS), load_catalog())
    total = len(sim.messages)
    first, second = sim.messages[: total // 6], sim.messages[total // 6 :]
    bootstrap = pipeline.env["PARWATCH_KAFKA_BOOTSTRAP"]
    database = str(warehouse.command("SELECT currentDatabase()"))  # the fixture's (USE'd) one
    pipeline.env |= {"PARWATCH_CLICKHOUSE_URL": front.url, "PARWATCH_CLICKHOUSE_DATABASE": database}
    status_path = pipeline.data_dir / "worker-status.json"

    publish_raw(bootstrap, topics, ((m.kind, m.key, m.value) for m in first))
    pipeline.start_worker()
    assert pipeline.proc is not None
    pid = pipeline.proc.pid
    deadline = time.monotonic() + 180
    while pipeline.committed() < 500:
        assert pipeline.proc.poll() is None, "the worker exited"
        assert time.monotonic() < deadline, "the worker committed nothing"
        time.sleep(0.05)

    # --- the outage -----------------------------------------------------------------------
    front.stop()
    down_at = time.monotonic()
    committed_at_start = pipeline.committed()
    rss_at_start = _rss_kb(pid)
    publish_raw(bootstrap, topics, ((m.kind, m.key, m.value) for m in second))
    samples: list[tuple[float, int, int, dict[str, Any]]] = []
    while (t := time.monotonic() - down_at) < OUTAGE_S:
        assert pipeline.proc.poll() is None, "the worker exited during the outage"
        samples.append((t, _rss_kb(pid), pipeline.committed(), read_status(status_path) or {}))
        time.sleep(0.5)
    assert pipeline.proc.pid == pid and pipeline.proc.poll() is None

    settled = [c for t, _, c, _ in samples if t >= 1.0]
    max_rss = max(r for _, r, _, _ in samples)
    print(f"outage: committed {committed_at_start} at start, {settled[0]}..{settled[-1]} after 1 s "
          f"(of {total}); RSS {rss_at_start} kB at start, max {max_rss} kB "
          f"(+{max_rss - rss_at_start} kB); {len(samples)} samples; published while down: "
          f"{len(second)} messages, {sum(len(m.value) for m in second) // 1024} kB")  # fmt: skip
    # The rest was published after the server went away: none of it can be committed.
    assert len(settled) > 40 and min(settled) == max(settled) <= len(first), "committed while down"
    assert max_rss - rss_at_start < RSS_GROWTH_LIMIT_KB
    # What an operator sees: the status file shows the retries and since when it is down
    # (checked last, so that a stale status does not hide the data checks).
    shown = [st for t, _, _, st in samples if t >= 5.0]
    status_shows_outage = all(
        st.get("retries", 0) > 0 and st.get("warehouse_down_since") is not None for st in shown
    )
    log = (pipeline.data_dir / "worker.log").read_text(errors="replace")
    assert "warehouse unavailable, retrying" in log

    # --- back up, on the same port: the worker catches up without a restart ------------------
    front.start()
    pipeline.wait_committed(total, timeout_s=300)
    assert pipeline.proc.pid == pid
    status = read_status(status_path) or {}
    assert status.get("warehouse_down_since") is None, status
    assert "warehouse available again" in (pipeline.data_dir / "worker.log").read_text()
    assert pipeline.stop_worker() == 0

    truth = sorted(rows_to_json(sim.truth), key=json.dumps)
    measured = []
    for period in ("month", "quarter", "year"):
        measured += rows_to_json(read_kpis(warehouse, period))
    assert len(measured) == len(truth) > 100
    assert sorted(measured, key=json.dumps) == truth

    # The same KPIs through the front with clickhouse-connect's HTTP client (checks the front).
    http = clickhouse_connect.get_client(host="127.0.0.1", port=front.port,
                                         database=database)  # fmt: skip
    agency = next(r.agency_code for r in sim.truth if r.agency_code)
    try:
        months = rows_to_json(read_kpis(http, "month", agency=agency))
    finally:
        http.close()
    assert months == rows_to_json(read_kpis(warehouse, "month", agency=agency))
    assert months

    once = warehouse.query("""
        SELECT
          (SELECT count() - uniqExact(event_id) FROM service_submissions FINAL),
          (SELECT count() - uniqExact(event_id) FROM inspection_events FINAL),
          (SELECT count() - uniqExact(event_id) FROM service_events FINAL),
          (SELECT count() FROM (SELECT DISTINCT _topic, _partition, _offset FROM duplicates))
    """).result_rows  # fmt: skip
    assert once == [(0, 0, 0, sim.duplicates)]
    assert status_shows_outage, f"worker-status.json during the outage: {shown[-1]}"
