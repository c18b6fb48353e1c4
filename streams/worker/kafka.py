"""Kafka helpers of the batch engine and the row sink (aiokafka, faust-streaming's client).

* ``group_consumer``: a member of a consumer group that never commits by itself; offsets are
  committed by ``commit``, after the warehouse has the rows they cover.
* ``event_producer``: acks=all, for dead letters, forwarded events, rows and markers.
* ``commit`` never raises: a failed commit means the rows are written and will be read again
  (as redeliveries, recognised by their positions) by whoever owns the partition next.
* ``unless_stopped``/``poll``/``start_unless_stopped`` give up on a broker call as soon as stop
  is requested (the awaited call is cancelled); ``stop_client`` waits at most ``STOP_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from streams.worker.config import WorkerConfig

log = logging.getLogger("parwatch.worker")

STOP_TIMEOUT_S = 20.0

T = TypeVar("T")


def group_consumer(cfg: WorkerConfig, group: str, *, fetch_bytes: int) -> AIOKafkaConsumer:
    """A consumer in ``group`` that commits by hand, after the warehouse has the rows."""
    session_ms = int(cfg.session_timeout_s * 1000)
    return AIOKafkaConsumer(
        bootstrap_servers=cfg.bootstrap.split(","),
        group_id=group,
        client_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=max(300, session_ms // 6),
        rebalance_timeout_ms=max(session_ms, 10_000),
        max_poll_interval_ms=24 * 3600 * 1000,  # a long outage pauses, it does not leave
        max_partition_fetch_bytes=fetch_bytes,
        fetch_max_bytes=max(fetch_bytes, 32 * 1024 * 1024),
        **cfg.kafka_options,
    )


def event_producer(cfg: WorkerConfig) -> AIOKafkaProducer:
    """The worker's producer: dead letters, and a classifier's rows and markers."""
    return AIOKafkaProducer(
        bootstrap_servers=cfg.bootstrap.split(","), acks="all", linger_ms=5,
        max_request_size=64 * 1024 * 1024, client_id=f"{cfg.app_id}-{cfg.role}",
        **cfg.kafka_options,
    )  # fmt: skip


class Producer:
    """The worker's producer (``event_producer``), made when it starts: aiokafka's clients need
    a running event loop, and the chain is built before one runs under Faust's command line.
    ``send`` returns once the record is queued; the future it returns resolves when the broker
    acknowledged it. Using it before ``start`` raises ``RuntimeError``."""

    def __init__(self, cfg: WorkerConfig) -> None:
        self.cfg = cfg
        self._client: AIOKafkaProducer | None = None

    def _started(self) -> AIOKafkaProducer:
        if self._client is None:
            raise RuntimeError("the producer is not started")
        return self._client

    async def start(self) -> None:
        self._client = event_producer(self.cfg)
        await self._client.start()

    async def send(
        self, topic: str, value: bytes, *, key: bytes | None = None, partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:  # fmt: skip
        producer = self._started()
        return await producer.send(  # type: ignore[no-any-return]
            topic, value=value, key=key, partition=partition, headers=headers or None
        )

    async def partitions_for(self, topic: str) -> set[int]:
        return set(await self._started().partitions_for(topic))

    async def stop(self) -> None:
        if self._client is not None:
            await stop_client(self._client, "producer")
            self._client = None


async def commit(consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
    """Commit the offsets of the partitions still owned. A failure is logged, not raised: the
    rows are in the warehouse, and whoever reads those messages again sees them as redeliveries
    (same positions) and rewrites the same rows."""
    owned = consumer.assignment()
    mine = {tp: off for tp, off in offsets.items() if tp in owned}
    if not mine:
        return
    try:
        await consumer.commit(mine)
    except (CommitFailedError, IllegalStateError, KafkaError) as exc:
        log.warning("offset commit failed (rows are written; they will be re-read): %s", exc)


async def unless_stopped(aw: Awaitable[T], stop: asyncio.Event) -> tuple[bool, T | None]:
    """Await ``aw`` unless ``stop`` is set first (``aw`` is then cancelled): (True, its result)
    or (False, None). A stop request must not wait for the group: joining it (the consumer's
    ``start``) and ``getmany`` during a rebalance wait for the broker, and Tansu was seen to
    leave a member's join unanswered (a member joining while another's session expired)."""
    work = asyncio.ensure_future(aw)
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not work.done():
        work.cancel()
        return False, None
    return True, work.result()


async def start_unless_stopped(start: Awaitable[None], stop: asyncio.Event) -> bool:
    """Await a client's start-up (connecting, joining the group, a first assignment) unless
    ``stop`` is set first (``unless_stopped``); says so when it is. Returns whether it ran."""
    done, _ = await unless_stopped(start, stop)
    if not done:
        log.info("stop requested while starting (connecting, joining the group)")
    return done


async def poll(
    consumer: AIOKafkaConsumer, stop: asyncio.Event, timeout_ms: int, max_records: int
) -> dict[TopicPartition, list[Any]]:
    """``getmany``, given up when ``stop`` is set (``unless_stopped``)."""
    fetched, records = await unless_stopped(
        consumer.getmany(timeout_ms=timeout_ms, max_records=max_records), stop
    )
    return records if fetched and records is not None else {}


async def stop_client(client: Any, what: str) -> None:
    """Stop a Kafka client, but not forever: leaving the group waits for a rebalance in
    progress, and one was seen to hang on the broker. Everything written is committed by then;
    what is not will be read again (and recognised as redelivered) by whoever owns it next."""
    try:
        await asyncio.wait_for(client.stop(), STOP_TIMEOUT_S)
    except TimeoutError:
        log.warning("Kafka %s did not stop within %.0f s; exiting anyway", what, STOP_TIMEOUT_S)
