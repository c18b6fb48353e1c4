"""Publishing prepared messages as they are, with a bare kafka-python producer.

For the simulator and benchmarks: the values may be deliberately invalid (to exercise dead
letters), so they bypass the SDK's validation. Keys follow the contract where the value has
one. Blocks until every message is acknowledged (acks=all); raises on the first failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kafka import KafkaProducer

from schemas.topics import Topics


def publish_raw(
    bootstrap: str,
    topics: Topics,
    messages: Iterable[tuple[str, bytes | None, bytes]],
    *,
    kafka_options: Mapping[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    positions: list[tuple[str, int, int]] | None = None,
) -> int:
    """Send ``(kind, key, value)`` triples (kind ``inspection``, ``service`` or ``offering``, each
    to its topic in ``topics``); return the count.

    ``positions``, when given, receives each message's ``(topic, partition, offset)`` in send
    order, once Kafka acknowledged it."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        batch_size=64 * 1024,
        allow_auto_create_topics=False,
        **dict(kafka_options or {}),
    )
    futures = []
    sent = 0
    try:
        for kind, key, value in messages:
            topic = topic_of(topics, kind)
            futures.append(producer.send(topic, key=key, value=value))
            sent += 1
            if len(futures) >= 10_000:
                _acknowledged(futures, positions)
            if progress is not None and sent % 1000 == 0:
                progress(sent)
        producer.flush()
        _acknowledged(futures, positions)
    finally:
        producer.close()
    if progress is not None:
        progress(sent)
    return sent


def topic_of(topics: Topics, kind: str) -> str:
    """The topic of a message kind: ``inspection``, ``offering``, anything else ``service``."""
    if kind == "inspection":
        return topics.inspections
    if kind == "offering":
        return topics.offerings
    return topics.services


def _acknowledged(futures: list[Any], positions: list[tuple[str, int, int]] | None) -> None:
    """Wait for every future (raising the first failure), record positions, clear the list."""
    for f in futures:
        md = f.get(timeout=60)
        if positions is not None:
            positions.append((md.topic, md.partition, md.offset))
    futures.clear()
