"""Samples the worker's state for its metrics and health, on the event loop, once a second.

``watch`` is a task beside the engine (``parwatch worker`` starts it): it never touches the
batch path. Every ``tick_s`` it reads what describes the worker now (owned partitions, warehouse
outage and retries, state-cache size, decoder share, catalog version) into the gauges, and
beats the heart that ``/healthz`` checks (a stuck event loop stops the beats). Every
``offsets_s`` it asks the broker for the owned partitions' end offsets, for the lag; a broker
that does not answer then is skipped until the next time, never waited for. Reads from the
engine are plain attribute reads on the event loop's own thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import IllegalStateError, KafkaError

from streams.worker.metrics import WorkerMetrics
from streams.worker.sink import SinkStats

log = logging.getLogger("parwatch.metrics")


@dataclass
class Health:
    """What ``/healthz`` and ``/readyz`` answer (read by the endpoint's threads)."""

    stale_after_s: float = 30.0
    beat: float = field(default_factory=time.monotonic)  # last tick of the event loop
    partitions: int = 0
    warehouse_down: bool = False
    started: bool = False  # the engine's clients started (connected, joined)

    def alive(self) -> tuple[bool, str]:
        """Alive: the event loop ticked within ``stale_after_s``."""
        age = time.monotonic() - self.beat
        if age > self.stale_after_s:
            return False, f"event loop silent for {age:.0f} s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        """Ready: alive, partitions assigned, and the warehouse's last call succeeded."""
        alive, why = self.alive()
        if not alive:
            return False, why
        if self.warehouse_down:
            return False, "warehouse not answering (writes are retried)"
        if not self.partitions:
            return False, "no partitions assigned"
        return True, f"ok: {self.partitions} partitions"


@dataclass(frozen=True)
class Sources:
    """Where ``watch`` reads the worker's state; the optional ones exist for some roles only."""

    consumer: Callable[[], Any]  # the aiokafka consumer, or None before it exists
    stats: SinkStats
    cache_entities: Callable[[], int] | None = None
    inline_share: Callable[[], float] | None = None
    catalog: Callable[[], tuple[float, int]] | None = None  # (version, agencies)


async def watch(
    metrics: WorkerMetrics,
    health: Health,
    sources: Sources,
    *,
    tick_s: float = 1.0,
    offsets_s: float = 10.0,
) -> None:
    """Sample forever (until cancelled)."""
    retries_seen = 0
    next_offsets = time.monotonic() + min(offsets_s, 2.0)
    while True:
        health.beat = time.monotonic()
        stats = sources.stats
        health.warehouse_down = stats.warehouse_down_since is not None
        metrics.warehouse_down.set(1 if health.warehouse_down else 0)
        if stats.retries > retries_seen:
            metrics.retries.inc(stats.retries - retries_seen)
            retries_seen = stats.retries
        if sources.cache_entities is not None:
            metrics.cache_entities.set(sources.cache_entities())
        if sources.inline_share is not None:
            metrics.inline_share.set(sources.inline_share())
        if sources.catalog is not None:
            version, agencies = sources.catalog()
            metrics.catalog_version.set(version)
            metrics.catalog_agencies.set(agencies)
        consumer = sources.consumer()
        owned = list(consumer.assignment()) if consumer is not None else []
        health.partitions = len(owned)
        metrics.owned((tp.topic, tp.partition) for tp in owned)
        if owned and time.monotonic() >= next_offsets:
            next_offsets = time.monotonic() + offsets_s
            await _read_ends(metrics, consumer, owned, timeout_s=max(1.0, offsets_s / 2))
        await asyncio.sleep(tick_s)


async def _read_ends(metrics: WorkerMetrics, consumer: Any, owned: list[Any], *,
                     timeout_s: float) -> None:  # fmt: skip
    """The end offsets of ``owned`` (and, once, the committed offsets this process has not
    committed itself) into the lag gauges."""
    try:
        ends = await asyncio.wait_for(consumer.end_offsets(owned), timeout_s)
        for tp in owned:
            if (tp.topic, tp.partition) not in metrics.offsets:
                done = await asyncio.wait_for(consumer.committed(tp), timeout_s)
                if done is not None:
                    metrics.offsets[(tp.topic, tp.partition)] = done
                    metrics.committed.labels(tp.topic, str(tp.partition)).set(done)
    except (KafkaError, IllegalStateError, TimeoutError) as exc:
        log.debug("end offsets not read: %s", exc)
        return
    current = set(consumer.assignment())
    metrics.ends({(tp.topic, tp.partition): end for tp, end in ends.items() if tp in current})
