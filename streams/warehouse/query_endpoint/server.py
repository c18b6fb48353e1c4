"""The query endpoint's server: read-only SQL over ClickHouse's HTTP interface, for the
embedded warehouse, to the processes of this machine that hold its password.

chdb lets one process open a data path, so the process that owns the warehouse (``parwatch
worker`` or ``parwatch serve``) answers everyone else's queries here, the way a ClickHouse server
would: clickhouse-connect, curl, notebooks, a local Grafana, the other parwatch commands.

Contract (the security model; ``docs/query-endpoint.md`` says it for operators):
* **Who may ask.** It listens on loopback only. A request whose ``Host`` is not a loopback name
  (``localhost``, ``127.0.0.0/8``, ``[::1]``) is refused (400: DNS rebinding), and so is one
  that carries an ``Origin`` or ``Sec-Fetch-Site: cross-site`` header (403: a web page). Every
  query needs the user ``credentials.USER`` and the password the owner keeps in
  ``credentials.password_path`` (mode 0600): none is 401 (REQUIRED_PASSWORD, with a
  ``WWW-Authenticate`` challenge), a wrong one 403 (AUTHENTICATION_FAILED). ``/ping`` needs none.
  No response carries CORS headers.
* **What runs.** ``statements.inspect`` decides, with the engine's own parser; the engine's
  canonical text of the one statement is what runs, in a session opened at ``readonly=1``
  with the limits below, so no request can write, read files, change settings or change the
  session of another request (client settings are never applied: ``protocol.check_settings``).
* **Limits** (``Limits``, each a setting): a query runs at most ``timeout_s`` (the engine's
  ``max_execution_time``; past it plus a grace second it is killed), uses at most
  ``max_memory_bytes`` and returns at most ``max_result_bytes`` (the engine's limits, and the
  response's own size); at most ``concurrency`` queries run at once, each on its own
  connection, so one slow query does not hold the others; a request waits at most
  ``queue_timeout_s`` for a connection, then gets 503 TOO_MANY_SIMULTANEOUS_QUERIES; at most
  ``max_connections`` connections are served at once (more get 503 and are closed). A query
  whose client closes the connection is killed within ``POLL_S``. Bodies are limited to
  ``max_body_bytes`` (Content-Length or chunked; a bad chunk size or length is 400).
* Blocking: a ``ThreadingHTTPServer`` on its own thread, one thread per connection, and a
  thread per running query; chdb calls block, so none of this touches the worker's event loop.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import logging
import os
import queue
import re
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError

from streams.errors import StreamsError
from streams.warehouse.query_endpoint import credentials, statements
from streams.warehouse.query_endpoint.protocol import (
    AUTHENTICATION_FAILED,
    BAD_ARGUMENTS,
    ENCODERS,
    QUERY_IS_TOO_LARGE,
    REQUIRED_PASSWORD,
    STD_EXCEPTION,
    TIMEOUT_EXCEEDED,
    TOO_MANY_ROWS_OR_BYTES,
    TOO_MANY_SIMULTANEOUS_QUERIES,
    QueryError,
    Request,
    Verbatim,
    check_settings,
    choose_encoding,
    content_type,
    http_status,
    parse_request,
    url_pairs,
)
from streams.warehouse.query_endpoint.protocol import credentials as given_credentials

log = logging.getLogger("parwatch.query_endpoint")

IDENTITY_HEADER = "X-Parwatch-Warehouse"
POLL_S = 0.1  # how often a running query's client connection is looked at
DRAIN_BYTES = 64 << 20  # a refused body up to this size is read before the 413
_CONTENT_LENGTH = re.compile(r"[0-9]{1,15}")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,8}")
_HOST = re.compile(r"(?P<name>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)(?::[0-9]{1,5})?")
_PLACEHOLDER = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:")


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of every request (see the module). The defaults are the settings' defaults."""

    timeout_s: float = 30.0
    max_result_bytes: int = 256 << 20
    max_memory_bytes: int = 2 << 30
    concurrency: int = 2
    queue_timeout_s: float = 10.0
    max_connections: int = 32
    max_body_bytes: int = 1 << 20

    def session_options(self) -> dict[str, str]:
        """chdb connection options of a query session: read-only, bounded."""
        return {
            "readonly": "1",
            "max_execution_time": str(max(1, round(self.timeout_s))),
            "max_memory_usage": str(self.max_memory_bytes),
            "max_result_bytes": str(self.max_result_bytes),
            "result_overflow_mode": "throw",
        }


def warehouse_identity(url: str) -> str:
    """``chdb:///path`` with the path resolved, so that spellings of one path compare equal."""
    if url.startswith("chdb:"):
        return "chdb://" + os.path.realpath(urlsplit(url).path)
    return url


def loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or address, IPv6 possibly in brackets) is this machine's own."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class QueryServerError(StreamsError):
    """The endpoint cannot start (port in use, not a loopback host, not an embedded warehouse)."""


class QueryServer:
    """Serves read-only queries on ``host:port`` from a background thread; see the module doc.

    ``client``: the owner's client on the embedded warehouse (or a callable that opens one); the
    server opens ``limits.concurrency`` read-only sessions beside it on the same path and uses
    ``client`` itself only to kill queries. ``password``: what clients must send (user
    ``credentials.USER``). ``identity``: sent with ``/ping`` in ``X-Parwatch-Warehouse`` (see
    ``warehouse_identity``) so that a reader can tell this endpoint serves its warehouse.
    """

    def __init__(
        self,
        client: Client | Callable[[], Client],
        *,
        password: str,
        host: str = "127.0.0.1",
        port: int = 8123,
        database: str = "default",
        limits: Limits = Limits(),  # noqa: B008 (frozen)
        identity: str | None = None,
    ) -> None:
        if not password:
            raise ValueError("QueryServer needs a password")
        self._source = client
        self.password, self.host, self.port, self.database = password, host, port, database
        self.limits, self.identity = limits, identity
        self._admin: Client | None = None
        self._path = ""
        self._sessions: queue.Queue[Client] = queue.Queue()
        self._opened: list[Client] = []
        self._pool: ThreadPoolExecutor | None = None
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.session_settings: dict[str, str] = {}
        self.timezone = "UTC"
        self.display_name = socket.gethostname()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _open(self) -> None:
        source = self._source
        admin = source if isinstance(source, Client) else source()
        path = getattr(admin, "path", None)
        if not isinstance(path, str) or not str(getattr(admin, "uri", "")).startswith("chdb:"):
            raise QueryServerError("the query endpoint serves an embedded (chdb) warehouse only")
        self._admin, self._path = admin, path
        for _ in range(self.limits.concurrency):
            self._sessions.put(self._new_session())
        probe = self._opened[0]
        self.timezone = str(probe.command("SELECT timezone()"))
        rows = probe.query("SELECT name, value FROM system.settings").result_rows
        self.session_settings = {str(n): str(v) for n, v in rows}
        self._pool = ThreadPoolExecutor(self.limits.concurrency, thread_name_prefix="query")

    def _new_session(self) -> Client:
        options = self.limits.session_options()
        session = clickhouse_connect.get_client(dsn=f"chdb://{self._path}", chdb_options=options)
        self._opened.append(session)
        if str(session.command("SELECT getSetting('readonly')")) != "1":
            raise QueryServerError("a query session did not open read-only")
        return session

    def _replace(self, session: Client) -> Client:
        """A fresh session for one that failed: chdb can leave a failed query's unread result
        on its connection, where the next query would read it."""
        try:
            fresh = self._new_session()
        except Exception:  # noqa: BLE001 (keep the pool's size: the old one is better than none)
            log.warning("query endpoint: could not open a fresh session", exc_info=True)
            return session
        with contextlib.suppress(Exception):  # closing a broken session: nothing to save
            session.close()
        with contextlib.suppress(ValueError):
            self._opened.remove(session)
        return fresh

    def start(self) -> QueryServer:
        """Open the read-only sessions, bind and serve in a daemon thread; returns at once."""
        if not loopback_host(self.host):
            raise QueryServerError(f"the query endpoint listens on loopback only, not {self.host}")
        try:
            self._open()
        except BaseException:
            self.close_sessions()
            raise
        handler = type("Handler", (_Handler,), {"server_ref": self})
        server_class = _Server6 if ":" in self.host else _Server
        try:
            self._httpd = server_class((self.host, self.port), handler)
        except OSError as exc:
            self.close_sessions()
            raise QueryServerError(f"port {self.port} on {self.host}: {exc.strerror}") from None
        self._httpd.connection_slots = threading.BoundedSemaphore(self.limits.max_connections)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="query-endpoint", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, wait for the serving thread, close the server's own sessions."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.close_sessions()

    def close_sessions(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        for session in self._opened:
            session.close()
        self._opened.clear()
        self._sessions = queue.Queue()
        if self._admin is not None and self._admin is not self._source:
            self._admin.close()
        self._admin = None

    def __enter__(self) -> QueryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def authenticate(self, given: tuple[str, str] | None) -> None:
        if given is None:
            raise QueryError(REQUIRED_PASSWORD, "parwatch: this endpoint needs a user and "
                             f"password (user {credentials.USER}, password in the file beside "
                             "the warehouse: see `parwatch serve --help`)")  # fmt: skip
        user, password = given
        ok_user = hmac.compare_digest(user.encode(), credentials.USER.encode())
        ok_password = hmac.compare_digest(password.encode(), self.password.encode())
        if not (ok_user and ok_password):
            raise QueryError(
                AUTHENTICATION_FAILED, f"{user[:60]}: Authentication failed: password is "
                "incorrect, or there is no user with such name",
            )  # fmt: skip

    def execute(self, req: Request, gone: Callable[[], bool]) -> tuple[bytes, str]:
        """Run one request's query on a free session; returns the result bytes and format.
        ``gone`` tells whether the client has left (then the query is killed)."""
        check_settings(req.settings, self.session_settings)
        try:
            session = self._sessions.get(timeout=self.limits.queue_timeout_s)
        except queue.Empty:
            raise QueryError(TOO_MANY_SIMULTANEOUS_QUERIES, "parwatch: every query session has "
                             f"been busy for {self.limits.queue_timeout_s:g} s; try again "
                             "later") from None  # fmt: skip
        tag = f"/* parwatch-endpoint {uuid.uuid4().hex} */ "
        healthy = False
        try:
            assert self._pool is not None, "start() first"
            future = self._pool.submit(self._run, session, req, tag)
            result = self._await(future, tag, gone)
            healthy = True
            return result
        finally:
            self._sessions.put(session if healthy else self._replace(session))

    def _run(self, session: Client, req: Request, tag: str) -> tuple[bytes, str]:
        session.database = req.database or self.database
        params = {k: Verbatim(v) for k, v in req.params.items()}
        stmt = statements.inspect(session, req.query, req.default_format, params)
        wanted = set(_PLACEHOLDER.findall(stmt.sql))
        params = {k: v for k, v in params.items() if k in wanted}
        data = session.raw_query(tag + stmt.sql, parameters=params or None)
        if len(data) > self.limits.max_result_bytes:
            raise QueryError(TOO_MANY_ROWS_OR_BYTES, "parwatch: the result is larger than "
                             f"{self.limits.max_result_bytes} bytes")  # fmt: skip
        return data, stmt.output_format

    def _await(
        self, future: Future[tuple[bytes, str]], tag: str, gone: Callable[[], bool]
    ) -> tuple[bytes, str]:
        deadline = time.monotonic() + self.limits.timeout_s + 1.0
        while True:
            try:
                return future.result(timeout=POLL_S)
            except FutureTimeout:
                pass
            if gone():
                self._kill(tag, future)
                raise ConnectionAbortedError("the client closed the connection")
            if time.monotonic() > deadline:
                self._kill(tag, future)
                raise QueryError(TIMEOUT_EXCEEDED, "parwatch: Timeout exceeded: the query ran "
                                 f"longer than {self.limits.timeout_s:g} s")  # fmt: skip

    def _kill(self, tag: str, future: Future[tuple[bytes, str]]) -> None:
        """Kill the query that carries ``tag`` (hex of our own making) and wait for its thread."""
        assert self._admin is not None
        try:
            self._admin.command(f"KILL QUERY WHERE startsWith(query, '{tag}') SYNC")
        except ClickHouseError:
            log.warning("query endpoint: could not kill a query", exc_info=True)
        with contextlib.suppress(Exception):  # the query's own error: it was killed
            future.result(timeout=self.limits.timeout_s + 5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    connection_slots: threading.BoundedSemaphore

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.connection_slots.acquire(blocking=False):
            body = QueryError(TOO_MANY_SIMULTANEOUS_QUERIES, "parwatch: too many connections")
            text = body.body().encode()
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
                                b"Content-Type: text/plain; charset=UTF-8\r\nContent-Length: "
                                + str(len(text)).encode() + b"\r\n\r\n" + text)  # fmt: skip
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connection_slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("query endpoint: connection from %s ended with an error", client_address,
                  exc_info=True)  # fmt: skip


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "parwatch-query-endpoint"
    timeout = 60  # seconds a client may take to send a request
    server_ref: QueryServer
    _body_read = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        log.debug("%s " + format, self.client_address[0], *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (garbage request line, unsupported method, …), in
        ClickHouse's form, and always with a status line."""
        self.request_version, self.close_connection = "HTTP/1.1", True
        err = QueryError(48 if code == 501 else BAD_ARGUMENTS, f"Bad HTTP request: {message}")
        headers = {"Content-Type": "text/plain; charset=UTF-8", "Connection": "close",
                   "X-ClickHouse-Exception-Code": str(err.code)}  # fmt: skip
        self._send(code, err.body().encode(), headers, head=self.command == "HEAD")

    def do_HEAD(self) -> None:
        self._handle(head=True)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    # --- the body ---------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        limit = self.server_ref.limits.max_body_bytes
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return b"".join(self._chunks(limit))
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        if not _CONTENT_LENGTH.fullmatch(length.strip()):
            raise QueryError(BAD_ARGUMENTS, "Bad Content-Length")
        size = int(length)
        if size > limit:
            # Read it (up to DRAIN_BYTES) before answering, so that the client, still sending,
            # gets the 413 instead of a broken pipe; beyond that the connection is closed.
            left = size
            while 0 < left <= DRAIN_BYTES and (chunk := self.rfile.read(min(left, 1 << 20))):
                left -= len(chunk)
            self._body_read = left == 0
            raise QueryError(QUERY_IS_TOO_LARGE, f"Request body is larger than {limit} bytes")
        return self.rfile.read(size)

    def _chunks(self, limit: int) -> Iterator[bytes]:
        total = 0
        while True:
            line = self.rfile.readline(100).split(b";")[0].strip()
            if not _CHUNK_SIZE.fullmatch(line):
                raise QueryError(BAD_ARGUMENTS, "Bad chunked encoding")
            size = int(line, 16)
            total += size
            if total > limit:
                raise QueryError(QUERY_IS_TOO_LARGE, f"Request body is larger than {limit} bytes")
            if size == 0:
                while self.rfile.readline(100) not in (b"\r\n", b"\n", b""):
                    pass  # trailer fields, ignored
                return
            chunk = self.rfile.read(size)
            if len(chunk) != size:
                raise QueryError(BAD_ARGUMENTS, "Bad chunked encoding: body ended early")
            yield chunk
            self.rfile.readline(100)

    # --- who asks -------------------------------------------------------------------------

    def _check_origin(self) -> None:
        host = self.headers.get("Host")
        m = _HOST.fullmatch(host.strip()) if host else None
        if m is None or not loopback_host(m.group("name")):
            raise QueryError(BAD_ARGUMENTS, "parwatch: the Host header must name this machine "
                             "(localhost, 127.0.0.1 or [::1])")  # fmt: skip
        if "Origin" in self.headers or self.headers.get("Sec-Fetch-Site") == "cross-site":
            raise QueryError(AUTHENTICATION_FAILED, "parwatch: requests from web pages are "
                             "refused (Origin header present)")  # fmt: skip

    def _gone(self) -> bool:
        """Whether the client has closed its side (a pipelined next request is not closing)."""
        sock = self.connection
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    # --- one request ----------------------------------------------------------------------

    def _handle(self, head: bool = False) -> None:
        srv, started = self.server_ref, time.monotonic_ns()
        parts = urlsplit(self.path)
        query_id = str(uuid.uuid4())
        self._body_read = False
        try:
            self._check_origin()
            body = self._read_body()
            self._body_read = True
            if head or self.command == "GET":
                body = b""  # read (so it cannot pass for the next request), never run
            if parts.path in ("/ping", "/replicas_status") or (
                parts.path == "/" and not parts.query and not body
            ):
                ok = {"Content-Type": "text/html; charset=UTF-8"}
                if srv.identity:
                    ok[IDENTITY_HEADER] = srv.identity
                self._send(200, b"Ok.\n", ok, head=head)
                return
            if parts.path != "/":
                self._send(404, f"There is no handle {parts.path[:100]}\n\nUse / or /ping.\n"
                           .encode(), {"Content-Type": "text/plain; charset=UTF-8"},
                           head=head)  # fmt: skip
                return
            pairs = url_pairs(parts.query.encode("latin-1"))
            srv.authenticate(given_credentials(self.headers, pairs))
            req = parse_request(pairs, self.headers, body)
            query_id = req.query_id
            data, fmt = srv.execute(req, self._gone)
        except QueryError as exc:
            self._error(exc, query_id, head)
            return
        except DatabaseError as exc:
            self._error(QueryError.from_engine(exc), query_id, head)
            return
        except ClickHouseError as exc:
            self._error(QueryError(BAD_ARGUMENTS, str(exc).strip()[:400]), query_id, head)
            return
        except ConnectionAbortedError:
            self.close_connection = True
            return
        except Exception as exc:  # the request boundary: one bad request never stops the server
            log.exception("query endpoint: request failed")
            self._error(QueryError(STD_EXCEPTION, f"{type(exc).__name__}"), query_id, head)
            return
        summary = {"result_bytes": str(len(data)),
                   "elapsed_ns": str(time.monotonic_ns() - started)}  # fmt: skip
        headers = {
            "Content-Type": content_type(fmt),
            "X-ClickHouse-Format": fmt,
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": srv.timezone,
            "X-ClickHouse-Summary": json.dumps(summary),
        }
        encoding = choose_encoding(self.headers.get("Accept-Encoding", ""))
        if encoding:
            data = ENCODERS[encoding](data)
            headers["Content-Encoding"] = encoding
        self._send(200, data, headers, head=head)

    def _error(self, exc: QueryError, query_id: str, head: bool) -> None:
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-ClickHouse-Exception-Code": str(exc.code),
            "X-ClickHouse-Query-Id": query_id,
        }
        if exc.code == REQUIRED_PASSWORD:
            headers["WWW-Authenticate"] = 'Basic realm="parwatch query endpoint"'
        if not self._body_read:  # part of the body may still be on the wire: drop the connection
            self.close_connection = True
            headers["Connection"] = "close"
        self._send(http_status(exc.code), exc.body().encode(), headers, head=head)

    def _send(self, status: int, data: bytes, headers: dict[str, str], head: bool = False) -> None:
        try:
            self.send_response(status)
            headers["X-ClickHouse-Server-Display-Name"] = self.server_ref.display_name
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not head:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
