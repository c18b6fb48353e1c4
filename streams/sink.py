"""The ClickHouse sink: buffers rows, writes them in batches, then acks their Kafka messages.

Contract:
* Blocking: ``add()`` returns at once while the buffer has room; when it holds ``max_rows``
  rows it flushes first, so a slow or absent warehouse stops the agents (backpressure) instead
  of growing memory without bound.
* Ordering: a message is acked only after every row it produced was inserted, so the offsets
  Faust commits never run ahead of what ClickHouse holds (at-least-once; the writes are
  idempotent, see ``writer``).
* Errors: a warehouse failure is retried with exponential backoff (capped), forever, with a
  log line each time; it is never turned into a dead letter.
* The event loop is never blocked: inserts run in one dedicated thread that owns the client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from clickhouse_connect.driver.client import Client

from streams.processor import Result, RowBuffer
from streams.warehouse import WarehouseError
from streams.writer import batch_token, write_tables

log = logging.getLogger("parwatch.sink")

Ack = Callable[[], Awaitable[object]]
T = TypeVar("T")


@dataclass
class SinkStats:
    """What the sink has made durable (written and acked), since the process started."""

    messages: int = 0
    by_result: dict[str, int] = field(default_factory=lambda: {r.value: 0 for r in Result})
    rows: int = 0
    flushes: int = 0
    retries: int = 0
    last_flush_s: float = 0.0


class ClickHouseSink:
    def __init__(
        self,
        open_client: Callable[[], Client],
        *,
        max_rows: int = 5000,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 10.0,
        on_flushed: Callable[[SinkStats], None] | None = None,
    ) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        self._open_client = open_client
        self._client: Client | None = None
        self.max_rows = max_rows
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.on_flushed = on_flushed
        self.buffer = RowBuffer()
        self._acks: list[Ack] = []
        self._positions: list[tuple[str, int, int]] = []
        self._results: list[Result] = []
        self._lock = asyncio.Lock()
        self.stats = SinkStats()

    def _write(self, tables: dict[str, list[list[object]]], token: str) -> int:
        if self._client is None:
            self._client = self._open_client()
        return write_tables(self._client, tables, token)

    async def call(self, fn: Callable[[Client], T]) -> T:
        """Run ``fn(client)`` on the warehouse thread (for work besides the batches)."""

        def run() -> T:
            if self._client is None:
                self._client = self._open_client()
            return fn(self._client)

        return await asyncio.get_running_loop().run_in_executor(self._executor, run)

    async def add(self, position: tuple[str, int, int], result: Result, ack: Ack) -> None:
        """Register a message whose rows are already in ``self.buffer``; flush when full."""
        self._acks.append(ack)
        self._positions.append(position)
        self._results.append(result)
        if len(self.buffer) >= self.max_rows:
            await self.flush()

    async def flush(self) -> None:
        """Write everything buffered, retrying until it succeeds, then ack its messages."""
        async with self._lock:
            if not self._acks and not len(self.buffer):
                return
            tables, acks, results = self.buffer.take(), self._acks, self._results
            token = batch_token(self._positions)
            self._acks, self._positions, self._results = [], [], []
            loop = asyncio.get_running_loop()
            delay = self.backoff_initial_s
            started = time.monotonic()
            while True:
                try:
                    written = await loop.run_in_executor(self._executor, self._write, tables, token)
                    break
                except WarehouseError as exc:
                    self.stats.retries += 1
                    log.warning("warehouse write failed, retrying in %.1f s: %s", delay, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.backoff_max_s)
            for ack in acks:
                await ack()
            s = self.stats
            s.messages += len(acks)
            for r in results:
                s.by_result[r.value] += 1
            s.rows += written
            s.flushes += 1
            s.last_flush_s = time.monotonic() - started
            if self.on_flushed is not None:
                self.on_flushed(s)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
