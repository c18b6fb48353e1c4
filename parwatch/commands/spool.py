"""``parwatch spool status|deliver``: the events waiting on this computer for Kafka.

Exit codes: ``status`` 0 (2 for a usage error); ``deliver`` 0 when the spool is empty at the end
(everything that waited is in Kafka), ``EXIT_SPOOLED`` (3) when events still wait, 2 for a usage
error (no broker configured, the spool held by another process).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from parwatch import wiring
from parwatch.errors import UsageError
from parwatch.progress import Progress
from parwatch.settings import Settings

EXIT_SPOOLED = 3
"""Some events are spooled, not sent: they wait on this computer for Kafka."""

DESCRIPTION = """\
When Kafka cannot be reached, `parwatch publish` (and any program using the publisher SDK) keeps
the events in a spool folder on this computer (PARWATCH_SPOOL_DIR, default DATA_DIR/spool)
instead of sending them. Nothing is lost; they are sent, oldest first, by the next
`parwatch publish` or by `parwatch spool deliver`.

  parwatch spool status      # how many events wait, the oldest, the folder
  parwatch spool deliver     # send them now, with progress

A crash (even kill -9) while the spool is delivered sends at most one batch (500 events) twice;
the pipeline counts each event_id once, so no figure changes.
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "spool",
        help="events waiting on this computer for Kafka: status, deliver",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="spool_command", required=True, metavar="ACTION")
    status = actions.add_parser(
        "status",
        help="how many events wait, the oldest one, the spool folder",
        description="Show how many events wait in the spool, the oldest one and the folder. "
        "Reads the folder only: safe while a publisher runs. Exit code 0.",
    )
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.set_defaults(run=run_status)
    deliver = actions.add_parser(
        "deliver",
        help="send the waiting events to Kafka now",
        description="Send every event waiting in the spool to Kafka (PARWATCH_KAFKA_BOOTSTRAP), "
        "oldest first, with progress. Gives up when nothing could be sent for --give-up-after "
        "seconds. Exit codes: 0 everything was sent (the spool is empty), 3 events still wait "
        "(spooled, not sent), 2 usage error.",
    )
    deliver.add_argument(
        "--give-up-after",
        type=float,
        default=30.0,
        metavar="S",
        help="stop when no event could be sent for S seconds (default 30)",
    )
    deliver.set_defaults(run=run_deliver)


def not_sent_lines(waiting: int, spool_dir: Path, bootstrap: str) -> list[str]:
    """What to tell a clerk when ``waiting`` events are spooled, not sent."""
    events = f"{waiting:,} event{'s' if waiting != 1 else ''}"
    return [
        f"spooled, not sent: {events} could not be sent to Kafka ({bootstrap}) and wait on this "
        f"computer, in the spool folder {spool_dir.resolve()}. Nothing is lost.",
        "To send them when Kafka is reachable again: parwatch spool deliver",
    ]


def run_status(args: argparse.Namespace, settings: Settings) -> int:
    from producers.sdk.spool_contents import read_contents

    contents = read_contents(settings.spool_path)
    oldest = _describe(contents.oldest.value) if contents.oldest is not None else None
    if args.json:
        print(
            json.dumps(
                {
                    "spool_folder": str(contents.directory.resolve()),
                    "waiting": contents.waiting,
                    "waiting_bytes": contents.waiting_bytes,
                    "oldest": oldest,
                    "in_use": contents.in_use,
                },
                ensure_ascii=False,
            )
        )
        return 0
    print(f"spool folder: {contents.directory.resolve()}")
    if not contents.waiting:
        print("waiting: nothing; every event spooled here has been sent to Kafka")
    else:
        size = contents.waiting_bytes / 1e6
        events = f"{contents.waiting:,} event{'s' if contents.waiting != 1 else ''}"
        print(f"waiting: {events} ({size:,.1f} MB), not sent to Kafka yet")
        if oldest is not None:
            print(
                f"oldest waiting: event {oldest['event_id']} of {oldest['agency_code']}, "
                f"occurred {oldest['occurred_at']}"
            )
    if contents.in_use:
        print("in use: a parwatch publish or spool deliver (or another publisher) is running")
    elif contents.waiting:
        print("to send them: parwatch spool deliver")
    return 0


def _describe(value: bytes) -> dict[str, Any]:
    try:
        event = json.loads(value)
    except ValueError:
        event = {}
    if not isinstance(event, dict):
        event = {}
    return {k: event.get(k, "?") for k in ("event_id", "agency_code", "occurred_at")}


def run_deliver(args: argparse.Namespace, settings: Settings) -> int:
    from producers.sdk.publisher import Publisher
    from producers.sdk.spool import SpoolError
    from producers.sdk.spool_contents import read_contents

    config = replace(wiring.publisher_config(settings), close_timeout_s=0.0)
    before = read_contents(config.spool_dir)
    if not before.waiting:
        print(f"nothing waits in the spool {config.spool_dir.resolve()}: nothing to send")
        return 0
    try:
        publisher = Publisher(config)
    except SpoolError:
        raise UsageError(in_use_message(config.spool_dir)) from None
    progress = Progress("delivering the spool", total=before.waiting)
    with publisher:
        waiting = publisher.stats().spool_pending
        total = waiting
        last_move = time.monotonic()
        while not publisher.drain(timeout=0.5):
            now_waiting = publisher.stats().spool_pending
            progress(total - now_waiting)
            if now_waiting < waiting:
                waiting, last_move = now_waiting, time.monotonic()
            elif time.monotonic() - last_move > args.give_up_after:
                break
    waiting = publisher.stats().spool_pending
    progress.done(total - waiting)
    if waiting:
        print(f"sent {total - waiting:,} of the {total:,} events that waited")
        for line in not_sent_lines(waiting, config.spool_dir, config.bootstrap):
            print(line)
        return EXIT_SPOOLED
    print(f"sent all {total:,} events that waited in the spool; it is empty now")
    return 0


def in_use_message(spool_dir: Path) -> str:
    return (
        f"the spool {spool_dir.resolve()} is in use by another process (a parwatch publish or "
        "spool deliver still running?); wait for it to end, then try again"
    )
