"""The ``parwatch`` command. Settings are read here, once, and passed down."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from parwatch import __version__
from parwatch.broker import BrokerError
from parwatch.commands import (
    bench,
    broker,
    dashboards,
    dead_letters,
    demo,
    indices,
    keys,
    kpi,
    migrate,
    offerings,
    publish,
    report,
    schema,
    serve,
    simulate,
    spool,
    sql,
    worker,
)
from parwatch.errors import UsageError
from parwatch.settings import Settings
from schemas.catalog import CatalogError

COMMANDS = (
    demo,
    broker,
    schema,
    publish,
    spool,
    simulate,
    migrate,
    worker,
    kpi,
    offerings,
    indices,
    sql,
    serve,
    report,
    dashboards,
    keys,
    dead_letters,
    bench,
)

DESCRIPTION = """\
parwatch measures Thanh Hóa's administrative-reform targets (online inspections, prefilled
online services, full-process online services) from the events agency systems publish to Kafka.

Settings come from PARWATCH_* environment variables, e.g. PARWATCH_KAFKA_BOOTSTRAP=host:9092
(unset: commands that need a broker say so; `parwatch broker` starts an embedded one) and
PARWATCH_CLICKHOUSE_URL (chdb:///path for the embedded warehouse, or http(s)://host:8123).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parwatch",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"parwatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "PARWATCH_" + str(err["loc"][0]).upper()
        print(f"parwatch: error: {name}: {err['msg']}", file=sys.stderr)
        return 2
    try:
        return int(args.run(args, settings))
    except (UsageError, BrokerError, CatalogError) as exc:
        print(f"parwatch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("parwatch: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
