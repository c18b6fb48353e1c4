"""The agency publisher SDK: validate an event against the contract, key it, send it to Kafka,
and spool it to local disk whenever Kafka cannot take it.

Contract of ``Publisher``:

* ``publish(event)`` serialises the event to the exact bytes that will be sent (UTF-8 JSON,
  NFC), validates them with ``schemas.decode`` (the same check the pipeline runs), and refuses
  an invalid event with ``PublishError`` in the caller, before anything is sent. A valid event
  is keyed ``{agency_code}:{inspection_id|dossier_id}`` and goes to the topic of its schema.
* Blocking: ``publish`` does not wait for the broker. On the happy path it hands the record to
  kafka-python's producer (no fsync, no thread hop); while the broker is unreachable it appends
  the record to the spool (one ``write`` call, no fsync). ``flush`` blocks until every event
  accepted so far is delivered or durably spooled (fsync). ``close`` flushes, tries to deliver
  the spool for up to ``close_timeout_s``, and closes; flush on close is not optional.
  Durability points are ``flush``/``close``: an event still in kafka-python's buffer (at most
  ``delivery_timeout_s`` of them) is lost if the process is killed before one of those.
* Nothing is dropped. A record whose send fails (the broker went away, the delivery timeout
  ran out) is appended to the spool, and while the spool holds anything every new event is
  appended behind it. A background drainer sends the spool, oldest first, once the broker is
  reachable again (reconnecting with capped exponential backoff), acknowledges what Kafka
  acknowledged, and then switches back to direct sends. A Publisher that opens a spool holding
  records (a publishing process was killed) sends those before anything new.
* Ordering: on the happy path, events of one key reach their partition in ``publish`` order
  (idempotent producer, ``acks=all``). When a send fails, the failed event is re-sent from the
  spool and may land after a newer event of the same key that was already in flight or spooled
  first; the pipeline deduplicates by ``event_id`` and classifies independently of order.
* Delivery is at-least-once: a crash between a send and its acknowledgement in the spool
  re-sends that record once after restart.
* Topics are never created implicitly (``allow_auto_create_topics=False``, and existence is
  checked with an all-topics metadata request, since some brokers, Tansu among them, ignore the
  flag): a missing topic is an outage to retry, logged, and events wait in the spool.

Thread safety: ``publish``, ``flush`` and ``stats`` may be called from several threads.
Callbacks (``on_delivery``) run on kafka-python's sender thread or on the drainer thread: keep
them short, and do not call ``flush``/``close`` from them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import unicodedata
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.producer.future import RecordMetadata
from pydantic import BaseModel, ValidationError

from producers.spool import DEFAULT_SEGMENT_BYTES, Spool, SpoolRecord
from schemas import (
    EVENT_ADAPTER,
    InvalidEvent,
    LatestEvent,
    Reason,
    RetryableError,
    decode,
    upgrade,
)
from schemas.decoding import MAX_FUTURE_SKEW
from schemas.topics import Topics

log = logging.getLogger(__name__)

DeliveryCallback = Callable[[str, RecordMetadata | None, BaseException | None], None]
"""``on_delivery(event_id, metadata, error)``: ``metadata`` when Kafka acknowledged the record;
``error`` when one attempt failed (the event is then in the spool and will be sent again)."""

Event = Mapping[str, Any] | BaseModel | bytes | bytearray | memoryview

# Settings the SDK owns: its guarantees depend on them, so kafka_options may not override them.
RESERVED_KAFKA_OPTIONS = frozenset(
    {
        "bootstrap_servers",
        "client_id",
        "enable_idempotence",
        "acks",
        "allow_auto_create_topics",
        "linger_ms",
        "batch_size",
        "key_serializer",
        "value_serializer",
        "transactional_id",
        "max_block_ms",
        "bootstrap_timeout_ms",
        "request_timeout_ms",
        "delivery_timeout_ms",
        "retries",
        "max_in_flight_requests_per_connection",
    }
)


@dataclass(frozen=True, kw_only=True)
class PublisherConfig:
    """How a ``Publisher`` connects and behaves. ``kafka_options`` holds extra kafka-python
    settings (``security_protocol``, ``sasl_*``, ``ssl_*``, ``compression_type``...), passed
    through as they are; their values are never logged or shown in ``repr``."""

    bootstrap: str
    topics: Topics = Topics()
    spool_dir: Path
    client_id: str = "parwatch-publisher"
    known_agencies: Container[str] | None = None
    """Agency catalog codes for the ``unknown_agency`` check; None skips that check."""
    linger_ms: int = 5
    batch_size: int = 65536
    kafka_options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    connect_timeout_s: float = 3.0
    """Bound on one connection attempt (bootstrap, metadata); also kafka-python's max_block_ms."""
    request_timeout_s: float = 5.0
    delivery_timeout_s: float = 10.0
    """A record not acknowledged within this time fails and goes to the spool."""
    retry_backoff_s: float = 0.25
    retry_backoff_max_s: float = 5.0
    drain_batch: int = 2000
    close_timeout_s: float = 10.0
    """How long ``close()`` keeps trying to deliver the spool (what is left stays on disk)."""
    max_event_bytes: int = 1_000_000
    segment_bytes: int = DEFAULT_SEGMENT_BYTES

    def __post_init__(self) -> None:
        reserved = sorted(RESERVED_KAFKA_OPTIONS.intersection(self.kafka_options))
        if reserved:
            raise ValueError(f"kafka_options may not set {', '.join(reserved)}")
        unknown = sorted(set(self.kafka_options) - set(KafkaProducer.DEFAULT_CONFIG))
        if unknown:
            raise ValueError(f"kafka_options holds unknown kafka-python settings: {unknown}")
        if self.delivery_timeout_s * 1000 < self.linger_ms + self.request_timeout_s * 1000:
            raise ValueError("delivery_timeout_s must be at least linger + request_timeout_s")


class PublishError(ValueError):
    """The event breaks the contract and was not sent. ``invalid`` says why (reason, errors)."""

    def __init__(self, invalid: InvalidEvent) -> None:
        super().__init__(str(invalid))
        self.invalid = invalid

    @property
    def reason(self) -> Reason:
        return self.invalid.reason


class PublisherClosed(RuntimeError):
    """``publish`` after ``close``."""


class TopicMissing(RetryableError):
    """A topic the publisher needs does not exist on the broker (yet)."""


@dataclass(frozen=True, slots=True)
class PublisherStats:
    """Counters since the publisher started. ``sent`` and ``delivered`` count attempts: an event
    re-sent from the spool counts again. ``failed`` counts failed attempts; each such event went
    to (or stayed in) the spool, so ``failed`` is never a loss."""

    accepted: int
    refused: int
    sent: int
    delivered: int
    spooled: int
    failed: int
    in_flight: int
    spool_pending: int
    direct: bool
    """New events go straight to Kafka (the spool is empty and the producer healthy)."""
    connected: bool
    """A producer is connected (it may be draining the spool)."""


class _Anything:
    def __contains__(self, item: object) -> bool:
        return True


def _nfc(text: str) -> str:
    # NFC of the whole JSON text equals NFC of each string in it: JSON syntax is ASCII and no
    # ASCII character composes with a following mark.
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


def _nfc_bytes(raw: bytes) -> bytes:
    if raw.isascii():
        return raw
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw  # decode() refuses it as malformed_json
    return raw if unicodedata.is_normalized("NFC", text) else _nfc(text).encode("utf-8")


class _Pending:
    """One direct send awaiting Kafka's answer (callbacks run on the sender thread)."""

    __slots__ = ("event_id", "key", "producer", "publisher", "topic", "value")

    def __init__(
        self, publisher: Publisher, producer: KafkaProducer, topic: str, key: bytes, value: bytes
    ) -> None:
        self.publisher, self.producer = publisher, producer
        self.topic, self.key, self.value = topic, key, value
        self.event_id = ""

    def ok(self, metadata: RecordMetadata) -> None:
        self.publisher._direct_delivered(self, metadata)

    def fail(self, exc: BaseException) -> None:
        self.publisher._direct_failed(self, exc)


class Publisher:
    """Publishes contract events to Kafka, spooling to disk when Kafka is unreachable.

    See the module docstring for the contract. Use as a context manager, or call ``close()``.
    """

    def __init__(self, config: PublisherConfig, on_delivery: DeliveryCallback | None = None):
        self.config = config
        self._topics = config.topics
        self._known: Container[str] = (
            _Anything() if config.known_agencies is None else config.known_agencies
        )
        self._on_delivery = on_delivery
        self._spool = Spool(config.spool_dir, segment_bytes=config.segment_bytes)
        self._lock = threading.Lock()
        self._drain_cv = threading.Condition(self._lock)  # wakes the drainer
        self._idle_cv = threading.Condition(self._lock)  # wakes flush() / drain() waiters
        self._producer: KafkaProducer | None = None
        self._direct = False  # publish() may hand records straight to self._producer
        self._broken = False  # the current producer failed; the drainer replaces it
        self._kick = False  # cut the drainer's backoff short
        self._stopping = False
        self._closed = False  # no more publish()
        self._shut = False  # close() has finished
        self._verified: set[str] = set()
        self._outage_since: float | None = None
        self._outage_logged = 0.0
        self._in_flight = 0
        self._accepted = self._refused = self._sent = 0
        self._delivered = self._spooled = self._failed = 0
        self._required = (self._topics.inspections, self._topics.services)
        if self._spool.pending == 0:
            # Connect now, so that the first events go straight to Kafka; if the broker is not
            # there, events go to the spool and the drainer keeps trying.
            try:
                self._producer = self._connect()
                self._direct = True
            except (KafkaError, TopicMissing) as exc:
                self._outage(exc)
            except BaseException:
                self._spool.close()
                raise
        self._drainer = threading.Thread(
            target=self._drain_loop, name="parwatch-publisher-drainer", daemon=True
        )
        self._drainer.start()

    # -- publishing ----------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        """Validate, key and send ``event`` (a JSON object as a dict, a pydantic event model,
        or the serialised JSON bytes). Raises ``PublishError`` if the contract refuses it."""
        topic, key, value, event_id = self._prepare(event)
        if self._closed:
            raise PublisherClosed("publish() after close()")
        producer = self._producer
        if self._direct and producer is not None:
            pending = _Pending(self, producer, topic, key, value)
            pending.event_id = event_id
            with self._lock:
                self._in_flight += 1
                self._accepted += 1
                self._sent += 1
            try:
                future = producer.send(topic, value=value, key=key)
            except KafkaError as exc:
                with self._lock:
                    self._in_flight -= 1
                    self._accepted -= 1
                    self._sent -= 1
                self._send_raised(producer, exc)
            else:
                future.add_callback(pending.ok)
                future.add_errback(pending.fail)
                return
        with self._lock:
            self._spool.append((SpoolRecord(topic, key, value),))
            self._spooled += 1
            self._accepted += 1
            if self._direct:  # switched to direct after our check: drain this one first
                self._direct = False
            self._drain_cv.notify()

    def _prepare(self, event: Event) -> tuple[str, bytes, bytes, str]:
        """The exact bytes to send, validated: (topic, key, value, event_id)."""
        if isinstance(event, bytes | bytearray | memoryview):
            raw = _nfc_bytes(bytes(event))
        elif isinstance(event, BaseModel):
            raw = _nfc(event.model_dump_json(by_alias=True, exclude_unset=True)).encode()
        elif isinstance(event, Mapping):
            try:
                text = json.dumps(
                    event if isinstance(event, dict) else dict(event),
                    ensure_ascii=False,
                    allow_nan=False,
                    separators=(",", ":"),
                )
            except (TypeError, ValueError) as exc:
                raise self._refuse(
                    InvalidEvent(Reason.MALFORMED_JSON, f"not serialisable as JSON: {exc}")
                ) from None
            raw = _nfc(text).encode()
        else:
            raise TypeError(f"cannot publish a {type(event).__name__}: pass a dict, model or bytes")
        if len(raw) > self.config.max_event_bytes:
            raise self._refuse(
                InvalidEvent(
                    Reason.INVALID_EVENT,
                    f"event of {len(raw)} bytes exceeds {self.config.max_event_bytes} bytes",
                )
            )
        valid = self._validate(raw, datetime.now(UTC))
        topic = self._topics.for_schema(valid.schema_version)
        return topic, valid.key.encode(), raw, str(valid.event_id)

    def _validate(self, raw: bytes, now: datetime) -> LatestEvent:
        """``schemas.decode(raw)``, with a fast path for the common case.

        The fast path accepts only what ``decode`` accepts: a payload the models accept, with no
        unnamed field (so no personal data can hide in one), a known agency and a timestamp
        within the skew. Everything else, refusals included, goes through ``decode`` itself,
        which stays the one definition of the contract.
        """
        try:
            event = EVENT_ADAPTER.validate_json(raw)
        except ValidationError:
            event = None
        if (
            event is None
            or _has_extra(event)
            or event.agency_code not in self._known
            or event.occurred_at - now > MAX_FUTURE_SKEW
        ):
            try:
                return decode(raw, known_agency=self._known, now=now)
            except InvalidEvent as invalid:
                raise self._refuse(invalid) from None
        return upgrade(event)

    def _refuse(self, invalid: InvalidEvent) -> PublishError:
        with self._lock:
            self._refused += 1
        return PublishError(invalid)

    # -- callbacks of direct sends (kafka-python's sender thread) -------------------------

    def _direct_delivered(self, pending: _Pending, metadata: RecordMetadata) -> None:
        with self._lock:
            self._delivered += 1
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle_cv.notify_all()
        if self._on_delivery is not None:
            self._notify(pending.event_id, metadata, None)

    def _direct_failed(self, pending: _Pending, exc: BaseException) -> None:
        with self._lock:
            try:
                self._spool.append((SpoolRecord(pending.topic, pending.key, pending.value),))
                self._spooled += 1
            except OSError as disk:  # nowhere left to keep it: say so, loudly and precisely
                log.critical(
                    "event %s LOST: its send failed and the spool refused it (%s)",
                    pending.event_id,
                    disk,
                )
            self._failed += 1
            self._in_flight -= 1
            if pending.producer is self._producer and not self._broken:
                log.warning("send failed (%s); spooling until Kafka is back", _why(exc))
                self._broken = True
            self._direct = False  # the spool holds something now: it goes first
            self._drain_cv.notify()
            if self._in_flight == 0:
                self._idle_cv.notify_all()
        if self._on_delivery is not None:
            self._notify(pending.event_id, None, exc)

    def _send_raised(self, producer: KafkaProducer, exc: KafkaError) -> None:
        with self._lock:
            self._failed += 1
            if producer is self._producer:
                log.warning("send failed (%s); spooling until Kafka is back", _why(exc))
                self._broken = True
                self._direct = False
                self._drain_cv.notify()

    def _notify(self, event_id: str, md: RecordMetadata | None, exc: BaseException | None) -> None:
        assert self._on_delivery is not None
        try:
            self._on_delivery(event_id, md, exc)
        except Exception:  # the caller's callback must not break delivery bookkeeping
            log.exception("on_delivery callback raised")

    # -- flushing and closing ------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Block until every event accepted so far is delivered or durably spooled (fsync).

        Raises ``TimeoutError`` if that takes longer than ``timeout`` seconds. Without a
        timeout it returns within about ``delivery_timeout_s``, broker or no broker.
        """
        if self._shut:
            return  # close() flushed everything there was
        deadline = None if timeout is None else time.monotonic() + timeout
        producer = self._producer
        if producer is not None:
            # Timed out, or replaced meanwhile: the in-flight count decides below.
            with contextlib.suppress(KafkaError):
                producer.flush(timeout=_remaining(deadline))
        with self._lock:
            done = self._idle_cv.wait_for(lambda: self._in_flight == 0, _remaining(deadline))
            in_flight = self._in_flight
        self._spool.sync()
        if not done:
            raise TimeoutError(f"{in_flight} events still in flight after {timeout} s")

    def drain(self, timeout: float | None = None) -> bool:
        """Flush, then wait until the spool is empty and sends are direct again (the broker is
        back and has everything), or ``timeout`` runs out. Returns True if drained."""
        if self._shut:
            return self._spool.pending == 0
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self.flush(timeout)
        except TimeoutError:
            return False
        with self._lock:
            self._kick = True
            self._drain_cv.notify()
            return self._idle_cv.wait_for(
                lambda: self._direct and self._spool.pending == 0 and self._in_flight == 0,
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
        with self._lock:
            self._stopping = True
            self._drain_cv.notify()
        self._drainer.join()
        producer, self._producer = self._producer, None
        if producer is not None:
            self._retire(producer)
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
        with self._lock:
            return PublisherStats(
                accepted=self._accepted,
                refused=self._refused,
                sent=self._sent,
                delivered=self._delivered,
                spooled=self._spooled,
                failed=self._failed,
                in_flight=self._in_flight,
                spool_pending=self._spool.pending,
                direct=self._direct,
                connected=self._producer is not None,
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

    # -- the drainer ---------------------------------------------------------------------

    def _drain_loop(self) -> None:
        backoff = self.config.retry_backoff_s
        while not self._stopping:
            try:
                backoff = self._drain_step(backoff)
            except Exception:  # the thread's boundary: a bug or a disk error must not end it
                log.exception("spool drainer failed; retrying in %.2f s", backoff)
                with self._lock:
                    self._broken = self._producer is not None
                self._backoff(backoff)
                backoff = min(backoff * 2, self.config.retry_backoff_max_s)

    def _drain_step(self, backoff: float) -> float:
        """One round of the drainer: replace a failed producer, connect, send one batch.
        Returns the backoff for the next failure."""
        with self._lock:
            self._drain_cv.wait_for(lambda: self._stopping or self._broken or not self._direct)
            if self._stopping:
                return backoff
            retired = None
            if self._broken:
                self._broken = False
                self._direct = False
                retired, self._producer = self._producer, None
        if retired is not None:
            self._retire(retired)  # its failed records land in the spool meanwhile
        producer = self._producer
        if producer is None:
            try:
                producer = self._connect()
            except (KafkaError, TopicMissing) as exc:
                self._outage(exc)
                self._backoff(backoff)
                return min(backoff * 2, self.config.retry_backoff_max_s)
            with self._lock:
                self._producer = producer
            log.info("connected to Kafka; %d spooled events to send", self._spool.pending)
            self._outage_since = None
        if self._drain_batch(producer):
            return self.config.retry_backoff_s
        with self._lock:
            self._broken = True
        self._backoff(backoff)
        return min(backoff * 2, self.config.retry_backoff_max_s)

    def _outage(self, exc: BaseException) -> None:
        """Log a failed connection: a warning at the start of an outage and every minute of it
        (a wrong setting looks like an outage too), debug in between."""
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = self._outage_logged = now
            log.warning("Kafka not reachable (%s); events go to the spool", _why(exc))
        elif now - self._outage_logged >= 60:
            self._outage_logged = now
            log.warning(
                "Kafka not reachable for %.0f s (%s); %d events wait in the spool",
                now - self._outage_since,
                _why(exc),
                self._spool.pending,
            )
        else:
            log.debug("Kafka still not reachable: %s", _why(exc))

    def _drain_batch(self, producer: KafkaProducer) -> bool:
        """Send the oldest spooled records, wait for Kafka, acknowledge the delivered prefix.
        Returns False if anything failed (the rest stays in the spool)."""
        records = self._spool.peek(self.config.drain_batch)
        if not records:
            with self._lock:
                if self._spool.pending == 0 and not self._broken and not self._stopping:
                    if not self._direct:
                        log.info("spool drained; sending directly")
                    self._direct = True
                    self._idle_cv.notify_all()
            return True
        unknown = {r.topic for r in records} - self._verified
        if unknown:
            try:
                self._verify_topics(producer, unknown)
            except (KafkaError, TopicMissing) as exc:
                log.error("cannot send spooled events: %s", _why(exc))
                return False
        futures = []
        error: BaseException | None = None
        for record in records:
            try:
                futures.append(producer.send(record.topic, value=record.value, key=record.key))
            except KafkaError as exc:
                error = exc
                break
        try:
            producer.flush(timeout=self.config.delivery_timeout_s + self.config.request_timeout_s)
        except KafkaError as exc:
            error = error or exc
        delivered = [f.succeeded() for f in futures]
        prefix = delivered.index(False) if False in delivered else len(delivered)
        self._spool.ack(prefix)
        ok = sum(delivered)
        with self._lock:
            self._sent += len(futures)
            self._delivered += ok
            self._failed += len(records) - ok
        if self._on_delivery is not None:
            for i, record in enumerate(records):
                future = futures[i] if i < len(futures) else None
                if future is not None and future.succeeded():
                    self._notify(_event_id_of(record.value), future.value, None)
                else:
                    cause = future.exception if future is not None else None
                    self._notify(_event_id_of(record.value), None, cause or error or TimeoutError())
        if prefix < len(records):
            first = next((f.exception for f in futures if f.exception is not None), error)
            log.warning(
                "sending spooled events failed (%s); %d left", _why(first), self._spool.pending
            )
            return False
        return True

    def _backoff(self, seconds: float) -> None:
        with self._lock:
            self._drain_cv.wait_for(lambda: self._stopping or self._kick, seconds)
            self._kick = False

    # -- connections ---------------------------------------------------------------------

    def _connect(self) -> KafkaProducer:
        """A fresh producer whose topics exist and whose metadata is loaded. Raises KafkaError
        (broker unreachable) or TopicMissing."""
        self._check_topics_exist(self._required)
        producer = KafkaProducer(**self._producer_options())
        try:
            for topic in self._required:
                producer.partitions_for(topic)
        except KafkaError:
            self._retire(producer)
            raise
        self._verified = set(self._required)
        return producer

    def _verify_topics(self, producer: KafkaProducer, topics: set[str]) -> None:
        self._check_topics_exist(topics)
        for topic in topics:
            producer.partitions_for(topic)
        self._verified |= topics

    def _check_topics_exist(self, topics: tuple[str, ...] | set[str]) -> None:
        # A metadata request for *all* topics, which never creates one (a request naming a
        # missing topic makes Tansu create it with 4 partitions, whatever the flag says).
        probe = KafkaConsumer(**self._probe_options())
        try:
            existing = probe.topics()
        finally:
            probe.close()
        missing = sorted(t for t in topics if t not in existing)
        if missing:
            raise TopicMissing(
                f"topic(s) {', '.join(missing)} do not exist; create them with their partition "
                "counts (the publisher never creates topics)"
            )

    def _common_options(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "bootstrap_servers": cfg.bootstrap,
            "client_id": cfg.client_id,
            "request_timeout_ms": int(cfg.request_timeout_s * 1000),
            "bootstrap_timeout_ms": int(cfg.connect_timeout_s * 1000),
        }

    def _producer_options(self) -> dict[str, Any]:
        cfg = self.config
        options: dict[str, Any] = {"reconnect_backoff_max_ms": 1000}
        options.update(cfg.kafka_options)
        options.update(self._common_options())
        options.update(
            enable_idempotence=True,
            acks="all",
            linger_ms=cfg.linger_ms,
            batch_size=cfg.batch_size,
            allow_auto_create_topics=False,
            max_block_ms=int(cfg.connect_timeout_s * 1000),
            delivery_timeout_ms=int(cfg.delivery_timeout_s * 1000),
        )
        return options

    def _probe_options(self) -> dict[str, Any]:
        accepted = KafkaConsumer.DEFAULT_CONFIG
        options: dict[str, Any] = {"reconnect_backoff_max_ms": 1000}
        options.update((k, v) for k, v in self.config.kafka_options.items() if k in accepted)
        options.update(self._common_options())
        options.update(group_id=None, enable_auto_commit=False, allow_auto_create_topics=False)
        return options

    def _retire(self, producer: KafkaProducer) -> None:
        """Let a producer finish (its failures go to the spool through the errback), close it."""
        try:
            producer.flush(timeout=self.config.delivery_timeout_s + self.config.request_timeout_s)
        except KafkaError as exc:
            log.debug("flushing a retired producer: %s", _why(exc))
        try:
            producer.close(timeout=1.0)
        except KafkaError as exc:
            log.debug("closing a retired producer: %s", _why(exc))


_NESTED: dict[type[BaseModel], tuple[str, ...]] = {}


def _nested_fields(cls: type[BaseModel]) -> tuple[str, ...]:
    """Names of the fields of ``cls`` that may hold a nested model (cached per class)."""
    names = _NESTED.get(cls)
    if names is None:
        names = tuple(
            name
            for name, info in cls.model_fields.items()
            if any(
                isinstance(arg, type) and issubclass(arg, BaseModel)
                for arg in getattr(info.annotation, "__args__", (info.annotation,))
            )
        )
        _NESTED[cls] = names
    return names


def _has_extra(model: BaseModel) -> bool:
    """Whether ``model`` or a model nested in it holds fields the contract does not name."""
    if model.__pydantic_extra__:
        return True
    for name in _nested_fields(type(model)):
        value = getattr(model, name)
        if isinstance(value, BaseModel) and _has_extra(value):
            return True
    return False


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _why(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text, name = str(exc), type(exc).__name__
    return (text if text.startswith(name) else f"{name}: {text}")[:300]


def _event_id_of(value: bytes) -> str:
    try:
        event_id = json.loads(value).get("event_id")
    except (ValueError, AttributeError):
        return ""
    return event_id if isinstance(event_id, str) else ""
