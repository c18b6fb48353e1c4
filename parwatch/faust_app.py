"""The Faust engine's app for Faust's own command line, for teams that run Faust apps that way:

    faust -A parwatch.faust_app worker -l info --web-host 127.0.0.1 --web-port 6066

Settings are read once, here, from ``PARWATCH_*`` like ``parwatch worker --engine faust``
(``PARWATCH_WORKER_ROLE``: ``all`` or ``classify``) when Faust first asks for ``app``, which
then applies missing migrations (not for a classifier); when Faust starts
the app, its task serves the embedded warehouse's query endpoint when this process owns it, and
the chain (decoding processes, producer) starts before the first assignment or batch; Faust's
shutdown closes them. What ``parwatch worker`` adds and this does not: the Prometheus endpoint
and the worker's garbage-collector policy (``gc_policy``).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from parwatch import wiring
from parwatch.commands.migrate import prepare
from parwatch.commands.worker import _serve_queries, worker_config
from parwatch.settings import Settings
from streams.warehouse.query_endpoint import QueryServer
from streams.worker.config import FAUST_ROLES
from streams.worker.faust_engine import FaustEngine


def _build() -> FaustEngine:
    """The engine from the settings, its data folder made and the warehouse migrated (not for a
    classifier: its first assignment reads the warehouse) before Faust joins the group."""
    settings = Settings()
    if settings.worker_role not in FAUST_ROLES:
        raise SystemExit(f"PARWATCH_WORKER_ROLE={settings.worker_role}: the Faust engine runs "
                         f"{' and '.join(FAUST_ROLES)}")  # fmt: skip
    cfg = worker_config(settings, settings.worker_role, "faust")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if cfg.role != "classify":
        client = wiring.open_warehouse(settings, create_database=True)
        prepare(client, settings)
        client.close()
    engine = FaustEngine(cfg)
    endpoint: list[QueryServer] = []

    async def _start() -> None:
        if cfg.role != "classify" and cfg.warehouse.embedded:
            loop = asyncio.get_running_loop()
            server = await loop.run_in_executor(None, _serve_queries, cfg, settings)
            if server is not None:
                endpoint.append(server)
        await engine.start_chain()

    # Registered by a plain call: ``App.task`` is ``@no_type_check`` in Faust, so as a decorator
    # it would make ``_start`` untyped.
    engine.app.task(_start)

    # mode's SignalHandlerT accepts no function, not even one of its exact signature.
    @engine.app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def _close(app: object, **kwargs: object) -> None:
        await engine.chain.close()
        for server in endpoint:
            server.stop()

    return engine


@functools.cache
def _engine() -> FaustEngine:
    return _build()


def __getattr__(name: str) -> Any:
    """``app`` is built when Faust's command line first asks for it, not on import."""
    if name == "app":
        return _engine().app
    raise AttributeError(name)
