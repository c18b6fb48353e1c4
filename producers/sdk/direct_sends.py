"""The publisher's direct sends awaiting Kafka's answer, and their bookkeeping.

Contract of ``DirectSends``:

* ``add`` (any thread, no lock, after ``producer.send`` returned): one deque append. The hot
  path registers no callback on kafka-python's future: a callback costs microseconds per record
  on the publishing thread and again on kafka-python's sender thread, which share one GIL.
* ``settle`` (state lock held) takes the settled *prefix*, in send order: a delivery counts in
  ``delivered``; a failed record is appended to the spool (one write for all the failures of a
  call, in send order), counted in ``failed`` and ``spooled``, its producer is marked broken and
  direct mode ends. It returns the ``on_delivery`` notes, to be made once the lock is released,
  and wakes ``idle_cv`` when no send is left outstanding.
* Who settles: the drainer thread every ``SETTLE_INTERVAL_S`` while it waits, and before it
  reconnects; ``flush``/``drain``/``close`` settle everything they wait for. A record's outcome
  is therefore recorded (and a failed record spooled) within ``SETTLE_INTERVAL_S`` of the time
  it and every send before it have kafka-python's answer (at the latest when the delivery
  timeout runs out), or at once in those calls.
* ``spool_unanswered`` (state lock held) spools whatever is still outstanding when ``close``
  has closed the producers: an unknown outcome is sent again (at least once), never dropped.
* ``snapshot`` (state lock held) counts, without settling: sends added so far, delivered but
  not yet settled, outstanding (not delivered, not yet spooled).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from kafka import KafkaProducer
from kafka.producer.future import FutureRecordMetadata, RecordMetadata

from producers.sdk.connection import describe
from producers.sdk.preparation import PreparedRecord, event_id_of
from producers.sdk.publisher_state import PublisherState
from producers.sdk.spool import Spool, SpoolRecord

# The whole SDK logs as producers.sdk.publisher, so logging set up for it covers every part of it.
log = logging.getLogger("producers.sdk.publisher")

SETTLE_INTERVAL_S = 0.05

Note = tuple[str, RecordMetadata | None, BaseException | None]
_Entry = tuple[FutureRecordMetadata, KafkaProducer, PreparedRecord]


class DirectSends:
    """Outstanding direct sends of one publisher; see the module docstring."""

    def __init__(self, state: PublisherState, spool: Spool, *, notes: bool) -> None:
        self._state = state
        self._spool = spool
        self._notes = notes
        self._entries: deque[_Entry] = deque()
        self._settled = 0  # entries taken off the deque (guarded by the state lock)
        self.add: Callable[[_Entry], None] = self._entries.append
        """``add((future, producer, record))``: the deque's own append, no Python frame."""

    def __len__(self) -> int:
        return len(self._entries)

    def settle(self) -> list[Note]:
        """Record the outcome of the settled prefix (state lock held); see the module
        docstring. Returns the ``on_delivery`` notes to make, in send order."""
        entries, state = self._entries, self._state
        notes: list[Note] = []
        failed: list[tuple[KafkaProducer, PreparedRecord, BaseException]] = []
        taken = delivered = 0
        while entries:
            future, producer, record = entries[0]
            if not future.is_done:
                break
            entries.popleft()
            taken += 1
            exc = future.exception
            if exc is None:
                delivered += 1
                if self._notes:
                    notes.append((record.event_id, future.value, None))
            else:
                failed.append((producer, record, exc))
                if self._notes:
                    notes.append((record.event_id, None, exc))
        if not taken:
            return notes
        self._settled += taken
        state.delivered += delivered
        if failed:
            self._spool_failed(failed)
        if not entries:
            state.idle_cv.notify_all()
        return notes

    def _spool_failed(
        self, failed: list[tuple[KafkaProducer, PreparedRecord, BaseException]]
    ) -> None:
        state = self._state
        records = [SpoolRecord(r.topic, r.key, r.value, r.headers) for _, r, _ in failed]
        try:
            self._spool.append(records)
            state.spooled += len(records)
        except OSError as disk:  # nowhere left to keep them: say so, loudly and precisely
            for _, record, _ in failed:
                log.critical(
                    "event %s LOST: its send failed and the spool refused it (%s)",
                    record.event_id or event_id_of(record.value),
                    disk,
                )
        state.failed += len(failed)
        for producer, _, exc in failed:
            if producer is state.producer and not state.broken:
                log.warning("send failed (%s); spooling until Kafka is back", describe(exc))
                state.broken = True
        state.direct = False  # the spool holds something now: it goes first
        state.drain_cv.notify()

    def spool_unanswered(self) -> int:
        """Spool every send still outstanding (state lock held; for ``close``, once the
        producers are closed): its outcome is unknown, so it is sent again, at least once.
        Returns how many."""
        entries = self._entries
        left: list[tuple[KafkaProducer, PreparedRecord, BaseException]] = []
        while entries:
            _, producer, record = entries.popleft()
            left.append((producer, record, TimeoutError("no answer from kafka-python")))
        if left:
            self._settled += len(left)
            self._spool_failed(left)
        return len(left)

    def snapshot(self) -> tuple[int, int, int]:
        """(sends added, delivered but not settled, outstanding), state lock held."""
        entries = self._entries.copy()  # publishers append meanwhile; a copy is one C call
        delivered = sum(1 for f, _, _ in entries if f.is_done and f.exception is None)
        return self._settled + len(entries), delivered, len(entries) - delivered
