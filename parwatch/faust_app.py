"""The Faust engine's app for Faust's own command line, for teams that run Faust apps that way:

    faust -A parwatch.faust_app worker -l info --web-host 127.0.0.1 --web-port 6066

Settings are read once, here, from ``PARWATCH_*`` like ``parwatch worker --engine faust``
(``PARWATCH_WORKER_ROLE``: ``all`` or ``classify``). Importing this module applies missing
migrations (not for a classifier: its first assignment reads the warehouse); when Faust starts
the app, its task serves the embedded warehouse's query endpoint when this process owns it, and
the chain (decoding processes, producer) starts before the first assignment or batch; Faust's
shutdown closes them. What ``parwatch worker`` adds and this does not: the Prometheus endpoint
and the worker's garbage-collector policy (``gc_policy``).
"""

from __future__ import annotations

import asyncio

from parwatch import wiring
from parwatch.commands.migrate import prepare
from parwatch.commands.worker import _serve_queries, worker_config
from parwatch.settings import Settings
from streams.warehouse.query_endpoint import QueryServer
from streams.worker.config import FAUST_ROLES
from streams.worker.faust_engine import FaustEngine

settings = Settings()
if settings.worker_role not in FAUST_ROLES:
    raise SystemExit(f"PARWATCH_WORKER_ROLE={settings.worker_role}: the Faust engine runs "
                     f"{' and '.join(FAUST_ROLES)}")  # fmt: skip
cfg = worker_config(settings, settings.worker_role, "faust")
settings.data_dir.mkdir(parents=True, exist_ok=True)
_endpoint: list[QueryServer] = []
# Before Faust joins the group: the first assignment reads the warehouse.
if cfg.role != "classify":
    _client = wiring.open_warehouse(settings, create_database=True)
    prepare(_client, settings)
    _client.close()
engine = FaustEngine(cfg)
app = engine.app


@app.task
async def _start() -> None:
    if cfg.role != "classify" and cfg.warehouse.embedded:
        loop = asyncio.get_running_loop()
        server = await loop.run_in_executor(None, _serve_queries, cfg, settings)
        if server is not None:
            _endpoint.append(server)
    await engine.start_chain()


@app.on_before_shutdown.connect
async def _close(app: object, **kwargs: object) -> None:
    await engine.chain.close()
    for server in _endpoint:
        server.stop()
