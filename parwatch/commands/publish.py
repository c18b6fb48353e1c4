"""``parwatch publish FILE.jsonl``: bulk upload of an agency's events."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from parwatch import wiring
from parwatch.commands import spool
from parwatch.errors import UsageError
from parwatch.progress import Progress
from parwatch.settings import Settings

DESCRIPTION = (
    "Read FILE (JSON Lines, UTF-8, one event per line), validate each event against the "
    "contract and publish the valid ones with the publisher SDK (keyed, idempotent). A file may "
    "mix schemas: inspection/1 events go to PARWATCH_TOPIC_INSPECTIONS (inspection-events), "
    "service/1 and service/2 to PARWATCH_TOPIC_SERVICES (service-events), offering/1 to "
    "PARWATCH_TOPIC_OFFERINGS (service-offerings), each keyed as the contract says. Bad lines "
    "are reported with their line numbers and reasons and are not sent; good lines are still "
    "sent. When Kafka cannot be reached the events are kept in the spool folder on this computer "
    "(spooled, not sent) and sent later by `parwatch spool deliver` or the next publish. An event "
    "still waiting there is not queued again, so publishing the same file again after "
    '"spooled, not sent" sends no event twice. Broker: PARWATCH_KAFKA_BOOTSTRAP.'
)

EXIT_CODES = """\
exit codes:
  0  every event was sent to Kafka
  1  bad lines (not sent); every good line was sent
  2  usage error (no such file, no broker configured, spool in use)
  3  spooled, not sent: events wait in the spool (no bad lines)
  4  bad lines, and events wait in the spool"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "publish",
        help="validate and publish the events of a JSON Lines file",
        description=textwrap.fill(DESCRIPTION, 79) + "\n\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", type=Path, metavar="FILE.jsonl", help="events, one JSON object a line")
    p.add_argument("--max-errors", type=int, default=20, help="bad lines to list (default 20)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from producers.sdk.bulk import publish_jsonl
    from producers.sdk.publisher import Publisher
    from producers.sdk.spool import SpoolError
    from producers.sdk.spool_contents import read_contents

    if not args.file.is_file():
        raise UsageError(f"{args.file}: no such file")
    config = wiring.publisher_config(settings)
    # Sound to skip: an event waiting in the spool is sent from there, before anything new.
    before = read_contents(config.spool_dir, event_ids=True)
    try:
        publisher = Publisher(config)
    except SpoolError:
        raise UsageError(spool.in_use_message(config.spool_dir)) from None
    progress = Progress(f"publishing {args.file.name}")
    with publisher:
        report = publish_jsonl(args.file, publisher, progress=progress, skip=before.event_ids)
    progress.done(report.accepted)
    waiting = publisher.stats().spool_pending  # after close: what is really left
    # The spool is a FIFO: what waited before goes out before this file's events.
    of_file = min(waiting, report.accepted)
    earlier_sent = max(0, before.waiting - (waiting - of_file))
    for number, reason, detail in report.bad[: args.max_errors]:
        print(f"{args.file}:{number}: {reason}: {detail}")
    if len(report.bad) > args.max_errors:
        print(f"… and {len(report.bad) - args.max_errors} more bad lines")
    if report.already_waiting:
        print(
            f"{report.already_waiting:,} events of this file were already waiting in the spool "
            "(from an earlier publish): not queued again"
        )
    if earlier_sent:
        print(f"also sent {earlier_sent:,} events that were waiting in the spool")
    sent = report.accepted - of_file
    new = "new " if report.already_waiting or earlier_sent else ""
    print(f"sent {sent:,} {new}event{'s' if sent != 1 else ''}; {report.bad_summary()}")
    if waiting:
        for line in spool.not_sent_lines(waiting, config.spool_dir, config.bootstrap):
            print(line)
        return 4 if report.bad else spool.EXIT_SPOOLED
    return 1 if report.bad else 0
