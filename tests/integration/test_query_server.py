"""The query endpoint: clickhouse-connect's HTTP client, curl and raw HTTP against the embedded
warehouse served read-only by ``streams.warehouse.query_endpoint``, and ``parwatch serve`` with
``parwatch kpi`` in other processes. The attacks are in ``test_query_endpoint_attacks.py``."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from parwatch.broker import free_port
from schemas.catalog import load_catalog
from streams.warehouse.kpi_query import read_kpis
from streams.warehouse.query_endpoint import USER, QueryServer, QueryServerError
from streams.warehouse.reference import load_catalog_tables
from streams.warehouse.writer import write_tables
from streams.worker.processor import RowBuffer, process
from streams.worker.rows import Origin
from tests.conftest import make_inspection_event, make_service_event

pytestmark = pytest.mark.clickhouse

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PASSWORD = "test-password"  # noqa: S105 (a test's own)
AUTH = {"X-ClickHouse-User": USER, "X-ClickHouse-Key": PASSWORD}
CATALOG = load_catalog()
SECTOR = "Thông tin và Truyền thông"  # NFC, as the events carry it


def _events() -> list[bytes]:
    """Inspections and dossiers over three months and four agencies, with Vietnamese text."""
    out: list[dict[str, Any]] = []
    agencies = ["TH-S-TP", "TH-S-TTTT", "TH-D380", "TH-D399"]
    modes = ["on_site", "video_conference", "information_system", "in_person_meeting"]
    for i in range(48):
        agency, month = agencies[i % 4], 5 + i % 3
        when = f"2024-{month:02d}-{1 + i % 27:02d}T10:00:00+07:00"
        out.append(make_inspection_event(
            agency_code=agency, inspection_id=f"KT-{i}", occurred_at=when, sector=SECTOR,
            activity={"mode": modes[i % 4]},
        ))  # fmt: skip
        out.append(make_inspection_event(
            agency_code=agency, inspection_id=f"KT-{i}", event_type="concluded", occurred_at=when,
        ))  # fmt: skip
        out.append(make_service_event(
            agency_code=agency, dossier_id=f"HS-{i}", occurred_at=when,
            form={"fields_total": 10, "fields_prefilled": i % 11},
        ))  # fmt: skip
    return [json.dumps(e, ensure_ascii=False).encode() for e in out]


def load(client: Any) -> None:
    load_catalog_tables(client, CATALOG)
    buf, insp, doss = RowBuffer(), {}, {}  # type: ignore[var-annotated]
    for offset, raw in enumerate(_events()):
        process(raw, Origin("t", 0, offset), now=NOW, known_agencies=CATALOG.agencies,
                inspection_states=insp, dossier_states=doss, out=buf)  # fmt: skip
    write_tables(client, buf.take(), token=None)


@pytest.fixture
def served(warehouse: Any) -> Iterator[tuple[Any, QueryServer]]:
    load(warehouse)
    db = warehouse.command("SELECT currentDatabase()")
    server = QueryServer(warehouse, password=PASSWORD, port=0, database=db).start()
    try:
        yield warehouse, server
    finally:
        server.stop()


def _http(server: QueryServer) -> Any:
    return clickhouse_connect.get_client(
        host="127.0.0.1",
        port=server.port,
        database=server.database,
        username=USER,
        password=PASSWORD,
    )


def _raw(
    server: QueryServer, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        method = "POST" if body is not None else "GET"
        conn.request(method, path, body=body, headers={**AUTH, **(headers or {})})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def _counts(client: Any) -> dict[str, int]:
    tables = client.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine != 'View'"
    ).result_rows
    return {t: int(client.command(f"SELECT count() FROM {t}")) for (t,) in tables}


def test_kpis_over_http_are_the_rows_read_in_process(served: tuple[Any, QueryServer]) -> None:
    warehouse, server = served
    http_client = _http(server)
    assert http_client.server_version == warehouse.server_version
    for kind in ("month", "quarter", "year"):
        direct = read_kpis(warehouse, kind)
        assert len(direct) >= 5 and any(r.agency_code is None for r in direct)
        assert read_kpis(http_client, kind) == direct
    # param_* placeholders: agency (String) and a Date range
    one = read_kpis(http_client, "month", agency="TH-D380", start=date(2024, 6, 1))
    assert one == read_kpis(warehouse, "month", agency="TH-D380", start=date(2024, 6, 1))
    assert [r.period for r in one] == ["2024-06", "2024-07"]


def test_parameters_reach_the_engine_with_clickhouse_escaping(
    served: tuple[Any, QueryServer],
) -> None:
    _, server = served
    http_client = _http(server)
    tricky = "Thanh Hóa 'x'\t\\ ; DROP TABLE agencies"
    row = http_client.query(
        "SELECT {s:String} AS s, {n:UInt32} + 1 AS n, {d:Date} AS d, {a:Array(String)} AS a",
        parameters={"s": tricky, "n": 41, "d": date(2024, 6, 30), "a": ["Hóa", "it's"]},
    ).result_rows
    assert row == [(tricky, 42, date(2024, 6, 30), ["Hóa", "it's"])]
    # a bind value over 4 KiB: clickhouse-connect sends the query as multipart/form-data
    big = "ư" * 5000
    got = http_client.query("SELECT lengthUTF8({b:String})", parameters={"b": big})
    assert got.result_rows == [(len(big),)]
    qs = urlencode({"query": "SELECT {x:String} AS x, {y:Nullable(Int8)} AS y",
                    "param_x": "a\\tb", "param_y": "\\N",
                    "default_format": "JSONEachRow"})  # fmt: skip
    status, _, body = _raw(server, f"/?{qs}")
    assert status == 200 and json.loads(body) == {"x": "a\tb", "y": None}


WRITES = [
    "INSERT INTO agencies (code, name) VALUES ('X', 'x')",
    "DROP TABLE agencies",
    "ALTER TABLE agencies DELETE WHERE 1",
    "CREATE TABLE evil (x UInt8) ENGINE = Memory",
    "TRUNCATE TABLE agencies",
    "SET readonly = 0",
    "/* SELECT */ DROP TABLE agencies",
    "SELECT 1 SETTINGS readonly = 0",
    "SELECT * FROM file('/etc/hostname', 'LineAsString')",
    "SELECT file('/etc/hostname')",
    "DESCRIBE TABLE file('/etc/hostname', 'LineAsString')",
    "WITH t AS (SELECT 1) SELECT * FROM system.one, `url`('http://127.0.0.1:1/', 'TSV')",
    "SELECT * FROM view(SELECT * FROM remote('127.0.0.1:9000', system.one))",
    "KILL QUERY WHERE 1",
    "SYSTEM DROP DNS CACHE",
    "OPTIMIZE TABLE agencies FINAL",
]
MULTI = ["SELECT 1; DROP TABLE agencies", "select 1 ;\n-- ; comment\n  drop table agencies"]


def test_writes_are_refused_like_clickhouse_and_change_nothing(
    served: tuple[Any, QueryServer], tmp_path: Path
) -> None:
    warehouse, server = served
    before = _counts(warehouse)
    assert before["agencies"] > 0 and before["inspection_events"] == 96
    http_client = _http(server)
    for sql in WRITES:
        with pytest.raises(DatabaseError) as caught:
            http_client.command(sql)
        assert caught.value.code == 164, sql
        status, headers, body = _raw(server, "/", sql.encode())
        assert status == 500, sql  # ClickHouse answers READONLY with 500
        assert headers["x-clickhouse-exception-code"] == "164"
        text = body.decode()
        assert text.startswith("Code: 164. DB::Exception: ") and "(READONLY)" in text, text
    for sql in MULTI:  # the engine's parser refuses them, as a ClickHouse server does
        status, headers, body = _raw(server, "/", sql.encode())
        assert (status, headers["x-clickhouse-exception-code"]) == (400, "62"), sql
        assert b"Multi-statements are not allowed" in body and b"formatQuery" not in body
    # a setting in the URL that would lift read-only mode
    status, headers, _ = _raw(server, "/?readonly=0&query=SELECT+1")
    assert (status, headers["x-clickhouse-exception-code"]) == (500, "164")
    status, headers, _ = _raw(server, "/?readonly=1&query=SELECT+1")  # unchanged value: accepted
    assert status == 200
    outfile = tmp_path / "out.tsv"
    status, headers, _ = _raw(server, "/", f"SELECT 1 INTO OUTFILE '{outfile}'".encode())
    assert (status, headers["x-clickhouse-exception-code"]) == (500, "358")
    assert not outfile.exists()
    assert _counts(warehouse) == before
    warehouse.command("INSERT INTO agencies (code, name) VALUES ('TH-NEW', 'Sở mới')")  # owner
    assert http_client.command("SELECT count() FROM agencies") == before["agencies"] + 1


def test_malformed_requests_get_400_and_the_server_keeps_serving(
    served: tuple[Any, QueryServer],
) -> None:
    _, server = served
    cases = [
        ("/?query=SELECT%zz1", None, 400, "36"),  # bad percent-encoding
        ("/?query=SELECT%20%FF", None, 400, "36"),  # not UTF-8
        ("/?database=system", None, 400, "62"),  # no query
        ("/", b"   ", 400, "62"),  # empty body
        ("/?default_format=JSON%3B%20DROP", b"SELECT 1", 400, "36"),  # not a format name
        ("/", b"SELECT 'unterminated", 400, "62"),
        ("/", b"SELECT FROM WHERE", 400, "62"),  # the engine's syntax error
        ("/", b"SELECT 1 FORMAT NoSuchFormat", 404, "73"),  # ClickHouse: UNKNOWN_FORMAT is 404
        ("/", b"SELECT * FROM no_such_table", 404, "60"),
        ("/?readonly=0", b"SELECT 1", 500, "164"),  # ClickHouse: READONLY is 500
        ("/?no_such_setting=1", b"SELECT 1", 404, "115"),
        ("/", b"'" + b"x" * (server.limits.max_body_bytes + 1), 413, "229"),  # too large
    ]
    for path, body, status, code in cases:
        got, headers, text = _raw(server, path, body)
        assert (got, headers.get("x-clickhouse-exception-code")) == (status, code), (path, text)
        assert text.startswith(f"Code: {code}. DB::Exception: ".encode()), text
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:  # not HTTP at all
        s.sendall(b"\x00\x01garbage\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400")
    assert _raw(server, "/ping")[2] == b"Ok.\n"
    assert _raw(server, "/")[2] == b"Ok.\n"
    assert _raw(server, "/nope")[0] == 404
    assert _http(server).command("SELECT 40 + 2") == 42
    # a setting in the URL is refused unless it is the session's own value (readonly=1)
    got, headers, _ = _raw(server, "/?max_result_rows=7", b"SELECT 1")
    assert (got, headers["x-clickhouse-exception-code"]) == (500, "164")
    assert _raw(server, "/?max_result_rows=0", b"SELECT getSetting('max_result_rows')")[2] == b"0\n"


def test_curl_gets_json_with_vietnamese_names_intact(served: tuple[Any, QueryServer]) -> None:
    warehouse, server = served
    sql = ("SELECT a.code AS code, a.name AS name, count() AS inspections, "
           "any(JSONExtractString(e.payload, 'sector')) AS sector "
           "FROM inspection_events AS e INNER JOIN agencies AS a ON a.code = e.agency_code "
           "WHERE e.event_type = 'activity' GROUP BY code, name ORDER BY code")  # fmt: skip
    url = f"{server.url}/?query={quote(sql)}&default_format=JSONEachRow"
    curl = shutil.which("curl")
    assert curl, "curl is needed for this test"
    done = subprocess.run([curl, "-sS", "--fail-with-body", "-u", f"{USER}:{PASSWORD}", "-D", "-",
                           url],
                          capture_output=True, timeout=60, check=True)  # fmt: skip
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    assert b"X-ClickHouse-Format: JSONEachRow" in head
    rows = [json.loads(line) for line in body.decode("utf-8").splitlines()]
    expected = [dict(zip(("code", "name", "inspections", "sector"), r, strict=True))
                for r in warehouse.query(sql).result_rows]  # fmt: skip
    assert rows == expected and len(rows) == 4
    assert all(r["inspections"] == 12 and r["sector"] == SECTOR for r in rows)
    names = {r["code"]: r["name"] for r in rows}
    assert names["TH-S-TTTT"] == CATALOG.agencies["TH-S-TTTT"].name
    assert all(unicodedata.is_normalized("NFC", n) and not n.isascii() for n in names.values())


def test_compressed_responses_decode_to_the_same_bytes(served: tuple[Any, QueryServer]) -> None:
    _, server = served
    path = "/?query=" + quote("SELECT code, name FROM agencies ORDER BY code FORMAT TSV")
    _, plain_headers, plain = _raw(server, path)
    assert "content-encoding" not in plain_headers and "Hóa".encode() in plain
    _, headers, packed = _raw(server, path, headers={"Accept-Encoding": "gzip"})
    assert headers["content-encoding"] == "gzip" and gzip.decompress(packed) == plain
    lz4 = pytest.importorskip("lz4.frame")
    _, headers, packed = _raw(server, path, headers={"Accept-Encoding": "lz4, gzip"})
    assert headers["content-encoding"] == "lz4" and lz4.decompress(packed) == plain


def test_only_an_embedded_warehouse_on_loopback_is_served(
    served: tuple[Any, QueryServer],
) -> None:
    warehouse, server = served
    with pytest.raises(QueryServerError, match="loopback only"):
        QueryServer(warehouse, password=PASSWORD, host="0.0.0.0", port=0).start()  # noqa: S104
    with pytest.raises(QueryServerError, match="embedded"):  # an HTTP client: not the owner
        QueryServer(_http(server), password=PASSWORD, port=0).start()
    with pytest.raises(ValueError, match="password"):
        QueryServer(warehouse, password="", port=0)


# --- the commands, in other processes -------------------------------------------------------

LOADER = """
import json, sys
from streams.warehouse import migrations
from streams.warehouse.client import WarehouseConfig, connect
from streams.warehouse.kpi_query import read_kpis
from schemas.kpi import rows_to_json
from tests.integration.test_query_server import load
client = connect(WarehouseConfig(sys.argv[1], database="parwatch"), create_database=True)
migrations.apply(client)
load(client)
print(json.dumps(rows_to_json(read_kpis(client, "quarter")), ensure_ascii=False))
"""


def test_serve_lets_another_process_read_the_kpis(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path / 'warehouse'}"
    port = free_port()
    env = {**os.environ, "PARWATCH_DATA_DIR": str(tmp_path), "PARWATCH_CLICKHOUSE_URL": url,
           "PARWATCH_QUERY_PORT": str(port)}  # fmt: skip
    root = Path(__file__).resolve().parents[2]
    loaded = subprocess.run([sys.executable, "-c", LOADER, url], env=env, cwd=root,
                            capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
    expected = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert len(expected) >= 5
    cli = [sys.executable, "-m", "parwatch.cli"]
    serve = subprocess.Popen([*cli, "serve"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert serve.stdout is not None
        first = serve.stdout.readline()
        assert first.startswith(f"query endpoint ready: http://127.0.0.1:{port} "), first
        kpi = subprocess.run([*cli, "kpi", "--period", "quarter", "--json"], env=env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        assert kpi.returncode == 0, kpi.stderr
        assert json.loads(kpi.stdout) == expected  # the path is held: only the endpoint serves
        sql = subprocess.run([*cli, "sql", "--json", "SELECT name FROM agencies "
                              "WHERE code = 'TH-S-TTTT'"], env=env, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
        assert sql.returncode == 0, sql.stderr
        assert json.loads(sql.stdout) == [{"name": CATALOG.agencies["TH-S-TTTT"].name}]
        own_format = subprocess.run([*cli, "sql", "SELECT code, name FROM agencies WHERE code "
                                     "= 'TH-S-TTTT' FORMAT JSONEachRow"], env=env,
                                    capture_output=True, text=True, timeout=120)  # fmt: skip
        assert own_format.returncode == 0, own_format.stderr
        assert json.loads(own_format.stdout) == {
            "code": "TH-S-TTTT", "name": CATALOG.agencies["TH-S-TTTT"].name}  # fmt: skip
        write = subprocess.run([*cli, "sql", "DROP TABLE agencies"], env=env,
                               capture_output=True, text=True, timeout=120)  # fmt: skip
        assert write.returncode == 2 and write.stderr.count("\n") == 1, write.stderr
        assert write.stderr.startswith("parwatch: error: query refused or failed: Code: 164.")
        letters = subprocess.run([*cli, "dead-letters", "list", "--json"], env=env,
                                 capture_output=True, text=True, timeout=120)  # fmt: skip
        assert letters.returncode == 0 and json.loads(letters.stdout) == [], letters.stderr
        report = subprocess.run([*cli, "report", "--out", str(tmp_path / "r.html")], env=env,
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        assert report.returncode == 0, report.stderr
        assert "Hóa" in (tmp_path / "r.html").read_text(encoding="utf-8")
        refused = subprocess.run([*cli, "serve"], env=env, capture_output=True, text=True,
                                 timeout=120)  # fmt: skip
        last = refused.stderr.strip().splitlines()[-1]  # chdb itself logs a line before it
        assert refused.returncode == 2 and last.startswith("parwatch: error: warehouse "), last
        serve.send_signal(signal.SIGINT)
        assert serve.wait(30) == 0
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
