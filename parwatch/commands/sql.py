"""``parwatch sql``: read-only SQL for analysts, against the warehouse."""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from parwatch import wiring
from parwatch.errors import UsageError
from parwatch.settings import Settings
from parwatch.table import table_lines


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sql",
        help="run a read-only SQL query against the warehouse",
        description=(
            "Run one read-only query (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN) in the warehouse's "
            "parwatch database and print the result as a table, --json (a list of objects) or "
            "--tsv; a query with its own FORMAT clause (e.g. FORMAT JSONEachRow) prints what "
            "ClickHouse returns in that format. ClickHouse's own parser decides what the query "
            "is; anything but one read-only statement is refused, and it runs with readonly=1. "
            'Example: parwatch sql "SELECT period, online_inspection_share FROM kpi_month '
            'WHERE agency_code IS NULL ORDER BY period"'
        ),
    )
    p.add_argument("query", help="the SQL query ('-' reads it from standard input)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print a JSON list of objects")
    fmt.add_argument("--tsv", action="store_true", help="print tab-separated values with a header")
    p.set_defaults(run=run)


def _plain(v: Any) -> Any:
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, UUID | Decimal):
        return str(v)
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return v


def run(args: argparse.Namespace, settings: Settings) -> int:
    from clickhouse_connect.driver.exceptions import ClickHouseError

    from streams.warehouse.query_endpoint.protocol import QueryError
    from streams.warehouse.query_endpoint.statements import canonical, inspect, named_format

    query = sys.stdin.read() if args.query == "-" else args.query
    client = wiring.open_reader(settings)
    ro = client.server_settings.get("readonly")  # a read-only session (the endpoint) refuses it
    read_only: dict[str, Any] = {} if ro is not None and ro.value != "0" else {"readonly": 1}
    try:
        if read_only:  # the warehouse itself: the engine's parser decides, as on the endpoint
            stmt = inspect(client, query, "Native", {})
            text, own_format = stmt.statement, stmt.format_clause
        else:  # the query endpoint decides what runs; only whose FORMAT it is matters here
            text = canonical(client, query)
            own_format = named_format(text) is not None
        if own_format:  # the user's own FORMAT: print what the engine returns
            if args.json or args.tsv:
                raise UsageError("the query names its own FORMAT: drop --json/--tsv, or the FORMAT")
            sys.stdout.buffer.write(client.raw_query(text, settings=read_only))
            sys.stdout.flush()
            return 0
        result = client.query(text, settings=read_only)
    except (QueryError, ClickHouseError) as exc:
        text = str(exc).strip() or type(exc).__name__
        text = text[text.find("Code: ") :] if "Code: " in text else text  # the engine's words
        first = re.sub(r" \(for url [^)]*\)$", "", text.splitlines()[0])
        raise UsageError(f"query refused or failed: {first[:400]}") from None
    names, rows = list(result.column_names), result.result_rows
    if not names:
        print("(0 rows)")
        return 0
    if args.json:
        out = [dict(zip(names, (_plain(v) for v in r), strict=True)) for r in rows]
        print(json.dumps(out, ensure_ascii=False, indent=1))
    elif args.tsv:
        print("\t".join(names))
        for r in rows:
            print("\t".join("" if v is None else str(_plain(v)) for v in r))
    else:
        cells = [["NULL" if v is None else str(_plain(v)) for v in r] for r in rows]
        print("\n".join(table_lines(names, cells)))
        print(f"({len(rows)} rows)")
    return 0
