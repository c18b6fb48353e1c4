"""``parwatch offerings``: import the portal's service-offering catalog (CSV) as ``offering/1``
events, and list the state of every service at an instant from the warehouse."""

from __future__ import annotations

import argparse
import json
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from parwatch import wiring
from parwatch.commands import spool
from parwatch.errors import UsageError
from parwatch.settings import Settings
from parwatch.table import table_lines
from schemas.offering_catalog import (
    LOCAL,
    MAX_CATALOG_BYTES,
    OFFERING_COLUMNS,
    LineError,
    offering_event,
    parse_effective_at,
    read_offerings,
)

IMPORT_DESCRIPTION = (
    "Read FILE, the offering catalog as CSV (UTF-8, header "
    f"{','.join(OFFERING_COLUMNS)}; level full_process, partial, not_online or not_offered; "
    "prefill_designed true or false; effective_at RFC 3339 with an explicit offset, or a date "
    "YYYY-MM-DD meaning 00:00 in Asia/Ho_Chi_Minh), check every line, and publish each good "
    "line as one offering/1 event with the publisher SDK (topic PARWATCH_TOPIC_OFFERINGS, key "
    "agency:procedure). Bad lines are listed with their line numbers and are not sent; good "
    "lines are still sent. Event ids are derived from the line (agency, procedure, instant, "
    "level, prefill), so importing the same file again sends the same events and the "
    "pipeline counts each once. When Kafka cannot be reached, events wait in the spool "
    "(`parwatch spool deliver`). --dry-run checks the file and sends nothing. "
    "Broker: PARWATCH_KAFKA_BOOTSTRAP."
)
IMPORT_EXIT_CODES = """\
exit codes:
  0  every line was good and sent (with --dry-run: every line was good)
  1  bad lines (not sent); every good line was sent
  2  usage error (no such file, not UTF-8, bad header, no broker configured, spool in use)
  3  spooled, not sent: events wait in the spool (no bad lines)
  4  bad lines, and events wait in the spool"""

LIST_DESCRIPTION = (
    "Print the state of every service (agency x procedure) at an instant, from the warehouse "
    "(PARWATCH_CLICKHOUSE_URL; an embedded warehouse owned by a running worker is read "
    "through its query endpoint). The state at t is the service's offering event with the "
    "latest effective time at or before t (ties: the one published later). Services whose "
    "state is not_offered are listed with that level; services with no event before t are not "
    "listed. Each row names the procedure (procedure catalog) and whether it is eligible for "
    "full-process online service. The last lines give the offering KPIs at t: eligible "
    "services at full_process / eligible services, and online services with prefill designed "
    "/ online services (not_offered services excluded)."
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "offerings",
        help="import the service-offering catalog (CSV); list services at an instant",
        description=(
            "Service offerings: which procedures each agency offers online, at which level, "
            "from when (EVENTS.md, 'Service offerings'). `import` publishes a catalog file; "
            "`list` reads the state at an instant from the warehouse."
        ),
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = actions.add_parser(
        "import",
        help="check a catalog CSV and publish its good lines as offering/1 events",
        description=textwrap.fill(IMPORT_DESCRIPTION, 79) + "\n\n" + IMPORT_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("file", type=Path, metavar="FILE.csv", help="the offering catalog")
    imp.add_argument("--dry-run", action="store_true", help="check the file; send nothing")
    imp.add_argument("--max-errors", type=int, default=20, help="bad lines to list (default 20)")
    imp.set_defaults(run=run_import)
    lst = actions.add_parser(
        "list",
        help="the state of every service at an instant (default now)",
        description=textwrap.fill(LIST_DESCRIPTION, 79),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lst.add_argument("--agency", metavar="CODE", help="one agency's services (default: all)")
    lst.add_argument(
        "--at", type=_instant, metavar="DATE|RFC3339",
        help="the instant: YYYY-MM-DD (00:00 Asia/Ho_Chi_Minh) or RFC 3339 with an offset "
        "(default: now)",
    )  # fmt: skip
    lst.add_argument("--json", action="store_true", help="print a JSON array of services")
    lst.set_defaults(run=run_list)


def _instant(text: str) -> datetime:
    try:
        return parse_effective_at(text).astimezone(UTC)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("effective_at ", "")) from None


# -- import ---------------------------------------------------------------------------------


def run_import(args: argparse.Namespace, settings: Settings) -> int:
    path: Path = args.file
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        if path.stat().st_size > MAX_CATALOG_BYTES:
            raise UsageError(f"{path}: larger than {MAX_CATALOG_BYTES >> 20} MiB; split it")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    catalog = wiring.catalog(settings)
    good, bad = read_offerings(text, known_agencies=catalog.agencies)
    if bad and bad[0].line == 1:  # the header: nothing was read
        raise UsageError(f"{path}:1: {bad[0].message}")
    if args.dry_run:
        _print_bad(path, bad, args.max_errors)
        lines = f"{len(good):,} good line{'s' if len(good) != 1 else ''}"
        print(f"{lines} (dry run: nothing sent); {_bad_summary(bad)}")
        return 1 if bad else 0
    sent, refused, already, waiting = _publish(good, settings, catalog)
    bad = sorted(bad + refused, key=lambda e: e.line)
    _print_bad(path, bad, args.max_errors)
    if already:
        print(
            f"{already:,} events of this file were already waiting in the spool: not queued again"
        )
    print(f"sent {sent:,} event{'s' if sent != 1 else ''}; {_bad_summary(bad)}")
    if waiting:
        config = wiring.publisher_config(settings, catalog)
        for line in spool.not_sent_lines(waiting, config.spool_dir, config.bootstrap):
            print(line)
        return 4 if bad else spool.EXIT_SPOOLED
    return 1 if bad else 0


def _publish(
    good: list[Any], settings: Settings, catalog: Any
) -> tuple[int, list[LineError], int, int]:
    """Publish the good lines; (sent, lines the contract refused, skipped as already waiting
    in the spool, of this file's events still waiting in the spool)."""
    from producers.sdk.publisher import Publisher, PublishError
    from producers.sdk.spool import SpoolError
    from producers.sdk.spool_contents import read_contents

    config = wiring.publisher_config(settings, catalog)
    before = read_contents(config.spool_dir, event_ids=True)
    try:
        publisher = Publisher(config)
    except SpoolError:
        raise UsageError(spool.in_use_message(config.spool_dir)) from None
    accepted, already = 0, 0
    refused: list[LineError] = []
    with publisher:
        for line in good:
            event = offering_event(line)
            if event["event_id"] in before.event_ids:
                already += 1
                continue
            try:
                publisher.publish(event)
            except PublishError as exc:  # e.g. future_timestamp: the pipeline would refuse it
                refused.append(LineError(line.line, f"{exc.reason.value}: {exc.invalid.detail}"))
            else:
                accepted += 1
    waiting = min(publisher.stats().spool_pending, accepted)
    return accepted - waiting, refused, already, waiting


def _print_bad(path: Path, bad: list[LineError], limit: int) -> None:
    for e in bad[:limit]:
        print(f"{path}:{e.line}: {e.message}")
    if len(bad) > limit:
        print(f"… and {len(bad) - limit:,} more bad lines")


def _bad_summary(bad: list[LineError]) -> str:
    if not bad:
        return "no bad lines"
    return f"{len(bad):,} bad line{'s' if len(bad) != 1 else ''} not sent"


# -- list -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceState:
    agency_code: str
    procedure_code: str
    procedure_name: str | None  # None: not in the procedure catalog
    full_process_eligible: bool | None
    level: str
    prefill_designed: bool
    since: datetime  # aware

    def as_json(self) -> dict[str, Any]:
        return {
            "agency_code": self.agency_code,
            "procedure_code": self.procedure_code,
            "procedure_name": self.procedure_name,
            "full_process_eligible": self.full_process_eligible,
            "level": self.level,
            "prefill_designed": self.prefill_designed,
            "since": self.since.astimezone(LOCAL).isoformat(),
        }


# Per service, the event with the latest occurred_at <= t, ties by the later offset: one
# service's events share a partition, so offsets order them. A row written twice (a batch
# redelivered after a crash) is the same record at the same offset: it changes nothing.
STATES_SQL = """\
SELECT s.agency_code, s.procedure_code, s.lvl, s.pf, s.since,
       p.code, p.name, p.full_process_eligible
FROM (
    SELECT agency_code, procedure_code,
           argMax(level, (occurred_at, _offset)) AS lvl,
           argMax(prefill_designed, (occurred_at, _offset)) AS pf,
           max(occurred_at) AS since
    FROM offering_events
    WHERE occurred_at <= {at:DateTime64(3, 'UTC')}
      AND ({agency:String} = '' OR agency_code = {agency:String})
    GROUP BY agency_code, procedure_code
) AS s
LEFT JOIN procedures AS p ON p.code = s.procedure_code
ORDER BY s.agency_code, s.procedure_code"""


def read_states(client: Client, at: datetime, agency: str | None = None) -> list[ServiceState]:
    """The state of every service that exists (or was withdrawn) at ``at`` (aware)."""
    stamp = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    result = client.query(STATES_SQL, parameters={"at": stamp, "agency": agency or ""})
    out = []
    for agency_code, procedure, level, prefill, since, known, name, eligible in result.result_rows:
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        out.append(ServiceState(
            agency_code=agency_code, procedure_code=procedure,
            procedure_name=name if known else None,
            full_process_eligible=bool(eligible) if known else None,
            level=level, prefill_designed=bool(prefill), since=since,
        ))  # fmt: skip
    return out


def _share(part: int, whole: int) -> str:
    return f"{part:,}/{whole:,} ({100 * part / whole:.1f}%)" if whole else "0/0 (no services)"


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    at: datetime = args.at or datetime.now(UTC)
    client = wiring.open_reader(settings)
    states = read_states(client, at, args.agency)
    if args.json:
        print(json.dumps([s.as_json() for s in states], ensure_ascii=False, indent=1))
        return 0
    local = at.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M")
    if not states:
        print(f"no services at {local} (Asia/Ho_Chi_Minh)")
        return 0
    head = ("agency", "procedure", "level", "prefill", "eligible", "since", "name")
    rows = [
        (s.agency_code, s.procedure_code, s.level, "yes" if s.prefill_designed else "no",
         "?" if s.full_process_eligible is None else "yes" if s.full_process_eligible else "no",
         s.since.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M"),
         _short(s.procedure_name) if s.procedure_name is not None else "(not in the catalog)")
        for s in states
    ]  # fmt: skip
    print("\n".join(table_lines(head, rows)))
    existing = [s for s in states if s.level != "not_offered"]
    eligible = [s for s in existing if s.full_process_eligible]
    online = [s for s in existing if s.level in ("full_process", "partial")]
    full = sum(s.level == "full_process" for s in eligible)
    prefill = sum(s.prefill_designed for s in online)
    print(f"\n{len(existing):,} services at {local} (Asia/Ho_Chi_Minh), "
          f"{len(states) - len(existing):,} more not offered any longer")  # fmt: skip
    print(f"eligible services at full process: {_share(full, len(eligible))}")
    print(f"online services with prefill designed: {_share(prefill, len(online))}")
    return 0
