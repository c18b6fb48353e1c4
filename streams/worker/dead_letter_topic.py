"""Refusals to the dead-letters topic.

``send`` returns once the record is queued in the producer (it waits only while the producer's
buffer is full: backpressure); the future it returns resolves when the broker has acknowledged
the record. ``BatchWriter`` awaits those futures before it commits, so a committed refusal is
always on the topic. Order: per partition of the topic, in sending order. A send that fails
raises from the future (a Kafka error: the batch is not committed and will be read again).
"""

from __future__ import annotations

import asyncio
from typing import Any

from streams.worker.kafka import Producer


class DeadLetterTopic:
    def __init__(self, producer: Producer, topic: str) -> None:
        self.producer = producer
        self.topic = topic

    async def send(self, key: bytes | None, value: bytes) -> asyncio.Future[Any]:
        return await self.producer.send(self.topic, value, key=key)
