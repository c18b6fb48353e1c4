"""The spool drainer: a background thread that sends the spool to Kafka and decides when the
publisher may send directly again.

Contract of ``Drainer``:

* Ordering: spooled records are sent oldest first, ``drain_batch`` at a time; only the
  delivered *prefix* of a batch is acknowledged; the rest stays in the spool, in order, and is
  sent again in the next round.
* At-least-once, at most one batch twice: a record is acknowledged in the spool only after
  Kafka acknowledged it, and the spool's cursor moves over the delivered prefix while the batch
  is still under way (each time the drainer would wait for the next answer), so a crash (SIGKILL
  included) re-sends, after restart, only records that were sent and not yet acknowledged in
  the spool: at most one batch, ``drain_batch`` records. (The cursor file is replaced
  atomically but not fsynced: after a power loss, more may be sent again.)
* Recovery: when the producer is marked broken, the drainer retires it (its failed records land
  in the spool when its sends are settled) and connects a new one, with capped exponential backoff
  (``retry_backoff_s`` doubling up to ``retry_backoff_max_s``; ``PublisherState.kick`` cuts a
  wait short). Once the spool is empty it sets ``direct`` and wakes ``flush``/``drain`` waiters.
* Blocking: all of it runs on one daemon thread; a round blocks that thread for one connection
  attempt or one batch (up to ``delivery_timeout_s + request_timeout_s``). ``stop`` returns once
  the current round has ended.
* Errors: Kafka errors and missing topics are outages, logged and retried. Any other exception
  is caught at the thread's boundary, logged, and retried after backoff: the thread never dies.
* Direct sends: while it waits (direct mode), the thread settles the publisher's direct sends
  (``DirectSends.settle``) every ``SETTLE_INTERVAL_S``, and once more after retiring a producer,
  so that failed sends reach the spool before it is drained.
* ``notify`` runs on the drainer thread, once for each record of a batch and for each settled
  direct send.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.producer.future import FutureRecordMetadata

from producers.sdk.connection import Connector, describe
from producers.sdk.direct_sends import SETTLE_INTERVAL_S, DirectSends, Note
from producers.sdk.preparation import event_id_of
from producers.sdk.publisher_config import DeliveryCallback, PublisherConfig, TopicMissing
from producers.sdk.publisher_state import PublisherState
from producers.sdk.spool import Spool

# The whole SDK logs as producers.sdk.publisher, so logging set up for it covers every part of it.
log = logging.getLogger("producers.sdk.publisher")


class Drainer:
    """Drains ``spool`` through producers from ``connector``; see the module docstring."""

    def __init__(
        self,
        config: PublisherConfig,
        state: PublisherState,
        spool: Spool,
        connector: Connector,
        sends: DirectSends,
        notify: DeliveryCallback | None,
    ) -> None:
        self.config = config
        self._state = state
        self._spool = spool
        self._connector = connector
        self._sends = sends
        self._notify = notify
        self._thread = threading.Thread(
            target=self._run, name="parwatch-publisher-drainer", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop and wait until it has (the current round ends first)."""
        with self._state.lock:
            self._state.stopping = True
            self._state.drain_cv.notify()
        self._thread.join()

    def _run(self) -> None:
        backoff = self.config.retry_backoff_s
        while not self._state.stopping:
            try:
                backoff = self._step(backoff)
            except Exception:  # the thread's boundary: a bug or a disk error must not end it
                log.exception("spool drainer failed; retrying in %.2f s", backoff)
                with self._state.lock:
                    self._state.broken = self._state.producer is not None
                self._backoff(backoff)
                backoff = min(backoff * 2, self.config.retry_backoff_max_s)

    def _step(self, backoff: float) -> float:
        """One round of the drainer: replace a failed producer, connect, send one batch.
        Returns the backoff for the next failure."""
        state = self._state
        with state.lock:
            if not (state.stopping or state.broken or not state.direct):
                state.drain_cv.wait(SETTLE_INTERVAL_S)
            notes = self._sends.settle()
            idle = not (state.stopping or state.broken or not state.direct)
        self._make(notes)
        if idle or state.stopping:
            return backoff
        with state.lock:
            retired = None
            if state.broken:
                state.broken = False
                state.direct = False
                retired, state.producer = state.producer, None
        if retired is not None:
            self._connector.retire(retired)
            with state.lock:  # its sends have their answers now: failures go to the spool
                notes = self._sends.settle()
            self._make(notes)
        producer = state.producer
        if producer is None:
            try:
                producer = self._connector.connect()
            except (KafkaError, TopicMissing) as exc:
                self._connector.outage(exc, self._spool.pending)
                self._backoff(backoff)
                return min(backoff * 2, self.config.retry_backoff_max_s)
            with state.lock:
                state.producer = producer
            log.info("connected to Kafka; %d spooled events to send", self._spool.pending)
        if self._send_batch(producer):
            return self.config.retry_backoff_s
        with state.lock:
            state.broken = True
        self._backoff(backoff)
        return min(backoff * 2, self.config.retry_backoff_max_s)

    def _send_batch(self, producer: KafkaProducer) -> bool:
        """Send the oldest spooled records, wait for Kafka, acknowledge the delivered prefix.
        Returns False if anything failed (the rest stays in the spool)."""
        state = self._state
        records = self._spool.peek(self.config.drain_batch)
        if not records:
            with state.lock:
                if self._spool.pending == 0 and not state.broken and not state.stopping:
                    if not state.direct:
                        log.info("spool drained; sending directly")
                    state.direct = True
                    state.idle_cv.notify_all()
            return True
        try:
            self._connector.verify(producer, {r.topic for r in records})
        except (KafkaError, TopicMissing) as exc:
            log.error("cannot send spooled events: %s", describe(exc))
            return False
        futures = []
        error: BaseException | None = None
        for record in records:
            try:
                futures.append(
                    producer.send(
                        record.topic,
                        value=record.value,
                        key=record.key,
                        headers=list(record.headers),
                    )
                )
            except KafkaError as exc:
                error = exc
                break
        deadline = time.monotonic() + self.config.delivery_timeout_s + self.config.request_timeout_s
        prefix = self._ack_as_delivered(futures, deadline)
        if prefix < len(futures):
            try:  # the answers to the rest, for the counters and the notes
                producer.flush(timeout=max(0.0, deadline - time.monotonic()))
            except KafkaError as exc:
                error = error or exc
        ok = sum(f.succeeded() for f in futures)
        with state.lock:
            state.sent += len(futures)
            state.delivered += ok
            state.failed += len(records) - ok
        if self._notify is not None:
            for i, record in enumerate(records):
                future = futures[i] if i < len(futures) else None
                if future is not None and future.succeeded():
                    self._notify(event_id_of(record.value), future.value, None)
                else:
                    cause = future.exception if future is not None else None
                    self._notify(event_id_of(record.value), None, cause or error or TimeoutError())
        if prefix < len(records):
            first = next((f.exception for f in futures if f.exception is not None), error)
            log.warning(
                "sending spooled events failed (%s); %d left", describe(first), self._spool.pending
            )
            return False
        return True

    def _ack_as_delivered(self, futures: list[FutureRecordMetadata], deadline: float) -> int:
        """Wait for ``futures`` in send order until one fails or ``deadline`` passes, and move
        the spool's cursor over the delivered prefix each time before waiting, so that it trails
        Kafka's acknowledgements by one produce request, not by the whole batch. Returns the
        length of the delivered prefix (all of it acknowledged in the spool)."""
        acked = 0
        for i, future in enumerate(futures):
            if not future.is_done:
                if i > acked:
                    self._spool.ack(i - acked)
                    acked = i
                with contextlib.suppress(KafkaError):
                    future.get(timeout=max(0.0, deadline - time.monotonic()))
            if not future.succeeded():
                self._spool.ack(i - acked)
                return i
        self._spool.ack(len(futures) - acked)
        return len(futures)

    def _make(self, notes: list[Note]) -> None:
        if self._notify is not None:
            for note in notes:
                self._notify(*note)

    def _backoff(self, seconds: float) -> None:
        state = self._state
        with state.lock:
            state.drain_cv.wait_for(lambda: state.stopping or state.kick, seconds)
            state.kick = False
