"""Bulk upload of a JSON Lines file of events (``parwatch publish FILE.jsonl``).

Contract of ``publish_jsonl``:

* The file is UTF-8, one JSON object a line; blank lines are skipped. It is streamed, one line
  at a time, never loaded whole (one extra pass counts its lines, for progress).
* Each line is published as it is (the bytes of the line, without its line break) through the
  ``Publisher``'s batch path, ``publish_many``, ``CHUNK_LINES`` lines a call (read one at a
  time, never held all at once), which validates it: a bad line (not UTF-8, not JSON, refused
  by the contract) is recorded with its 1-based line number, its ``Reason`` code and a short
  detail, and is not sent; the lines around it still are. ``BulkReport.bad`` is in line
  order. Nothing else stops the upload.
* Skipping: a line whose ``event_id`` is in ``skip`` (the ids already waiting in the spool,
  ``spool_contents``) is counted in ``BulkReport.already_waiting`` and not published again:
  the spool delivers its copy, before anything published now. The pipeline counts an
  ``event_id`` once (the first accepted copy), so skipping it changes no figure. Without
  ``skip`` no line's JSON is parsed here (the publisher's validation is the only parse).
* Order: lines are published in file order (the publisher keeps that order per key).
* On return everything accepted has been flushed: delivered to Kafka or durably spooled. Which
  of the two, the publisher's ``stats().spool_pending`` after ``close`` says; ``accepted`` is
  not "sent".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NamedTuple

from producers.sdk.preparation import event_id_of
from producers.sdk.publisher import Publisher
from schemas import Reason

CHUNK_LINES = 1000
"""Lines read for one ``publish_many`` call; progress is reported after each such call."""
PROGRESS_EVERY = CHUNK_LINES
MAX_DETAIL = 300


class BadLine(NamedTuple):
    line: int
    reason: str
    detail: str


@dataclass
class BulkReport:
    """What ``publish_jsonl`` did: events accepted by the publisher (delivered or spooled: the
    publisher knows which), bad lines (not published), events skipped as already waiting."""

    accepted: int = 0
    bad: list[BadLine] = field(default_factory=list)
    blank: int = 0
    already_waiting: int = 0

    def bad_summary(self) -> str:
        """E.g. ``2 bad lines not sent (malformed_json: 2)``, or ``no bad lines``."""
        if not self.bad:
            return "no bad lines"
        counts = Counter(b.reason for b in self.bad)
        by_reason = ", ".join(f"{reason}: {n:,}" for reason, n in sorted(counts.items()))
        n_bad = len(self.bad)
        return f"{n_bad:,} bad line{'s' if n_bad != 1 else ''} not sent ({by_reason})"


def count_lines(path: Path) -> int:
    """Lines in ``path`` (a last line without a line break counts), read in 1 MiB chunks."""
    lines = 0
    last = b"\n"
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def _skip_rest_of_line(f: BinaryIO, limit: int) -> None:
    while chunk := f.readline(limit):
        if chunk.endswith(b"\n"):
            return


class _Lines:
    """Reads a JSON Lines file for ``publish_jsonl``: ``take(n)`` yields the publishable lines
    among the next ``n`` (blank, too long and already waiting ones go to the report), and
    ``numbers`` holds the line number of each one yielded by the last ``take``."""

    def __init__(self, f: BinaryIO, limit: int, report: BulkReport, skip: Collection[str]):
        self.number = 0  # lines read so far
        self.numbers: list[int] = []
        self.done = False
        self._f, self._limit, self._report, self._skip = f, limit, report, skip

    def take(self, n: int) -> Iterator[bytes]:
        self.numbers = []
        report, limit, f = self._report, self._limit, self._f
        end = self.number + n
        while self.number < end:
            line = f.readline(limit)
            if not line:
                self.done = True
                return
            self.number += 1
            if not line.endswith(b"\n") and len(line) == limit:
                _skip_rest_of_line(f, limit)
                report.bad.append(
                    BadLine(
                        self.number, Reason.INVALID_EVENT.value, f"line longer than {limit} bytes"
                    )
                )
                continue
            raw = line.rstrip(b"\r\n")
            if self.number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 byte order mark, as some editors write
            if not raw.strip():
                report.blank += 1
            elif self._skip and event_id_of(raw) in self._skip:
                report.already_waiting += 1
            else:
                self.numbers.append(self.number)
                yield raw


def publish_jsonl(
    path: Path,
    publisher: Publisher,
    progress: Callable[[int, int], None] | None = None,
    skip: Collection[str] = frozenset(),
) -> BulkReport:
    """Publish every good line of the JSON Lines file ``path`` whose event id is not in
    ``skip``; report the bad ones.

    ``progress(lines_done, lines_total)`` is called every 1,000 lines and once at the end.
    """
    report = BulkReport()
    total = count_lines(path) if progress is not None else 0
    limit = publisher.config.max_event_bytes + 2  # room for "\r\n"
    with path.open("rb") as f:
        lines = _Lines(f, limit, report, skip)
        while not lines.done:
            before, first_bad = lines.number, len(report.bad)
            refusals = publisher.publish_many(lines.take(CHUNK_LINES))
            for position, exc in refusals:
                detail = exc.invalid.detail
                if len(detail) > MAX_DETAIL:
                    detail = detail[: MAX_DETAIL - 1] + "…"
                report.bad.append(BadLine(lines.numbers[position], exc.reason.value, detail))
            report.accepted += len(lines.numbers) - len(refusals)
            report.bad[first_bad:] = sorted(report.bad[first_bad:])
            number = lines.number
            if progress is not None and number > before and number % PROGRESS_EVERY == 0:
                progress(number, max(total, number))
    publisher.flush()
    if progress is not None:
        progress(lines.number, max(total, lines.number))
    return report
