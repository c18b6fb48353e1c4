"""The stream worker: Kafka batches in, classified rows out to ClickHouse, then the commit.

One consumer (aiokafka, the Kafka client of faust-streaming) in the group ``app_id`` reads both
event topics in batches (``getmany``). Each batch is decoded and validated, the states of the
entities it touches are fetched (from the in-memory cache, else rebuilt from the warehouse, see
``restore``), and each event is deduplicated and classified by the pure functions of
``processor``/``classify``. Rows accumulate in a buffer; when it holds ``max_rows`` rows or
``flush_interval_s`` has passed, the buffer is written by the warehouse thread while the next
batches are decoded, and only after the insert succeeded are the batch's offsets committed.

Guarantees (ARCHITECTURE.md):
* Offsets never run ahead of ClickHouse: a commit covers only messages whose rows were inserted,
  and refusals are on the dead-letters topic (acknowledged by the broker) before that.
* Nothing counted twice: writes are idempotent (``writer``), duplicates are recognised by
  ``event_id`` per entity, and a message read again after a crash is a redelivery (same position).
* Backpressure, not loss: at most one batch is being written and one is being filled. While the
  warehouse is down the write is retried with backoff, the partitions are paused (nothing more is
  fetched), nothing is committed, and the worker resumes by itself.
* A rebalance finishes the write in flight, writes and commits what is buffered, and drops the
  cached states: another worker may own those entities next; states come back from the warehouse.

Why not faust's agents: its stream machinery costs about 280 µs of CPU per event (FACTS.md), a
ceiling of about 3.6k events/s before any work; batches through aiokafka remove that per-event
cost. The classification itself is the same pure code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from schemas.catalog import Catalog, bundled_dir, load_catalog
from schemas.signing import Keyring, check_signature
from schemas.topics import Topics
from streams.warehouse.client import WarehouseConfig, connect
from streams.warehouse.reference import load_catalog_tables
from streams.warehouse.writer import batch_token
from streams.worker.decoder import Decoder
from streams.worker.keyring_holder import KeyringHolder, describe
from streams.worker.known import KnownKeys
from streams.worker.metrics import Tally, WorkerMetrics
from streams.worker.processor import (
    INSPECTION,
    REFUSED,
    Decoded,
    Refused,
    Result,
    RowBuffer,
    apply_decoded,
    refused,
)
from streams.worker.restore import load_states
from streams.worker.rowcodec import decode_batch, encode_batch
from streams.worker.rows import Origin
from streams.worker.sink import ClickHouseSink
from streams.worker.status import write_status

log = logging.getLogger("parwatch.worker")


@dataclass(frozen=True)
class WorkerConfig:
    bootstrap: str
    warehouse: WarehouseConfig
    topics: Topics = field(default_factory=Topics)
    app_id: str = "parwatch"
    catalog_dir: Path | None = None
    status_path: Path | None = None
    session_timeout_s: float = 6.0
    max_rows: int = 20_000
    flush_interval_s: float = 0.5
    catalog_check_s: float = 30.0
    state_cache_entities: int = 5_000
    role: str = "all"  # all | classify | sink (see ROLES)
    rows_topic: str = "warehouse-rows"
    kafka_options: dict[str, Any] = field(default_factory=dict)  # aiokafka security options
    keyring: Keyring | None = None  # given: signing is enforced (EVENTS.md, bad_signature)
    keyring_path: Path | None = None  # the keyring's file, reloaded when it changes
    decode_processes: int = 1  # 1: decode in a child process (see ``decoder``); 0: in this one

    @property
    def sink_group(self) -> str:
        return f"{self.app_id}-sink"


ROLES = {
    "all": "read the event topics, classify, write ClickHouse (one process does everything)",
    "classify": "read the event topics, classify, publish the rows to the rows topic",
    "sink": "read the rows topic and write ClickHouse (the warehouse's only writer)",
}


class CatalogHolder:
    """The agency catalog, reloaded when its files change (no restart needed)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.catalog: Catalog = load_catalog(directory)
        self._mtime = self._stamp()

    @property
    def codes(self) -> frozenset[str]:
        """The agency codes: what decoding needs of the catalog (cheap to pickle)."""
        return frozenset(self.catalog.agencies)

    @property
    def version(self) -> float:
        """The catalog files' newest modification time (epoch seconds): moves on a reload."""
        return self._mtime

    def _stamp(self) -> float:
        d = self.directory or bundled_dir()
        return max((d / f).stat().st_mtime for f in ("agencies.csv", "procedures.csv"))

    def maybe_reload(self) -> bool:
        stamp = self._stamp()
        if stamp == self._mtime:
            return False
        self.catalog, self._mtime = load_catalog(self.directory), stamp
        log.info("agency catalog reloaded: %d agencies", len(self.catalog.agencies))
        return True


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


STOP_TIMEOUT_S = 20.0
DECODE_AHEAD = 3  # batches handed to the decoder before the oldest is applied


T = TypeVar("T")


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


class StateCache(MutableMapping[str, Any]):
    """Entity states of the owned partitions; ``None`` marks "no events yet".

    Bounded: ``trim`` drops the oldest states whose rows are all in the warehouse (not in the
    buffer, not in the write in flight); a dropped state is rebuilt from the warehouse when its
    entity shows up again. The engine trims only between batches, never while a batch waits for
    states, so a state it has looked up stays until the batch is applied.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data: dict[str, Any] = {}
        self.dirty: set[str] = set()  # changed since the last write started: rows buffered
        self.flushing: set[str] = set()  # changed in the write in flight

    def write_started(self) -> None:
        self.flushing, self.dirty = self.dirty, set()

    def write_done(self) -> None:
        self.flushing = set()

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __contains__(self, key: object) -> bool:  # the mixin's goes through KeyError
        return key in self._data

    def get(self, key: str, default: Any = None) -> Any:  # the mixin's goes through KeyError
        return self._data.get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        self._data.pop(key, None)  # re-insert: the dict's order is the order of last change
        self._data[key] = value
        self.dirty.add(key)

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def load(self, states: dict[str, Any], wanted: set[str]) -> None:
        for key in wanted:
            self._data[key] = states.get(key)

    def trim(self) -> int:
        excess = len(self._data) - self.capacity
        if excess <= 0:
            return 0
        drop = []
        dirty, flushing = self.dirty, self.flushing
        want = excess + self.capacity // 10
        for key in self._data:
            if key not in dirty and key not in flushing:
                drop.append(key)
                if len(drop) >= want:
                    break
        for key in drop:
            del self._data[key]
        return len(drop)

    def clear(self) -> None:
        self._data.clear()
        self.dirty.clear()
        self.flushing = set()


@dataclass
class Batch:
    """Rows buffered for one write, and what committing them means."""

    rows: RowBuffer = field(default_factory=RowBuffer)
    first: dict[TopicPartition, int] = field(default_factory=dict)  # first offset buffered
    offsets: dict[TopicPartition, int] = field(default_factory=dict)  # next offset to read
    tally: Tally = field(default_factory=Tally)  # results by topic, refusals, agencies (metrics)
    messages: int = 0
    dead_letters: list[asyncio.Future[Any]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def results(self) -> dict[str, int]:
        return self.tally.results()

    def token(self) -> str:
        """The same messages give the same token (a retry, or a re-read after a crash)."""
        bounds = [(tp.topic, tp.partition, self.first[tp]) for tp in self.offsets]
        bounds += [(tp.topic, tp.partition, -off) for tp, off in self.offsets.items()]
        return batch_token(bounds)


@dataclass
class Pending:
    """A fetched batch being decoded."""

    groups: list[tuple[TopicPartition, list[Any]]]  # messages by partition, in fetch order
    decoded: asyncio.Future[list[Decoded | Refused]]
    generation: int
    now: datetime


class Engine:
    def __init__(self, cfg: WorkerConfig, *, open_client: Callable[[], Any] | None = None) -> None:
        self.cfg = cfg
        opener = open_client or (lambda: connect(cfg.warehouse))
        self.sink = ClickHouseSink(opener, on_outage=self._on_outage)
        # States are read on a connection of their own, beside the writes (a state that is
        # read is never in a write still in flight: see StateCache.trim).
        self.reader = ClickHouseSink(opener, on_outage=self._on_outage, stats=self.sink.stats)
        self.catalog = CatalogHolder(cfg.catalog_dir)
        self.keyring = None if cfg.keyring is None else KeyringHolder(cfg.keyring, cfg.keyring_path)
        # A classifier's rows reach ClickHouse later, through a sink: its states can't be
        # rebuilt from the warehouse while it owns their partitions, so it keeps them all.
        capacity = cfg.state_cache_entities if cfg.role == "all" else 2**62
        self.inspections = StateCache(capacity)
        self.dossiers = StateCache(capacity)
        self.decoder = Decoder(cfg.decode_processes)
        # Entities that may be in the warehouse: None until loaded after an assignment (records
        # can arrive while it loads: then every missing state is looked for, and its key noted).
        self.known: KnownKeys | None = None
        self._noted: list[str] = []
        self.batch = Batch()
        self.generation = 0
        self._inflight: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.metrics: WorkerMetrics | None = None  # set by the command: counted per write

    # -- lifecycle -------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        cfg = self.cfg
        self.producer = AIOKafkaProducer(
            bootstrap_servers=cfg.bootstrap.split(","), acks="all", linger_ms=5,
            max_request_size=64 * 1024 * 1024, client_id=f"{cfg.app_id}-{cfg.role}",
            **cfg.kafka_options,
        )  # fmt: skip
        self.consumer = group_consumer(cfg, cfg.app_id, fetch_bytes=4 * 1024 * 1024)
        try:
            if not await start_unless_stopped(self._start_clients(), self._stop):
                return
            self._write_status()
            log.info("worker started: warehouse %s, topics %s", cfg.warehouse.describe(),
                     ", ".join(cfg.topics.all()))  # fmt: skip
            if self.keyring is None:
                log.info("signing not enforced: no keyring (PARWATCH_SIGNING_KEYRING unset)")
            else:
                log.info("signing enforced: keyring %s, %s", self.keyring.path or "(given)",
                         describe(self.keyring.keyring))  # fmt: skip
            await self._loop()
            await self._flush()
            await self._wait_written()
        finally:
            await self._close()

    async def _start_clients(self) -> None:
        assert self.producer is not None and self.consumer is not None
        await self.decoder.start()
        await self.producer.start()
        self.consumer.subscribe(
            [self.cfg.topics.inspections, self.cfg.topics.services], listener=_Rebalance(self)
        )
        await self.consumer.start()  # joins the group and waits for a first assignment

    async def _close(self) -> None:
        if self.consumer is not None:
            await stop_client(self.consumer, "consumer")
        if self.producer is not None:
            await stop_client(self.producer, "producer")
        self.sink.close()
        self.reader.close()
        self.decoder.close()

    async def _loop(self) -> None:
        """Fetch batches and hand them to the decoder up to ``DECODE_AHEAD`` ahead of the one
        being applied: the decoding process works on the next batch while this one applies the
        oldest, and has the one after queued when it finishes."""
        assert self.consumer is not None
        cfg = self.cfg
        next_catalog_check = time.monotonic() + cfg.catalog_check_s
        poll_ms = max(10, int(cfg.flush_interval_s * 1000 / 2))
        pending: deque[Pending] = deque()
        while not self._stop.is_set():
            records = None
            if len(pending) < DECODE_AHEAD:
                wait_ms = 0 if pending else poll_ms
                records = await poll(self.consumer, self._stop, wait_ms, cfg.max_rows)
                if records:
                    pending.append(self._submit(records))
            # Apply the oldest batch when the decoder has the next one queued, or when it is
            # decoded already, or when nothing more came: the decoder never waits for this loop.
            if pending and (
                len(pending) >= DECODE_AHEAD or not records or pending[0].decoded.done()
            ):
                await self._apply(pending.popleft())
                self.inspections.trim()  # between batches only (see StateCache)
                self.dossiers.trim()
            b = self.batch
            if len(b.rows) >= cfg.max_rows or (
                b.messages and time.monotonic() - b.started >= cfg.flush_interval_s
            ):
                await self._flush()
            if time.monotonic() >= next_catalog_check:
                next_catalog_check = time.monotonic() + cfg.catalog_check_s
                await self._maybe_reload_catalog()
                if self.keyring is not None:  # on the catalog's schedule (keyring_holder)
                    self.keyring.maybe_reload()
        while pending:  # fetched and not applied: applied now, then written
            await self._apply(pending.popleft())

    # -- one batch of messages -------------------------------------------------------------

    def _submit(self, records: dict[TopicPartition, list[Any]]) -> Pending:
        """Hand a fetched batch to the decoder (it starts at once)."""
        now = datetime.now(UTC)
        groups = list(records.items())
        decoded = self.decoder.submit(
            [(tp.topic, tp.partition, ms) for tp, ms in groups], now, self.catalog.codes
        )
        return Pending(groups, decoded, self.generation, now)

    async def _apply(self, p: Pending) -> None:
        """Dedupe, classify and buffer a decoded batch (after fetching missing states)."""
        if not p.decoded.done():
            self.decoder.balance(waited=True)  # the decoder is behind this loop
        decoded: list[Any] = await p.decoded  # Decoded | Refused tuples
        if p.generation != self.generation:
            return  # a rebalance happened meanwhile: these messages will be read again
        now = p.now
        if self.keyring is not None:
            self._check_signatures(p, decoded, self.keyring.keyring)
        await self._restore(decoded)
        if p.generation != self.generation:
            return
        batch = self.batch
        out = batch.rows
        tally = batch.tally
        tally.agencies.update(map(_AGENCY, decoded))  # one pass, in C
        inspections, dossiers = self.inspections, self.dossiers
        i = 0
        refused_ = Result.REFUSED.value
        for tp, messages in p.groups:
            topic, partition = tp.topic, tp.partition
            results = tally.by_topic[topic]
            for m in messages:
                d = decoded[i]
                i += 1
                if d[0] != REFUSED:
                    result = apply_decoded(
                        d, topic, partition, m.offset, now, inspections, dossiers, out
                    )
                else:
                    out.tables["dead_letters"].append(d[1])
                    batch.dead_letters.append(await self._send_dead_letter(m, d[2]))
                    tally.refused(topic, d[1][0], d[3])  # the row's first column: the reason
                    result = refused_
                results[result] += 1
            batch.first.setdefault(tp, messages[0].offset)
            batch.offsets[tp] = messages[-1].offset + 1
            batch.messages += len(messages)

    def _check_signatures(self, p: Pending, decoded: list[Any], keyring: Keyring) -> None:
        """A decoded event whose signature does not hold with ``keyring`` becomes a refusal."""
        i = 0
        for tp, messages in p.groups:
            for m in messages:
                d = decoded[i]
                if d[0] != REFUSED:
                    forged = check_signature(m.value or b"", m.headers, keyring, d[3], now=p.now)
                    if forged is not None:
                        forged.event_id = str(UUID(int=d[2]))
                        at = Origin(tp.topic, tp.partition, m.offset)
                        decoded[i] = refused(forged, at, p.now)
                i += 1

    async def _send_dead_letter(self, m: Any, value: bytes) -> Any:
        assert self.producer is not None
        return await self.producer.send(self.cfg.topics.dead_letters, key=m.key, value=value)

    async def _restore(self, decoded: list[Any]) -> None:  # Decoded | Refused tuples
        """Fetch from the warehouse the states of the entities not in the caches."""
        want_i: dict[str, tuple[str, str]] = {}
        want_d: dict[str, tuple[str, str]] = {}
        fresh: list[str] = []  # certainly not in the warehouse: nothing to fetch
        inspections, dossiers = self.inspections, self.dossiers
        known = self.known if self.known is not None else _EVERYTHING
        for d in decoded:
            kind, key = d[0], d[1]
            if kind == INSPECTION:
                if key not in inspections:
                    if key in known:
                        want_i[key] = (d[3], d[4])
                    else:
                        fresh.append(key)
            elif kind != REFUSED and key not in dossiers:
                if key in known:
                    want_d[key] = (d[3], d[4])
                else:
                    fresh.append(key)
        self.batch.tally.looked_up(len(want_i) + len(want_d), len(fresh))
        if self.known is None:  # loading: the keys go in once it is loaded
            self._noted += want_i
            self._noted += want_d
        for key in fresh:  # before their rows are written (see ``known``)
            known.add(key)
        if not want_i and not want_d:
            return
        ins, dos = await self.reader.call(
            lambda client: load_states(client, want_i.values(), want_d.values())
        )
        self.inspections.load(ins, set(want_i))
        self.dossiers.load(dos, set(want_d))

    # -- writing and committing ------------------------------------------------------------

    async def _flush(self) -> None:
        """Start writing the buffered batch (after the one in flight, if any)."""
        while self._inflight is not None:
            await self._wait_written()
        batch = self.batch
        if not batch.messages:
            return
        self.batch = Batch()
        self.inspections.write_started()
        self.dossiers.write_started()
        self._inflight = asyncio.create_task(self._write(batch))

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

    async def _write(self, batch: Batch) -> None:
        started = time.monotonic()
        # The dead letters' acknowledgements and the insert run at once (waiting for one, then
        # the other, added a broker round trip to every write); the commit waits for both.
        refusals = asyncio.gather(*batch.dead_letters) if batch.dead_letters else None
        tables = batch.rows.take()
        sizes = {table: len(rows_) for table, rows_ in tables.items()}
        if self.cfg.role == "classify":
            assert self.producer is not None
            sent = [
                await self.producer.send(self.cfg.rows_topic, value=value)
                for value in encode_batch(tables, batch.token(), batch.messages)
            ]
            await asyncio.gather(*sent)
            written = sum(len(r) for r in tables.values())
        else:
            written = await self.sink.write(tables, batch.token())
        if refusals is not None:
            await refusals
        await self._commit(batch.offsets)
        self.sink.stats.record_flush(batch.messages, written, started, batch.results)
        if self.metrics is not None:
            self.metrics.flushed(batch.tally, batch.messages, sizes, started, batch.offsets)
        self.inspections.write_done()
        self.dossiers.write_done()
        self._write_status()

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
        self._write_status()

    def _write_status(self) -> None:
        if self.cfg.status_path is not None:
            write_status(self.cfg.status_path, self.sink.stats)

    async def _maybe_reload_catalog(self) -> None:
        if self.catalog.maybe_reload():  # the worker's own copy, then the warehouse's tables
            cat = self.catalog.catalog
            counts = await self.sink.call(lambda client: load_catalog_tables(client, cat))
            log.info("catalog tables reloaded: %d agencies, %d procedures", *counts)

    async def wait_for_sinks(self) -> None:
        """A barrier before a classifier rebuilds states from the warehouse: put a marker on
        every partition of the rows topic and wait until the sinks have committed past them, so
        ClickHouse holds every row that any classifier published before."""
        assert self.producer is not None
        cfg = self.cfg
        parts = sorted(await self.producer.partitions_for(cfg.rows_topic))
        marks = {}
        for q in parts:
            meta = await (await self.producer.send(cfg.rows_topic, value=MARKER, partition=q))
            marks[TopicPartition(cfg.rows_topic, q)] = meta.offset
        watcher = AIOKafkaConsumer(
            bootstrap_servers=cfg.bootstrap.split(","), group_id=cfg.sink_group,
            enable_auto_commit=False, **cfg.kafka_options,
        )  # fmt: skip
        await watcher.start()
        started = time.monotonic()
        try:
            while marks and not self._stop.is_set():
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

    async def load_known(self) -> None:
        """Rebuild the filter of entities in the warehouse (after the partitions' previous
        owners wrote and committed everything: they do before they give partitions up)."""
        self.known, self._noted = None, []
        generation = self.generation
        started = time.monotonic()
        loaded = KnownKeys()
        count = await self.reader.call(loaded.load)
        if generation != self.generation:
            return  # partitions moved again meanwhile; the next assignment loads it again
        for key in self._noted:  # looked for while it loaded: their rows may not be in it
            loaded.add(key)
        self.known, self._noted = loaded, []
        log.info("%d entity keys in the warehouse, read in %.1f s", count,
                 time.monotonic() - started)  # fmt: skip

    async def on_revoked(self) -> None:
        """Before partitions move: finish writing, commit, and forget the cached states."""
        self.generation += 1
        self.known = None  # whatever comes next is looked for until the filter is loaded again
        await self._flush()
        await self._wait_written()
        self.inspections.clear()
        self.dossiers.clear()


class _Everything:
    """Stands in for the filter while it loads: every key may be in the warehouse."""

    def __contains__(self, key: object) -> bool:
        return True

    def add(self, key: str) -> None:
        pass


_EVERYTHING = _Everything()
_AGENCY = itemgetter(3)  # a Decoded's or a Refused's agency_code


MARKER = b'{"marker":true}'


class RowSink:
    """``--role sink``: the rows topic -> ClickHouse, committing after each insert."""

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


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.engine.on_revoked()
        self.engine.sink.stats.assigned = []
        self.engine._write_status()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        names = sorted(f"{tp.topic}/{tp.partition}" for tp in assigned)
        log.info("partitions assigned: %s", ", ".join(names))
        self.engine.sink.stats.assigned = names
        if self.engine.cfg.role == "classify":
            await self.engine.wait_for_sinks()
        await self.engine.load_known()
        self.engine._write_status()
