"""The agency publisher SDK: validate an event against the contract, key it, send it to Kafka,
and spool it to local disk whenever Kafka cannot take it.

Contract of ``Publisher``:

* ``publish(event)`` serialises the event to the exact bytes that will be sent (UTF-8 JSON,
  NFC), validates them with ``schemas.decode`` (the same check the pipeline runs), and refuses
  an invalid event with ``PublishError`` in the caller, before anything is sent. A valid event
  is keyed as the contract says (``{agency_code}:{inspection_id}``, ``{agency_code}:{dossier_id}``
  for ``service/1`` and ``service/2``, ``{agency_code}:{procedure_code}`` for ``offering/1``)
  and goes to the topic of its schema (``PublisherConfig.topics``: inspections, services,
  offerings).
* Batches: ``publish_many(events)`` does what ``publish`` does for each event of an iterable,
  in order, and returns the refused ones as ``Refusal(position, error)`` values instead of
  raising (it raises only ``TypeError``, for something that is not an event at all, and
  ``PublisherClosed``; the events before it were accepted). It validates, serialises and keys
  about a produce request's worth of events (``max_request_size`` bytes of values) before it
  hands them to kafka-python together, which keeps each of the two loops' code and data in the
  processor's caches (about a fifth less CPU an event than alternating, on the bench machine).
  Events it must spool are written ``drain_batch`` at a time, not one ``write`` each. It is the
  path for bulk loads (``parwatch publish``, backfills); ``publish`` is the same path for one
  event.
* Blocking: ``publish`` does not wait for the broker. On the happy path it hands the record to
  kafka-python's record accumulator (no fsync, no thread hop: ``handover``), which makes the
  calling thread wait (GIL released) only when kafka-python's sender thread is a produce
  request or more behind, for at most ``linger_ms`` per batch opened; while the broker is
  unreachable it appends the record to the spool (one ``write`` call, no fsync). ``flush``
  blocks until every event accepted so far is delivered or durably spooled (fsync). ``close``
  flushes, tries to deliver the spool for up to ``close_timeout_s``, and closes; flush on close
  is not optional.
  Durability points are ``flush``/``close``: an event still in kafka-python's buffer (at most
  ``delivery_timeout_s`` of them) is lost if the process is killed before one of those.
* Nothing is dropped. A record whose send fails (the broker went away, the delivery timeout
  ran out) is appended to the spool (by the drainer, within ``SETTLE_INTERVAL_S`` of the
  failure and of the answers to the sends before it: ``direct_sends``), and while the spool
  holds anything every new event is appended behind it. A background drainer sends the spool,
  oldest first, once the broker is reachable again (reconnecting with capped exponential
  backoff), acknowledges what Kafka acknowledged, and then switches back to direct sends. A
  Publisher that opens a spool holding records (a publishing process was killed) sends those
  before anything new.
* Ordering: on the happy path, events of one key reach their partition in ``publish`` order
  (idempotent producer, ``acks=all``). When a send fails, the failed event is re-sent from the
  spool and may land after a newer event of the same key that was already in flight or spooled
  first; the pipeline deduplicates by ``event_id`` and classifies independently of order.
* Delivery is at-least-once: a crash between a send and its acknowledgement in the spool
  re-sends that record once after restart. A crash while the spool is being delivered re-sends
  at most one batch (``drain_batch`` records): the spool's cursor follows Kafka's
  acknowledgements within a batch (``drainer``).
* Topics are never created implicitly (``allow_auto_create_topics=False``, and existence is
  checked with an all-topics metadata request, since some brokers, Tansu among them, ignore the
  flag): a missing topic is an outage to retry, logged, and events wait in the spool. The
  inspection and service topics must exist to send anything; the offerings topic only once an
  offering is published (the first offering then goes through the spool, which checks it).

Cost: on the happy path ``publish`` adds to handing a record to kafka-python the validation
(the fast models' yes, ``schemas.decoding.accept_fast``, about 7 us on the bench machine) and
about 3 us more. It saves what kafka-python's ``send`` costs beyond the hand-over: its
partitioner (the partition is computed the default partitioner's way, cheaper:
``partitioning``) and its per-record checks (``handover``). No callback is attached to the send
(``direct_sends`` records outcomes in bulk).

Why the hand-over watches the sender: kafka-python sends from its own thread, which needs the
GIL. A thread that publishes in a tight loop holds the GIL but for the moments Python forces a
switch, so the sender may get it late and full batches pile up. The hand-over gives the sender
the GIL when its backlog says it is behind, whatever the machine's speed (``handover``).

Thread safety: ``publish``, ``publish_many``, ``flush`` and ``stats`` may be called from several
threads (each call keeps its own events in order; calls running at once interleave).
Callbacks (``on_delivery``) run on the drainer thread, or on the thread calling ``flush``,
``drain`` or ``close`` (which make the callbacks for what they waited for before returning):
keep them short, and do not call ``flush``/``close`` from them.

Layout: ``publisher_config`` (settings, stats, errors), ``preparation`` (event to validated
record), ``partitioning`` (key to partition), ``handover`` (records into kafka-python, with
backpressure), ``connection`` (producers, topic checks, outages), ``publisher_state`` (what the
threads share), ``direct_sends`` (outcomes of direct sends), ``drainer`` (the spool-draining
thread), ``spool`` (the on-disk queue); this module holds the ``Publisher`` itself and
re-exports the public names.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable
from types import TracebackType

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.producer.future import RecordMetadata

from producers.sdk.connection import Connector, describe
from producers.sdk.direct_sends import SETTLE_INTERVAL_S, DirectSends
from producers.sdk.drainer import Drainer
from producers.sdk.handover import Handover
from producers.sdk.partitioning import KeyPartitioner
from producers.sdk.preparation import Event, PreparedRecord, Preparer
from producers.sdk.publisher_config import (
    RESERVED_KAFKA_OPTIONS,
    DeliveryCallback,
    PublisherClosed,
    PublisherConfig,
    PublishError,
    PublisherStats,
    Refusal,
    TopicMissing,
)
from producers.sdk.publisher_state import PublisherState
from producers.sdk.spool import Spool, SpoolRecord

_KAFKA_DEFAULTS = KafkaProducer.DEFAULT_CONFIG

__all__ = [
    "RESERVED_KAFKA_OPTIONS",
    "DeliveryCallback",
    "Event",
    "PublishError",
    "Publisher",
    "PublisherClosed",
    "PublisherConfig",
    "PublisherStats",
    "Refusal",
    "TopicMissing",
]

log = logging.getLogger(__name__)


class Publisher:
    """Publishes contract events to Kafka, spooling to disk when Kafka is unreachable.

    See the module docstring for the contract. Use as a context manager, or call ``close()``.
    """

    def __init__(self, config: PublisherConfig, on_delivery: DeliveryCallback | None = None):
        self.config = config
        self._preparer = Preparer(
            config.topics,
            config.known_agencies,
            config.max_event_bytes,
            config.signing_key,
            event_ids=on_delivery is not None,
        )
        self._on_delivery = on_delivery
        self._spool = Spool(config.spool_dir, segment_bytes=config.segment_bytes)
        self._state = PublisherState()
        self._sends = DirectSends(self._state, self._spool, notes=on_delivery is not None)
        # kafka-python's default partitioner, computed cheaper; a configured one is left alone.
        self._partitioner = None if "partitioner" in config.kafka_options else KeyPartitioner()
        self._connector = Connector(config)
        self._handover: Handover | None = None  # for state.producer; replaced with it
        # publish_many prepares about a produce request's worth of events, then hands them over.
        self._run_bytes = int(
            config.kafka_options.get("max_request_size", _KAFKA_DEFAULTS["max_request_size"])
        )
        self._closed = False  # no more publish()
        self._shut = False  # close() has finished
        if self._spool.pending == 0:
            # Connect now, so that the first events go straight to Kafka; if the broker is not
            # there, events go to the spool and the drainer keeps trying.
            try:
                self._state.producer = self._connector.connect()
                self._state.direct = True
            except (KafkaError, TopicMissing) as exc:
                self._connector.outage(exc, self._spool.pending)
            except BaseException:
                self._spool.close()
                raise
        notify = None if on_delivery is None else self._notify
        self._drainer = Drainer(
            config, self._state, self._spool, self._connector, self._sends, notify
        )
        self._drainer.start()

    # -- publishing ----------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        """Validate, key and send ``event`` (a JSON object as a dict, a pydantic event model,
        or the serialised JSON bytes). Raises ``PublishError`` if the contract refuses it."""
        try:
            record = self._preparer.prepare(event)
        except PublishError:
            with self._state.lock:
                self._state.refused += 1
            raise
        if self._closed:
            raise PublisherClosed("publish() after close()")
        if not self._send(record):
            self._spool_records([record])

    def publish_many(self, events: Iterable[Event]) -> list[Refusal]:
        """``publish`` each of ``events`` in order; return the refused ones (their position in
        ``events`` and the ``PublishError``), which were not sent. See the module docstring."""
        if self._closed:
            raise PublisherClosed("publish_many() after close()")
        prepare = self._preparer.prepare
        refused: list[Refusal] = []
        ready: list[PreparedRecord] = []  # prepared, not yet handed over
        size = 0
        spooling: list[PreparedRecord] | None = None  # once one is spooled, the rest follow
        try:
            for index, event in enumerate(events):
                try:
                    record = prepare(event)
                except PublishError as exc:
                    # Without its traceback: the frames would tie every refusal of the call,
                    # and the events, into a reference cycle for the garbage collector.
                    refused.append(Refusal(index, exc.with_traceback(None)))
                    continue
                ready.append(record)
                size += len(record.value)
                if size >= self._run_bytes:
                    run, ready, size = ready, [], 0
                    spooling = self._hand_over(run, spooling)
        finally:
            spooling = self._hand_over(ready, spooling)
            if spooling:
                self._spool_records(spooling)
            if refused:
                with self._state.lock:
                    self._state.refused += len(refused)
        return refused

    def _hand_over(
        self, records: list[PreparedRecord], spooling: list[PreparedRecord] | None
    ) -> list[PreparedRecord] | None:
        """Send ``records`` directly while sends are direct, then collect the rest in
        ``spooling`` (returned; spooled ``drain_batch`` at a time)."""
        send, batch = self._send, self.config.drain_batch
        for record in records:
            if spooling is None:
                if send(record):
                    continue
                spooling = []
            spooling.append(record)
            if len(spooling) >= batch:
                self._spool_records(spooling)
                spooling = []
        return spooling

    def _send(self, record: PreparedRecord) -> bool:
        """Hand ``record`` to the current producer if sends are direct; False if it must go
        to the spool instead (not direct, or the send raised)."""
        state = self._state
        producer = state.producer
        # Only to a topic checked for this producer: a send to another one would create it.
        if not (state.direct and producer is not None and record.topic in self._connector.verified):
            return False
        handover = self._handover
        if handover is None or handover.producer is not producer:
            handover = self._handover = Handover(producer)
        topic, key, value, _, headers = record
        partitioner = self._partitioner
        try:
            tp = None if partitioner is None else partitioner.choose(producer, topic, key)
            future = handover.send(tp, topic, key, value, headers)
        except KafkaError as exc:
            self._send_raised(producer, exc)
            return False
        self._sends.add((future, producer, record))
        return True

    def _spool_records(self, records: list[PreparedRecord]) -> None:
        """Append ``records`` to the spool (one write), behind everything spooled before."""
        state = self._state
        with state.lock:
            self._spool.append(SpoolRecord(r.topic, r.key, r.value, r.headers) for r in records)
            state.spooled += len(records)
            state.accepted += len(records)
            if state.direct:  # switched to direct after our check: drain these first
                state.direct = False
            state.drain_cv.notify()

    def _send_raised(self, producer: KafkaProducer, exc: KafkaError) -> None:
        state = self._state
        with state.lock:
            state.failed += 1
            if producer is state.producer:
                log.warning("send failed (%s); spooling until Kafka is back", describe(exc))
                state.broken = True
                state.direct = False
                state.drain_cv.notify()

    def _notify(self, event_id: str, md: RecordMetadata | None, exc: BaseException | None) -> None:
        assert self._on_delivery is not None
        try:
            self._on_delivery(event_id, md, exc)
        except Exception:  # the caller's callback must not break delivery bookkeeping
            log.exception("on_delivery callback raised")

    def _settle(self, deadline: float | None) -> int:
        """Record the outcome of the direct sends, waiting up to ``deadline`` for those still
        outstanding. Returns how many are still outstanding."""
        state = self._state
        while True:
            with state.lock:
                notes = self._sends.settle()
                left = len(self._sends)
                if left and not notes and _remaining(deadline) != 0:
                    # The drainer settles too, and wakes us when nothing is left.
                    state.idle_cv.wait(min(SETTLE_INTERVAL_S, _remaining(deadline) or 1.0))
            for note in notes:
                self._notify(*note)
            if not left or _remaining(deadline) == 0:
                return left

    # -- flushing and closing ------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Block until every event accepted so far is delivered or durably spooled (fsync).

        Raises ``TimeoutError`` if that takes longer than ``timeout`` seconds. Without a
        timeout it returns within about ``delivery_timeout_s``, broker or no broker.
        """
        if self._shut:
            return  # close() flushed everything there was
        state = self._state
        deadline = None if timeout is None else time.monotonic() + timeout
        producer = state.producer
        if producer is not None:
            # Timed out, or replaced meanwhile: the outstanding sends decide below.
            with contextlib.suppress(KafkaError):
                producer.flush(timeout=_remaining(deadline))
        in_flight = self._settle(deadline)
        self._spool.sync()
        if in_flight:
            raise TimeoutError(f"{in_flight} events still in flight after {timeout} s")

    def drain(self, timeout: float | None = None) -> bool:
        """Flush, then wait until the spool is empty and sends are direct again (the broker is
        back and has everything), or ``timeout`` runs out. Returns True if drained."""
        if self._shut:
            return self._spool.pending == 0
        state = self._state
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self.flush(timeout)
        except TimeoutError:
            return False
        with state.lock:
            state.kick = True
            state.drain_cv.notify()
            return state.idle_cv.wait_for(
                lambda: state.direct and self._spool.pending == 0 and not self._sends,
                _remaining(deadline),
            )

    def close(self, timeout: float | None = None) -> None:
        """Flush, try to deliver the spool for up to ``timeout`` seconds (default
        ``close_timeout_s``), then stop. Whatever is still spooled stays on disk, durable, and is
        sent by the next Publisher that opens the same spool directory. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.flush()
        wait = self.config.close_timeout_s if timeout is None else timeout
        if wait > 0 and self._spool.pending:
            self.drain(wait)
        self._drainer.stop()
        producer, self._state.producer = self._state.producer, None
        if producer is not None:
            self._connector.retire(producer)
        # The retired producer has answered for every send: failures go to the spool now.
        if self._settle(time.monotonic()):
            with self._state.lock:
                unanswered = self._sends.spool_unanswered()
            log.warning("%d sends had no answer when the producer closed: spooled", unanswered)
        left = self._spool.pending
        self._spool.close()
        self._shut = True
        if left:
            log.warning(
                "%d events stay in the spool %s; they are sent when a publisher opens it again",
                left,
                self.config.spool_dir,
            )

    def stats(self) -> PublisherStats:
        state = self._state
        with state.lock:
            added, delivered, in_flight = self._sends.snapshot()
            return PublisherStats(
                accepted=state.accepted + added,
                refused=state.refused,
                sent=state.sent + added,
                delivered=state.delivered + delivered,
                spooled=state.spooled,
                failed=state.failed,
                in_flight=in_flight,
                spool_pending=self._spool.pending,
                direct=state.direct,
                connected=state.producer is not None,
            )

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
