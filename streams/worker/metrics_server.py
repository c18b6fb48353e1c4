"""The worker's operator endpoint: ``/metrics``, ``/healthz``, ``/readyz``, over HTTP.

* ``GET /metrics``: the Prometheus text format of ``WorkerMetrics.registry`` (the client
  library's own WSGI application: content negotiation, gzip, ``name[]`` filters).
* ``GET /healthz``: 200 ``ok`` while the event loop ticks (``Health.alive``), else 503.
* ``GET /readyz``: 200 while alive, with partitions assigned and the warehouse answering
  (``Health.ready``), else 503 with the reason on one line.

Read-only: any other method is 405, any other path 404; nothing here can change the worker.
Served by daemon threads beside the event loop (the library's WSGI server), on loopback by
default (``PARWATCH_METRICS_HOST``); port 0 takes a free port, shown by ``url``.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from streams.errors import StreamsError
from streams.worker.metrics_watch import Health


class MetricsServerError(StreamsError):
    """The endpoint cannot listen (address in use, bad host)."""


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        pass  # a scrape every few seconds is not news


def operator_app(registry: CollectorRegistry, health: Health) -> Callable[..., Iterable[bytes]]:
    """The WSGI application of the three paths."""
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            return [b""]
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]
        if path in ("/healthz", "/readyz"):
            ok, why = health.alive() if path == "/healthz" else health.ready()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [why.encode() + b"\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: /metrics, /healthz, /readyz\n"]

    return app


class MetricsServer:
    """Serves ``operator_app`` on ``host:port`` from a daemon thread; ``start`` returns once it
    listens, ``stop`` closes it."""

    def __init__(self, registry: CollectorRegistry, health: Health, host: str, port: int) -> None:
        self.app = operator_app(registry, health)
        self.host, self.port = host, port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def start(self) -> None:
        cls = _Server6 if ":" in self.host else _Server
        try:
            server = make_server(self.host, self.port, self.app, cls, _QuietHandler)
        except OSError as exc:
            raise MetricsServerError(f"{self.host}:{self.port}: {exc.strerror or exc}") from None
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, name="metrics-endpoint", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
