"""Attacks on the query endpoint, each as it was tried against the old one (issue 14), and a
bounded generator of statements that mix the tricks. Every test asserts what must hold: no
file written, no secret in any response, later clients' results unchanged, the endpoint
answering within its limits."""

from __future__ import annotations

import base64
import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.warehouse.query_endpoint import USER, Limits, QueryServer
from tests.integration.test_query_server import load

pytestmark = pytest.mark.clickhouse

PASSWORD = "attack-test-password"  # noqa: S105 (a test's own)
AUTH = {"X-ClickHouse-User": USER, "X-ClickHouse-Key": PASSWORD}
LIMITS = Limits(timeout_s=2, max_result_bytes=8 << 20, max_memory_bytes=512 << 20,
                concurrency=2, queue_timeout_s=1, max_connections=16)  # fmt: skip
SECRET_MARK = b"root:x:0:0"  # the first line of /etc/passwd
PROBE = "SELECT count() FROM kpi_month WHERE agency_code IS NULL"


@pytest.fixture(scope="module")
def endpoint(
    chdb_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, QueryServer, bytes]]:
    """A served warehouse with data, small limits, and the probe's answer before any attack."""
    import uuid

    from streams.warehouse import migrations
    from streams.warehouse.client import WarehouseConfig, connect

    config = WarehouseConfig(chdb_url, database=f"t_{uuid.uuid4().hex[:12]}")
    owner = connect(config, create_database=True)
    migrations.apply(owner)
    load(owner)
    server = QueryServer(owner, password=PASSWORD, port=0, database=config.database,
                         limits=LIMITS).start()  # fmt: skip
    try:
        status, _, probe = request(server, "/", PROBE.encode())
        assert status == 200 and int(probe) == 3  # three months of data, a province row each
        yield owner, server, probe
    finally:
        server.stop()
        owner.command(f"DROP DATABASE IF EXISTS {config.database}")


def request(
    server: QueryServer, path: str, body: bytes | None = None,
    headers: dict[str, str] | None = None, auth: bool = True, method: str | None = None,
) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        sent = {**(AUTH if auth else {}), **(headers or {})}
        conn.request(method or ("POST" if body is not None else "GET"), path, body=body,
                     headers=sent)  # fmt: skip
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def raw_exchange(server: QueryServer, data: bytes, wait_s: float = 3.0) -> bytes:
    """Send bytes on one connection; everything the server sends back until it goes quiet."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait_s) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except TimeoutError:
            pass
    return out


def assert_unharmed(server: QueryServer, probe: bytes, outdir: Path) -> None:
    assert list(outdir.iterdir()) == [], "a file was written"
    status, _, body = request(server, "/", PROBE.encode())
    assert (status, body) == (200, probe), "a later client's result changed"
    status, _, body = request(server, "/", b"SELECT currentDatabase()")
    assert body.strip() == server.database.encode(), "the session's database changed"


# --- files written and read -------------------------------------------------------------------


def test_into_outfile_hidden_by_heredoc_names_or_nested_comments_writes_nothing(
    endpoint: tuple[Any, QueryServer, bytes], tmp_path: Path
) -> None:
    _, server, probe = endpoint
    target = tmp_path / "f"
    for sql in (
        f"SELECT 'x' AS x$a$ INTO OUTFILE '{target}' APPEND -- $a$",
        f"SELECT * FROM kpi_year INTO /* /* */ */ OUTFILE '{target}'",
        f"SELECT 1 INTO OUTFILE '{target}' COMPRESSION 'gzip'",
        f"EXPLAIN SELECT 1 INTO OUTFILE '{target}'",
        f"DESCRIBE TABLE agencies INTO OUTFILE '{target}'",
        f"SELECT 1 AS $q$ INTO OUTFILE '{target}' $q$",  # a heredoc string alias: harmless
    ):
        status, headers, body = request(server, "/", sql.encode())
        assert not target.exists(), sql
        if status == 200:  # only when the engine read OUTFILE inside a string
            assert b"OUTFILE" in body or body.strip() in (b"1",), (sql, body)
        else:
            assert headers["x-clickhouse-exception-code"] in ("358", "62"), (sql, body)
    assert_unharmed(server, probe, tmp_path)


def test_local_files_are_not_read_through_show_settings_or_formats(
    endpoint: tuple[Any, QueryServer, bytes], tmp_path: Path
) -> None:
    _, server, probe = endpoint
    attempts: list[tuple[str, bytes]] = [
        ("/", b"SHOW DATABASES LIMIT (SELECT count() FROM file('/etc/passwd', 'LineAsString'))"),
        ("/", b"SHOW DATABASES LIKE (SELECT any(line) FROM file('/etc/passwd', 'LineAsString'))"),
        ("/", b"SELECT file('/etc/passwd')"),
        ("/", b"SELECT * FROM file('/etc/passwd', 'LineAsString')"),
        (
            "/",
            b"SELECT * FROM kpi_month SETTINGS additional_table_filters={'kpi_month':"
            b"'(SELECT any(line) FROM file(\\'/etc/passwd\\', \\'LineAsString\\')) = 1'}",
        ),
        (
            "/?"
            + urlencode(
                {
                    "additional_table_filters": "{'kpi_month':'(SELECT any(line) FROM "
                    "file(\\'/etc/passwd\\', \\'LineAsString\\')) = 1'}"
                }
            ),
            b"SELECT * FROM kpi_month",
        ),
        ("/?format_template_row=/etc/passwd", b"SELECT 1 FORMAT Template"),
        ("/?format_schema=/etc/passwd", b"SELECT 1 FORMAT CapnProto"),
        ("/", b"SELECT * FROM url('http://127.0.0.1:1/', 'TSV', 'x String')"),
        ("/", b"SELECT * FROM view(SELECT * FROM file('/etc/passwd', 'LineAsString'))"),
        ("/", b"WITH (SELECT 1) AS x SELECT * FROM s3('http://127.0.0.1:1/x')"),
        ("/", b"EXPLAIN SELECT file('/etc/passwd')"),
        ("/", b"DESCRIBE (SELECT file('/etc/passwd'))"),
        ("/", b"SELECT naiveBayesClassifier('/etc/passwd', 'x')"),
    ]
    for path, body in attempts:
        status, headers, answer = request(server, path, body)
        assert status != 200, (path, body, answer)
        assert SECRET_MARK not in answer, (path, body)
        assert all(SECRET_MARK.decode() not in v for v in headers.values())
    assert_unharmed(server, probe, tmp_path)


# --- the shared session ---------------------------------------------------------------------


def test_hidden_statements_and_session_changes_do_not_reach_later_clients(
    endpoint: tuple[Any, QueryServer, bytes], tmp_path: Path
) -> None:
    owner, server, probe = endpoint
    for sql in (
        "SELECT 1 AS x$a$; SET additional_table_filters={'kpi_month':'0'}; SELECT 1 -- $a$",
        "SET additional_table_filters={'kpi_month':'0'}",
        "USE system",
        "SELECT 1; USE system",
        "KILL QUERY WHERE 1 SYNC",
        "SYSTEM STOP MERGES",
        "SELECT 1 SETTINGS max_threads = 1",
        "INSERT INTO agencies (code, name) SELECT 'X', 'x'",
    ):
        status, _, body = request(server, "/", sql.encode())
        assert status != 200, (sql, body)
        assert_unharmed(server, probe, tmp_path)
    for path in ("/?max_query_size=5&query=SELECT+1", "/?max_execution_time=100000&query=SELECT+1",
                 "/?readonly=0&query=SELECT+1", "/?readonly=2&query=SELECT+1",
                 "/?max_result_bytes=0&query=SELECT+1"):  # fmt: skip
        status, headers, body = request(server, path)
        assert (status, headers["x-clickhouse-exception-code"]) == (500, "164"), (path, body)
        assert_unharmed(server, probe, tmp_path)
    assert request(server, "/ping", auth=False)[2] == b"Ok.\n"
    assert int(owner.command("SELECT count() FROM agencies")) > 0


# --- web pages --------------------------------------------------------------------------------


def test_web_pages_and_foreign_host_names_are_refused(
    endpoint: tuple[Any, QueryServer, bytes],
) -> None:
    _, server, _ = endpoint
    plain = {"Content-Type": "text/plain"}
    status, headers, _ = request(server, "/", PROBE.encode(),
                                 headers={**plain, "Origin": "http://evil.example"})  # fmt: skip
    assert status == 403 and "access-control-allow-origin" not in headers
    status, _, _ = request(server, "/", PROBE.encode(), headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    for host in ("evil.example", "evil.example:8123", "127.0.0.1.evil.example", "10.0.0.1", ""):
        status, _, body = request(server, "/", PROBE.encode(), headers={"Host": host})
        assert status == 400 and b"Host header" in body, host
    for host in ("localhost", f"127.0.0.1:{server.port}", f"[::1]:{server.port}"):
        assert request(server, "/", b"SELECT 1", headers={"Host": host})[0] == 200, host
    # CR/LF (encoded) in query_id must not become a header; non-Latin-1 must get a reply
    inject = quote("x\r\nAccess-Control-Allow-Origin: *\r\nSet-Cookie: a=b")
    status, headers, _ = request(server, f"/?query_id={inject}&query=SELECT+1")
    assert status == 400 and "set-cookie" not in headers
    assert "access-control-allow-origin" not in headers
    status, _, body = request(server, f"/?query_id={quote('Hóa')}&query=SELECT+1")
    assert status == 400 and body.startswith(b"Code: 36.")
    status, headers, _ = request(server, "/?default_format=TSV%0a&query=SELECT+1")
    assert status == 400 and all("\n" not in v for v in headers.values())


def test_a_password_is_required_and_checked(endpoint: tuple[Any, QueryServer, bytes]) -> None:
    _, server, _ = endpoint
    status, headers, body = request(server, "/", b"SELECT 1", auth=False)
    assert status == 401 and headers["x-clickhouse-exception-code"] == "194"
    assert headers["www-authenticate"].startswith("Basic")
    wrong = {"X-ClickHouse-User": USER, "X-ClickHouse-Key": "guess"}
    status, headers, _ = request(server, "/", b"SELECT 1", headers=wrong, auth=False)
    assert (status, headers["x-clickhouse-exception-code"]) == (403, "516")
    other_user = {"X-ClickHouse-User": "default", "X-ClickHouse-Key": PASSWORD}
    assert request(server, "/", b"SELECT 1", headers=other_user, auth=False)[0] == 403
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    ok = request(server, "/", b"SELECT 1", headers={"Authorization": f"Basic {basic}"},
                 auth=False)  # fmt: skip
    assert ok[0] == 200 and ok[2] == b"1\n"
    by_url = request(server, "/?" + urlencode({"user": USER, "password": PASSWORD,
                                               "query": "SELECT 2"}), auth=False)  # fmt: skip
    assert by_url[0] == 200 and by_url[2] == b"2\n"


# --- limits -------------------------------------------------------------------------------------


def test_a_long_query_is_stopped_and_does_not_hold_the_others(
    endpoint: tuple[Any, QueryServer, bytes],
) -> None:
    owner, server, _ = endpoint
    long_sql = b"SELECT sum(number % 7) FROM numbers(30000000000)"
    result: dict[str, Any] = {}

    def run_long() -> None:
        started = time.monotonic()
        result["answer"] = request(server, "/", long_sql)
        result["took"] = time.monotonic() - started

    worker = threading.Thread(target=run_long)
    worker.start()
    time.sleep(0.3)
    started = time.monotonic()
    assert request(server, "/", b"SELECT 1")[2] == b"1\n"
    assert time.monotonic() - started < 1.5  # answered beside the long one
    worker.join(30)
    status, headers, _ = result["answer"]
    assert (status, headers["x-clickhouse-exception-code"]) == (408, "159")
    assert result["took"] < LIMITS.timeout_s + 2.5


def test_a_query_is_killed_when_its_client_goes_away(
    endpoint: tuple[Any, QueryServer, bytes],
) -> None:
    owner, shared, _ = endpoint
    # A server of its own whose time limit is far away: only the client's leaving can stop it.
    patient = Limits(timeout_s=120, concurrency=1, queue_timeout_s=5)
    server = QueryServer(owner, password=PASSWORD, port=0, database=shared.database,
                         limits=patient).start()  # fmt: skip
    marker = "parwatch_gone_marker"
    sql = f"SELECT sum(number % 7) AS {marker} FROM numbers(300000000000)".encode()
    head = (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-ClickHouse-User: {USER}\r\n"
        f"X-ClickHouse-Key: {PASSWORD}\r\nContent-Length: {len(sql)}\r\n\r\n"
    ).encode()
    running = f"SELECT count() FROM system.processes WHERE query LIKE '%AS {marker}%'"
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(head + sql)
            deadline = time.monotonic() + 60  # a busy machine can be slow to start it
            while int(owner.command(running)) < 2 and time.monotonic() < deadline:  # 2: + this
                time.sleep(0.05)
            if int(owner.command(running)) < 2:  # say what the server answered instead
                s.settimeout(2)
                with contextlib.suppress(OSError):
                    pytest.fail(f"the query never started; the server said {s.recv(4096)!r}")
                pytest.fail("the query never started, and the server said nothing")
            time.sleep(0.5)
            assert int(owner.command(running)) >= 2, "the query stopped by itself"
        left = time.monotonic()
        while int(owner.command(running)) > 1 and time.monotonic() < left + 5:
            time.sleep(0.05)
        assert int(owner.command(running)) == 1  # only the probe itself: the query was killed
        assert time.monotonic() - left < 2  # POLL_S and the kill, with room for a busy machine
    finally:
        server.stop()


def test_results_bodies_and_queries_are_bounded(
    endpoint: tuple[Any, QueryServer, bytes], tmp_path: Path
) -> None:
    _, server, probe = endpoint
    status, headers, body = request(server, "/", b"SELECT repeat('x', 1000) FROM numbers(1000000)")
    assert status != 200 and len(body) < 4096
    assert headers["x-clickhouse-exception-code"] in ("396", "241"), body
    # chunked body with a negative or oversized chunk size: 400 or 413, nothing buffered
    for size in (b"-1", b"+10", b"0x10", b"FFFFFFFFF"):
        reply = raw_exchange(server, b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: "
                             b"chunked\r\nX-ClickHouse-User: " + USER.encode() + b"\r\n\r\n"
                             + size + b"\r\nSELECT 1\r\n0\r\n\r\n", wait_s=2)  # fmt: skip
        assert reply.startswith(b"HTTP/1.1 400"), (size, reply[:80])
    big = b"x" * (300 << 20 >> 8)
    reply = raw_exchange(server, b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: "
                         b"chunked\r\n\r\n" + f"{len(big) * 8:x}".encode() + b"\r\n" + big,
                         wait_s=2)  # fmt: skip
    assert reply.startswith(b"HTTP/1.1 413")
    for length in ("²", "-5", "1e3", " 12abc"):
        reply = raw_exchange(server, b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: "
                             + length.encode() + b"\r\n\r\nSELECT 1", wait_s=2)  # fmt: skip
        assert reply.startswith(b"HTTP/1.1 400"), (length, reply[:80])
    # a 1 MiB query: refused by the engine's max_query_size, fast (no quadratic text scan)
    huge = b"SELECT '" + b"a" * ((1 << 20) - 20) + b"'"
    started = time.monotonic()
    status, headers, _ = request(server, "/", huge)
    assert status == 400 and headers["x-clickhouse-exception-code"] == "62"
    assert time.monotonic() - started < 3
    assert_unharmed(server, probe, tmp_path)


def test_a_get_body_is_never_read_as_the_next_request(
    endpoint: tuple[Any, QueryServer, bytes],
) -> None:
    _, server, _ = endpoint
    smuggled = b"GET /?query=SELECT+666 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    for method in (b"GET", b"HEAD"):
        reply = raw_exchange(server, method + b" /?query=SELECT+1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"X-ClickHouse-User: " + USER.encode() + b"\r\nX-ClickHouse-Key: "
                             + PASSWORD.encode() + b"\r\nContent-Length: "
                             + str(len(smuggled)).encode() + b"\r\n\r\n" + smuggled,
                             wait_s=1.5)  # fmt: skip
        # one response, whose body is the first query's answer (headers such as the query id
        # or the elapsed time are random and may contain any digits)
        head, _, body = reply.partition(b"\r\n\r\n")
        assert reply.count(b"HTTP/1.1 ") == 1 and head.startswith(b"HTTP/1.1 200"), (method, reply)
        assert body == (b"1\n" if method == b"GET" else b""), (method, reply)


def test_closed_connections_leave_no_tracebacks(
    endpoint: tuple[Any, QueryServer, bytes], capfd: pytest.CaptureFixture[str]
) -> None:
    _, server, _ = endpoint
    head = (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-ClickHouse-User: {USER}\r\n"
        f"X-ClickHouse-Key: {PASSWORD}\r\nContent-Length: 40\r\n\r\n"
    ).encode()
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(head + b"SELECT * FROM numbers(100000) FORMAT TSV")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    time.sleep(0.5)
    assert request(server, "/", b"SELECT 1")[2] == b"1\n"
    assert "Traceback" not in capfd.readouterr().err


# --- generated ------------------------------------------------------------------------------

PIECES = [
    "SELECT 1", "SELECT * FROM agencies", "SELECT 'x' AS x", " INTO OUTFILE '{f}'",
    " INTO /* /* */ */ OUTFILE '{f}'", " APPEND", " FORMAT TSV", " FORMAT Template",
    "; SET additional_table_filters={{'kpi_month':'0'}}", "; USE system",
    " SETTINGS additional_table_filters={{'kpi_month':'0'}}", " SETTINGS max_threads=1",
    " FROM file('/etc/passwd', 'LineAsString')", " file('/etc/passwd')",
    " url('http://127.0.0.1:1/')", "; KILL QUERY WHERE 1", " -- ", " /* ", " */ ", "$a$",
    " x$a$", "$$", "'", '"', "`", ";", "\n", " AS ", " (", ")", "\\", " WITH ", " UNION ALL ",
    "SHOW DATABASES LIMIT (", "EXPLAIN ", "DESCRIBE ", "{{x:String}}",
]  # fmt: skip


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=9))
def test_generated_statements_find_no_way_through(
    endpoint: tuple[Any, QueryServer, bytes], tmp_path: Path, pieces: list[str]
) -> None:
    _, server, probe = endpoint
    target = tmp_path / "out"
    sql = "".join(pieces).format(f=target)
    status, headers, body = request(server, "/?param_x=1", sql.encode())
    assert not target.exists(), sql
    assert SECRET_MARK not in body, sql
    assert all("\n" not in v and "\r" not in v for v in headers.values())
    status, _, body = request(server, "/", PROBE.encode())
    assert (status, body) == (200, probe), sql
