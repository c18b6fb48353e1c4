"""Writing a batch, for any engine: durable first, then committed, then counted.

``write(batch, commit)``, in this order:
1. the rows go to the destination (``destination``: ClickHouse, or the rows topic) while the
   batch's dead letters and forwarded events (``forwarding``) are being acknowledged by the
   broker; all must succeed;
2. ``commit(batch.offsets)``: the engine's own way to say the messages are done (the batch
   engine commits the offsets; the Faust engine acknowledges the events, and Faust commits);
3. the counts: status file, Prometheus metrics (the batch's ``Tally``), ``SinkStats``;
   the states changed by the batch may then be trimmed from the caches.

Blocking: awaits the write, retried through outages (backpressure: the engine reads nothing
more meanwhile). Errors: a failed dead-letter or forward send raises before anything is
committed (the messages are read again). Idempotent: the same messages give the same token,
and the warehouse keeps one copy of a batch written twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from streams.worker.batch import Batch
from streams.worker.destination import Destination
from streams.worker.entity_states import EntityStates
from streams.worker.metrics import WorkerMetrics
from streams.worker.sink import SinkStats
from streams.worker.status import write_status

Commit = Callable[[dict[Any, int]], Awaitable[None]]
"""The engine's acknowledgement of a written batch: the next offset to read, by partition."""


class BatchWriter:
    def __init__(
        self, destination: Destination, states: EntityStates, stats: SinkStats,
        status_path: Path | None,
    ) -> None:  # fmt: skip
        self.destination = destination
        self.states = states
        self.stats = stats
        self.status_path = status_path
        self.metrics: WorkerMetrics | None = None  # set by the command: counted per write

    def write(self, batch: Batch, commit: Commit) -> Coroutine[Any, Any, None]:
        """Take the batch's rows now (built from entity states that change in place once the
        next batch is applied: see ``classify.DossierState``), and return the coroutine that
        writes them, waits for the batch's sends, commits and counts."""
        started = time.monotonic()
        tables = batch.rows.take()
        return self._write(batch, commit, tables, started)

    async def _write(
        self, batch: Batch, commit: Commit, tables: dict[str, list[Any]], started: float
    ) -> None:
        # The dead letters' acknowledgements and the insert run at once (waiting for one, then
        # the other, added a broker round trip to every write); the commit waits for both.
        sends = [*batch.dead_letters, *batch.forwards]
        refusals = asyncio.gather(*sends) if sends else None
        sizes = {table: len(rows_) for table, rows_ in tables.items()}
        written = await self.destination.write(tables, batch.token(), batch.messages)
        if refusals is not None:
            await refusals
        await commit(batch.offsets)
        self.stats.record_flush(batch.messages, written, started, batch.results)
        if self.metrics is not None:
            self.metrics.flushed(batch.tally, batch.messages, sizes, started, batch.offsets)
        self.states.write_done()
        self.write_status()

    def write_status(self) -> None:
        if self.status_path is not None:
            write_status(self.status_path, self.stats)
