"""``parwatch worker``: the stream worker, from the configured broker to the warehouse."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from parwatch import gc_policy, malloc_policy, wiring
from parwatch.commands.migrate import prepare
from parwatch.errors import UsageError
from parwatch.settings import Settings
from streams.worker.config import ENGINES, FAUST_ROLES, ROLES

if TYPE_CHECKING:
    from schemas.signing import Keyring
    from streams.warehouse.query_endpoint import QueryServer
    from streams.worker.batch_engine import BatchEngine
    from streams.worker.config import WorkerConfig
    from streams.worker.faust_engine import FaustEngine
    from streams.worker.metrics_server import MetricsServer
    from streams.worker.row_sink import RowSink

    Engine = BatchEngine | FaustEngine | RowSink

log = logging.getLogger("parwatch.worker")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "worker",
        help="run the stream worker: validate, dedupe, classify, write to ClickHouse",
        description=(
            "Consume the event topics (PARWATCH_KAFKA_BOOTSTRAP), validate and deduplicate "
            "every event, classify inspections and online submissions, send refusals to the "
            "dead-letters topic and table, and write everything to the warehouse "
            "(PARWATCH_CLICKHOUSE_URL; default: the embedded one under PARWATCH_DATA_DIR). "
            "Offsets are committed only after ClickHouse has the rows. Applies missing "
            "migrations first. Stop with Ctrl-C or SIGTERM; a restart resumes where the "
            "committed offsets are. Progress is written to DATA_DIR/worker-status.json; "
            "Prometheus metrics, /healthz and /readyz are served on "
            "PARWATCH_METRICS_HOST:PARWATCH_METRICS_PORT (default 127.0.0.1:9464)."
        ),
    )
    p.add_argument(
        "--role", choices=sorted(ROLES), default=None,
        help="; ".join(f"{k}: {v}" for k, v in ROLES.items()) + ". Default "
        "PARWATCH_WORKER_ROLE, else all. Any number of "
        "classify and sink workers can run in one group; a classifier reads states from "
        "the warehouse's read-only query endpoint when the warehouse is embedded.",
    )  # fmt: skip
    p.add_argument(
        "--engine", choices=sorted(ENGINES), default=None,
        help="; ".join(f"{k}: {v}" for k, v in ENGINES.items()) + ". Default "
        "PARWATCH_WORKER_ENGINE, else batch. The Faust engine runs the roles "
        + " and ".join(FAUST_ROLES) + "; a sink always uses the batch engine's client.",
    )  # fmt: skip
    p.add_argument("--no-migrate", action="store_true", help="do not apply migrations at start")
    p.add_argument(
        "--loglevel", default="info", choices=["debug", "info", "warning", "error"],
        help="log level (default info)",
    )  # fmt: skip
    p.set_defaults(run=run)


def worker_config(settings: Settings, role: str = "all", engine: str = "batch") -> WorkerConfig:
    from streams.worker.config import WorkerConfig

    warehouse = wiring.warehouse_config(settings)
    if role == "classify" and warehouse.embedded:
        # Only the sink may open the embedded engine; classifiers read through its endpoint,
        # with the password kept beside the warehouse (whichever process starts first makes it).
        from streams.warehouse.query_endpoint import USER, ensure_password, password_path

        warehouse = replace(
            warehouse, url=f"http://{settings.query_host}:{settings.query_port}", username=USER,
            password=ensure_password(password_path(warehouse.url)),
        )  # fmt: skip
    return WorkerConfig(
        bootstrap=wiring.require_bootstrap(settings),
        warehouse=warehouse,
        role=role,  # type: ignore[arg-type]
        engine=engine,  # type: ignore[arg-type]
        web_host=settings.worker_web_host,
        web_port=settings.worker_web_port,
        faust_dir=settings.data_dir / "faust",
        rows_topic=settings.topic_warehouse_rows,
        topics=settings.topics,
        app_id=settings.app_id,
        catalog_dir=settings.catalog_dir,
        catalog_check_s=settings.catalog_check_s,
        status_path=settings.data_dir / "worker-status.json",
        session_timeout_s=settings.broker_session_timeout_s,
        max_rows=settings.worker_max_rows,
        state_cache_entities=settings.worker_state_cache,
        flush_interval_s=settings.worker_flush_interval_s,
        kafka_options=wiring.aiokafka_options(wiring.kafka_options(settings)),
        keyring=_keyring(settings),
        keyring_path=settings.signing_keyring,
        decode_processes=settings.worker_decode_processes,
    )


def _keyring(settings: Settings) -> Keyring | None:
    from schemas.signing import KeyringError, load_keyring

    if settings.signing_keyring is None:
        return None
    try:
        return load_keyring(settings.signing_keyring)
    except KeyringError as exc:
        raise UsageError(f"PARWATCH_SIGNING_KEYRING: {exc}") from None


def _serve_queries(cfg: WorkerConfig, settings: Settings) -> QueryServer | None:
    """The embedded warehouse's read-only endpoint: this process owns chdb, so it answers the
    queries of everyone else (kpi, sql, report, classifiers, notebooks, a local Grafana)."""
    from streams.warehouse.client import connect
    from streams.warehouse.query_endpoint import USER, QueryServerError, password_path

    server = wiring.query_endpoint(settings, lambda: connect(cfg.warehouse))
    try:
        server.start()
    except QueryServerError as exc:
        log.warning("query endpoint not started: %s", exc)
        return None
    log.info("query endpoint: %s (read-only, user %s, password in %s)", server.url,
             USER, password_path(cfg.warehouse.url))  # fmt: skip
    return server


def _serve_metrics(
    engine: Engine, cfg: WorkerConfig, settings: Settings
) -> tuple[MetricsServer | None, asyncio.Task[None]]:
    """The worker's metrics and health endpoint, and the task that samples its state (the
    endpoint is optional: a port in use is a warning, the worker runs on without it)."""
    import platform
    from importlib.metadata import version

    from streams.worker.metrics import WorkerMetrics
    from streams.worker.metrics_server import MetricsServer, MetricsServerError
    from streams.worker.metrics_watch import Health, Sources, watch
    from streams.worker.row_sink import RowSink

    topics: tuple[str, ...]
    if isinstance(engine, RowSink):
        topics, sources = (cfg.rows_topic,), Sources(lambda: engine.consumer, engine.sink.stats)
        codes: Callable[[], frozenset[str]] = frozenset
    else:
        chain = engine.chain
        topics = cfg.topics.events()
        known = chain.catalog
        sources = Sources(
            consumer=lambda: engine.consumer, stats=chain.stats,
            cache_entities=lambda: len(chain.states),
            inline_share=lambda: chain.decoder.inline_share,
            catalog=lambda: (known.version, len(known.catalog.agencies)),
        )  # fmt: skip
        codes = lambda: known.codes  # noqa: E731
    metrics = WorkerMetrics(
        topics=topics, known_agencies=codes, version=version("parwatch"), role=cfg.role,
        python=platform.python_version(),
    )  # fmt: skip
    if isinstance(engine, RowSink):
        engine.metrics = metrics
    else:
        engine.chain.writer.metrics = metrics
    health = Health()
    sampler = asyncio.create_task(watch(metrics, health, sources))
    server = MetricsServer(metrics.registry, health, settings.metrics_host, settings.metrics_port)
    try:
        server.start()
    except MetricsServerError as exc:
        log.warning("metrics endpoint not started (PARWATCH_METRICS_HOST/PORT): %s", exc)
        return None, sampler
    print(f"parwatch worker: metrics on {server.url} (and /healthz, /readyz)",
          file=sys.stderr, flush=True)  # fmt: skip
    return server, sampler


def run(args: argparse.Namespace, settings: Settings) -> int:
    role = args.role or settings.worker_role
    engine_name = args.engine or settings.worker_engine
    if engine_name == "faust" and role not in FAUST_ROLES:
        raise UsageError(f"--role {role} runs on the batch engine only (not --engine faust)")
    cfg = worker_config(settings, role, engine_name)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not args.no_migrate and role != "classify":
        client = wiring.open_warehouse(settings, create_database=True)
        prepare(client, settings)
        client.close()
    logging.basicConfig(
        level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("aiokafka", "kafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))

    # The worker keeps many live objects (states, buffered rows): with the default thresholds the
    # cyclic GC rescans them all every few thousand allocations, and decode + classify ran at
    # half speed (measured: 26 -> 14 us and 22 -> 11 us an event at 200k events). Its objects
    # are freed by reference counting; young collections run less often, and full ones when the
    # heap grew by a quarter (cyclic garbage once grew RSS 744 -> 1,131 MiB: see gc_policy).
    gc_policy.configure()
    guard = gc_policy.GarbageGuard()
    if not malloc_policy.configure():
        log.info("not glibc: malloc thresholds left as they are")

    async def main() -> None:
        engine = _engine(cfg)
        loop = asyncio.get_running_loop()
        collector = asyncio.create_task(guard.run())
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, engine.stop)
        endpoint = None
        if cfg.role != "classify" and cfg.warehouse.embedded:
            endpoint = await loop.run_in_executor(None, _serve_queries, cfg, settings)
        metrics_server, sampler = _serve_metrics(engine, cfg, settings)
        try:
            await engine.run()
        finally:
            collector.cancel()
            sampler.cancel()
            if metrics_server is not None:
                await loop.run_in_executor(None, metrics_server.stop)
            if endpoint is not None:
                await loop.run_in_executor(None, endpoint.stop)

    from aiokafka.errors import KafkaConnectionError

    from streams.worker.decoder import DecoderError

    try:
        asyncio.run(main())
    except KafkaConnectionError as exc:
        raise UsageError(f"Kafka broker {cfg.bootstrap}: {exc}") from None
    except DecoderError as exc:  # nothing of its batches was committed: a restart reads them
        raise UsageError(f"{exc}; restart the worker") from None
    return 0


def _engine(cfg: WorkerConfig) -> Engine:
    """The engine, chosen once: the sink for ``--role sink``, else the batch or Faust engine."""
    if cfg.role == "sink":
        from streams.worker.row_sink import RowSink

        return RowSink(cfg)
    if cfg.engine == "faust":
        from streams.worker.faust_engine import FaustEngine

        return FaustEngine(cfg)
    from streams.worker.batch_engine import BatchEngine

    return BatchEngine(cfg)
