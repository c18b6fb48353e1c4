"""The chain of steps of a classifying worker, built once: every variant is chosen here.

``build(cfg)`` assembles, for either engine: the catalog and keyring holders, the decoder, the
entity states, the forwarder (events read on another partition than their key's),
``Intake`` (decode, signature, restore, classify, dead letters, forwards) and
``BatchWriter`` (write, commit, count), with the destination chosen from ``cfg.role``: the
warehouse for ``all``, the rows topic for ``classify``. The engines add only how they read and
acknowledge (``batch_engine``, ``faust_engine``); the loop never asks which role it plays.

``start`` starts the decoding processes and the producer, ``started`` reports it; ``close``
stops everything it started (the producer at most ``STOP_TIMEOUT_S``), also after a failed
start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streams.warehouse.client import connect
from streams.warehouse.reference import load_catalog_tables
from streams.worker.batch_writer import BatchWriter
from streams.worker.catalog_holder import CatalogHolder
from streams.worker.config import WorkerConfig
from streams.worker.dead_letter_topic import DeadLetterTopic
from streams.worker.decoder import Decoder
from streams.worker.destination import Destination, RowsTopic, Warehouse
from streams.worker.entity_states import EntityStates
from streams.worker.forwarding import Forwarder
from streams.worker.intake import Intake
from streams.worker.kafka import Producer
from streams.worker.keyring_holder import KeyringHolder, describe
from streams.worker.sink import ClickHouseSink, SinkStats

log = logging.getLogger("parwatch.worker")


class _Outage:
    """Forwards the warehouse's outage signal to whoever the engine names (set after build)."""

    def __init__(self) -> None:
        self.listener: Callable[[bool], None] | None = None

    def __call__(self, down: bool) -> None:
        if self.listener is not None:
            self.listener(down)


@dataclass
class Chain:
    cfg: WorkerConfig
    catalog: CatalogHolder
    keyring: KeyringHolder | None
    decoder: Decoder
    states: EntityStates
    intake: Intake
    writer: BatchWriter
    destination: Destination
    producer: Producer
    sink: ClickHouseSink  # the writes' connection (and the catalog tables')
    reader: ClickHouseSink  # the states' connection, beside the writes
    outage: _Outage
    forwarder: Forwarder
    _next_check: float = 0.0

    @property
    def stats(self) -> SinkStats:
        return self.sink.stats

    async def assigned(self, stop: asyncio.Event) -> None:
        """After an assignment, for either engine: the topics' partition counts (forwarding),
        then the destination's barrier, then the filter of known entities."""
        await self.forwarder.refresh()
        await self.destination.settle(stop)
        await self.states.load_known()

    def on_outage(self, listener: Callable[[bool], None]) -> None:
        """``listener(True)`` on every failed warehouse call, ``(False)`` once it answers."""
        self.outage.listener = listener

    async def start(self) -> None:
        await self.decoder.start()
        await self.producer.start()
        self._next_check = time.monotonic() + self.cfg.catalog_check_s

    def started(self, what: str) -> None:
        """Once the engine has joined its group: the status file, and what the worker runs."""
        cfg = self.cfg
        self.writer.write_status()
        log.info("%s started: warehouse %s, topics %s", what, cfg.warehouse.describe(),
                 ", ".join(cfg.topics.all()))  # fmt: skip
        if self.keyring is None:
            log.info("signing not enforced: no keyring (PARWATCH_SIGNING_KEYRING unset)")
        else:
            log.info("signing enforced: keyring %s, %s", self.keyring.path or "(given)",
                     describe(self.keyring.keyring))  # fmt: skip

    async def maybe_reload(self) -> None:
        """Every ``catalog_check_s``, between batches: the catalog (the worker's copy, then
        the warehouse's tables) and the keyring, if their files changed."""
        if time.monotonic() < self._next_check:
            return
        self._next_check = time.monotonic() + self.cfg.catalog_check_s
        if self.catalog.maybe_reload():
            cat = self.catalog.catalog
            counts = await self.sink.call(lambda client: load_catalog_tables(client, cat))
            log.info("catalog tables reloaded: %d agencies, %d procedures", *counts)
        if self.keyring is not None:  # on the catalog's schedule (keyring_holder)
            self.keyring.maybe_reload()

    async def close(self) -> None:
        await self.producer.stop()
        self.sink.close()
        self.reader.close()
        self.decoder.close()


def build(cfg: WorkerConfig, *, open_client: Callable[[], Any] | None = None) -> Chain:
    """The steps for ``cfg`` (role ``all`` or ``classify``; ``sink`` is ``row_sink``'s)."""
    opener = open_client or (lambda: connect(cfg.warehouse))
    outage = _Outage()
    sink = ClickHouseSink(opener, on_outage=outage)
    # States are read on a connection of their own, beside the writes (a state that is read is
    # never in a write still in flight: see StateCache.trim).
    reader = ClickHouseSink(opener, on_outage=outage, stats=sink.stats)
    producer = Producer(cfg)
    destination: Destination = (
        RowsTopic(cfg, producer) if cfg.role == "classify" else Warehouse(sink)
    )
    states = EntityStates(destination.capacity(cfg.state_cache_entities), reader)
    catalog = CatalogHolder(cfg.catalog_dir)
    keyring = None if cfg.keyring is None else KeyringHolder(cfg.keyring, cfg.keyring_path)
    decoder = Decoder(cfg.decode_processes)
    dead_letters = DeadLetterTopic(producer, cfg.topics.dead_letters)
    forwarder = Forwarder(producer, cfg.topics.events())
    intake = Intake(catalog, keyring, decoder, states, dead_letters, forwarder)
    writer = BatchWriter(destination, states, sink.stats, cfg.status_path)
    return Chain(cfg, catalog, keyring, decoder, states, intake, writer, destination, producer,
                 sink, reader, outage, forwarder)  # fmt: skip
