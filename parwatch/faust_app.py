"""The Faust engine's app for Faust's own command line, for teams that run Faust apps that way:

    faust -A parwatch.faust_app worker -l info --web-host 127.0.0.1 --web-port 6066

Settings are read once, here, from ``PARWATCH_*`` like ``parwatch worker --engine faust``
(``PARWATCH_WORKER_ROLE``: ``all`` or ``classify``). When Faust starts the app, its first task
applies missing migrations (not for a classifier), serves the embedded warehouse's query
endpoint when this process owns it, and starts the chain (decoding processes, producer); Faust's
shutdown closes them. What ``parwatch worker`` adds and this does not: the Prometheus endpoint
and the worker's garbage-collector policy (``gc_policy``).
"""

from __future__ import annotations

import asyncio

from parwatch import wiring
from parwatch.commands.migrate import prepare
from parwatch.commands.worker import _serve_queries, worker_config
from parwatch.settings import Settings
from streams.worker.config import FAUST_ROLES
from streams.worker.faust_engine import FaustEngine

settings = Settings()
if settings.worker_role not in FAUST_ROLES:
    raise SystemExit(f"PARWATCH_WORKER_ROLE={settings.worker_role}: the Faust engine runs "
                     f"{' and '.join(FAUST_ROLES)}")  # fmt: skip
cfg = worker_config(settings, settings.worker_role, "faust")
engine = FaustEngine(cfg)
app = engine.app
_endpoint = []


@app.task
async def _start() -> None:
    loop = asyncio.get_running_loop()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if cfg.role != "classify":

        def migrate() -> None:
            client = wiring.open_warehouse(settings, create_database=True)
            prepare(client, settings)
            client.close()

        await loop.run_in_executor(None, migrate)
        if cfg.warehouse.embedded:
            server = await loop.run_in_executor(None, _serve_queries, cfg, settings)
            if server is not None:
                _endpoint.append(server)
    await engine.start_chain()


@app.on_before_shutdown.connect
async def _close(app: object, **kwargs: object) -> None:
    await engine.chain.close()
    for server in _endpoint:
        server.stop()
