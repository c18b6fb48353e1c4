"""``parwatch dead-letters``: list refused messages, and replay them once their cause is fixed.

Replay contract:

* Selection: the dead letters matching the filters that were never replayed (``--again``
  includes replayed ones), of replayable reasons only (``REPLAYABLE``). The reasons in
  ``NEVER_REPLAYABLE`` are not, because what was refused is not kept as it arrived; the
  mapping says why for each, and ``--help`` prints both lists from it.
* Each selected payload is sent again, byte for byte, to its original topic with the contract
  key (``{agency_code}:{inspection_id|dossier_id}``) and a header
  ``parwatch-replay-of: <topic>/<partition>/<offset>``; with ``--keyring`` it is also signed
  with its agency's newest active key. Sends use acks=all and are waited for.
* Then one row per acknowledged send goes to ``dead_letter_replays`` (one ``replay_id`` per
  run). The worker handles the copies as new messages: one that is now valid is counted once;
  replaying it again makes the second copy a duplicate, never a second count.
* A failure part-way records what Kafka acknowledged, says how many failed, and exits 1; the
  failed ones stay unreplayed and are picked up by the next run. Every send Kafka acknowledged
  is recorded whatever ends the sending: a flush that times out (``FLUSH_TIMEOUT_S``), an error,
  an interrupt; the producer is closed first, so what it delivers while closing counts too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import textwrap
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from clickhouse_connect.driver.client import Client

from parwatch import wiring
from parwatch.errors import UsageError
from parwatch.settings import Settings
from parwatch.table import table_lines
from schemas.errors import Reason
from schemas.signing import Keyring, KeyringError, load_keyring, sign

REPLAY_HEADER = "parwatch-replay-of"
FLUSH_TIMEOUT_S = 60.0  # how long a replay waits for Kafka's acknowledgements
# The one list of reasons that cannot be replayed, with why; everything else is replayable.
NEVER_REPLAYABLE: dict[Reason, str] = {
    Reason.MALFORMED_JSON: "its stored text is redacted, and lossy for non-UTF-8 bytes",
    Reason.PII_DETECTED: "its stored payload is redacted",
    Reason.BAD_SIGNATURE: "its signature headers are not kept",
}
REPLAYABLE = tuple(r.value for r in Reason if r not in NEVER_REPLAYABLE)


def reasons_help() -> str:
    """Which reasons are replayable and which never are (with why), from ``NEVER_REPLAYABLE``."""
    never = "; ".join(f"{r.value} ({why})" for r, why in NEVER_REPLAYABLE.items())
    return f"Replayable reasons: {', '.join(REPLAYABLE)}. Never replayable: {never}."


LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")

_COLUMNS = (
    "topic", "partition", "offset", "refused_at", "reason", "agency_code", "event_id", "detail",
    "errors", "payload", "replays", "last_replayed_at",
)  # fmt: skip

DESCRIPTION = f"""\
Refused messages (table dead_letters, one per Kafka message) and their replay.

  parwatch dead-letters list [--reason R] [--agency CODE] [--since T] [--until T] [--json]
  parwatch dead-letters replay [same filters] [--dry-run] [--note TEXT]

Replay sends a dead letter's payload again, byte for byte, to its original topic, once its
cause is fixed (e.g. the agency catalog now has the agency): the worker then handles it as if
it had just arrived, and an event counts once however often it is replayed.
{textwrap.fill(reasons_help(), width=96)}
Each replay is recorded in dead_letter_replays. Times: RFC 3339, or a date / date and time
without offset in Asia/Ho_Chi_Minh. Needs the warehouse (stop a worker that holds an embedded
one) and, to replay, the broker (PARWATCH_KAFKA_BOOTSTRAP).
"""


def _time(text: str) -> datetime:
    try:
        if len(text) == 10:
            t = datetime.combine(date.fromisoformat(text), time(0), LOCAL)
        else:
            t = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected YYYY-MM-DD or an RFC 3339 time"
        ) from None
    return (t if t.tzinfo else t.replace(tzinfo=LOCAL)).astimezone(UTC)


def _reason(text: str) -> str:
    if text not in {r.value for r in Reason}:
        raise argparse.ArgumentTypeError(
            f"{text!r}: not a reason; one of {', '.join(r.value for r in Reason)}"
        )
    return text


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--reason",
        type=_reason,
        action="append",
        metavar="REASON",
        help="only this reason (repeatable)",
    )
    p.add_argument(
        "--agency", action="append", metavar="CODE", help="only this agency (repeatable)"
    )
    p.add_argument("--since", type=_time, metavar="TIME", help="refused at or after TIME")
    p.add_argument("--until", type=_time, metavar="TIME", help="refused before TIME")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="at most N dead letters")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "dead-letters",
        help="list refused messages, replay them once the cause is fixed",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ds = p.add_subparsers(dest="dead_letters_command", required=True, metavar="ACTION")
    lst = ds.add_parser(
        "list",
        help="list dead letters, with whether each was replayed",
        description=(
            "List dead letters, oldest first (default at most 50: --limit): where each came "
            "from (topic/partition/offset), when and why it was refused, its agency and event "
            "id, and how often it was replayed. --json prints every column, payload included."
        ),
    )
    _filters(lst)
    lst.add_argument("--json", action="store_true", help="print a JSON list of objects")
    lst.set_defaults(run=run_list)
    rep = ds.add_parser(
        "replay",
        help="send dead letters again to their topic, and record it",
        description=f"{__doc__}\n{textwrap.fill(reasons_help(), width=96)}\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _filters(rep)
    rep.add_argument("--again", action="store_true",
                     help="include dead letters already replayed")  # fmt: skip
    rep.add_argument("--dry-run", action="store_true", help="show what would be sent; send nothing")
    rep.add_argument("--note", default="", help="operator note recorded with the replay")
    rep.add_argument(
        "--keyring", metavar="FILE", help="sign each copy with its agency's newest active key"
    )
    rep.set_defaults(run=run_replay)


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    refused_at: datetime
    reason: str
    agency_code: str | None
    event_id: str | None
    detail: str
    errors: str
    payload: str
    replays: int
    last_replayed_at: datetime | None

    @property
    def position(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


def select(
    client: Client,
    *,
    reasons: list[str] | None,
    agencies: list[str] | None,
    since: datetime | None,
    until: datetime | None,
    replayed: bool | None = None,
    limit: int | None = None,
) -> list[DeadLetter]:
    """Dead letters matching the filters, oldest first, each with its replay count."""
    where: list[str] = ["1"]
    params: dict[str, Any] = {}
    if reasons:
        where.append("d.reason IN {reasons:Array(String)}")
        params["reasons"] = reasons
    if agencies:
        where.append("d.agency_code IN {agencies:Array(String)}")
        params["agencies"] = agencies
    if since is not None:
        where.append("d._refused_at >= parseDateTime64BestEffort({since:String}, 3, 'UTC')")
        params["since"] = since.astimezone(UTC).isoformat()
    if until is not None:
        where.append("d._refused_at < parseDateTime64BestEffort({until:String}, 3, 'UTC')")
        params["until"] = until.astimezone(UTC).isoformat()
    if replayed is not None:
        where.append("replays > 0" if replayed else "replays = 0")
    sql = f"""
        SELECT d._topic, d._partition, d._offset, d._refused_at, d.reason, d.agency_code,
               d.event_id, d.detail, d.errors, d.payload,
               r.n AS replays, if(replays = 0, NULL, r.last_at) AS last_replayed_at
        FROM dead_letters AS d FINAL
        LEFT JOIN (
            SELECT dl_topic, dl_partition, dl_offset, count() AS n, max(replayed_at) AS last_at
            FROM dead_letter_replays FINAL
            GROUP BY dl_topic, dl_partition, dl_offset
        ) AS r ON r.dl_topic = d._topic AND r.dl_partition = d._partition
              AND r.dl_offset = d._offset
        WHERE {" AND ".join(where)}
        ORDER BY d._refused_at, d._topic, d._partition, d._offset
        {"" if limit is None else f"LIMIT {int(limit)}"}
    """  # noqa: S608 (only fixed clauses are formatted in; values are bound parameters)
    # No setting (join_use_nulls): the query endpoint's readonly=1 session refuses any.
    rows = client.query(sql, parameters=params).result_rows
    return [
        DeadLetter(*r[:10], replays=int(r[10] or 0), last_replayed_at=r[11])  # type: ignore[misc]
        for r in rows
    ]


def _plain(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime) else v


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise UsageError("--limit must be at least 1")


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    _check_limit(args.limit)
    client = wiring.open_reader(settings)  # through the owner's endpoint while a worker runs
    letters = select(
        client,
        reasons=args.reason,
        agencies=args.agency,
        since=args.since,
        until=args.until,
        limit=args.limit or 50,
    )
    if args.json:
        out = [
            {k: _plain(getattr(d, k)) for k in _COLUMNS} | {"errors": json.loads(d.errors or "[]")}
            for d in letters
        ]
        print(json.dumps(out, ensure_ascii=False, indent=1))
        return 0
    names = ("position", "refused_at", "reason", "agency_code", "event_id", "replays", "detail")
    cells = [
        [d.position, d.refused_at.strftime("%Y-%m-%d %H:%M:%S"), d.reason,
         d.agency_code or "-", d.event_id or "-", str(d.replays), d.detail[:80]]
        for d in letters
    ]  # fmt: skip
    print("\n".join(table_lines(names, cells, rule=False)))
    print(f"({len(letters)} dead letters)")
    return 0


def _keyring(path: str | None) -> Keyring | None:
    if path is None:
        return None
    try:
        return load_keyring(Path(path))
    except KeyringError as exc:
        raise UsageError(f"--keyring: {exc}") from None


def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    from producers.simulation.messages import message_key

    _check_limit(args.limit)
    reasons = args.reason or list(REPLAYABLE)
    for r in reasons:
        if Reason(r) in NEVER_REPLAYABLE:
            raise UsageError(f"--reason {r}: never replayable: {NEVER_REPLAYABLE[Reason(r)]}")
    keyring = _keyring(args.keyring)
    bootstrap = None if args.dry_run else wiring.require_bootstrap(settings)
    client = wiring.open_warehouse(settings)
    letters = select(
        client,
        reasons=reasons,
        agencies=args.agency,
        since=args.since,
        until=args.until,
        replayed=None if args.again else False,
        limit=args.limit,
    )
    sends: list[tuple[DeadLetter, bytes | None, bytes, list[tuple[str, bytes]]]] = []
    for d in letters:
        value = d.payload.encode("utf-8")
        headers = [(REPLAY_HEADER, d.position.encode())]
        if keyring is not None and d.agency_code:
            active = keyring.active(d.agency_code)
            if not active:
                raise UsageError(f"--keyring: no active key for agency {d.agency_code}")
            headers += sign(value, active[-1])
        sends.append((d, message_key(value), value, headers))
    by_reason = Counter(d.reason for d in letters)
    summary = ", ".join(f"{n} {r}" for r, n in sorted(by_reason.items())) or "nothing"
    if args.dry_run:
        for d, key, _, _ in sends:
            shown = key.decode(errors="replace") if key else "-"
            print(f"{d.position}  {d.reason}  {d.agency_code or '-'}  key {shown}")
        print(f"would replay {len(sends)} dead letters: {summary}")
        return 0
    if not sends:
        print("nothing to replay")
        return 0
    assert bootstrap is not None
    acked: list[tuple[DeadLetter, int, int]] = []
    replay_id = uuid.uuid4()
    try:
        failed = _send(bootstrap, settings, sends, acked)
    finally:  # what Kafka acknowledged is recorded, whatever ended the sending
        _record(client, replay_id, acked, args.note)
    print(f"replayed {len(acked)} dead letters (replay {replay_id}): {summary}")
    if failed:
        print(f"{failed} could not be sent; they stay unreplayed (run replay again)")
        return 1
    return 0


def _record(
    client: Client, replay_id: uuid.UUID, acked: list[tuple[DeadLetter, int, int]], note: str
) -> None:
    """One ``dead_letter_replays`` row per acknowledged send (new partition and offset)."""
    if not acked:
        return
    now = datetime.now(UTC)
    rows = [
        [replay_id, now, d.topic, d.partition, d.offset, d.reason, d.agency_code, d.event_id,
         d.topic, partition, offset, note]
        for d, partition, offset in acked
    ]  # fmt: skip
    client.insert(
        "dead_letter_replays",
        rows,
        column_names=[
            "replay_id", "replayed_at", "dl_topic", "dl_partition", "dl_offset", "reason",
            "agency_code", "event_id", "new_topic", "new_partition", "new_offset", "note",
        ],
    )  # fmt: skip


def _send(
    bootstrap: str,
    settings: Settings,
    sends: list[tuple[DeadLetter, bytes | None, bytes, list[tuple[str, bytes]]]],
    acked: list[tuple[DeadLetter, int, int]],
) -> int:
    """Send every copy (acks=all, idempotent), wait up to ``FLUSH_TIMEOUT_S``, close the
    producer; append to ``acked`` every send Kafka acknowledged (also when this raises) and
    return how many were not."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    try:
        producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            allow_auto_create_topics=False,
            **wiring.kafka_options(settings),
        )
    except KafkaError as exc:
        raise UsageError(f"Kafka at {bootstrap}: {exc}") from None
    failed = 0
    futures: list[tuple[DeadLetter, Any]] = []
    try:
        for d, key, value, headers in sends:
            try:
                futures.append((d, producer.send(d.topic, key=key, value=value, headers=headers)))
            except KafkaError:
                failed += 1
        with contextlib.suppress(KafkaError):  # a timeout: the futures say what was acknowledged
            producer.flush(timeout=FLUSH_TIMEOUT_S)
    finally:
        try:
            producer.close(timeout=5)
        finally:
            for d, future in futures:
                if future.is_done and future.succeeded():
                    acked.append((d, future.value.partition, future.value.offset))
                else:
                    failed += 1
    return failed
