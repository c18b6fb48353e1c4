"""``--role sink``: the rows topic -> ClickHouse, committing after each insert.

Reads the rows that classifiers published (``destination.RowsTopic``) in the group
``<app_id>-sink``; each fetched batch of messages is inserted in one idempotent write (a token
made of the messages' own tokens, so a batch read again leaves one copy) and committed after
the insert. Markers (``destination.MARKER``) carry no rows: committing past them is what a
classifier waits for. Outages are retried with backoff (``ClickHouseSink``) while nothing more
is fetched. Always the batch engine's Kafka client: there is no per-event work to give Faust.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

from aiokafka import AIOKafkaConsumer

from streams.warehouse.client import connect
from streams.warehouse.writer import batch_token
from streams.worker.config import WorkerConfig
from streams.worker.destination import MARKER
from streams.worker.kafka import commit, group_consumer, poll, start_unless_stopped, stop_client
from streams.worker.metrics import Tally, WorkerMetrics
from streams.worker.rowcodec import decode_batch
from streams.worker.sink import ClickHouseSink
from streams.worker.status import write_status

log = logging.getLogger("parwatch.worker")


class RowSink:
    def __init__(self, cfg: WorkerConfig) -> None:
        self.cfg = cfg
        self.sink = ClickHouseSink(lambda: connect(cfg.warehouse))
        self._stop = asyncio.Event()
        self.consumer: AIOKafkaConsumer | None = None
        self.metrics: WorkerMetrics | None = None  # set by the command: counted per write

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        cfg = self.cfg
        consumer = group_consumer(cfg, cfg.sink_group, fetch_bytes=64 * 1024 * 1024)
        consumer.subscribe([cfg.rows_topic])
        self.consumer = consumer
        try:
            if not await start_unless_stopped(consumer.start(), self._stop):
                return
            log.info("sink started: warehouse %s, topic %s", cfg.warehouse.describe(),
                     cfg.rows_topic)  # fmt: skip
            while not self._stop.is_set():
                records = await poll(consumer, self._stop, 200, 50)
                if records:
                    await self._write(consumer, records)
        finally:
            await stop_client(consumer, "consumer")
            self.sink.close()

    async def _write(self, consumer: AIOKafkaConsumer, records: dict[Any, list[Any]]) -> None:
        tables: dict[str, list[Any]] = defaultdict(list)
        tokens, messages = [], 0
        offsets = {}
        for tp, msgs in records.items():
            for m in msgs:
                offsets[tp] = m.offset + 1
                if m.value == MARKER:
                    continue
                part, token, n = decode_batch(m.value)
                for table, rows_ in part.items():
                    tables[table].extend(rows_)
                tokens.append((token, 0, 0))
                messages += n
        started = time.monotonic()
        written = await self.sink.write(dict(tables), batch_token(tokens)) if tokens else 0
        await commit(consumer, offsets)
        self.sink.stats.record_flush(messages, written, started)
        if self.metrics is not None:
            sizes = {table: len(rows_) for table, rows_ in tables.items()}
            self.metrics.flushed(Tally(), messages, sizes, started, offsets)
        if self.cfg.status_path is not None:
            write_status(self.cfg.status_path, self.sink.stats)
