"""End-to-end fixtures: a real ``parwatch worker`` process against the session's Tansu broker,
with its own topics, consumer group and embedded warehouse; CLI runs against that warehouse."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient

from parwatch.broker import EmbeddedBroker
from schemas.kpi import KpiRow, rows_to_json
from schemas.topics import Topics
from streams.worker.status import wait_for_messages
from tests.chfront import ChFront


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Pipeline:
    """One worker process and the CLI, sharing an environment (topics, group, warehouse)."""

    def __init__(self, broker: EmbeddedBroker, topics: Topics, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "PARWATCH_KAFKA_BOOTSTRAP": broker.bootstrap,
            "PARWATCH_DATA_DIR": str(data_dir),
            "PARWATCH_CLICKHOUSE_URL": f"chdb://{data_dir / 'warehouse'}",
            "PARWATCH_TOPIC_INSPECTIONS": topics.inspections,
            "PARWATCH_TOPIC_SERVICES": topics.services,
            "PARWATCH_TOPIC_OFFERINGS": topics.offerings,
            "PARWATCH_TOPIC_DEAD_LETTERS": topics.dead_letters,
            "PARWATCH_APP_ID": f"parwatch-test-{uuid.uuid4().hex[:8]}",
            "PARWATCH_BROKER_SESSION_TIMEOUT_S": "3",
            "PARWATCH_METRICS_PORT": "0",  # a free port: workers of other tests run beside
            "PARWATCH_WORKER_WEB_PORT": str(free_port()),  # the Faust engine's web server
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.others: list[subprocess.Popen[bytes]] = []  # more workers a test starts itself

    def use_engine(self, engine: str) -> None:
        """The worker's engine for the workers this pipeline starts (``batch`` or ``faust``)."""
        self.env["PARWATCH_WORKER_ENGINE"] = engine

    def start_worker(self, *args: str) -> None:
        log = (self.data_dir / "worker.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "parwatch.cli", "worker", "--loglevel", "warning", *args],
            env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def wait_for(self, messages: int, timeout_s: float = 240) -> dict[str, Any]:
        assert self.proc is not None
        proc = self.proc
        try:
            return wait_for_messages(
                self.data_dir / "worker-status.json", messages, timeout_s=timeout_s,
                alive=lambda: proc.poll() is None,
            )  # fmt: skip
        except (RuntimeError, TimeoutError):
            print((self.data_dir / "worker.log").read_text(errors="replace")[-3000:])
            raise

    def stop_worker(self) -> int:
        """SIGTERM and wait: the worker releases the embedded warehouse when it exits."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill_worker(self) -> None:
        """SIGKILL: no flush, no commit, no goodbye to the group."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def committed(self) -> int:
        """Messages the worker's group has committed, over the three event topics (from the
        broker's committed offsets, which are exact; Tansu's end offsets are not, see FACTS.md)."""
        admin = KafkaAdminClient(bootstrap_servers=self.env["PARWATCH_KAFKA_BOOTSTRAP"])
        try:
            group = self.env["PARWATCH_APP_ID"]
            offsets = admin.list_group_offsets({group: None})[group]
        finally:
            admin.close()
        mine = tuple(
            self.env[f"PARWATCH_TOPIC_{kind}"] for kind in ("INSPECTIONS", "SERVICES", "OFFERINGS")
        )
        return sum(o.offset for tp, o in offsets.items() if tp.topic in mine and o.offset > 0)

    def wait_committed(self, total: int, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while (done := self.committed()) < total:
            assert self.proc is not None and self.proc.poll() is None, "the worker exited"
            if time.monotonic() > deadline:
                print((self.data_dir / "worker.log").read_text(errors="replace")[-3000:])
                raise TimeoutError(f"{done} of {total} messages committed")
            time.sleep(0.5)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "parwatch.cli", *args],
            env=self.env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    def assert_kpis_equal_truth(self, truth: list[KpiRow]) -> None:
        """Every month, quarter and year row of `parwatch kpi --json` equals the ground truth."""
        measured = []
        for period in ("month", "quarter", "year"):
            measured += self.cli_json("kpi", "--json", "--period", period)
        expected = rows_to_json(truth)
        assert len(measured) == len(expected) > 100
        assert sorted(measured, key=json.dumps) == sorted(expected, key=json.dumps)

    def cli_json(self, *args: str) -> Any:
        done = self.cli(*args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture
def pipeline(broker: EmbeddedBroker, topics: Topics, tmp_path: Path) -> Iterator[Pipeline]:
    p = Pipeline(broker, topics, tmp_path)
    yield p
    for proc in [p.proc, *p.others]:  # whatever a failed test left running
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def front(warehouse: Any) -> Iterator[ChFront]:
    """A ClickHouse HTTP front over this process's chdb (``tests.chfront``), for outages."""
    f = ChFront(warehouse)
    f.start()
    yield f
    f.stop()
