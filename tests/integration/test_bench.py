"""``parwatch bench`` as users run it: a small run on the embedded stack gives every figure,
consistent with each other and with the warehouse; bad sizes are one line. Speed figures are
never asserted here (speed is measured by the benchmark command, not by timed tests)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

PARWATCH = [sys.executable, "-m", "parwatch.cli"]

KEYS = (
    "events",
    "baseline_events_per_s",
    "pipeline_events_per_s",
    "ratio",
    "latency_p50_s",
    "latency_p95_s",
    "latency_p99_s",
    "rss_after_n_mb",
    "rss_after_4n_mb",
    "publisher_events_per_s",
    "bare_producer_events_per_s",
)


def _bench(tmp_path: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARWATCH_")}
    env["PARWATCH_DATA_DIR"] = str(tmp_path)
    return subprocess.run(
        [*PARWATCH, "bench", *args], capture_output=True, text=True, timeout=timeout,
        check=False, env=env, cwd=tmp_path,
    )  # fmt: skip


@pytest.mark.kafka
@pytest.mark.clickhouse
@pytest.mark.e2e
def test_small_bench_reports_every_figure_consistently(tmp_path: Path) -> None:
    done = _bench(tmp_path, "--events", "3000", "--rate", "200", "--duration", "5", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert set(KEYS) <= set(result)
    assert result["events"] == 3000
    for key in KEYS:
        value = result[key]
        assert isinstance(value, int | float) and math.isfinite(value) and value > 0, key
    assert result["ratio"] == pytest.approx(
        result["pipeline_events_per_s"] / result["baseline_events_per_s"], rel=1e-3
    )
    # The worker's CPU a message (its processes, every thread): Python's decode alone costs
    # microseconds; a tenth of a second a message would be a unit error
    assert 1 < result["pipeline_cpu_us_per_msg"] < 100_000, result["pipeline_cpu_us_per_msg"]
    assert result["latency_p50_s"] <= result["latency_p95_s"] <= result["latency_p99_s"]
    assert result["latency_p99_s"] <= result["latency_max_s"]
    # Three baseline reads; the baseline is the one of median rate.
    reads = result["baseline_reads_per_s"]
    assert len(reads) == 3 and all(r > 0 for r in reads)
    median = sorted(reads)[1]
    if result["ratio_basis"] == "first-batch":
        assert result["baseline_events_per_s"] == pytest.approx(median, rel=1e-3)
    else:  # the worker's first write held everything: the rates from the starts (the
        # times are printed rounded to milliseconds, the rates from the unrounded ones)
        assert result["baseline_events_per_s"] == pytest.approx(
            result["events"] / result["baseline_total_s"], rel=0.05
        )
    # Every accepted event of the latency run (1,000 messages less the refused) was found.
    assert result["latency_missing"] == 0
    assert 950 <= result["latency_events"] < 1000
    # The worker made 4N messages durable: the warehouse holds exactly what was sent.
    check = result["warehouse_check"]
    assert check["distinct_events"] == check["expected_distinct_events"] > 4 * 3000 * 0.9
    assert check["dead_letters"] == check["expected_dead_letters"] > 0
    assert result["verified"] is True
    # A Python process hosting aiokafka and chdb needs well over 50 MiB; its peak bounds the rest.
    assert 50 < result["rss_after_n_mb"] <= result["rss_peak_mb"]
    assert 50 < result["rss_after_4n_mb"] <= result["rss_peak_mb"]
    assert result["publisher_events"] + result["publisher_refused"] == 3000
    assert result["publisher_refused"] > 0  # the mix's invalid events, refused by the SDK
    # Alternating pairs of runs; the reported rates are their medians.
    assert len(result["publisher_runs_per_s"]) == len(result["bare_producer_runs_per_s"]) == 5
    for runs, key in (("publisher_runs_per_s", "publisher_events_per_s"),
                      ("bare_producer_runs_per_s", "bare_producer_events_per_s")):  # fmt: skip
        assert sorted(result[runs])[2] == pytest.approx(result[key], abs=0.1)
    # Progress went to stderr, phase by phase; the work folder is gone (no --keep).
    for phase in ("1/7", "2/7", "3/7", "4/7", "5/7", "6/7", "7/7"):
        assert phase in done.stderr
    assert not any(p.name.startswith("bench-") for p in tmp_path.iterdir())
    assert_machine(result)
    assert "publish_many" in result["publisher_path"]


def assert_machine(result: dict[str, Any]) -> None:
    """The machine the figures come from: this one's processor, cores and load averages."""
    models = [
        line.partition(":")[2].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.partition(":")[0].strip() == "model name"
    ]
    assert result["cpu_model"] == models[0]
    assert result["cpu_count"] == os.cpu_count()
    for key in ("load_average_1m", "load_average_1m_end"):
        assert isinstance(result[key], float) and 0 <= result[key] < 1000, key


@pytest.mark.kafka
def test_the_publisher_phase_alone_reports_its_figures_and_the_machine(tmp_path: Path) -> None:
    done = _bench(tmp_path, "--only", "publisher", "--events", "3000", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["only"] == "publisher"
    assert result["publisher_events"] + result["publisher_refused"] == 3000
    assert result["publisher_refused"] > 0  # the mix's invalid events, refused by the SDK
    assert len(result["publisher_runs_per_s"]) == len(result["bare_producer_runs_per_s"]) == 5
    for runs, key in (("publisher_runs_per_s", "publisher_events_per_s"),
                      ("bare_producer_runs_per_s", "bare_producer_events_per_s")):  # fmt: skip
        assert all(rate > 0 for rate in result[runs])
        assert sorted(result[runs])[2] == pytest.approx(result[key], abs=0.1)
    assert "publish_many" in result["publisher_path"]
    assert_machine(result)
    # No other phase ran.
    for key in ("baseline_events_per_s", "pipeline_events_per_s", "latency_p99_s",
                "rss_after_n_mb"):  # fmt: skip
        assert result[key] == 0, key
    assert "3/7" in done.stderr
    for phase in ("1/7", "2/7", "4/7", "5/7", "6/7", "7/7", "analyst"):
        assert phase not in done.stderr
    assert not any(p.name.startswith(("bench-", "bench-analyst-")) for p in tmp_path.iterdir())

    table = _bench(tmp_path, "--only", "publisher", "--events", "1000")
    assert table.returncode == 0, table.stderr[-3000:]
    lines = table.stdout.splitlines()
    assert lines[0].startswith("parwatch bench --only publisher: the first 1,000 of 1,000")
    assert lines[1].startswith(f"machine: {result['cpu_model']}, {os.cpu_count()} cores; ")
    assert " at start, " in lines[1] and lines[1].endswith(" at end")
    assert "SDK / bare" in lines[3] and "publish_many" in lines[4]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--events", "0"], "--events must be a positive whole number, got 0"),
        (["--rate", "-1"], "--rate must be a positive number of events a second, got -1"),
        (["--rate", "nan"], "--rate must be a positive number of events a second, got nan"),
        (["--duration", "0"], "--duration must be a positive number of seconds, got 0"),
        (["--rate", "0.5", "--duration", "1"], "--rate × --duration must be at least one event"),
        (["--publisher-events", "-5"], "--publisher-events must be positive, got -5"),
    ],
)
def test_bad_sizes_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    done = _bench(tmp_path, *args, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == f"parwatch: error: {message}"
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == []  # nothing was started or created


def _insert_inspection(client: Any, ingested_at: datetime) -> str:
    """One row, columns named, `_inserted_at` left out: as the worker's writer inserts."""
    event_id = str(uuid.uuid4())
    client.insert(
        "inspection_events",
        [[event_id, "concluded", datetime(2024, 6, 1, tzinfo=UTC), "TH-S-TP", "KT-1",
          "inspection/1", "{}", "t", 0, 0, ingested_at]],
        column_names=["event_id", "event_type", "occurred_at", "agency_code", "inspection_id",
                      "schema", "payload", "_topic", "_partition", "_offset", "_ingested_at"],
    )  # fmt: skip
    return event_id


def _inserted_at(client: Any, event_id: str) -> datetime:
    rows = client.query(
        "SELECT _inserted_at FROM inspection_events WHERE event_id = {e:UUID}",
        parameters={"e": event_id},
    ).result_rows
    assert len(rows) == 1
    return rows[0][0].replace(tzinfo=UTC)  # type: ignore[no-any-return]


@pytest.mark.clickhouse
def test_inserted_at_is_the_insert_time_and_older_rows_keep_ingested_at(chdb_url: str) -> None:
    from streams.warehouse import migrations
    from streams.warehouse.client import WarehouseConfig, connect

    config = WarehouseConfig(chdb_url, database=f"t_{uuid.uuid4().hex[:12]}")
    client = connect(config, create_database=True)
    try:
        every = migrations.load_migrations()
        migrations.apply(client, [m for m in every if m.version < 7])
        old = _insert_inspection(client, datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC))
        up_to_7 = [m for m in every if m.version <= 7]
        assert [m.version for m in migrations.apply(client, up_to_7)] == [7]
        before = datetime.now(UTC)
        new = _insert_inspection(client, datetime(2025, 1, 1, tzinfo=UTC))
        after = datetime.now(UTC)
        # A row written before the migration: its _ingested_at, stored, the same on every read.
        assert _inserted_at(client, old) == datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
        # A row written after: the server's clock at the insert (ms precision), not a read time.
        stamped = _inserted_at(client, new)
        assert before - timedelta(milliseconds=1) <= stamped <= after + timedelta(milliseconds=1)
        time.sleep(0.05)
        assert _inserted_at(client, new) == stamped
        # 0008: payloads written from then on with ZSTD(1); rows written before read the same.
        payloads = client.query("SELECT payload FROM inspection_events ORDER BY event_id")
        assert [m.version for m in migrations.apply(client, every)] == [
            m.version for m in every if m.version >= 8
        ]
        codecs = client.query(
            "SELECT table, compression_codec FROM system.columns WHERE database = currentDatabase()"
            " AND name = 'payload' AND table LIKE '%_events' ORDER BY table"
        ).result_rows
        assert codecs == [("inspection_events", "CODEC(ZSTD(1))"),
                          ("offering_events", "CODEC(ZSTD(1))"),  # 0010 creates it so
                          ("service_events", "CODEC(ZSTD(1))")]  # fmt: skip
        again = client.query("SELECT payload FROM inspection_events ORDER BY event_id")
        assert again.result_rows == payloads.result_rows and len(again.result_rows) == 2
    finally:
        client.command(f"DROP DATABASE IF EXISTS {config.database}")
        client.close()
