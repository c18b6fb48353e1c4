"""Forwarding: an event read on another partition than its key's goes to its key's partition.

EVENTS.md (Transport): the partition of an event is Kafka's default murmur2 of its entity key
(``partitioning``). A client with another partitioner (librdkafka's crc32 default) may put one
entity's events on two partitions, read by two workers, and their dedupe and classification
would each see half. The decoding step marks such an event (``processor.Forward``, from the
entity key of the decoded event, not the message key the client sent); the worker does not
process it, but produces its original value and headers, with the entity key as message key, to
the right partition of the same topic, where it is processed like any other (a repeat is a
duplicate by ``event_id``). A refused event is dead-lettered where it is read, never forwarded.

* ``partitions``: each event topic's partition count, read from the producer's metadata by
  ``refresh`` after every assignment (a topic that grows makes the group rebalance). A topic
  whose count is unknown (no metadata in ``REFRESH_TIMEOUT_S``) is not checked: its events are
  processed where they are read, as before forwarding existed.
* ``send`` returns once the record is queued; the future it gives resolves when the broker
  acknowledged it. The batch's offsets are committed only after every forward of the batch is
  acknowledged (``batch_writer``): nothing is lost if the worker dies in between (the message
  is read again, and forwarded again; the copy is a duplicate).
* Not thread-safe: one event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiokafka.errors import KafkaError

from streams.worker.kafka import Producer

log = logging.getLogger("parwatch.worker")

REFRESH_TIMEOUT_S = 10.0


def _headers(headers: Any) -> list[tuple[str, bytes]]:
    """A consumed record's headers as a producer takes them (aiokafka gives a sequence of
    pairs, Faust a sequence or a mapping)."""
    if not headers:
        return []
    if isinstance(headers, Mapping):
        return list(headers.items())
    return [(k, v) for k, v in headers]


class Forwarder:
    def __init__(self, producer: Producer, topics: Iterable[str]) -> None:
        self.producer = producer
        self.topics: Sequence[str] = tuple(topics)
        self.partitions: dict[str, int] = {}  # topic -> partition count; empty: not checked

    async def refresh(self) -> None:
        """Read each event topic's partition count from the producer's metadata (all topics at
        once: at most ``REFRESH_TIMEOUT_S`` in all, even where a topic does not exist)."""

        async def count(topic: str) -> int:
            try:
                parts = await asyncio.wait_for(
                    self.producer.partitions_for(topic), REFRESH_TIMEOUT_S
                )
            except (TimeoutError, KafkaError) as exc:
                log.warning("no partition count for %s (events not checked for their "
                            "partition until the next assignment): %s", topic, exc)  # fmt: skip
                return 0
            return len(parts)

        counts = await asyncio.gather(*(count(t) for t in self.topics))
        self.partitions = {t: n for t, n in zip(self.topics, counts, strict=True) if n}

    async def send(
        self, topic: str, partition: int, key: str, value: bytes | None, headers: Any
    ) -> asyncio.Future[Any]:
        """Produce ``value`` again, unchanged, to ``partition`` of ``topic`` with ``key``."""
        return await self.producer.send(
            topic, value or b"", key=key.encode(), partition=partition, headers=_headers(headers)
        )
