"""The batch engine: aiokafka ``getmany`` batches through the chain's steps, then the commit.

One consumer in the group ``app_id`` reads the event topics (inspections, services, offerings)
in batches. Each fetched batch is
handed to ``Intake.submit`` (decoding starts in the decoding process) up to ``DECODE_AHEAD``
batches ahead of the one being applied (``Intake.apply``: signature, states, classification,
rows into the open ``Batch``). When the open batch holds ``max_rows`` rows or has been open
``flush_interval_s``, it is written by ``BatchWriter`` while the next batches are decoded, and
only after the write succeeded are its offsets committed.

Guarantees (ARCHITECTURE.md):
* Offsets never run ahead of ClickHouse: a commit covers only messages whose rows were written,
  and refusals are on the dead-letters topic (acknowledged by the broker) before that.
* Nothing counted twice: writes are idempotent, duplicates are recognised by ``event_id`` per
  entity, and a message read again after a crash is a redelivery (same position).
* Backpressure, not loss: at most one batch is being written and one is being filled. While the
  warehouse is down the write is retried with backoff, the partitions are paused (nothing more
  is fetched), nothing is committed, and the worker resumes by itself.
* A rebalance finishes the write in flight, writes and commits what is buffered, and drops the
  cached states: another worker may own those entities next; states come back from the
  warehouse.

``stop`` ends the loop; ``run`` then writes and commits what is buffered and closes the clients.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from streams.worker.batch import Batch
from streams.worker.chain import build
from streams.worker.config import WorkerConfig
from streams.worker.intake import Pending
from streams.worker.kafka import commit, group_consumer, poll, start_unless_stopped, stop_client

log = logging.getLogger("parwatch.worker")

DECODE_AHEAD = 3  # batches handed to the decoder before the oldest is applied


class BatchEngine:
    def __init__(self, cfg: WorkerConfig, *, open_client: Callable[[], Any] | None = None) -> None:
        self.cfg = cfg
        self.chain = build(cfg, open_client=open_client)
        self.chain.on_outage(self._on_outage)
        self.batch = Batch()
        self._inflight: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.consumer: AIOKafkaConsumer | None = None

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        cfg = self.cfg
        self.consumer = group_consumer(cfg, cfg.app_id, fetch_bytes=4 * 1024 * 1024)
        try:
            if not await start_unless_stopped(self._start_clients(), self._stop):
                return
            self.chain.started("worker")
            await self._loop()
            await self._flush()
            await self._wait_written()
        finally:
            if self.consumer is not None:
                await stop_client(self.consumer, "consumer")
            await self.chain.close()

    async def _start_clients(self) -> None:
        assert self.consumer is not None
        await self.chain.start()
        self.consumer.subscribe(list(self.cfg.topics.events()), listener=_Rebalance(self))
        await self.consumer.start()  # joins the group and waits for a first assignment

    async def _loop(self) -> None:
        """Fetch batches and hand them to the decoder up to ``DECODE_AHEAD`` ahead of the one
        being applied: the decoding process works on the next batch while this one applies the
        oldest, and has the one after queued when it finishes."""
        assert self.consumer is not None
        cfg, chain = self.cfg, self.chain
        intake, states = chain.intake, chain.states
        poll_ms = max(10, int(cfg.flush_interval_s * 1000 / 2))
        pending: deque[Pending] = deque()
        while not self._stop.is_set():
            records = None
            if len(pending) < DECODE_AHEAD:
                wait_ms = 0 if pending else poll_ms
                records = await poll(self.consumer, self._stop, wait_ms, cfg.max_rows)
                if records:
                    pending.append(intake.submit(list(records.items())))
            # Apply the oldest batch when the decoder has the next one queued, or when it is
            # decoded already, or when nothing more came: the decoder never waits for this loop.
            if pending and (
                len(pending) >= DECODE_AHEAD or not records or pending[0].decoded.done()
            ):
                await intake.apply(pending.popleft(), self.batch)
                states.trim()  # between batches only (see StateCache)
            if self.batch.due(cfg.max_rows, cfg.flush_interval_s):
                await self._flush()
            await chain.maybe_reload()
        while pending:  # fetched and not applied: applied now, then written
            await intake.apply(pending.popleft(), self.batch)

    async def _flush(self) -> None:
        """Start writing the open batch (after the one in flight, if any)."""
        while self._inflight is not None:
            await self._wait_written()
        batch = self.batch
        if not batch.messages:
            return
        self.batch = Batch()
        self.chain.states.write_started()
        self._inflight = asyncio.create_task(self.chain.writer.write(batch, self._commit))

    async def _wait_written(self) -> None:
        """Wait for the write in flight. Nothing is fetched meanwhile (getmany is not called);
        if the warehouse is down, ``_on_outage`` also pauses the partitions."""
        task = self._inflight
        if task is None:
            return
        await asyncio.shield(task)
        if self._inflight is task:
            self._inflight = None
        task.result()

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        assert self.consumer is not None
        await commit(self.consumer, offsets)

    def _on_outage(self, down: bool) -> None:
        """While the warehouse fails, fetch nothing more (the partitions are paused) and say so
        in the status file; resume when it answers again."""
        if self.consumer is not None:
            if down:
                self.consumer.pause(*self.consumer.assignment())
            else:
                self.consumer.resume(*self.consumer.paused())
        self.chain.writer.write_status()

    async def on_revoked(self) -> None:
        """Before partitions move: finish writing, commit, and forget the cached states."""
        self.chain.states.revoke()
        await self._flush()
        await self._wait_written()
        self.chain.states.forget()

    async def on_assigned(self) -> None:
        """After partitions moved: the partition counts, the destination, the known filter."""
        await self.chain.assigned(self._stop)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, engine: BatchEngine) -> None:
        self.engine = engine

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.engine.on_revoked()
        self.engine.chain.stats.assigned = []
        self.engine.chain.writer.write_status()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        names = sorted(f"{tp.topic}/{tp.partition}" for tp in assigned)
        log.info("partitions assigned: %s", ", ".join(names))
        self.engine.chain.stats.assigned = names
        await self.engine.on_assigned()
        self.engine.chain.writer.write_status()
