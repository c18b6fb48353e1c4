"""Test scaffolding: a minimal ClickHouse HTTP server in front of the test process's chdb.

The only ClickHouse available to the tests is chdb, embedded in one process per data path. To
test what the worker does when a ClickHouse *server* goes away, the test process puts this
front on loopback over its own clickhouse-connect chdb client, points the worker at it with an
``http://`` PARWATCH_CLICKHOUSE_URL, and stops and restarts it. The worker's ClickHouse client
is the real clickhouse-connect HTTP client, unmocked: only the server is a stand-in.

It speaks as much of ClickHouse's HTTP interface as clickhouse-connect's HTTP client uses:

* ``/ping`` (and a bare ``GET /``) answers ``Ok.``.
* A query is the URL ``query`` parameter and the request body, joined by a newline (as ClickHouse
  does), the body first decompressed per ``Content-Encoding`` (lz4, zstd, gzip, deflate). It runs
  on the chdb client (``raw_query``), whose answer is already in the FORMAT the query names
  (clickhouse-connect appends ``FORMAT Native`` to its selects); no FORMAT gives TabSeparated.
* ``INSERT INTO t (cols) [SETTINGS …] FORMAT F`` followed by data (in the body, or the body after
  the URL query) goes through the chdb client's ``raw_insert``, which writes the bytes to a file
  and runs ``INSERT … FROM INFILE``. URL parameters that are not transport parameters are query
  settings, passed on, so ``insert_deduplication_token`` reaches the engine.
* ``database`` selects the database for the one call; ``param_<name>`` values bind
  ``{name:Type}`` placeholders (re-bound by clickhouse-connect: fine for values without
  backslashes, which is all the tests send).
* Errors: HTTP 500 with ``X-ClickHouse-Exception-Code`` and a ``Code: N. DB::Exception: …`` body.
* chdb calls are serialised with one lock. No response compression, no sessions, no auth.

``stop()`` closes the listening socket and every open connection (a client then gets
"connection refused": the outage); ``start()`` listens again on the same port.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib
import re
import socket
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from streams.warehouse.query_endpoint.protocol import TRANSPORT_PARAMS  # ClickHouse's own

_INSERT = re.compile(
    rb"^\s*INSERT\s+INTO\s+(?P<table>[A-Za-z0-9_.`\"]+)\s*(?:\((?P<cols>[^)]*)\))?\s*"
    rb"(?:SETTINGS\s+(?P<settings>.*?)\s*)?FORMAT\s+(?P<fmt>[A-Za-z0-9_]+)[ \t]*\r?\n?",
    re.I | re.S,
)
_CODE = re.compile(r"Code:\s*(\d+)")


def _decompress(data: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return data
    if encoding == "gzip":
        return gzip.decompress(data)
    if encoding == "deflate":
        return zlib.decompress(data)
    if encoding == "lz4":  # clickhouse-connect sends one lz4 frame per block
        lz4_frame: Any = importlib.import_module("lz4.frame")  # no type stubs
        out, rest = bytearray(), data
        while rest:
            d = lz4_frame.LZ4FrameDecompressor()
            out += d.decompress(rest)
            rest = d.unused_data
        return bytes(out)
    if encoding == "zstd":
        from clickhouse_connect.driver.compression import _zstd_decompress

        return bytes(_zstd_decompress(data))
    raise ValueError(f"unsupported Content-Encoding {encoding}")


def _unquote_name(name: str) -> str:
    return name.strip().strip('`"')


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    front: ChFront


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def setup(self) -> None:
        super().setup()
        self.server.front._track(self.connection, True)

    def finish(self) -> None:
        self.server.front._track(self.connection, False)
        super().finish()

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        self._serve(b"")

    def do_POST(self) -> None:  # noqa: N802
        self._serve(self._body())

    def _serve(self, body: bytes) -> None:
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        if parts.path == "/ping" or (not body and "query" not in params):
            self._send(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"})
            return
        try:
            body = _decompress(body, self.headers.get("Content-Encoding", ""))
            query = params.get("query", "").encode()
            text = query + b"\n" + body if query and body else query or body
            result, fmt = self.server.front.execute(text, params)
        except Exception as exc:
            message = str(exc).strip()
            m = _CODE.search(message)
            code = m.group(1) if m else "1001"
            if not message.startswith("Code:"):
                message = f"Code: {code}. DB::Exception: {message}. (STD_EXCEPTION)"
            self._send(500, (message + "\n").encode(), {
                "X-ClickHouse-Exception-Code": code,
                "Content-Type": "text/plain; charset=UTF-8",
            })  # fmt: skip
            return
        self._send(200, result, {
            "Content-Type": "application/octet-stream",
            "X-ClickHouse-Format": fmt,
            "X-ClickHouse-Timezone": self.server.front.timezone,
            "X-ClickHouse-Summary": "{}",
        })  # fmt: skip


class ChFront:
    """A ClickHouse HTTP endpoint on ``host:port`` over ``client`` (a clickhouse-connect client,
    typically chdb, owned by the caller). ``port=0``: a free port, kept across restarts."""

    def __init__(self, client: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.client = client
        self.host = host
        self.port = port
        self.requests = 0
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.timezone = str(client.command("SELECT timezone()"))

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        server = _Server((self.host, self.port), _Handler)
        server.front = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="chfront", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and drop every connection: clients get refused until ``start()``."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._conns_lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        assert self._thread is not None
        self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> ChFront:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, conn: socket.socket, opened: bool) -> None:
        with self._conns_lock:
            if opened:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def execute(self, text: bytes, params: dict[str, str]) -> tuple[bytes, str]:
        """Run one request's statement; return (response body, its format)."""
        settings = {k: v for k, v in params.items()
                    if k not in TRANSPORT_PARAMS and not k.startswith("param_")}  # fmt: skip
        binds = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        database = params.get("database") or None
        with self._lock:
            self.requests += 1
            saved = self.client.database
            if database:
                self.client.database = database
            try:
                m = _INSERT.match(text)
                if m is not None:
                    cols = m.group("cols")
                    names = [_unquote_name(c) for c in cols.decode().split(",")] if cols else None
                    if m.group("settings"):
                        for item in m.group("settings").decode().split(","):
                            key, _, value = item.partition("=")
                            settings[key.strip()] = value.strip().strip("'")
                    self.client.raw_insert(
                        m.group("table").decode(), names, text[m.end() :],
                        settings=settings or None, fmt=m.group("fmt").decode(),
                    )  # fmt: skip
                    return b"", "TabSeparated"
                sql = text.decode()
                fmt = re.search(r"\bFORMAT\s+(\w+)\s*;?\s*$", sql, re.I)
                out = self.client.raw_query(sql, parameters=binds or None,
                                            settings=settings or None)  # fmt: skip
                return out, fmt.group(1) if fmt else "TabSeparated"
            finally:
                self.client.database = saved
