"""A batch: the rows buffered for one write, and what committing them means.

Filled by ``intake.Intake.apply`` (one or more fetched batches of messages), written by
``batch_writer.BatchWriter`` (once). Positions are keyed by the engines' partition type, a
``(topic, partition)`` named tuple (aiokafka's ``TopicPartition``, faust's ``TP``); the two hash
alike. ``offsets`` holds the next offset to read per partition: what may be committed, or
acknowledged, once the batch is durable. Not thread-safe; nothing here blocks.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from streams.warehouse.writer import batch_token
from streams.worker.metrics import Tally
from streams.worker.processor import RowBuffer


@dataclass
class Batch:
    rows: RowBuffer = field(default_factory=RowBuffer)
    first: dict[Any, int] = field(default_factory=dict)  # first offset buffered, by partition
    offsets: dict[Any, int] = field(default_factory=dict)  # next offset to read, by partition
    tally: Tally = field(default_factory=Tally)  # results by topic, refusals, agencies (metrics)
    messages: int = 0
    dead_letters: list[asyncio.Future[Any]] = field(default_factory=list)  # sends in flight
    forwards: list[asyncio.Future[Any]] = field(default_factory=list)  # forwarded, in flight
    started: float = field(default_factory=time.monotonic)

    @property
    def results(self) -> dict[str, int]:
        return self.tally.results()

    def due(self, max_rows: int, flush_interval_s: float) -> bool:
        """Whether it should be written now: ``max_rows`` rows, or open ``flush_interval_s``."""
        return len(self.rows) >= max_rows or (
            self.messages > 0 and time.monotonic() - self.started >= flush_interval_s
        )

    def token(self) -> str:
        """The same messages give the same token (a retry, or a re-read after a crash)."""
        bounds = [(tp.topic, tp.partition, self.first[tp]) for tp in self.offsets]
        bounds += [(tp.topic, tp.partition, -off) for tp, off in self.offsets.items()]
        return batch_token(bounds)
