"""``parwatch publish FILE.jsonl``: bulk upload of an agency's events."""

from __future__ import annotations

import argparse
from pathlib import Path

from parwatch import wiring
from parwatch.errors import UsageError
from parwatch.progress import Progress
from parwatch.settings import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "publish",
        help="validate and publish the events of a JSON Lines file",
        description=(
            "Read FILE (JSON Lines, UTF-8, one event per line), validate each event against the "
            "contract and publish the valid ones with the publisher SDK (keyed, idempotent, "
            "spooled to disk while the broker is unreachable). Bad lines are reported with their "
            "line numbers and reasons and are not sent; good lines are still sent. Exit code 1 "
            "when any line was bad. Broker: PARWATCH_KAFKA_BOOTSTRAP."
        ),
    )
    p.add_argument("file", type=Path, metavar="FILE.jsonl", help="events, one JSON object a line")
    p.add_argument("--max-errors", type=int, default=20, help="bad lines to list (default 20)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from producers.bulk import publish_jsonl

    from producers.publisher import Publisher

    if not args.file.is_file():
        raise UsageError(f"{args.file}: no such file")
    config = wiring.publisher_config(settings)
    progress = Progress(f"publishing {args.file.name}")
    with Publisher(config) as publisher:
        report = publish_jsonl(args.file, publisher, progress=progress)
    progress.done(report.sent)
    for line, reason, detail in report.bad[: args.max_errors]:
        print(f"{args.file}:{line}: {reason}: {detail}")
    if len(report.bad) > args.max_errors:
        print(f"… and {len(report.bad) - args.max_errors} more bad lines")
    print(report.summary())
    return 1 if report.bad else 0
