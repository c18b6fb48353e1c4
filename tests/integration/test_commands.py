"""The `parwatch` command as users run it: the broker launcher, simulate, errors as one line."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from parwatch.broker import free_port
from tests.conftest import make_inspection_event, read_topic

PARWATCH = [sys.executable, "-m", "parwatch.cli"]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PARWATCH, *args], capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.mark.kafka
def test_broker_command_serves_and_stops_on_ctrl_c() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*PARWATCH, "broker", "--port", str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.strip() == f"broker ready: 127.0.0.1:{port}"
        assert "inspection-events (6)" in proc.stdout.readline()
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(bootstrap_servers=f"127.0.0.1:{port}")
        assert consumer.partitions_for_topic("service-events") == set(range(6))
        assert consumer.partitions_for_topic("dead-letters") == set(range(3))
        consumer.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    with socket.socket() as s:  # nothing listens any more: the broker process is gone
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not a listener
        s.bind(("127.0.0.1", port))


def test_broker_port_taken_is_one_clear_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = _run("broker", "--port", str(port))
    assert done.returncode == 2
    assert done.stderr.strip() == f"parwatch: error: port {port} on 127.0.0.1 is already in use"


def test_broker_binary_missing_is_one_clear_line(tmp_path: Path) -> None:
    done = _run("broker", env={"PARWATCH_TANSU_BIN": str(tmp_path / "tansu")})
    assert done.returncode == 2
    assert done.stderr.strip() == f"parwatch: error: tansu binary not found at {tmp_path}/tansu"


def test_simulate_twice_gives_the_same_events_and_truth(tmp_path: Path) -> None:
    digests = []
    for run, hash_seed in (("a", "1"), ("b", "2")):
        out, truth = tmp_path / f"{run}.jsonl", tmp_path / f"{run}.json"
        done = _run("simulate", "--seed", "1", "--events", "3000", "--out", str(out),
                    "--truth", str(truth), env={"PYTHONHASHSEED": hash_seed})  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert sum(1 for _ in out.open("rb")) == 3000
        digests.append((hashlib.sha256(out.read_bytes()).hexdigest(),
                        hashlib.sha256(truth.read_bytes()).hexdigest()))  # fmt: skip
    assert digests[0] == digests[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["publish", "nope.jsonl"], "parwatch: error: nope.jsonl: no such file"),
        (["simulate", "--seed", "1", "--events", "5"],
         "parwatch: error: no Kafka broker configured: set PARWATCH_KAFKA_BOOTSTRAP=host:port "
         "(`parwatch broker` starts an embedded one and prints its address)"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    env = {"PARWATCH_KAFKA_BOOTSTRAP": "", "PARWATCH_DATA_DIR": str(tmp_path)}
    done = _run(*args, env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == message


def test_bad_setting_is_one_line() -> None:
    done = _run("kpi", env={"PARWATCH_PARTITIONS": "many"})
    assert done.returncode == 2
    assert done.stderr.startswith("parwatch: error: PARWATCH_PARTITIONS: ")
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.kafka
def test_publish_command_sends_good_lines_and_reports_bad_ones(
    broker: Any, topics: Any, tmp_path: Path
) -> None:
    good = [make_inspection_event(inspection_id=f"KT-{i}") for i in range(50)]
    lines = [json.dumps(e, ensure_ascii=False) for e in good]
    lines.insert(10, '{"schema": "inspection/1", "event_id": ')  # line 11
    lines.insert(20, json.dumps(make_inspection_event(agency_code="NOPE")))  # line 21
    lines.insert(30, "")  # line 31, blank: skipped
    file = tmp_path / "agency.jsonl"
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = _run("publish", str(file), env={
        "PARWATCH_KAFKA_BOOTSTRAP": broker.bootstrap, "PARWATCH_DATA_DIR": str(tmp_path),
        "PARWATCH_TOPIC_INSPECTIONS": topics.inspections,
        "PARWATCH_TOPIC_SERVICES": topics.services,
    })  # fmt: skip
    assert done.returncode == 1, done.stderr
    out = done.stdout.splitlines()
    assert out[0].startswith(f"{file}:11: malformed_json: ")
    assert out[1].startswith(f"{file}:21: unknown_agency: ")
    assert out[-1].startswith("sent 50 events; 2 bad lines not sent")
    got = read_topic(broker.bootstrap, topics.inspections, 50, timeout_s=30)
    assert sorted(json.loads(m.value)["event_id"] for m in got) == sorted(
        e["event_id"] for e in good
    )


@pytest.mark.clickhouse
def test_worker_without_a_reachable_broker_says_so(tmp_path: Path) -> None:
    """No broker listening: the worker stops with exit 2 and one parwatch error line (after
    aiokafka's own log line), no traceback."""
    for role in ("all", "sink"):
        done = _run(
            "worker", "--role", role, "--loglevel", "warning",
            env={"PARWATCH_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
                 "PARWATCH_DATA_DIR": str(tmp_path / role), "PARWATCH_QUERY_PORT": "0"},
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert lines[-1].startswith("parwatch: error: Kafka broker 127.0.0.1:")
        assert "Traceback" not in done.stderr and "Unclosed" not in done.stderr


@pytest.mark.kafka
@pytest.mark.parametrize("role", ["all", "sink"])
def test_worker_stops_at_once_while_the_broker_never_answers(role: str, tmp_path: Path) -> None:
    """A broker that takes the connection and never answers (as a group join that a broker
    leaves unanswered): SIGTERM stops the starting worker at once, with exit 0."""
    silent = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    silent.settimeout(90)  # start-up (migrations, the query endpoint) comes first
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(
        [*PARWATCH, "worker", "--role", role, "--loglevel", "info"], stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PARWATCH_KAFKA_BOOTSTRAP": f"127.0.0.1:{silent.getsockname()[1]}",
             "PARWATCH_DATA_DIR": str(tmp_path), "PARWATCH_QUERY_PORT": "0"},
    )  # fmt: skip
    try:
        held.append(silent.accept()[0])  # the worker connected, and waits for an answer
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        proc.kill()
        for s in (*held, silent):
            s.close()
    text = (tmp_path / "worker.log").read_text()
    assert "stop requested while starting" in text, text
    assert "Traceback" not in text
