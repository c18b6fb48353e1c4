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
            "--json prints every KPI of EVENTS.md version 2 with the counts behind each, the "
            "same shape as `parwatch simulate --truth`; the table shows the main ones, with "
            "their targets (PARWATCH_TARGET_<KPI>) in the heading. docs/kpis.md defines each."
        ),
    )
    p.add_argument("--period", choices=["day", "month", "quarter", "year"], default="month",
                   help="period length (default month)")  # fmt: skip
    p.add_argument("--agency", help="one agency code (default: all, and the province)")
    p.add_argument("--from", dest="start", type=_date, metavar="DATE",
                   help="first period to show: the one holding DATE (YYYY[-MM[-DD]])")  # fmt: skip
    p.add_argument("--to", dest="end", type=_date, metavar="DATE",
                   help="last period to show: the one holding DATE")  # fmt: skip
    p.add_argument("--province-only", action="store_true", help="only the province rows")
    p.add_argument("--json", action="store_true", help="print JSON (the contract's KPI shape)")
    p.set_defaults(run=run)


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}%"


# The table's columns: (heading, KPI key); every KPI is in --json.
_COLUMNS = (
    ("full-process offering", "full_process_offering_rate"),
    ("prefill design", "prefill_design_coverage"),
    ("online inspections", "online_inspection_share"),
    ("online dossiers", "online_dossier_rate"),
    ("on time", "on_time_rate"),
    ("avg days", "average_resolution_days"),
    ("e-results", "electronic_result_rate"),
    ("online pay", "online_payment_rate"),
    ("digitised", "digitization_rate"),
    ("data reuse", "data_reuse_rate"),
)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from schemas.periods import first_day
    from streams.warehouse.kpi_query import read_kpi_json, read_kpis

    if args.start and args.end and args.start > args.end:
        raise UsageError("--from is after --to")
    client = wiring.open_reader(settings)
    select = {
        "agency": args.agency,
        "start": first_day(args.start, args.period) if args.start else None,
        "end": args.end,
    }
    if args.json:
        shaped = read_kpi_json(client, args.period, **select)
        if args.province_only:
            shaped = [d for d in shaped if d["agency_code"] is None]
        # One row a line: readable, and written by json's C encoder (``indent`` is pure Python).
        lines = ",\n".join(json.dumps(d, ensure_ascii=False) for d in shaped)
        print(f"[\n{lines}\n]" if lines else "[]")
        return 0
    rows = read_kpis(client, args.period, **select)
    if args.province_only:
        rows = [r for r in rows if r.agency_code is None]
    if not rows:
        print("no KPI rows (nothing counted yet for this selection)")
        return 0
    targets = settings.targets
    head = ["period", "agency"]
    for heading, key in _COLUMNS:
        target = targets.get(key)
        head.append(f"{heading} (target {target:.0%})" if target is not None else heading)
    head += ["dossiers", "open", "overdue"]
    table = []
    for r in rows:
        cells = [r.period, r.agency_code or "*"]
        for _, key in _COLUMNS:
            value = getattr(r, key)
            if key == "average_resolution_days":
                cells.append("" if value is None else f"{value:.1f}")
            else:
                cells.append(_pct(value))
        cells += [str(r.dossiers_submitted), str(r.dossiers_open), str(r.dossiers_overdue)]
        table.append(tuple(cells))
    print("\n".join(table_lines(tuple(head), table, right=range(2, len(head)))))
    return 0
