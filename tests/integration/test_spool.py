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
from pathlib import Path
from typing import IO, Any

import pytest
from kafka.producer.future import RecordMetadata

from parwatch.broker import EmbeddedBroker, TopicSpec, free_port
from producers.sdk.publisher import Publisher, PublisherConfig
from producers.sdk.spool import Spool
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


# -- the command line: publish with the broker down, spool status and deliver ---------------

PARWATCH = [sys.executable, "-m", "parwatch.cli"]


def parwatch_env(bootstrap: str, topics: Topics, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PARWATCH_KAFKA_BOOTSTRAP": bootstrap,
        "PARWATCH_DATA_DIR": str(data_dir),
        "PARWATCH_TOPIC_INSPECTIONS": topics.inspections,
        "PARWATCH_TOPIC_SERVICES": topics.services,
    }


def run_parwatch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PARWATCH, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=180
    )


def write_jsonl(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text(
        "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8"
    )
    return path


class TopicCounter:
    """A bare kafka-python consumer on every partition of the topics, from the beginning. It
    counts what it has read (Tansu's end offsets are too low to stop at)."""

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        tps = [
            TopicPartition(t, p)
            for t in (topics.inspections, topics.services)
            for p in sorted(self._consumer.partitions_for_topic(t) or ())
        ]
        self._consumer.assign(tps)
        self._consumer.seek_to_beginning(*tps)
        self.ids: list[str] = []

    def poll(self, timeout_ms: int = 50) -> int:
        for batch in self._consumer.poll(timeout_ms=timeout_ms).values():
            self.ids.extend(json.loads(r.value)["event_id"] for r in batch)
        return len(self.ids)

    def settle(self, quiet_s: float = 2.0, timeout_s: float = 60.0) -> int:
        """Read until nothing new arrived for ``quiet_s``; return the count."""
        deadline = time.monotonic() + timeout_s
        quiet_since, seen = time.monotonic(), len(self.ids)
        while time.monotonic() - quiet_since < quiet_s and time.monotonic() < deadline:
            if self.poll(200) != seen:
                quiet_since, seen = time.monotonic(), len(self.ids)
        return seen

    def close(self) -> None:
        self._consumer.close()


@pytest.mark.kafka
def test_publish_with_the_broker_down_says_spooled_not_sent_and_republishing_sends_each_once(
    broker: EmbeddedBroker, topics: Topics, tmp_path: Path
) -> None:
    events = mixed_events(300, seed=71)
    source = write_jsonl(tmp_path / "agency.jsonl", events)
    down = parwatch_env(f"127.0.0.1:{free_port()}", topics, tmp_path)  # nothing listens there

    done = run_parwatch(down, "publish", str(source))
    assert done.returncode == 3, done.stdout + done.stderr
    spool_dir = (tmp_path / "spool").resolve()
    address = down["PARWATCH_KAFKA_BOOTSTRAP"]
    assert done.stdout.splitlines() == [
        "sent 0 events; no bad lines",
        f"spooled, not sent: 300 events could not be sent to Kafka ({address}) and wait on this "
        f"computer, in the spool folder {spool_dir}. Nothing is lost.",
        "To send them when Kafka is reachable again: parwatch spool deliver",
    ]
    status = json.loads(run_parwatch(down, "spool", "status", "--json").stdout)
    assert status["spool_folder"] == str(spool_dir)
    assert (status["waiting"], status["in_use"]) == (300, False)
    assert status["oldest"]["event_id"] == events[0]["event_id"]

    # The obvious move: publish the same file again, now that the broker is up.
    up = parwatch_env(broker.bootstrap, topics, tmp_path)
    again = run_parwatch(up, "publish", str(source))
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.splitlines() == [
        "300 events of this file were already waiting in the spool (from an earlier publish): "
        "not queued again",
        "also sent 300 events that were waiting in the spool",
        "sent 0 new events; no bad lines",
    ]
    counter = TopicCounter(broker.bootstrap, topics)
    try:
        assert counter.settle() == 300
        assert sorted(counter.ids) == sorted(e["event_id"] for e in events)  # each once
    finally:
        counter.close()
    status = json.loads(run_parwatch(up, "spool", "status", "--json").stdout)
    assert (status["waiting"], status["oldest"]) == (0, None)
    nothing = run_parwatch(up, "spool", "deliver")
    assert nothing.returncode == 0
    assert nothing.stdout == f"nothing waits in the spool {spool_dir}: nothing to send\n"


@pytest.mark.kafka
def test_a_delivery_killed_mid_spool_sends_at_most_one_batch_twice(
    broker: EmbeddedBroker, topics: Topics, tmp_path: Path
) -> None:
    batch = PublisherConfig(bootstrap="x", spool_dir=tmp_path).drain_batch
    assert batch == 500  # the figure the README and `parwatch spool --help` state
    n = 20_000
    events = mixed_events(n, seed=81)
    source = write_jsonl(tmp_path / "backlog.jsonl", events)
    down = parwatch_env(f"127.0.0.1:{free_port()}", topics, tmp_path)
    assert run_parwatch(down, "publish", str(source)).returncode == 3

    up = parwatch_env(broker.bootstrap, topics, tmp_path)
    counter = TopicCounter(broker.bootstrap, topics)
    try:
        assert counter.poll(200) == 0
        deliverer = subprocess.Popen(
            [*PARWATCH, "spool", "deliver"],
            cwd=REPO,
            env=up,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while counter.poll() < 2000 and time.monotonic() < deadline:
                pass
            deliverer.send_signal(signal.SIGKILL)
            assert deliverer.wait(10) == -signal.SIGKILL
        finally:
            if deliverer.poll() is None:
                deliverer.kill()
                deliverer.wait()
        before_kill = counter.settle()
        assert len(set(counter.ids)) == before_kill  # no duplicates yet
        assert 2000 <= before_kill < n, before_kill  # killed mid-spool
        left = json.loads(run_parwatch(up, "spool", "status", "--json").stdout)["waiting"]
        # The cursor trails Kafka's acknowledgements by at most one batch.
        assert n - before_kill <= left <= n - before_kill + batch, (before_kill, left)

        done = run_parwatch(up, "spool", "deliver")
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.splitlines()[-1] == (
            f"sent all {left:,} events that waited in the spool; it is empty now"
        )
        total = counter.settle()
    finally:
        counter.close()
    assert set(counter.ids) == {e["event_id"] for e in events}  # nothing lost
    twice = total - n
    assert 0 <= twice <= batch, f"{twice} events delivered twice (killed after {before_kill})"


def test_a_spool_held_by_another_process_is_one_clear_line(tmp_path: Path) -> None:
    topics = Topics("inspection-events-x", "service-events-x", "dl-x")
    env = parwatch_env(f"127.0.0.1:{free_port()}", topics, tmp_path)
    source = write_jsonl(tmp_path / "agency.jsonl", mixed_events(3, seed=91))
    with Spool(tmp_path / "spool") as held:  # as a running publisher holds it
        held.append([numbered(0)])
        status = run_parwatch(env, "spool", "status")
        deliver = run_parwatch(env, "spool", "deliver")
        publish = run_parwatch(env, "publish", str(source))
    assert status.returncode == 0
    assert "waiting: 1 event (0.0 MB), not sent to Kafka yet" in status.stdout
    assert "in use: a parwatch publish or spool deliver" in status.stdout
    message = (
        f"parwatch: error: the spool {(tmp_path / 'spool').resolve()} is in use by another "
        "process (a parwatch publish or spool deliver still running?); wait for it to end, "
        "then try again\n"
    )
    assert (deliver.returncode, deliver.stderr) == (2, message)
    assert (publish.returncode, publish.stderr) == (2, message)
