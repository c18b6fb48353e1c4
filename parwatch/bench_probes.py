"""The measuring instruments of ``parwatch bench``: a worker process watched through its status
file and /proc, a bare aiokafka consumer, bare and SDK producers, a paced publisher.

Each function blocks until its measurement is done and raises ``BenchError`` (one line) when it
cannot finish; clocks are ``perf_counter`` for durations and wall time where a figure is compared
with the warehouse's clock (``_inserted_at``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Container, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from parwatch import wiring
from parwatch.broker import TopicSpec
from parwatch.errors import UsageError
from parwatch.progress import Progress
from parwatch.settings import Settings
from producers.sdk.bulk import CHUNK_LINES
from producers.sdk.connection import producer_options
from producers.sdk.publisher import Publisher
from producers.simulation.messages import Message
from producers.simulation.raw import topic_of
from schemas.decoding import decode
from schemas.errors import InvalidEvent
from schemas.topics import Topics


class BenchError(UsageError):
    """The benchmark could not finish; the message says why (and where the worker log is)."""


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of an ascending, non-empty sequence."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def create_topics(bootstrap: str, specs: Iterable[TopicSpec], options: Mapping[str, Any]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **options)
    try:
        admin.create_topics([NewTopic(s.name, s.partitions, 1) for s in specs])
    finally:
        admin.close()


def delete_topics(bootstrap: str, prefixes: tuple[str, ...], options: Mapping[str, Any]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **options)
    try:
        names = [t for t in admin.list_topics() if t.startswith(prefixes)]
        if names:
            admin.delete_topics(names)
    finally:
        admin.close()


async def consume_all(
    bootstrap: str, topics: Sequence[str], expected: int, options: Mapping[str, Any],
    progress: Progress, timeout_s: float,
) -> tuple[float, float, int, float]:  # fmt: skip
    """Read ``expected`` messages (manual assignment, from the beginning), json.loads each.
    Returns (first batch end, last message, first batch size, consumer start), perf_counter."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    started = time.perf_counter()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest", **wiring.aiokafka_options(options),
    )  # fmt: skip
    await consumer.start()
    try:
        await consumer.topics()  # loads the metadata of every topic
        tps = [
            TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t))
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        count = first_size = undecodable = 0
        first_at = 0.0
        deadline = time.monotonic() + timeout_s
        # Count, never compare with end offsets: Tansu's high watermarks are too low (FACTS.md).
        while count < expected:
            if time.monotonic() > deadline:
                raise BenchError(f"baseline consumer read {count:,} of {expected:,} messages")
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            for records in batches.values():
                for record in records:
                    try:
                        json.loads(record.value)
                    except ValueError:  # invalid JSON and invalid UTF-8 alike
                        undecodable += 1
                    count += 1
            if count and not first_size:
                first_size, first_at = count, time.perf_counter()
            progress(count)
        last_at = time.perf_counter()
        progress.done(count)
        return first_at, last_at, first_size, started
    finally:
        await consumer.stop()


def bare_producer_rate(
    records: Sequence[tuple[str, bytes, bytes]], options: Mapping[str, Any]
) -> float:
    """Events/s of kafka-python alone sending ``records`` (topic, key, value), flush included."""
    producer = KafkaProducer(**options)
    try:
        for topic in {t for t, _, _ in records}:
            producer.partitions_for(topic)  # metadata before the clock starts, as the SDK does
        started = time.perf_counter()
        futures = [producer.send(t, key=k, value=v) for t, k, v in records]
        producer.flush()
        elapsed = time.perf_counter() - started
        failed = sum(1 for f in futures if f.failed())
        if failed:
            raise BenchError(f"bare producer: {failed} of {len(records)} sends failed")
    finally:
        producer.close()
    return len(records) / elapsed


def sdk_rate(
    settings: Settings, messages: Sequence[Message]
) -> tuple[float, list[Message], int, dict[str, Any]]:
    """The SDK publishing ``messages`` (bytes in, as an agency would pass them) the way
    ``parwatch publish`` does: ``Publisher.publish_many`` on ``CHUNK_LINES`` events at a time,
    then ``flush``. Returns its rate over accepted events, the accepted messages, the refused
    count, and the producer options (for the bare producer beside it)."""
    config = wiring.publisher_config(settings)
    accepted: list[Message] = []
    refused = 0
    with Publisher(config) as publisher:
        started = time.perf_counter()
        for start in range(0, len(messages), CHUNK_LINES):
            chunk = messages[start : start + CHUNK_LINES]
            refusals = publisher.publish_many([m.value for m in chunk])
            if refusals:
                bad = {r.position for r in refusals}
                accepted += (m for i, m in enumerate(chunk) if i not in bad)
                refused += len(bad)
            else:
                accepted += chunk
        publisher.flush()
        elapsed = time.perf_counter() - started
        stats = publisher.stats()
    if stats.spooled or stats.failed:
        raise BenchError(f"SDK: {stats.failed} sends failed, {stats.spooled} spooled")
    # The SDK's own producer settings, for the bare producer beside it.
    options = {**producer_options(config), "client_id": "parwatch-bench-bare"}
    return len(accepted) / elapsed, accepted, refused, options


def paced_publish(
    bootstrap: str, topics: Topics, messages: Sequence[Message], event_ids: Sequence[str | None],
    rate: float, options: Mapping[str, Any], progress: Progress,
) -> dict[str, float]:  # fmt: skip
    """Send ``messages`` at ``rate`` a second; return event_id -> wall time of its first send,
    for the messages whose ``event_ids`` entry is not None."""
    pairs = zip(messages, event_ids, strict=True)
    prepared = [(topic_for(topics, m.kind), m.key, m.value, e) for m, e in pairs]
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=64 * 1024,
        allow_auto_create_topics=False, **options,
    )  # fmt: skip
    sent_at: dict[str, float] = {}
    try:
        for topic in topics.events():
            producer.partitions_for(topic)
        start = time.monotonic()
        for i, (topic, key, value, event_id) in enumerate(prepared):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = time.time()  # wall clock: compared with the warehouse's now64()
            producer.send(topic, key=key, value=value)
            if event_id is not None:
                sent_at.setdefault(event_id, now)
            progress(i + 1)
        producer.flush()
    finally:
        producer.close()
    progress.done(len(prepared))
    return sent_at


def topic_for(topics: Topics, kind: str) -> str:
    return topic_of(topics, kind)


def accepted_event_ids(messages: Sequence[Message], agencies: Container[str]) -> list[str | None]:
    """The event id of each message the worker will accept (None for those it will refuse:
    they land in dead letters, which have no ``_inserted_at``)."""
    now = datetime.now(UTC)
    out: list[str | None] = []
    for m in messages:
        try:
            out.append(str(decode(m.value, known_agency=agencies, now=now).event_id))
        except InvalidEvent:
            out.append(None)
    return out
