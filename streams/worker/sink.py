"""The warehouse thread: one thread owns the ClickHouse client; every call runs there.

* The event loop is never blocked: ``write`` and ``call`` hand their work to the thread and await
  it; other threads (the loopback query endpoint) use ``call_blocking``.
* Errors: a warehouse failure (``WarehouseError``) is retried forever, after delays that grow
  with decorrelated jitter between ``backoff_initial_s`` and ``backoff_max_s`` (``backoff``; the
  sink's own ``random.Random``, so scaled workers do not retry in step), with a log line each
  time; it is never turned into a dead letter. While it retries,
  its caller waits: the worker pauses its partitions instead of buffering (see ``batch_engine``).
* Writes are idempotent (``writer``): the same batch written again leaves one copy.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from clickhouse_connect.driver.client import Client

from streams.warehouse.client import WarehouseError
from streams.warehouse.tables import Row
from streams.warehouse.writer import write_tables
from streams.worker.backoff import Backoff
from streams.worker.processor import Result

log = logging.getLogger("parwatch.sink")

T = TypeVar("T")


@dataclass
class SinkStats:
    """What the worker has made durable (written, then committed), since the process started."""

    messages: int = 0
    by_result: dict[str, int] = field(default_factory=lambda: {r.value: 0 for r in Result})
    rows: int = 0
    flushes: int = 0
    retries: int = 0
    last_flush_s: float = 0.0
    warehouse_down_since: float | None = None  # epoch seconds while writes are failing
    last_error: str | None = None
    assigned: list[str] = field(default_factory=list)  # topic/partition this worker owns

    def record_flush(
        self, messages: int, rows: int, started: float, results: dict[str, int] | None = None
    ) -> None:
        """Count one write-and-commit of ``messages`` messages (``rows`` rows)."""
        self.messages += messages
        for result, n in (results or {}).items():
            self.by_result[result] += n
        self.rows += rows
        self.flushes += 1
        self.last_flush_s = time.monotonic() - started


class ClickHouseSink:
    def __init__(
        self,
        open_client: Callable[[], Client],
        *,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 10.0,
        on_outage: Callable[[bool], None] | None = None,
        stats: SinkStats | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        self._open_client = open_client
        self._client: Client | None = None
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._rng = rng or random.Random()  # seeded from the OS: each worker its own delays
        self.stats = stats or SinkStats()  # shared by the sinks of one worker
        self.on_outage = on_outage  # called with True on every failed try, False once it is over

    def _run(self, fn: Callable[[Client], T]) -> T:
        if self._client is None:
            try:
                self._client = self._open_client()
            except Exception as exc:  # a server that is down cannot be opened either
                raise WarehouseError(f"cannot open the warehouse: {exc}") from exc
        return fn(self._client)

    async def call(self, fn: Callable[[Client], T], *, retry: bool = True) -> T:
        """Run ``fn(client)`` on the warehouse thread; retry ``WarehouseError`` with backoff."""
        loop = asyncio.get_running_loop()
        backoff = Backoff(self.backoff_initial_s, self.backoff_max_s, self._rng)
        while True:
            try:
                result = await loop.run_in_executor(self._executor, self._run, fn)
            except WarehouseError as exc:
                if not retry:
                    raise
                s = self.stats
                s.retries += 1
                s.last_error = str(exc)[:500]
                if s.warehouse_down_since is None:
                    s.warehouse_down_since = time.time()
                delay = backoff.next()
                log.warning("warehouse unavailable, retrying in %.1f s: %s", delay, exc)
                if self.on_outage is not None:
                    self.on_outage(True)
                await asyncio.sleep(delay)
                continue
            if self.stats.warehouse_down_since is not None:
                down = time.time() - self.stats.warehouse_down_since
                log.warning("warehouse available again after %.1f s", down)
                self.stats.warehouse_down_since = None
                self.stats.last_error = None
                if self.on_outage is not None:
                    self.on_outage(False)
            return result

    def call_blocking(self, fn: Callable[[Client], T]) -> T:
        """Run ``fn(client)`` on the warehouse thread from another thread (no retry)."""
        return self._executor.submit(self._run, fn).result()

    async def write(self, tables: dict[str, list[Row]], token: str) -> int:
        """Insert a batch (retrying until it succeeds); return the rows written."""
        return await self.call(lambda client: write_tables(client, tables, token))

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        if self._client is not None:
            self._client.close()
            self._client = None
