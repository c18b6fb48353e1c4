"""ClickHouse's HTTP interface, as the query endpoint speaks it: requests in, errors out.

Contract:
* ``parse_request`` decodes a request the way ClickHouse's HTTP handler does: the query is the
  URL ``query`` plus a newline plus the body (or a multipart form's ``query`` field); the
  database from ``database`` or ``X-ClickHouse-Database``; the output format from
  ``default_format`` or ``X-ClickHouse-Format``; ``param_<name>`` values for ``{name:Type}``
  placeholders (bound by the engine). Header values are strict: a ``query_id`` of at most 128
  ASCII letters, digits and ``_.:-``, formats and databases as plain identifiers; anything else
  is 400 BAD_ARGUMENTS before it can reach a response header.
* Settings a client sends are never applied: one equal to the session's value is ignored
  (clients send their defaults), any other is refused as a ClickHouse server at ``readonly=1``
  refuses it (164), an unknown one is 115. The transport's own parameters (``TRANSPORT_PARAMS``)
  mean nothing here and are ignored.
* ``credentials`` finds the user and password the ClickHouse ways: ``X-ClickHouse-User`` and
  ``X-ClickHouse-Key`` headers, HTTP Basic, or ``user``/``password`` URL parameters.
* ``QueryError`` carries a ClickHouse error code; ``body()`` is ClickHouse's text and
  ``http_status`` the status ClickHouse gives that code (``exceptionCodeToHTTPStatus.cpp``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import importlib
import re
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qsl

from clickhouse_connect.driver.exceptions import DatabaseError

from streams.errors import StreamsError

# ClickHouse error codes used here (src/Common/ErrorCodes.cpp).
BAD_ARGUMENTS, SYNTAX_ERROR, UNKNOWN_FORMAT, UNKNOWN_SETTING = 36, 62, 73, 115
READONLY, REQUIRED_PASSWORD, TOO_MANY_SIMULTANEOUS_QUERIES = 164, 194, 202
QUERY_IS_TOO_LARGE, INTO_OUTFILE_NOT_ALLOWED, TOO_MANY_ROWS_OR_BYTES = 229, 358, 396
AUTHENTICATION_FAILED, STD_EXCEPTION, UNKNOWN_DATABASE, TIMEOUT_EXCEEDED = 516, 1001, 81, 159
_NAMES = {36: "BAD_ARGUMENTS", 62: "SYNTAX_ERROR", 73: "UNKNOWN_FORMAT", 81: "UNKNOWN_DATABASE",
          115: "UNKNOWN_SETTING", 159: "TIMEOUT_EXCEEDED", 164: "READONLY",
          194: "REQUIRED_PASSWORD", 202: "TOO_MANY_SIMULTANEOUS_QUERIES",
          229: "QUERY_IS_TOO_LARGE", 358: "INTO_OUTFILE_NOT_ALLOWED",
          396: "TOO_MANY_ROWS_OR_BYTES", 516: "AUTHENTICATION_FAILED",
          1001: "STD_EXCEPTION"}  # fmt: skip
_STATUS_400 = {6, 8, 15, 25, 26, 27, 36, 37, 38, 41, 44, 53, 62, 72, 117, 123, 167, 168, 223, 321,
               376, 427, 441, 675, 676}  # fmt: skip
_STATUS_404 = {46, 47, 50, 56, 60, 63, 73, 78, 81, 115, 152, 336, 511}
_STATUS_OTHER = {48: 501, 76: 503, 159: 408, 192: 403, 193: 403, 194: 401, 202: 503, 209: 503,
                 229: 413, 381: 411, 439: 503, 497: 403, 512: 403, 516: 403,
                 779: 415}  # fmt: skip
# Parameters of ClickHouse's HTTP interface (and clickhouse-connect's transport) that are not
# query settings; an embedded, session-less endpoint needs nothing from them.
TRANSPORT_PARAMS = frozenset({
    "query", "database", "default_format", "query_id", "session_id", "session_timeout",
    "session_check", "compress", "decompress", "wait_end_of_query", "buffer_size",
    "enable_http_compression", "http_zlib_compression_level", "send_progress_in_http_headers",
    "http_headers_progress_interval_ms", "cancel_http_readonly_queries_on_client_close",
    "client_protocol_version", "user", "password", "quota_key", "role",
    "http_response_buffer_size",
})  # fmt: skip
MAX_PARAMS = 256  # URL and form parameters, all kinds together
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_QUERY_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def http_status(code: int) -> int:
    """The HTTP status ClickHouse answers with for an exception code."""
    if code in _STATUS_OTHER:
        return _STATUS_OTHER[code]
    if code in _STATUS_400:
        return 400
    return 404 if code in _STATUS_404 else 500


class QueryError(StreamsError):
    """A request refused before or by the engine, reported the way ClickHouse reports it."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code

    @classmethod
    def from_engine(cls, exc: DatabaseError) -> QueryError:
        text = str(exc).strip()
        m = re.search(r"Code: (\d+)\.", text)
        code = exc.code or (int(m.group(1)) if m else STD_EXCEPTION)
        start = text.find("Code: ")
        return cls(code, text[start:] if start >= 0 else text)

    def body(self) -> str:
        text = str(self)
        if text.startswith("Code: "):
            return text if text.endswith("\n") else text + "\n"
        return f"Code: {self.code}. DB::Exception: {text}. ({_NAMES.get(self.code, 'UNKNOWN')})\n"


@dataclass
class Request:
    """What one HTTP request asks for, decoded and checked."""

    query: str
    database: str | None = None
    default_format: str = "TabSeparated"
    query_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    params: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)


def url_pairs(url_query: bytes) -> list[tuple[str, str]]:
    """The URL's parameters, strictly decoded (bad percent-escapes and non-UTF-8 refused)."""
    if _BAD_ESCAPE.search(url_query):
        raise QueryError(BAD_ARGUMENTS, "Cannot parse URL: malformed percent-encoding")
    try:
        pairs = parse_qsl(url_query.decode("ascii"), keep_blank_values=True,
                          encoding="utf-8", errors="strict",
                          max_num_fields=MAX_PARAMS)  # fmt: skip
    except (UnicodeDecodeError, ValueError) as exc:
        raise QueryError(BAD_ARGUMENTS, f"Cannot parse URL: {exc}") from None
    return pairs


def _form(ctype: str, body: bytes, pairs: list[tuple[str, str]]) -> bytes:
    """A multipart form's ``query`` field; its ``param_`` fields are added to ``pairs``."""
    msg = BytesParser().parsebytes(b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + body)
    if not msg.is_multipart():
        raise QueryError(BAD_ARGUMENTS, "Cannot parse multipart/form-data body")
    query = b""
    for part in msg.get_payload():
        if not isinstance(part, Message):
            continue
        name = part.get_param("name", header="content-disposition")
        value = part.get_payload(decode=True)
        value = value if isinstance(value, bytes) else b""
        if name == "query":
            query = value
        elif isinstance(name, str) and name.startswith("param_"):
            pairs.append((name, value.decode("utf-8", "replace")))
    if len(pairs) > MAX_PARAMS:
        raise QueryError(BAD_ARGUMENTS, f"More than {MAX_PARAMS} parameters")
    return query


def _ident(value: str, what: str) -> str:
    if not _IDENT.fullmatch(value):
        raise QueryError(BAD_ARGUMENTS, f"Bad {what} name {value[:40]!r}")
    return value


def parse_request(pairs: list[tuple[str, str]], headers: Any, body: bytes) -> Request:
    """Decode parameters, headers and body as ClickHouse's HTTP handler does; see the module."""
    ctype = headers.get("Content-Type", "")
    if ctype.startswith("multipart/form-data"):
        body = _form(ctype, body, pairs)
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
    database = values.get("database") or headers.get("X-ClickHouse-Database")
    req.database = _ident(database, "database") if database else None
    fmt = values.get("default_format") or headers.get("X-ClickHouse-Format") or "TabSeparated"
    req.default_format = _ident(fmt, "format")
    if values.get("query_id"):
        if not _QUERY_ID.fullmatch(values["query_id"]):
            raise QueryError(BAD_ARGUMENTS, "Bad query_id: at most 128 of A-Z a-z 0-9 _ . : -")
        req.query_id = values["query_id"]
    for key, value in values.items():
        if key.startswith("param_") and len(key) > 6:
            req.params[_ident(key[6:], "parameter")] = value
        elif key not in TRANSPORT_PARAMS:
            req.settings[key] = value
    return req


def check_settings(asked: Mapping[str, str], session: Mapping[str, str]) -> None:
    """Refuse every client setting that differs from the session's (see the module)."""
    for key, value in asked.items():
        if key not in session:
            raise QueryError(UNKNOWN_SETTING, f"Unknown setting '{key[:60]}'")
        if value != session[key]:
            raise QueryError(READONLY, f"Cannot modify '{key}' setting in readonly mode")


def credentials(headers: Any, pairs: list[tuple[str, str]]) -> tuple[str, str] | None:
    """(user, password) from the request, or None when it carries none."""
    user, key = headers.get("X-ClickHouse-User"), headers.get("X-ClickHouse-Key")
    if user is not None or key is not None:
        return user or "default", key or ""
    auth = headers.get("Authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise QueryError(AUTHENTICATION_FAILED, "Malformed Basic authorization") from None
        name, _, password = decoded.partition(":")
        return name or "default", password
    values = dict(pairs)
    if "user" in values or "password" in values:
        return values.get("user") or "default", values.get("password", "")
    return None


class Verbatim:
    """A parameter value already in ClickHouse's escaped text form: clickhouse-connect formats
    unknown objects with ``str()``, so the client's own ``param_x`` text reaches chdb unchanged."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


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
    for item in accept.split(",")[:16]:
        name = item.split(";")[0].strip().lower()
        if name in ENCODERS:
            return name
    return None


def content_type(fmt: str) -> str:
    f = fmt.lower()
    if f.startswith("json") and "eachrow" not in f:
        return "application/json; charset=UTF-8"
    if f.startswith(("tabseparated", "tsv", "csv", "pretty", "values", "vertical", "markdown",
                     "jsoneachrow", "jsoncompacteachrow", "xml", "ndjson")):  # fmt: skip
        return "text/plain; charset=UTF-8"
    return "application/octet-stream"
