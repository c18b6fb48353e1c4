"""The Faust app: thin agents (decode -> classify -> route) over raw bytes.

* Two agents, one per event topic, ``concurrency=1`` (faust-streaming may commit past unfinished
  events with more). Their streams are ``noack()``: a message is acked by the sink after its
  rows are in ClickHouse, never before (``take()`` would ack even when the body raised).
* Per-entity state in two Faust tables keyed by the contract key, co-partitioned with the
  source topics; their changelogs are flushed by Faust before it commits offsets.
* Refused events go to the dead-letters topic (sent before the message is acked; Faust flushes
  its producer before committing) and to the ``dead_letters`` table.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust

from schemas.catalog import Catalog, bundled_dir, load_catalog
from schemas.errors import InvalidEvent
from schemas.topics import Topics
from streams.processor import Result, process
from streams.reference import load_catalog_tables
from streams.rows import Origin
from streams.sink import ClickHouseSink, SinkStats
from streams.status import write_status
from streams.warehouse import WarehouseConfig, connect

log = logging.getLogger("parwatch.worker")


@dataclass(frozen=True)
class WorkerConfig:
    bootstrap: str
    warehouse: WarehouseConfig
    topics: Topics = field(default_factory=Topics)
    partitions: int = 6
    app_id: str = "parwatch"
    data_dir: Path = Path("parwatch-data")
    catalog_dir: Path | None = None
    status_path: Path | None = None
    session_timeout_s: float = 6.0
    max_rows: int = 5000
    flush_interval_s: float = 0.5
    catalog_check_s: float = 30.0
    broker_options: dict[str, Any] = field(default_factory=dict)


def dead_letter_message(refusal: InvalidEvent, refused_at: datetime) -> bytes:
    """The value published on the dead-letters topic (JSON, payload redacted where PII)."""
    return json.dumps(
        {
            "reason": refusal.reason.value,
            "detail": refusal.detail,
            "errors": [e.as_dict() for e in refusal.errors],
            "agency_code": refusal.agency_code,
            "event_id": refusal.event_id,
            "topic": refusal.topic,
            "partition": refusal.partition,
            "offset": refusal.offset,
            "refused_at": refused_at.isoformat(),
            "payload": refusal.payload.decode("utf-8", errors="replace"),
        },
        ensure_ascii=False,
    ).encode()


class CatalogHolder:
    """The agency catalog, reloaded when its files change (no restart needed)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.catalog: Catalog = load_catalog(directory)
        self._mtime = self._stamp()

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


def create_app(cfg: WorkerConfig) -> faust.App:
    app = faust.App(
        cfg.app_id,
        broker=";".join(f"kafka://{h}" for h in cfg.bootstrap.split(",")),
        store="memory://",
        datadir=str(cfg.data_dir / "faust"),
        topic_partitions=cfg.partitions,
        topic_replication_factor=1,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=cfg.session_timeout_s,
        broker_heartbeat_interval=max(0.5, cfg.session_timeout_s / 6),
        broker_rebalance_timeout=cfg.session_timeout_s,
        broker_commit_every=1000,
        broker_commit_interval=0.5,
        producer_acks=-1,
        **cfg.broker_options,
    )
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes}
    raw |= {"key_serializer": "raw", "value_serializer": "raw"}
    inspections_topic = app.topic(cfg.topics.inspections, **raw)
    services_topic = app.topic(cfg.topics.services, **raw)
    dead_letters_topic = app.topic(cfg.topics.dead_letters, **raw)
    # Keys are the contract keys (str), values the states' JSON (table default: json codec).
    inspection_table = app.Table("inspection-state", default=None, partitions=cfg.partitions)
    dossier_table = app.Table("dossier-state", default=None, partitions=cfg.partitions)
    catalog = CatalogHolder(cfg.catalog_dir)

    def on_flushed(stats: SinkStats) -> None:
        if cfg.status_path is not None:
            write_status(cfg.status_path, stats)

    sink = ClickHouseSink(
        lambda: connect(cfg.warehouse), max_rows=cfg.max_rows, on_flushed=on_flushed
    )

    async def handle(stream: Any, event: Any) -> None:
        msg = event.message
        now = datetime.now(UTC)
        at = Origin(msg.topic, msg.partition, msg.offset)
        done = process(
            msg.value or b"", at, now=now, known_agencies=catalog.catalog.agencies,
            inspection_states=inspection_table, dossier_states=dossier_table, out=sink.buffer,
        )  # fmt: skip
        if done.result is Result.REFUSED and done.refusal is not None:
            await dead_letters_topic.send(key=msg.key, value=dead_letter_message(done.refusal, now))
        await sink.add((msg.topic, msg.partition, msg.offset), done.result,
                       lambda: stream.ack(event))  # fmt: skip

    @app.agent(inspections_topic, concurrency=1)
    async def inspections(stream: Any) -> None:
        manual = stream.noack()
        async for event in manual.events():
            await handle(manual, event)

    @app.agent(services_topic, concurrency=1)
    async def services(stream: Any) -> None:
        manual = stream.noack()
        async for event in manual.events():
            await handle(manual, event)

    @app.timer(interval=cfg.flush_interval_s)
    async def flush_sink() -> None:
        await sink.flush()

    @app.timer(interval=cfg.catalog_check_s)
    async def reload_catalog() -> None:
        if catalog.maybe_reload():  # the worker's own copy, then the warehouse's tables
            counts = await sink.call(lambda client: load_catalog_tables(client, catalog.catalog))
            log.info("catalog tables reloaded: %d agencies, %d procedures", *counts)

    @app.task
    async def announce() -> None:
        if cfg.status_path is not None:
            write_status(cfg.status_path, sink.stats)
        log.info("worker started: warehouse %s, topics %s", cfg.warehouse.describe(),
                 ", ".join(cfg.topics.all()))  # fmt: skip

    app.parwatch_sink = sink  # type: ignore[attr-defined]
    return app
