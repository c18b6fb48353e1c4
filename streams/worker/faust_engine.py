"""The Faust engine: the chain's steps as a faust-streaming application.

A ``faust.App`` named ``app_id`` (so Faust's consumer group is the worker's group) with one agent
on the event topics (inspections, services, offerings; raw bytes, no Faust serializer). The agent
takes batches (``stream.noack_take(max_rows, within=flush_interval_s)``), hands each to the chain
(``Intake.submit``/``apply``: decode, signature, states, classification, dead letters) and writes
it (``BatchWriter``); the events are acknowledged (``stream.ack``) only after the write, and
Faust commits acknowledged offsets on its own schedule (``broker_commit_interval``, ``_every``).
The two engines differ only in how they read and acknowledge.

* Ordering: one agent instance (``concurrency=1``: faust #606, more may commit past unfinished
  events); within a partition, events are applied in offset order.
* Blocking: a write retried through a warehouse outage blocks the agent; Faust then stops
  fetching when the stream's buffer is full (backpressure).
* Errors: invalid events are refusals; if a batch raises, its events stay unacknowledged (never
  committed) and the agent crashes, which stops the worker: a restart reads them again.
* Rebalance: Faust waits until every event handed to the agent is acknowledged
  (``stream_wait_empty``) before it revokes partitions; then the cached states are dropped.
  After an assignment the topics' partition counts are read (forwarding), the destination
  settles and the filter of known entities is reloaded.
* Web: Faust's own server on ``web_host:web_port`` (loopback by default) serves
  ``/parwatch/health/`` (200 when partitions are assigned and the warehouse answers, else 503)
  and ``/parwatch/status/`` (the status file's content).

Roles: ``all`` and ``classify`` (the destination is chosen by the chain); a sink has no
per-event work and runs on the batch engine. ``run`` starts the app inside the caller's event
loop; ``app`` can also be run by Faust's own command line (``parwatch.faust_app``).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import faust
from faust.types import TP

from streams.worker.batch import Batch
from streams.worker.chain import Chain, build
from streams.worker.config import WorkerConfig

log = logging.getLogger("parwatch.worker")

STOP_TIMEOUT_S = 30.0


def credentials(options: Mapping[str, Any]) -> Any:
    """Faust's broker credentials for the worker's aiokafka security options, or None."""
    protocol = options.get("security_protocol", "PLAINTEXT")
    context: ssl.SSLContext | None = options.get("ssl_context")
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=options.get("sasl_plain_username"),
            password=options.get("sasl_plain_password"),
            mechanism=options.get("sasl_mechanism", "PLAIN"),
            ssl_context=context if protocol == "SASL_SSL" else None,
        )
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return None


def make_app(cfg: WorkerConfig) -> faust.App:
    """The Faust application for ``cfg``: its group, timeouts, commits and loopback web server."""
    session = cfg.session_timeout_s
    extra: dict[str, Any] = {} if cfg.faust_dir is None else {"datadir": str(cfg.faust_dir)}
    return faust.App(
        cfg.app_id,
        **extra,
        broker=[f"kafka://{h}" for h in cfg.bootstrap.split(",")],
        broker_credentials=credentials(cfg.kafka_options),
        broker_client_id=f"{cfg.app_id}-faust",
        # A group join takes about 2 s plus half the session timeout (FACTS.md).
        broker_session_timeout=session,
        broker_heartbeat_interval=max(0.3, session / 6),
        broker_rebalance_timeout=max(session, 10.0),
        broker_max_poll_interval=24 * 3600.0,  # a long outage blocks the agent, it does not leave
        # Acknowledged offsets are committed this often: what a crash makes read again.
        broker_commit_every=max(1, cfg.max_rows),
        broker_commit_interval=cfg.flush_interval_s,
        consumer_auto_offset_reset="earliest",
        topic_disable_leader=True,  # no leader topic: the worker has no tables to assign
        # No tables and no standbys: faust-streaming then joins the group with aiokafka's
        # round-robin assignor (the batch engine's), not its own "faust" protocol.
        table_standby_replicas=0,
        topic_allow_declare=False,  # the event topics exist; create none
        stream_wait_empty=True,
        web_enabled=True,
        web_bind=cfg.web_host,
        web_host=cfg.web_host,
        web_port=cfg.web_port,
        web_transport="tcp:",
        autodiscover=False,
    )


class ConsumerView:
    """What the metrics sampler reads of a consumer (``metrics_watch``), from Faust's consumer:
    the assignment and the end offsets (its committed offsets are the ones this process
    acknowledged, counted per write)."""

    def __init__(self, app: faust.App) -> None:
        self._app = app

    def assignment(self) -> set[TP]:
        return set(self._app.consumer.assignment())

    async def end_offsets(self, tps: Sequence[TP]) -> Mapping[TP, int]:
        return await self._app.consumer.highwaters(*tps)

    async def committed(self, tp: TP) -> int | None:
        return None


class FaustEngine:
    def __init__(self, cfg: WorkerConfig, *, open_client: Callable[[], Any] | None = None) -> None:
        self.cfg = cfg
        self.chain: Chain = build(cfg, open_client=open_client)
        self.chain.on_outage(lambda down: self.chain.writer.write_status())
        self.app = make_app(cfg)
        self.consumer: ConsumerView | None = ConsumerView(self.app)
        self._stop = asyncio.Event()
        self._starting = asyncio.Lock()
        self._started = False
        self._busy = asyncio.Lock()  # held while a batch is applied and written
        self._failure: BaseException | None = None  # what stopped the agent, raised by ``run``
        topic = self.app.topic(
            *cfg.topics.events(),
            key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
        )  # fmt: skip
        self.app.agent(topic, name="parwatch-events", concurrency=1)(self._agent)
        self.app.on_partitions_revoked.connect(self._revoked)  # type: ignore[arg-type]
        self.app.on_partitions_assigned.connect(self._assigned)  # type: ignore[arg-type]
        self.app.page("/parwatch/health/")(self._health)  # type: ignore[arg-type]
        self.app.page("/parwatch/status/")(self._status)  # type: ignore[arg-type]

    def stop(self) -> None:
        self._stop.set()

    async def start_chain(self) -> None:
        """Start the decoding processes and the producer, once: before the app starts, or (under
        Faust's command line) at the first assignment or batch, whichever comes first."""
        async with self._starting:
            if not self._started:
                await self.chain.start()
                self._started = True

    async def run(self) -> None:
        """Run the app in this event loop until ``stop``; then finish the batch in hand, commit
        what is acknowledged and stop the app (at most ``STOP_TIMEOUT_S``)."""
        try:
            await self.start_chain()
            await self.app.start()
            self.chain.started("worker (faust engine)")
            log.info("faust web server: http://%s:%d/parwatch/status/", self.cfg.web_host,
                     self.cfg.web_port)  # fmt: skip
            await self._stop.wait()
            async with self._busy:  # the batch in hand is written and acknowledged
                await self.app.consumer.commit()
        finally:
            try:
                await asyncio.wait_for(self.app.stop(), STOP_TIMEOUT_S)
            except TimeoutError:
                log.warning("the Faust app did not stop within %.0f s", STOP_TIMEOUT_S)
            await self.chain.close()
        if self._failure is not None:
            raise self._failure

    async def _agent(self, stream: Any) -> None:
        chain = self.chain
        async for events in stream.noack_take(self.cfg.max_rows, within=self.cfg.flush_interval_s):
            await self.start_chain()
            async with self._busy:
                try:
                    await self._apply(stream, events)
                except BaseException as exc:  # the agent's boundary: stop the worker, not Faust
                    # Faust would restart the agent past these unacknowledged events; stopping
                    # leaves them uncommitted, to be read again after a restart.
                    self._failure = exc
                    self._stop.set()
                    raise
            chain.states.trim()  # between batches only (see StateCache)
            await chain.maybe_reload()

    async def _apply(self, stream: Any, events: Sequence[Any]) -> None:
        """One taken batch: applied, written, then acknowledged (Faust commits it later)."""
        groups: dict[TP, list[Any]] = {}
        for event in events:
            message = event.message
            groups.setdefault(message.tp, []).append(message)
        chain, batch = self.chain, Batch()
        if not await chain.intake.apply(chain.intake.submit(list(groups.items())), batch):
            return  # revoked meanwhile: never acknowledged, read again by the new owner

        async def acknowledge(offsets: Mapping[TP, int]) -> None:
            for event in events:
                await stream.ack(event)

        chain.states.write_started()
        await chain.writer.write(batch, acknowledge)

    async def _revoked(self, app: Any, revoked: set[TP], **kwargs: Any) -> None:
        """After Faust saw every handed-out event acknowledged: forget the states."""
        states = self.chain.states
        states.revoke()
        states.forget()
        self.chain.stats.assigned = []
        self.chain.writer.write_status()

    async def _assigned(self, app: Any, assigned: set[TP], **kwargs: Any) -> None:
        names = sorted(f"{tp.topic}/{tp.partition}" for tp in assigned)
        log.info("partitions assigned: %s", ", ".join(names))
        await self.start_chain()  # the destination's barrier may need the producer
        self.chain.stats.assigned = names
        await self.chain.assigned(self._stop)
        self.chain.writer.write_status()

    async def _health(self, request: Any) -> Any:
        stats = self.chain.stats
        ok = bool(stats.assigned) and stats.warehouse_down_since is None
        body = {"ok": ok, "partitions": len(stats.assigned),
                "warehouse_down": stats.warehouse_down_since is not None}  # fmt: skip
        return self.app.web.json(body, status=200 if ok else 503)

    async def _status(self, request: Any) -> Any:
        return self.app.web.json(asdict(self.chain.stats))
