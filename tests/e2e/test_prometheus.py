"""Operators' signals end to end (issue 19): the real Prometheus server (Debian's, installed by
tests/setup-tools.sh) scrapes a real ``parwatch worker`` that processes simulated traffic with
refusals and duplicates through a warehouse outage; Prometheus's own HTTP API then shows
accepted + duplicate + refused = published, and the warehouse-down gauge at 1 during the outage
and 0 after. The outage is made as in ``test_outage``: the worker's ClickHouse is
``tests.chfront.ChFront``, stopped and started again on the same port.

Lag is not checked: Tansu reports end offsets too low (README), so its lag means nothing.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dashboards.spec import Targets, build_dashboards
from producers.simulation.raw import publish_raw
from producers.simulation.simulator import SimulationConfig, simulate
from schemas.catalog import load_catalog
from tests.chfront import ChFront
from tests.e2e.conftest import Pipeline

pytestmark = [
    pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse,
    pytest.mark.skipif(shutil.which("prometheus") is None,
                       reason="no prometheus server: run tests/setup-tools.sh"),
]  # fmt: skip

EVENTS = 8_000
PROMETHEUS = shutil.which("prometheus") or "prometheus"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    """Debian's prometheus on a free loopback port, scraping one target every second."""

    def __init__(self, folder: Path, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        folder.mkdir()
        config = folder / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: parwatch-worker\n"
            f"    static_configs: [{{targets: ['{target}']}}]\n",
            encoding="utf-8",
        )
        self.log = (folder / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector (``[]`` while the server is not ready yet)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 (our http URL)
                body = json.load(r)
        except (urllib.error.URLError, ConnectionError):
            return []
        assert body["status"] == "success", body
        return body["data"]["result"]  # type: ignore[no-any-return]

    def value(self, promql: str) -> float | None:
        """The single value of ``promql`` now, or None when the result is empty."""
        result = self.query(promql)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def wait_until(what: str, check: Callable[[], bool], timeout_s: float, alive: Pipeline) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert alive.proc is not None and alive.proc.poll() is None, "the worker exited"
        if time.monotonic() > deadline:
            print((alive.data_dir / "worker.log").read_text(errors="replace")[-3000:])
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.5)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 (our http URL)
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_prometheus_scrapes_the_worker_through_an_outage(
    pipeline: Pipeline, topics: Any, warehouse: Any, front: ChFront, tmp_path: Path
) -> None:
    sim = simulate(SimulationConfig(seed=19, events=EVENTS, invalid_share=0.03), load_catalog())
    total = len(sim.messages)
    refusals = sum(sim.expected_refusals.values())
    assert refusals > 50 and sim.duplicates > 50
    first, second = sim.messages[: total // 2], sim.messages[total // 2 :]
    bootstrap = pipeline.env["PARWATCH_KAFKA_BOOTSTRAP"]
    database = str(warehouse.command("SELECT currentDatabase()"))
    metrics_port = free_port()
    pipeline.env |= {
        "PARWATCH_CLICKHOUSE_URL": front.url, "PARWATCH_CLICKHOUSE_DATABASE": database,
        "PARWATCH_METRICS_PORT": str(metrics_port),
    }  # fmt: skip
    endpoint = f"http://127.0.0.1:{metrics_port}"
    prom = Prometheus(tmp_path / "prometheus", f"127.0.0.1:{metrics_port}")
    try:
        publish_raw(bootstrap, topics, ((m.kind, m.key, m.value) for m in first))
        pipeline.start_worker()
        wait_until("the worker made the first half durable",
                   lambda: pipeline.committed() >= len(first), 180, pipeline)  # fmt: skip
        log = (pipeline.data_dir / "worker.log").read_text(errors="replace")
        assert f"metrics on {endpoint}/metrics (and /healthz, /readyz)" in log
        wait_until("Prometheus scraped the worker", lambda: prom.value("up") == 1, 60, pipeline)
        wait_until("/readyz answers 200",
                   lambda: http_status(f"{endpoint}/readyz") == 200, 30, pipeline)  # fmt: skip
        assert prom.value("parwatch_warehouse_down") == 0

        # --- the outage: the second half is published while ClickHouse is away -----------
        front.stop()
        publish_raw(bootstrap, topics, ((m.kind, m.key, m.value) for m in second))
        wait_until("Prometheus saw the warehouse down",
                   lambda: prom.value("parwatch_warehouse_down") == 1, 60, pipeline)  # fmt: skip
        assert http_status(f"{endpoint}/readyz") == 503  # alive, not ready
        assert http_status(f"{endpoint}/healthz") == 200
        assert (prom.value("parwatch_warehouse_retries_total") or 0) > 0
        durable = prom.value("sum(parwatch_messages_total)")
        assert durable is not None and durable <= len(first), "counted while the warehouse was down"

        # --- back up: the worker catches up by itself -----------------------------------
        front.start()
        pipeline.wait_committed(total, timeout_s=240)
        by_result: dict[str, float] = {}

        def caught_up() -> bool:
            rows = prom.query("sum by (result) (parwatch_messages_total)")
            by_result.clear()
            by_result.update({r["metric"]["result"]: float(r["value"][1]) for r in rows})
            return sum(by_result.values()) >= total and prom.value(
                "parwatch_warehouse_down") == 0  # fmt: skip

        wait_until("Prometheus saw every message durable", caught_up, 60, pipeline)
        print(f"prometheus: {by_result}; published {total}, duplicates {sim.duplicates}, "
              f"refusals {refusals}")  # fmt: skip
        assert by_result["accepted"] + by_result["duplicate"] + by_result["refused"] == total
        assert by_result["refused"] == refusals
        assert by_result["duplicate"] == sim.duplicates
        assert by_result.get("redelivered", 0) == 0
        assert prom.value("sum(parwatch_refused_total)") == refusals
        for reason, n in sim.expected_refusals.items():
            assert prom.value(f'sum(parwatch_refused_total{{reason="{reason}"}})') == n, reason
        assert prom.value("sum(parwatch_agency_messages_total)") == total
        assert prom.value("sum(parwatch_agency_refused_total)") == refusals
        # The gauge over time, from Prometheus's own storage: 1 during the outage, 0 now.
        assert prom.value("max_over_time(parwatch_warehouse_down[10m])") == 1
        assert prom.value("parwatch_warehouse_down") == 0
        assert (prom.value("sum(parwatch_rows_written_total)") or 0) > 0
        assert prom.value("parwatch_assigned_partitions") == 18  # three event topics of 6
        assert http_status(f"{endpoint}/readyz") == 200
        # Every live panel of the pipeline-health dashboard: its PromQL runs on this Prometheus
        # and has series (the panels read what this test has just checked).
        live = {p.key: p for d in build_dashboards(Targets()) for p in d.panels if p.live}
        assert len(live) == 6
        for key, panel in live.items():
            for _, expr in panel.promql:
                assert prom.query(expr), (key, expr)
        assert prom.value(live["live_warehouse_down"].promql[0][1]) == 0
        assert prom.value(live["live_workers"].promql[0][1]) == 1
        results = {r["metric"]["result"] for r in prom.query(live["live_messages"].promql[0][1])}
        assert {"accepted", "duplicate", "refused"} <= results
        assert pipeline.stop_worker() == 0
    finally:
        prom.stop()
