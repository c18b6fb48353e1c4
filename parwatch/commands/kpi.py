"""``parwatch kpi``: the KPIs per agency and period, as a table or as JSON."""

from __future__ import annotations

import argparse
import json
import re
from datetime import date

from parwatch import wiring
from parwatch.errors import UsageError
from parwatch.settings import Settings
from parwatch.table import table_lines

_DAY = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


def _date(text: str) -> date:
    if not _DAY.match(text):
        raise argparse.ArgumentTypeError(f"{text!r}: expected YYYY, YYYY-MM or YYYY-MM-DD")
    parts = [int(p) for p in text.split("-")] + [1, 1]
    try:
        return date(parts[0], parts[1], parts[2])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "kpi",
        help="print the KPIs per agency and period (table or --json)",
        description=(
            "Read the KPI views of the warehouse (PARWATCH_CLICKHOUSE_URL) and print one row per "
            "agency and period, plus one per period for the whole province (agency '*' in the "
            "table, null in JSON). Periods are counted in Asia/Ho_Chi_Minh. Shares are "
            "fractions 0-1 in JSON, percentages in the table; empty where nothing was counted. "
            "--json prints the same shape as `parwatch simulate --truth`."
        ),
    )
    p.add_argument("--period", choices=["month", "quarter", "year"], default="month",
                   help="period length (default month)")  # fmt: skip
    p.add_argument("--agency", help="one agency code (default: all, and the province)")
    p.add_argument("--from", dest="start", type=_date, metavar="DATE",
                   help="first period to show: the one holding DATE (YYYY[-MM[-DD]])")  # fmt: skip
    p.add_argument("--to", dest="end", type=_date, metavar="DATE",
                   help="last period to show: the one holding DATE")  # fmt: skip
    p.add_argument("--province-only", action="store_true", help="only the province rows")
    p.add_argument("--json", action="store_true", help="print JSON (the contract's KPI shape)")
    p.set_defaults(run=run)


def _start_of(kind: str, d: date) -> date:
    if kind == "year":
        return date(d.year, 1, 1)
    if kind == "quarter":
        return date(d.year, (d.month - 1) // 3 * 3 + 1, 1)
    return date(d.year, d.month, 1)


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}%"


def run(args: argparse.Namespace, settings: Settings) -> int:
    from schemas.kpi import rows_to_json
    from streams.warehouse.kpi_query import read_kpis

    if args.start and args.end and args.start > args.end:
        raise UsageError("--from is after --to")
    client = wiring.open_reader(settings)
    rows = read_kpis(
        client, args.period, agency=args.agency,
        start=_start_of(args.period, args.start) if args.start else None,
        end=args.end,
    )  # fmt: skip
    if args.province_only:
        rows = [r for r in rows if r.agency_code is None]
    if args.json:
        print(json.dumps(rows_to_json(rows), ensure_ascii=False, indent=1))
        return 0
    if not rows:
        print("no KPI rows (nothing counted yet for this selection)")
        return 0
    target = settings.target_online_inspection_share
    head = ("period", "agency", "online", "hybrid", "in person", "uncl.",
            f"online share (target {target:.0%})", "online subm.", "prefilled", "depth",
            "coverage", "full-process", "on time")  # fmt: skip
    table = []
    for r in rows:
        table.append((
            r.period, r.agency_code or "*", str(r.inspections_online),
            str(r.inspections_hybrid), str(r.inspections_in_person),
            str(r.inspections_unclassified), _pct(r.online_inspection_share),
            str(r.online_submissions), _pct(r.prefilled_submission_share),
            _pct(r.prefill_depth), _pct(r.service_prefill_coverage),
            _pct(r.full_process_share), _pct(r.on_time_rate),
        ))  # fmt: skip
    print("\n".join(table_lines(head, table, right=range(2, len(head)))))
    return 0
