"""Where a classified batch's rows go: chosen once, where the chain is built (``chain``).

* ``Warehouse`` (``--role all``): inserted into ClickHouse, idempotently (the batch's token,
  ``writer``); outages retried with backoff until the insert succeeds (``ClickHouseSink``).
* ``RowsTopic`` (``--role classify``): published to the rows topic in messages of at most
  ``ROWS_PER_MESSAGE`` rows (``rowcodec``), each acknowledged by the broker before ``write``
  returns; a ``--role sink`` worker inserts them (``row_sink``).

``write`` returns the rows written once they are durable (ClickHouse has them, or the broker
acknowledged them); only then may the batch's offsets be committed. ``settle`` is the barrier
before states are rebuilt from the warehouse after an assignment; ``capacity`` is how many
entity states the worker may keep (a classifier cannot rebuild its states from the warehouse
while its rows are still on their way, so it keeps them all).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.warehouse.tables import Row
from streams.worker.config import WorkerConfig
from streams.worker.kafka import Producer
from streams.worker.rowcodec import encode_batch
from streams.worker.sink import ClickHouseSink

log = logging.getLogger("parwatch.worker")

MARKER = b'{"marker":true}'
"""A message on the rows topic that carries no rows: ``RowsTopic.settle``'s barrier."""


class Destination(Protocol):
    async def write(self, tables: dict[str, list[Any]], token: str, messages: int) -> int: ...

    async def settle(self, stop: asyncio.Event) -> None: ...

    def capacity(self, configured: int) -> int: ...


class Warehouse:
    def __init__(self, sink: ClickHouseSink) -> None:
        self.sink = sink

    async def write(self, tables: dict[str, list[Row]], token: str, messages: int) -> int:
        return await self.sink.write(tables, token)

    async def settle(self, stop: asyncio.Event) -> None:
        """Nothing to wait for: this worker's own writes are done before it commits."""

    def capacity(self, configured: int) -> int:
        return configured


class RowsTopic:
    def __init__(self, cfg: WorkerConfig, producer: Producer) -> None:
        self.cfg = cfg
        self.producer = producer

    async def write(self, tables: dict[str, list[Row]], token: str, messages: int) -> int:
        sent = [
            await self.producer.send(self.cfg.rows_topic, value)
            for value in encode_batch(tables, token, messages)
        ]
        await asyncio.gather(*sent)
        return sum(len(r) for r in tables.values())

    def capacity(self, configured: int) -> int:
        return 2**62

    async def settle(self, stop: asyncio.Event) -> None:
        """Put a marker on every partition of the rows topic and wait until the sinks have
        committed past them, so ClickHouse holds every row that any classifier published
        before. Returns early when ``stop`` is set."""
        cfg = self.cfg
        parts = sorted(await self.producer.partitions_for(cfg.rows_topic))
        marks = {}
        for q in parts:
            meta = await (await self.producer.send(cfg.rows_topic, MARKER, partition=q))
            marks[TopicPartition(cfg.rows_topic, q)] = meta.offset
        watcher = AIOKafkaConsumer(
            bootstrap_servers=cfg.bootstrap.split(","), group_id=cfg.sink_group,
            enable_auto_commit=False, **cfg.kafka_options,
        )  # fmt: skip
        await watcher.start()
        started = time.monotonic()
        try:
            while marks and not stop.is_set():
                for tp in list(marks):
                    done = await watcher.committed(tp)
                    if done is not None and done > marks[tp]:
                        del marks[tp]
                if marks:
                    await asyncio.sleep(0.2)
        finally:
            await watcher.stop()
        if marks:
            log.info("stop requested while waiting for the sinks")
            return
        log.info("sinks caught up in %.1f s", time.monotonic() - started)
