"""The query endpoint: read-only SQL over ClickHouse's HTTP interface, for the embedded warehouse.

chdb allows one process per data path, so the process that owns the warehouse (``parwatch worker``
or ``parwatch serve``) answers everyone else's queries here, the way a ClickHouse server would:
clickhouse-connect's HTTP client, ``curl 'http://127.0.0.1:8123/?query=…'``, notebooks, Grafana.

Contract:
* Read-only, three times over. (1) Queries run on a chdb connection whose *session* has
  ``readonly=2``, set when the connection opens, so no query can lift it (``SET readonly=0`` and
  ``SETTINGS readonly=0`` fail with 164) and every write or DDL fails with 164. (2) Every
  statement must start with SELECT, WITH, SHOW, DESCRIBE/DESC, EXISTS or EXPLAIN, be alone (no
  ``;`` followed by more) and not use ``INTO OUTFILE`` (chdb writes that file even in readonly
  mode; refused with ClickHouse's 358). (3) ClickHouse's own parser (``EXPLAIN AST``) must show
  no table function but ``numbers``, ``values``, ``view`` and the like, and no ``file()``.
  Refusals are ClickHouse's ``Code: 164. DB::Exception: … (READONLY)``.
  Why level 2, measured: under ``readonly=1`` chdb silently ignores the ``SETTINGS
  group_by_use_nulls = 1`` inside the KPI views, so province rows come back with agency ''
  instead of NULL (wrong rows, no error); level 2 keeps them right and lets clients send
  settings (URL settings apply to that query only). Level 2 also allows ``file()``/``url()``
  table functions and the ``file()`` function (level 1 refuses the table functions), hence (3).
* Protocol: GET/POST/HEAD on ``/``; the query is the URL ``query`` plus a newline plus the body
  (or multipart form fields); ``database``, ``default_format`` (or the ``X-ClickHouse-Database``
  and ``X-ClickHouse-Format`` headers), a FORMAT clause, ``param_<name>`` values for
  ``{name:Type}`` placeholders (passed verbatim to chdb, which binds them natively with
  ClickHouse's escaping rules). Responses carry ``X-ClickHouse-Query-Id``, ``-Format``,
  ``-Timezone``, ``-Server-Display-Name``, ``-Summary``; errors carry
  ``X-ClickHouse-Exception-Code`` and a ``Code: N. DB::Exception: …`` body, with the HTTP status
  ClickHouse gives that code (``exceptionCodeToHTTPStatus.cpp``: READONLY is 500). Responses are
  compressed (lz4, zstd, gzip, deflate) when the client asks with Accept-Encoding. ``/ping`` and
  a bare ``GET /`` answer ``Ok.``. Transport parameters (session_id, wait_end_of_query,
  query_id, compress, client_protocol_version, …) are accepted and need nothing here.
* Blocking: a ``ThreadingHTTPServer`` on its own thread, one thread per connection; chosen over
  asyncio because every chdb call blocks anyway and a separate thread cannot stall the worker's
  event loop. Queries are serialised on the server's one read-only connection (chdb: a
  connection must not run two queries at once) unless ``run`` says otherwise.

Measured (chdb 4.4, clickhouse-connect 1.12): a second clickhouse-connect client on the same
``chdb:///path`` opens in the same process while the first is open (each is its own chdb
connection on the one engine, with its own session settings); two threads querying on one
connection while a third inserts on another (30 × 1,000-row inserts) gave no errors and correct
counts. So the server does not need the owner's thread: given the owner's writable client it
opens a read-only sibling connection on the same path and queries run beside the inserts.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib
import ipaddress
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError, ProgrammingError

log = logging.getLogger("parwatch.query_server")

T = TypeVar("T")
MAX_BODY_BYTES = 1 << 20  # queries and form fields; results are not limited
DRAIN_BYTES = 64 << 20  # a refused body up to this size is read before the 413
SAFE_TABLE_FUNCTIONS = frozenset({
    "numbers", "numbers_mt", "zeros", "zeros_mt", "values", "null", "view", "generateSeries",
    "generate_series", "merge",
})  # fmt: skip
FILE_FUNCTIONS = frozenset({"file"})  # scalar functions that read the host's files
READ_ONLY_STATEMENTS = frozenset(
    {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN"}
)
# Parameters of ClickHouse's HTTP interface (and clickhouse-connect's transport) that are not
# query settings; they need nothing from an embedded, session-less, single-user endpoint.
TRANSPORT_PARAMS = frozenset({
    "query", "database", "default_format", "query_id", "session_id", "session_timeout",
    "session_check", "compress", "decompress", "wait_end_of_query", "buffer_size",
    "enable_http_compression", "http_zlib_compression_level", "send_progress_in_http_headers",
    "http_headers_progress_interval_ms", "cancel_http_readonly_queries_on_client_close",
    "client_protocol_version", "user", "password", "quota_key", "role", "http_response_buffer_size",
    "readonly",  # checked by itself: only the read-only levels 1 and 2 are accepted
})  # fmt: skip
# ClickHouse error codes used here (src/Common/ErrorCodes.cpp), and the HTTP status ClickHouse
# gives each code (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp); anything else is 500.
BAD_ARGUMENTS, SYNTAX_ERROR, UNKNOWN_SETTING, READONLY = 36, 62, 115, 164
QUERY_IS_TOO_LARGE, INTO_OUTFILE_NOT_ALLOWED, STD_EXCEPTION = 229, 358, 1001
_NAMES = {36: "BAD_ARGUMENTS", 62: "SYNTAX_ERROR", 115: "UNKNOWN_SETTING", 164: "READONLY",
          229: "QUERY_IS_TOO_LARGE", 358: "INTO_OUTFILE_NOT_ALLOWED",
          1001: "STD_EXCEPTION"}  # fmt: skip
_STATUS_400 = {6, 8, 15, 25, 26, 27, 36, 37, 38, 41, 44, 53, 62, 72, 117, 123, 167, 168, 223, 321,
               376, 427, 441, 675, 676}  # fmt: skip
_STATUS_404 = {46, 47, 50, 56, 60, 63, 73, 78, 81, 115, 152, 336, 511}
_STATUS_OTHER = {48: 501, 76: 503, 159: 408, 192: 403, 193: 403, 194: 401, 209: 503, 229: 413,
                 381: 411, 439: 503, 497: 403, 512: 403, 516: 403, 779: 415}  # fmt: skip
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_PLACEHOLDER = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:")
_TRAILING_FORMAT = re.compile(
    r"\bFORMAT\s+([A-Za-z_][A-Za-z0-9_]*)\s*(?:SETTINGS\b.*)?$", re.I | re.S
)


def http_status(code: int) -> int:
    """The HTTP status ClickHouse answers with for an exception code."""
    if code in _STATUS_OTHER:
        return _STATUS_OTHER[code]
    if code in _STATUS_400:
        return 400
    return 404 if code in _STATUS_404 else 500


class QueryError(Exception):
    """A request refused before or by the engine, reported the way ClickHouse reports it."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code

    def body(self) -> str:
        text = str(self)
        if text.startswith("Code: "):
            return text if text.endswith("\n") else text + "\n"
        return f"Code: {self.code}. DB::Exception: {text}. ({_NAMES.get(self.code, 'UNKNOWN')})\n"


class Runner(Protocol):
    """Runs ``fn(client)`` where and when the owner wants, and returns its result."""

    def __call__(self, fn: Callable[[Client], T], /) -> T: ...


# --- statements -------------------------------------------------------------------------------


def _mask(sql: str) -> str:
    """``sql`` with string literals, quoted names and comments blanked (same length), so that
    keywords and ``;`` can be found with regexes. Unterminated quotes or comments: SYNTAX_ERROR."""
    out, i, n = list(sql), 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            j = i + 1
            while j < n and sql[j] != c:
                j += 2 if sql[j] == "\\" else 1
            if j >= n:
                raise QueryError(SYNTAX_ERROR, "Syntax error: unterminated quoted string or name")
            out[i + 1 : j] = " " * (j - i - 1)
            i = j + 1
        elif sql.startswith("--", i) or c == "#":
            j = sql.find("\n", i)
            j = n if j < 0 else j
            out[i:j] = " " * (j - i)
            i = j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            if j < 0:
                raise QueryError(SYNTAX_ERROR, "Syntax error: unterminated comment")
            out[i : j + 2] = " " * (j + 2 - i)
            i = j + 2
        elif m := re.match(r"\$([A-Za-z_0-9]*)\$", sql[i:]):
            j = sql.find(m.group(0), i + len(m.group(0)))
            if j < 0:
                raise QueryError(SYNTAX_ERROR, "Syntax error: unterminated heredoc string")
            out[i : j + len(m.group(0))] = " " * (j + len(m.group(0)) - i)
            i = j + len(m.group(0))
        else:
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class Statement:
    text: str  # the one statement, without its trailing ';'
    output_format: str | None  # from its FORMAT clause
    kind: str  # SELECT, WITH, SHOW, …
    query: str  # the text without its FORMAT clause (and the SETTINGS after it)


def check_read_only(sql: str) -> Statement:
    """The one read-only statement in ``sql``, or a QueryError (164 READONLY for writes)."""
    masked = _mask(sql)
    parts, start = [], 0
    for m in re.finditer(";", masked):
        parts.append((start, m.start()))
        start = m.end()
    parts.append((start, len(masked)))
    statements = [(a, b) for a, b in parts if masked[a:b].strip()]
    if not statements:
        raise QueryError(SYNTAX_ERROR, "Empty query")
    for a, b in statements:
        words = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", masked[a:b])
        first = words[0].upper() if words else ""
        if first not in READ_ONLY_STATEMENTS:
            raise QueryError(
                READONLY, f"parwatch: Cannot execute query in readonly mode: {first or '?'} "
                "(this endpoint runs SELECT, WITH, SHOW, DESCRIBE, EXISTS and EXPLAIN only)",
            )  # fmt: skip
        if re.search(r"\bINTO\s+OUTFILE\b", masked[a:b], re.I):
            raise QueryError(INTO_OUTFILE_NOT_ALLOWED, "INTO OUTFILE is not allowed")
    if len(statements) > 1:
        raise QueryError(SYNTAX_ERROR, "Syntax error: Multi-statements are not allowed")
    a, b = statements[0]
    fmt = _TRAILING_FORMAT.search(masked[a:b].rstrip())
    kind = re.findall(r"[A-Za-z_]+", masked[a:b])[0].upper()
    query = sql[a : a + fmt.start()] if fmt else sql[a:b]
    return Statement(sql[a:b].strip(), fmt.group(1) if fmt else None, kind, query.strip())


def check_sources(ast: str) -> None:
    """Refuse table functions other than SAFE_TABLE_FUNCTIONS and functions that read files,
    given ClickHouse's own ``EXPLAIN AST`` of the statement (so no lexical trick hides one)."""
    lines = ast.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"\s*Function (\w+)", line)
        if not m:
            continue
        name = m.group(1)
        in_from = i > 0 and lines[i - 1].strip().startswith("TableExpression")
        if (in_from and name not in SAFE_TABLE_FUNCTIONS) or name in FILE_FUNCTIONS:
            raise QueryError(
                READONLY, f"parwatch: Cannot execute query in readonly mode: {name}() reaches "
                "files or other servers; this endpoint reads the warehouse only",
            )  # fmt: skip


# --- requests ---------------------------------------------------------------------------------


@dataclass
class Request:
    """What one HTTP request asks for, decoded."""

    query: str
    database: str | None = None
    default_format: str = "TabSeparated"
    query_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    params: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)


def parse_request(url_query: bytes, headers: Any, body: bytes) -> Request:
    """Decode URL parameters, headers and body as ClickHouse's HTTP handler does."""
    if _BAD_ESCAPE.search(url_query):
        raise QueryError(BAD_ARGUMENTS, "Cannot parse URL: malformed percent-encoding")
    try:
        pairs = parse_qsl(url_query.decode("ascii"), keep_blank_values=True,
                          encoding="utf-8", errors="strict")  # fmt: skip
    except (UnicodeDecodeError, ValueError) as exc:
        raise QueryError(BAD_ARGUMENTS, f"Cannot parse URL: {exc}") from None
    ctype = headers.get("Content-Type", "")
    if ctype.startswith("multipart/form-data"):
        msg = BytesParser().parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
        if not msg.is_multipart():
            raise QueryError(BAD_ARGUMENTS, "Cannot parse multipart/form-data body")
        body = b""
        for part in msg.get_payload():
            if not isinstance(part, Message):
                continue
            name = part.get_param("name", header="content-disposition")
            value = part.get_payload(decode=True)
            value = value if isinstance(value, bytes) else b""
            if name == "query":
                body = value
            elif isinstance(name, str) and name.startswith("param_"):
                pairs.append((name, value.decode("utf-8", "replace")))
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise QueryError(BAD_ARGUMENTS, "The query is not valid UTF-8") from None
    values = dict(pairs)
    query = values.get("query", "")
    query = f"{query}\n{text}" if query and text else query or text
    if not query.strip():
        raise QueryError(SYNTAX_ERROR, "Empty query")
    req = Request(query=query)
    req.database = values.get("database") or headers.get("X-ClickHouse-Database") or None
    fmt = values.get("default_format") or headers.get("X-ClickHouse-Format") or "TabSeparated"
    if not _IDENT.match(fmt):
        raise QueryError(BAD_ARGUMENTS, f"Bad format name {fmt!r}")
    req.default_format = fmt
    if values.get("query_id"):
        req.query_id = values["query_id"]
    for key, value in values.items():
        if key.startswith("param_") and len(key) > 6:
            req.params[key[6:]] = value
        elif key not in TRANSPORT_PARAMS:
            req.settings[key] = value
    if values.get("readonly", "1") not in ("1", "2"):
        raise QueryError(READONLY, "Cannot modify 'readonly' setting in readonly mode")
    return req


class _Verbatim:
    """A parameter value already in ClickHouse's escaped text form: clickhouse-connect formats
    unknown objects with ``str()``, so the client's own ``param_x`` text reaches chdb unchanged."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


# --- compression --------------------------------------------------------------------------------


def _encoders() -> dict[str, Callable[[bytes], bytes]]:
    out: dict[str, Callable[[bytes], bytes]] = {"gzip": gzip.compress, "deflate": zlib.compress}
    for name, module, attr in (("lz4", "lz4.frame", "compress"), ("zstd", "backports.zstd",
                               "compress"), ("zstd", "compression.zstd", "compress")):  # fmt: skip
        if name not in out:
            with contextlib.suppress(ImportError):
                out[name] = getattr(importlib.import_module(module), attr)
    return out


ENCODERS = _encoders()


def choose_encoding(accept: str) -> str | None:
    """The first encoding of the client's Accept-Encoding list that this server can produce."""
    for item in accept.split(","):
        name = item.split(";")[0].strip().lower()
        if name in ENCODERS:
            return name
    return None


# --- the server -----------------------------------------------------------------------------------


IDENTITY_HEADER = "X-Parwatch-Warehouse"


def warehouse_identity(url: str) -> str:
    """``chdb:///path`` with the path resolved, so that spellings of one path compare equal."""
    if url.startswith("chdb:"):
        return "chdb://" + os.path.realpath(urlsplit(url).path)
    return url


def readonly_sibling(client: Client) -> Client | None:
    """A new read-only chdb connection on ``client``'s path, or None if it is not embedded."""
    path = getattr(client, "path", None)
    if not isinstance(path, str) or not str(getattr(client, "uri", "")).startswith("chdb:"):
        return None
    return clickhouse_connect.get_client(dsn=f"chdb://{path}", chdb_options={"readonly": "2"})


class QueryServerError(Exception):
    """The endpoint cannot start (port in use, not a loopback host, no read-only session)."""


class QueryServer:
    """Serves read-only queries on ``host:port`` from a background thread; see the module doc.

    ``client``: the owner's client (or a callable that opens one); when its session is not
    read-only and it is embedded, the server opens a read-only sibling connection on the same
    path (and closes it on ``stop()``). ``run``: where each call runs; default: serialised by a
    lock on this server's connection. A ``run`` hook must hand ``fn`` a read-only client:
    ``start()`` checks, and refuses to serve a writable session. ``identity``: sent with
    ``/ping`` in ``X-Parwatch-Warehouse`` (see ``warehouse_identity``) so that a reader can tell
    this endpoint serves its warehouse and not another one (or a ClickHouse server).
    """

    def __init__(
        self,
        client: Client | Callable[[], Client] | None = None,
        *,
        run: Runner | None = None,
        host: str = "127.0.0.1",
        port: int = 8123,
        database: str = "default",
        max_body_bytes: int = MAX_BODY_BYTES,
        identity: str | None = None,
    ) -> None:
        if client is None and run is None:
            raise ValueError("QueryServer needs a client, a client factory or a run hook")
        self._source, self._run_hook = client, run
        self.host, self.port, self.database = host, port, database
        self.max_body_bytes = max_body_bytes
        self.identity = identity
        self._client: Client | None = None
        self._owned: Client | None = None
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.session_settings: dict[str, tuple[str, bool]] = {}  # name: (value, fixed)
        self.timezone = "UTC"
        self.display_name = socket.gethostname()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def run(self, fn: Callable[[Client], T]) -> T:
        """Run ``fn`` on a read-only client, through the hook or under this server's lock."""
        if self._run_hook is not None:
            return self._run_hook(fn)
        assert self._client is not None, "start() first"
        with self._lock:
            return fn(self._client)

    def _open(self) -> None:
        if self._run_hook is None:
            source = self._source
            client = source if isinstance(source, Client) else source()  # type: ignore[misc]
            if str(client.command("SELECT getSetting('readonly')")) not in ("1", "2"):
                sibling = readonly_sibling(client)
                if sibling is None:
                    raise QueryServerError(
                        "the query server needs an embedded (chdb) client or a read-only session"
                    )
                self._owned = client = sibling
            self._client = client
        if str(self.run(lambda c: c.command("SELECT getSetting('readonly')"))) not in ("1", "2"):
            raise QueryServerError("the run hook's client is not read-only (readonly=1 or 2)")
        self.timezone = str(self.run(lambda c: c.command("SELECT timezone()")))
        rows = self.run(
            lambda c: c.query("SELECT name, value, readonly FROM system.settings").result_rows
        )
        self.session_settings = {str(n): (str(v), bool(r)) for n, v, r in rows}

    def start(self) -> QueryServer:
        """Open the read-only session, bind and serve in a daemon thread; returns at once."""
        try:
            loopback = self.host == "localhost" or ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise QueryServerError(f"the query endpoint listens on loopback only, not {self.host}")
        self._open()
        handler = type("Handler", (_Handler,), {"server_ref": self})
        try:
            server_class = _Server6 if ":" in self.host else ThreadingHTTPServer
            self._httpd = server_class((self.host, self.port), handler)
        except OSError as exc:
            self.close_session()
            raise QueryServerError(f"port {self.port} on {self.host}: {exc.strerror}") from None
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="query-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, wait for the serving thread, close the server's own connection."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.close_session()

    def close_session(self) -> None:
        if self._owned is not None:
            with self._lock:
                self._owned.close()
            self._owned = None
        self._client = None

    def __enter__(self) -> QueryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def execute(self, req: Request) -> tuple[bytes, str]:
        """Run one request's query; returns the result bytes and their format."""
        settings: dict[str, Any] = {}
        for key, value in req.settings.items():
            if key not in self.session_settings:
                raise QueryError(UNKNOWN_SETTING, f"Unknown setting '{key}'")
            current, fixed = self.session_settings[key]
            if value != current:
                if fixed:
                    raise QueryError(READONLY, f"Cannot modify '{key}' setting in readonly mode")
                settings[key] = value
        stmt = check_read_only(req.query)
        sql, fmt = stmt.text, stmt.output_format or req.default_format
        if stmt.output_format is None:
            sql = f"{sql}\nFORMAT {fmt}"
        wanted = set(_PLACEHOLDER.findall(sql))
        params: dict[str, Any] = {k: _Verbatim(v) for k, v in req.params.items() if k in wanted}
        database = req.database or self.database

        def query(client: Client) -> bytes:
            client.database = database
            if stmt.kind in ("SELECT", "WITH", "DESCRIBE", "DESC", "EXPLAIN"):
                explain = f"EXPLAIN AST {stmt.query}\nFORMAT TSVRaw"
                ast = client.raw_query(explain, parameters=params or None)
                check_sources(ast.decode("utf-8", "replace"))
            return client.raw_query(sql, parameters=params or None, settings=settings or None)

        return self.run(query), fmt


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _content_type(fmt: str) -> str:
    f = fmt.lower()
    if f.startswith("json") and "eachrow" not in f:
        return "application/json; charset=UTF-8"
    if f.startswith(("tabseparated", "tsv", "csv", "pretty", "values", "vertical", "markdown",
                     "jsoneachrow", "jsoncompacteachrow", "xml", "template")):  # fmt: skip
        return "text/plain; charset=UTF-8"
    return "application/octet-stream"


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
        self._send(200, b"", {"Content-Type": "text/html; charset=UTF-8"}, head=True)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _read_body(self) -> bytes:
        limit = self.server_ref.max_body_bytes
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return b"".join(self._chunks(limit))
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        if not length.isdigit():
            raise QueryError(BAD_ARGUMENTS, "Bad Content-Length")
        if int(length) > limit:
            # Read it (up to DRAIN_BYTES) before answering, so that the client, still sending,
            # gets the 413 instead of a broken pipe; beyond that the connection is closed.
            left = int(length)
            while 0 < left <= DRAIN_BYTES and (chunk := self.rfile.read(min(left, 1 << 20))):
                left -= len(chunk)
            raise QueryError(QUERY_IS_TOO_LARGE, f"Request body is larger than {limit} bytes")
        return self.rfile.read(int(length))

    def _chunks(self, limit: int) -> Iterator[bytes]:
        total = 0
        while True:
            line = self.rfile.readline(100).split(b";")[0].strip()
            try:
                size = int(line, 16)
            except ValueError:
                raise QueryError(BAD_ARGUMENTS, "Bad chunked encoding") from None
            total += size
            if total > limit:
                raise QueryError(QUERY_IS_TOO_LARGE, f"Request body is larger than {limit} bytes")
            if size == 0:
                self.rfile.readline(100)
                return
            yield self.rfile.read(size)
            self.rfile.readline(100)

    def _handle(self) -> None:
        srv, started = self.server_ref, time.monotonic_ns()
        parts = urlsplit(self.path)
        query_id = str(uuid.uuid4())
        self._body_read = False
        try:
            body = self._read_body() if self.command == "POST" else b""
            self._body_read = self.command == "POST" or not self.headers.get("Content-Length")
            if parts.path in ("/ping", "/replicas_status") or (
                parts.path == "/" and not parts.query and not body
            ):
                ok = {"Content-Type": "text/html; charset=UTF-8"}
                if srv.identity:
                    ok[IDENTITY_HEADER] = srv.identity
                self._send(200, b"Ok.\n", ok)
                return
            if parts.path != "/":
                self._send(404, f"There is no handle {parts.path}\n\nUse / or /ping.\n".encode(),
                           {"Content-Type": "text/plain; charset=UTF-8"})  # fmt: skip
                return
            req = parse_request(parts.query.encode("latin-1"), self.headers, body)
            query_id = req.query_id
            data, fmt = srv.execute(req)
        except QueryError as exc:
            self._error(exc, query_id)
            return
        except DatabaseError as exc:
            self._error(QueryError(exc.code or STD_EXCEPTION, str(exc).strip()), query_id)
            return
        except (ProgrammingError, ClickHouseError) as exc:
            self._error(QueryError(BAD_ARGUMENTS, str(exc).strip().splitlines()[0]), query_id)
            return
        except Exception as exc:  # the request boundary: one bad request never stops the server
            log.exception("query endpoint: request failed")
            self._error(QueryError(STD_EXCEPTION, f"{type(exc).__name__}: {exc}"), query_id)
            return
        summary = {"result_bytes": str(len(data)),
                   "elapsed_ns": str(time.monotonic_ns() - started)}  # fmt: skip
        headers = {
            "Content-Type": _content_type(fmt),
            "X-ClickHouse-Format": fmt,
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": srv.timezone,
            "X-ClickHouse-Summary": json.dumps(summary),
        }
        encoding = choose_encoding(self.headers.get("Accept-Encoding", ""))
        if encoding:
            data = ENCODERS[encoding](data)
            headers["Content-Encoding"] = encoding
        self._send(200, data, headers)

    def _error(self, exc: QueryError, query_id: str) -> None:
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-ClickHouse-Exception-Code": str(exc.code),
            "X-ClickHouse-Query-Id": query_id,
        }
        if not self._body_read:  # part of the body may still be on the wire: drop the connection
            self.close_connection = True
            headers["Connection"] = "close"
        self._send(http_status(exc.code), exc.body().encode(), headers)

    def _send(self, status: int, data: bytes, headers: dict[str, str], head: bool = False) -> None:
        self.send_response(status)
        headers["X-ClickHouse-Server-Display-Name"] = self.server_ref.display_name
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)
