"""``parwatch report``: the dashboards' panels as one self-contained HTML page (and a PNG)."""

from __future__ import annotations

import argparse
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from parwatch import wiring
from parwatch.errors import UsageError
from parwatch.settings import Settings

VN = ZoneInfo("Asia/Ho_Chi_Minh")


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected YYYY-MM-DD") from None


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        help="write the dashboards as one HTML page (charts and tables), for people without "
        "Grafana",
        description=(
            "Run every panel's SQL of the Grafana dashboards against the warehouse "
            "(PARWATCH_CLICKHOUSE_URL), with all agencies and sectors, and write one "
            "self-contained HTML page (inline SVG charts, no script, nothing loaded from "
            "outside). It opens with where the province stands on the plan's three targets "
            "in the year of the range's end and what the projection says for December. "
            "Default time range: all data (the KPI sections from the first to the last event, "
            "the pipeline section from the first to the last write). "
            "--png also renders the page with headless Chromium."
        ),
    )
    p.add_argument("--out", type=Path, required=True, metavar="FILE.html", help="the page")
    p.add_argument("--png", type=Path, metavar="FILE.png",
                   help="also write a screenshot (needs chromium)")  # fmt: skip
    p.add_argument("--from", dest="start", type=_day, metavar="YYYY-MM-DD",
                   help="first day (Asia/Ho_Chi_Minh) of the time range")  # fmt: skip
    p.add_argument("--to", dest="end", type=_day, metavar="YYYY-MM-DD",
                   help="last day (inclusive) of the time range")  # fmt: skip
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from dashboards.macros import TimeRange
    from dashboards.report import write_report
    from dashboards.screenshot import ScreenshotError, screenshot

    if (args.start is None) != (args.end is None):
        raise UsageError("give both --from and --to, or neither (all data)")
    time_range = None
    if args.start is not None:
        if args.start > args.end:
            raise UsageError("--from is after --to")
        time_range = TimeRange(
            datetime.combine(args.start, time(), VN),
            datetime.combine(args.end + timedelta(days=1), time(), VN) - timedelta(milliseconds=1),
        )
    if args.out.is_dir():
        raise UsageError(f"--out {args.out}: is a folder, give a file name")
    client = wiring.open_reader(settings)
    try:
        info = write_report(client, args.out, time_range=time_range)
    finally:
        client.close()
    print(f"report: {info.path} ({info.panels} panels)")
    if args.png:
        try:
            print(f"screenshot: {screenshot(args.out, args.png)}")
        except ScreenshotError as exc:
            raise UsageError(str(exc)) from None
    return 0
