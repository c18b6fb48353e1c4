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
* Blocking: ``publish`` does not wait for the broker. On the happy path it hands the record to
  kafka-python's producer (no fsync, no thread hop), and every ``YIELD_EVERY`` (256) of those it
  lets other threads run (``time.sleep(0)``: microseconds when none is waiting, else until the
  sender thread lets go); while the broker is unreachable it appends the record to the spool
  (one ``write`` call, no fsync). ``flush`` blocks until every event accepted so far is
  delivered or durably spooled (fsync). ``close`` flushes, tries to deliver the spool for up to
  ``close_timeout_s``, and closes; flush on close is not optional.
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

Cost: on the happy path ``publish`` adds to kafka-python's ``send`` the validation (the fast
models' yes, ``schemas.decoding.accept_fast``, about 5 us) and about 3 us more; it saves the
partitioner's cost instead: the partition is computed the default partitioner's way, but
cheaper than kafka-python does (``partitioning``). No callback is attached to the send
(``direct_sends`` records outcomes in bulk).

Why the yield: kafka-python sends from its own thread, which needs the GIL. A thread that calls
``publish`` in a tight loop (a backfill) holds the GIL but for the moments Python forces a
switch, so the sender thread gets it late, ever fuller batches pile up, and the publishing
thread itself slows down. ``publish`` lets the sender in every ``YIELD_EVERY`` direct sends;
more often costs throughput (smaller batches, more requests). The measurements behind the
figure are in CHANGELOG.md.

Thread safety: ``publish``, ``flush`` and ``stats`` may be called from several threads.
Callbacks (``on_delivery``) run on the drainer thread, or on the thread calling ``flush``,
``drain`` or ``close`` (which make the callbacks for what they waited for before returning):
keep them short, and do not call ``flush``/``close`` from them.

Layout: ``publisher_config`` (settings, stats, errors), ``preparation`` (event to validated
record), ``partitioning`` (key to partition), ``connection`` (producers, topic checks,
outages), ``publisher_state`` (what the threads share), ``direct_sends`` (outcomes of direct
sends), ``drainer`` (the spool-draining thread), ``spool`` (the on-disk queue); this module
holds the ``Publisher`` itself and re-exports the public names.
"""

from __future__ import annotations

import contextlib
import logging
import time
from types import TracebackType

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.producer.future import RecordMetadata

from producers.sdk.connection import Connector, describe
from producers.sdk.direct_sends import SETTLE_INTERVAL_S, DirectSends
from producers.sdk.drainer import Drainer
from producers.sdk.partitioning import KeyPartitioner
from producers.sdk.preparation import Event, Preparer
from producers.sdk.publisher_config import (
    RESERVED_KAFKA_OPTIONS,
    DeliveryCallback,
    PublisherClosed,
    PublisherConfig,
    PublishError,
    PublisherStats,
    TopicMissing,
)
from producers.sdk.publisher_state import PublisherState
from producers.sdk.spool import Spool, SpoolRecord

__all__ = [
    "RESERVED_KAFKA_OPTIONS",
    "DeliveryCallback",
    "Event",
    "PublishError",
    "Publisher",
    "PublisherClosed",
    "PublisherConfig",
    "PublisherStats",
    "TopicMissing",
]

log = logging.getLogger(__name__)

YIELD_EVERY = 256
"""Direct sends between two moments when ``publish`` lets kafka-python's sender thread run
(0: never); see "Why the yield" in the module docstring."""


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
        self._unyielded = 0  # direct sends since publish last let the sender thread run
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
        state = self._state
        try:
            record = self._preparer.prepare(event)
        except PublishError:
            with state.lock:
                state.refused += 1
            raise
        if self._closed:
            raise PublisherClosed("publish() after close()")
        producer = state.producer
        # Only to a topic checked for this producer: a send to another one would create it.
        if state.direct and producer is not None and record.topic in self._connector.verified:
            topic, key, value, _, headers = record
            try:
                partition = None
                if self._partitioner is not None:
                    partition = self._partitioner.choose(producer, topic, key)
                header_list = list(headers) if headers else None
                try:
                    future = producer.send(
                        topic, value=value, key=key, headers=header_list, partition=partition
                    )
                except ValueError:
                    if partition is None:
                        raise
                    # The topic shrank under our partition list (deleted and re-created):
                    # let kafka-python choose from its fresh metadata.
                    future = producer.send(topic, value=value, key=key, headers=header_list)
            except KafkaError as exc:
                self._send_raised(producer, exc)
            else:
                self._sends.add((future, producer, record))
                self._unyielded += 1
                if self._unyielded >= YIELD_EVERY > 0:
                    self._unyielded = 0
                    time.sleep(0)  # lets the sender thread in: see YIELD_EVERY
                return
        with state.lock:
            self._spool.append(
                (SpoolRecord(record.topic, record.key, record.value, record.headers),)
            )
            state.spooled += 1
            state.accepted += 1
            if state.direct:  # switched to direct after our check: drain this one first
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
