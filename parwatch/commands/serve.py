"""``parwatch serve``: the embedded warehouse's read-only query endpoint, until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import threading

from parwatch import wiring
from parwatch.errors import UsageError
from parwatch.settings import Settings

HELP = "serve the embedded warehouse read-only over ClickHouse's HTTP interface until Ctrl-C"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help=HELP,
        description=(
            "Open the embedded warehouse (PARWATCH_CLICKHOUSE_URL=chdb:///path, default "
            "DATA_DIR/warehouse) and answer read-only queries on "
            "http://PARWATCH_QUERY_HOST:PARWATCH_QUERY_PORT (default 127.0.0.1:8123) the way a "
            "ClickHouse server does, so that clickhouse-connect, curl, notebooks, Grafana and "
            "other parwatch commands (kpi, sql, report) can read it while this process holds "
            "it: chdb lets one process open a path. Only SELECT, WITH, SHOW, DESCRIBE, EXISTS "
            "and EXPLAIN run, at readonly=1, with a time, memory and result limit "
            "(PARWATCH_QUERY_TIMEOUT_S, _MAX_MEMORY_MB, _MAX_RESULT_MB); loopback only. "
            "Clients authenticate as user parwatch with the password generated beside the "
            "warehouse on first start (<warehouse>.query-password, mode 0600; kpi, sql and "
            "report read it there), as HTTP Basic, X-ClickHouse-User/-Key headers or "
            "user/password URL parameters. `parwatch worker` serves the same "
            "endpoint while it runs; use this command when no worker is running. "
            "Example: curl -u parwatch:$(cat parwatch-data/warehouse.query-password) "
            "'http://127.0.0.1:8123/?query=SELECT+count()+FROM+kpi_month'"
        ),
    )
    p.add_argument("--port", type=int, default=None,
                   help="port (default PARWATCH_QUERY_PORT, 8123; 0 picks a free one)")  # fmt: skip
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from streams.warehouse.query_endpoint import USER, QueryServerError, password_path

    config = wiring.warehouse_config(settings)
    if not config.embedded:
        raise UsageError(
            f"{config.describe()} is a ClickHouse server: point clients at it directly "
            "(`parwatch serve` serves the embedded warehouse, PARWATCH_CLICKHOUSE_URL=chdb:///path)"
        )
    port = settings.query_port if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port}: expected 0-65535")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    owner = wiring.open_warehouse(settings)
    server = wiring.query_endpoint(settings.model_copy(update={"query_port": port}), owner)
    try:
        server.start()
    except QueryServerError as exc:
        owner.close()
        raise UsageError(str(exc)) from None
    secret = password_path(config.url)
    try:
        print(f"query endpoint ready: {server.url} (warehouse {config.describe()}, "
              f"database {config.database}, read-only)", flush=True)  # fmt: skip
        print(f"user {USER}, password in {secret} (readable by this user only)", flush=True)
        print(f"try: curl -u '{USER}:'\"$(cat {secret})\" '{server.url}/?query=SELECT+1'",
              flush=True)  # fmt: skip
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        owner.close()
    print("query endpoint stopped", flush=True)
    return 0
