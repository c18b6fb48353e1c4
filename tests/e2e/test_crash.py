"""Crash safety: a worker SIGKILLed at random moments, one of them inside a ClickHouse insert,
and restarted each time, ends with exactly the simulator's ground truth."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from producers.simulation.raw import publish_raw
from producers.simulation.simulator import SimulationConfig, simulate
from schemas.catalog import load_catalog
from streams.worker.status import read_status
from tests.e2e.conftest import Pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse]

EVENTS = 50_000
KILLS = 5


def _insert_in_progress(warehouse: Path) -> bool:
    """ClickHouse writes a new part under tmp_insert_* and renames it when the insert is done."""
    return any(warehouse.glob("store/*/*/tmp_insert_*"))


def _kill_during_insert(pipeline: Pipeline, timeout_s: float = 60) -> bool:
    warehouse = pipeline.data_dir / "warehouse"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _insert_in_progress(warehouse):
            pipeline.kill_worker()
            return True
        time.sleep(0.0005)
    return False


def _durable_so_far(pipeline: Pipeline) -> int:
    return int((read_status(pipeline.data_dir / "worker-status.json") or {}).get("messages", 0))


@pytest.mark.parametrize("engine", ["batch", "faust"])
def test_sigkill_at_random_moments_gives_ground_truth(
    pipeline: Pipeline, topics: Any, engine: str
) -> None:
    pipeline.use_engine(engine)
    # Small batches: many inserts, so many moments to be killed at (default: 20,000 rows).
    pipeline.env["PARWATCH_WORKER_MAX_ROWS"] = "2000"
    sim = simulate(SimulationConfig(seed=23, events=EVENTS), load_catalog())
    total = len(sim.messages)
    publish_raw(pipeline.env["PARWATCH_KAFKA_BOOTSTRAP"], topics,
                ((m.kind, m.key, m.value) for m in sim.messages))  # fmt: skip
    rng = random.Random(7)
    during_insert = rng.randrange(KILLS)
    killed_in_insert = 0
    for i in range(KILLS):
        pipeline.start_worker()
        # Kill once this run has made a random share of what is left durable (so every run
        # does some work first; after a restart the worker rejoins the group and rebuilds states).
        left = total - pipeline.committed()
        target = rng.randint(200, max(201, left // (KILLS - i + 1)))
        deadline = time.monotonic() + 180
        while _durable_so_far(pipeline) < target:
            assert pipeline.proc is not None and pipeline.proc.poll() is None, "worker exited"
            assert time.monotonic() < deadline, "worker made no progress after a restart"
            time.sleep(0.001)
        if i == during_insert:
            killed_in_insert += _kill_during_insert(pipeline)
        else:
            pipeline.kill_worker()
        (pipeline.data_dir / "worker-status.json").unlink(missing_ok=True)
        assert pipeline.committed() < total, "the worker finished before it could be killed"
    assert killed_in_insert == 1, "no insert was caught in progress"

    pipeline.start_worker()
    pipeline.wait_committed(total)
    assert pipeline.stop_worker() == 0

    pipeline.assert_kpis_equal_truth(sim.truth)
    _assert_counted_once(pipeline, sim.duplicates)


def _assert_counted_once(pipeline: Pipeline, duplicates: int) -> None:
    """No event_id is counted twice: every source of the KPI views has one row per event or
    entity, and the skipped duplicates are exactly the simulator's."""
    once = pipeline.cli_json("sql", "--json", """
        SELECT
          (SELECT count() - uniqExact(event_id) FROM service_submissions FINAL) AS submissions,
          (SELECT count() - uniqExact(event_id) FROM service_events FINAL) AS service_events,
          (SELECT count() - uniqExact(event_id) FROM inspection_events FINAL) AS inspection_events,
          (SELECT count() - uniqExact(event_id) FROM offering_events FINAL) AS offering_events,
          (SELECT count() - uniqExact(agency_code, dossier_id) FROM dossier_lifecycle FINAL)
            AS dossiers,
          (SELECT count() - uniqExact(agency_code, inspection_id) FROM counted_inspections)
            AS inspections,
          (SELECT count() FROM (SELECT DISTINCT _topic, _partition, _offset FROM duplicates))
            AS duplicates
    """)  # fmt: skip
    assert once == [{"submissions": 0, "service_events": 0, "inspection_events": 0,
                     "offering_events": 0, "dossiers": 0, "inspections": 0,
                     "duplicates": duplicates}]  # fmt: skip


def test_faust_worker_sigkilled_three_times_mid_stream(pipeline: Pipeline, topics: Any) -> None:
    """A Faust worker killed three times while events are still being published (the
    producer runs beside it the whole time), restarted after each kill: KPIs equal the
    truth, and no event is counted twice."""
    pipeline.use_engine("faust")
    pipeline.env["PARWATCH_WORKER_MAX_ROWS"] = "2000"
    sim = simulate(SimulationConfig(seed=31, events=30_000), load_catalog())
    total = len(sim.messages)
    bootstrap = pipeline.env["PARWATCH_KAFKA_BOOTSTRAP"]
    published = threading.Event()
    killed = threading.Event()  # the third kill is done: the rest of the stream may come
    failures: list[BaseException] = []
    held_back = 5_000  # published only after the third kill: every kill is mid-stream

    def publish() -> None:
        try:  # in slices, so that the stream is still arriving while the worker is killed
            step = 500
            for start in range(0, total - held_back, step):
                part = sim.messages[start : min(start + step, total - held_back)]
                publish_raw(bootstrap, topics, ((m.kind, m.key, m.value) for m in part))
                time.sleep(0.3)
            killed.wait(300)
            rest = sim.messages[total - held_back :]
            publish_raw(bootstrap, topics, ((m.kind, m.key, m.value) for m in rest))
        except BaseException as exc:  # reported by the test thread below
            failures.append(exc)
        finally:
            published.set()

    producer = threading.Thread(target=publish, name="publisher", daemon=True)
    producer.start()
    rng = random.Random(5)
    for kill in range(3):
        pipeline.start_worker()
        target = rng.randint(300, 1_500)  # durable in this run before the kill
        deadline = time.monotonic() + 180
        while _durable_so_far(pipeline) < target:
            assert pipeline.proc is not None and pipeline.proc.poll() is None, "worker exited"
            assert time.monotonic() < deadline, f"no progress after restart {kill}"
            time.sleep(0.005)
        pipeline.kill_worker()
        (pipeline.data_dir / "worker-status.json").unlink(missing_ok=True)
    assert not published.is_set(), "publishing ended before the third kill: not mid-stream"
    killed.set()
    pipeline.start_worker()
    published.wait(300)
    assert not failures, failures
    pipeline.wait_committed(total)
    assert pipeline.stop_worker() == 0
    pipeline.assert_kpis_equal_truth(sim.truth)
    _assert_counted_once(pipeline, sim.duplicates)
