"""Nothing is lost when the broker is down, goes away, or the publishing process is killed."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from kafka.producer.future import RecordMetadata

from parwatch.broker import EmbeddedBroker, TopicSpec, free_port
from producers.publisher import Publisher, PublisherConfig
from producers.spool import Spool
from schemas.topics import Topics
from tests.integration.publish_helper import numbered
from tests.integration.test_publisher import assert_delivered, mixed_events, read_back

REPO = Path(__file__).resolve().parents[2]

# Short timeouts so that a dead broker is noticed, and a live one found again, within seconds.
FAST: dict[str, Any] = {
    "connect_timeout_s": 1.0,
    "request_timeout_s": 1.0,
    "delivery_timeout_s": 2.5,
    "retry_backoff_s": 0.1,
    "retry_backoff_max_s": 1.0,
}


@pytest.fixture
def fresh_topics() -> Topics:
    suffix = uuid.uuid4().hex[:12]
    return Topics(f"inspection-events-{suffix}", f"service-events-{suffix}", f"dl-{suffix}")


@pytest.fixture
def port() -> Iterator[int]:
    """A free loopback port for a broker that the test starts (and restarts) itself."""
    yield free_port()


def start_broker(port: int, topics: Topics) -> EmbeddedBroker:
    """A broker on ``port`` with the topics created again (Tansu keeps nothing across runs)."""
    specs = [TopicSpec(topics.inspections, 6), TopicSpec(topics.services, 6)]
    return EmbeddedBroker(port=port, topics=specs).start()


def wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def read_line(stream: IO[bytes], timeout_s: float) -> bytes:
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout_s):
            raise AssertionError(f"no output from the helper process within {timeout_s} s")
    return stream.readline()


@pytest.mark.kafka
def test_events_published_while_the_broker_is_down_are_spooled_then_delivered(
    port: int, fresh_topics: Topics, tmp_path: Path
) -> None:
    events = mixed_events(1000, seed=21)
    cfg = PublisherConfig(
        bootstrap=f"127.0.0.1:{port}", topics=fresh_topics, spool_dir=tmp_path / "spool", **FAST
    )
    broker: EmbeddedBroker | None = None
    try:
        with Publisher(cfg) as publisher:
            slowest = 0.0
            started = time.monotonic()
            for event in events:
                t0 = time.monotonic()
                publisher.publish(event)
                slowest = max(slowest, time.monotonic() - t0)
            elapsed = time.monotonic() - started
            publisher.flush()
            stats = publisher.stats()
            assert (stats.accepted, stats.spooled, stats.spool_pending) == (1000, 1000, 1000)
            assert (stats.delivered, stats.direct) == (0, False)
            assert slowest < 0.5 and elapsed < 5.0, (slowest, elapsed)

            broker = start_broker(port, fresh_topics)
            assert publisher.drain(timeout=40), publisher.stats()
            stats = publisher.stats()
            assert (stats.delivered, stats.spool_pending, stats.direct) == (1000, 0, True)
        records, partitions = read_back(
            broker.bootstrap, [fresh_topics.inspections, fresh_topics.services], 1000
        )
        # The spool keeps publish order, so even per-key order survives the outage.
        assert_delivered(records, events, fresh_topics, partitions)
    finally:
        if broker is not None:
            broker.stop()


@pytest.mark.kafka
def test_sends_that_fail_when_the_broker_goes_away_are_spooled_and_resent(
    port: int, fresh_topics: Topics, tmp_path: Path
) -> None:
    before, after = mixed_events(300, seed=31), mixed_events(700, seed=32)
    cfg = PublisherConfig(
        bootstrap=f"127.0.0.1:{port}", topics=fresh_topics, spool_dir=tmp_path / "spool", **FAST
    )
    broker = start_broker(port, fresh_topics)
    try:
        with Publisher(cfg) as publisher:
            for event in before:
                publisher.publish(event)
            publisher.flush()
            assert publisher.stats().delivered == 300

            broker.stop()  # memory only: the first 300 are gone with it
            started = time.monotonic()
            for event in after:
                publisher.publish(event)  # direct sends into a dead connection
            assert time.monotonic() - started < 5.0
            publisher.flush()  # returns once every failed send is in the spool (fsynced)
            stats = publisher.stats()
            assert (stats.in_flight, stats.delivered, stats.spool_pending) == (0, 300, 700)
            assert stats.failed >= 700 and not stats.direct
            # The failed producer is closed before the broker returns, so that nothing of ours
            # can ask the new broker for a topic before the test has created it.
            wait_for(lambda: not publisher.stats().connected, 15, "the old producer to close")

            broker = start_broker(port, fresh_topics)
            assert publisher.drain(timeout=40), publisher.stats()
        records, partitions = read_back(
            broker.bootstrap, [fresh_topics.inspections, fresh_topics.services], 700
        )
        ids = [json.loads(r.value)["event_id"] for r in records]
        assert len(ids) == len(set(ids)) == 700
        assert set(ids) == {e["event_id"] for e in after}
    finally:
        broker.stop()


@pytest.mark.kafka
def test_a_killed_publishing_process_loses_nothing(
    port: int, fresh_topics: Topics, tmp_path: Path
) -> None:
    events = mixed_events(1000, seed=41)
    source = tmp_path / "events.jsonl"
    source.write_text(
        "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8"
    )
    spool_dir = tmp_path / "spool"
    helper = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.publish_helper",
            "publish",
            f"127.0.0.1:{port}",
            str(spool_dir),
            fresh_topics.inspections,
            fresh_topics.services,
            str(source),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    broker: EmbeddedBroker | None = None
    try:
        assert helper.stdout is not None
        line = read_line(helper.stdout, 30).decode()
        assert line.startswith("READY "), line
        ready = json.loads(line.split(" ", 1)[1])
        assert (ready["published"], ready["bad"], ready["spool_pending"]) == (1000, 0, 1000)
        assert (ready["delivered"], ready["sent"]) == (0, 0)
        helper.send_signal(signal.SIGKILL)
        assert helper.wait(10) == -signal.SIGKILL

        broker = start_broker(port, fresh_topics)
        cfg = PublisherConfig(
            bootstrap=broker.bootstrap, topics=fresh_topics, spool_dir=spool_dir, **FAST
        )
        with Publisher(cfg) as publisher:  # finds 1,000 unsent records and sends them first
            assert publisher.drain(timeout=40), publisher.stats()
            stats = publisher.stats()
            assert (stats.accepted, stats.delivered, stats.spool_pending) == (0, 1000, 0)
        records, partitions = read_back(
            broker.bootstrap, [fresh_topics.inspections, fresh_topics.services], 1000
        )
        assert_delivered(records, events, fresh_topics, partitions)
    finally:
        if helper.poll() is None:
            helper.kill()
            helper.wait()
        if broker is not None:
            broker.stop()


def test_records_synced_before_a_sigkill_survive_it_in_order(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    helper = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.publish_helper", "append", str(spool_dir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert helper.stdout is not None
        synced = 0
        while synced < 3000:  # killed mid-stream, somewhere after 3,000 synced records
            synced = int(read_line(helper.stdout, 30))
        os.kill(helper.pid, signal.SIGKILL)
        helper.wait(10)
    finally:
        if helper.poll() is None:
            helper.kill()
            helper.wait()
    with Spool(spool_dir) as spool:
        survived = spool.peek(spool.pending + 1)
    assert len(survived) >= synced
    assert survived == [numbered(i) for i in range(len(survived))]  # a gap-free prefix


@pytest.mark.kafka
def test_a_drain_cut_short_by_the_broker_going_away_resumes_without_loss(
    port: int, fresh_topics: Topics, tmp_path: Path
) -> None:
    events = mixed_events(1000, seed=51)
    acked_by_first: set[str] = set()
    paused, resume = threading.Event(), threading.Event()

    def on_delivery(event_id: str, md: RecordMetadata | None, exc: BaseException | None) -> None:
        # Runs on the drainer thread: holding it here stops the drain after 200 records.
        if md is not None and not resume.is_set():
            acked_by_first.add(event_id)
            if len(acked_by_first) == 200:
                paused.set()
                resume.wait(30)

    cfg = PublisherConfig(
        bootstrap=f"127.0.0.1:{port}",
        topics=fresh_topics,
        spool_dir=tmp_path / "spool",
        drain_batch=50,
        **FAST,
    )
    broker: EmbeddedBroker | None = None
    try:
        with Publisher(cfg, on_delivery=on_delivery) as publisher:
            for event in events:
                publisher.publish(event)
            broker = start_broker(port, fresh_topics)
            assert paused.wait(30), "the drain never started"
            broker.stop()  # the first 200 are gone with it; the drain is cut short
            resume.set()
            wait_for(
                lambda: publisher.stats().failed >= 50 and not publisher.stats().connected,
                30,
                "the drainer to notice the broker is gone",
            )
            assert publisher.stats().spool_pending == 800

            broker = start_broker(port, fresh_topics)
            assert publisher.drain(timeout=40), publisher.stats()
        assert len(acked_by_first) == 200
        rest = [e for e in events if e["event_id"] not in acked_by_first]
        records, partitions = read_back(
            broker.bootstrap, [fresh_topics.inspections, fresh_topics.services], 800
        )
        assert_delivered(records, rest, fresh_topics, partitions)
    finally:
        resume.set()
        if broker is not None:
            broker.stop()
