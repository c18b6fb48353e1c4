"""The publisher's public vocabulary: its settings, its counters, its errors, its callback type.

Contract:

* Values only: ``PublisherConfig`` and ``PublisherStats`` are frozen, so they may be shared
  between threads; nothing here does I/O or keeps state.
* ``PublisherConfig`` checks itself when it is built and raises ``ValueError`` for a
  ``kafka_options`` key the SDK owns (``RESERVED_KAFKA_OPTIONS``) or kafka-python does not know,
  and for a delivery timeout shorter than linger plus one request.
* Errors: ``PublishError`` (the event breaks the contract; it was not sent and must not be
  retried as it is; ``publish_many`` returns them as ``Refusal`` values), ``PublisherClosed``
  (``publish`` after ``close``: a programming error),
  ``TopicMissing`` (an outage to retry: events wait in the spool until the topic exists).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from kafka import KafkaProducer
from kafka.producer.future import RecordMetadata

from producers.errors import ProducerError
from producers.sdk.spool import DEFAULT_SEGMENT_BYTES
from schemas import InvalidEvent, Reason, RetryableError
from schemas.signing import SigningKey
from schemas.topics import Topics

DeliveryCallback = Callable[[str, RecordMetadata | None, BaseException | None], None]
"""``on_delivery(event_id, metadata, error)``: ``metadata`` when Kafka acknowledged the record;
``error`` when one attempt failed (the event is then in the spool and will be sent again)."""

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
    drain_batch: int = 500
    """Spooled records sent at a time: a crash while the spool is delivered sends at most this
    many records twice (see ``drainer``)."""
    close_timeout_s: float = 10.0
    """How long ``close()`` keeps trying to deliver the spool (what is left stays on disk)."""
    max_event_bytes: int = 1_000_000
    segment_bytes: int = DEFAULT_SEGMENT_BYTES
    signing_key: SigningKey | None = field(default=None, repr=False)
    """The agency's key: every message then carries ``parwatch-key-id`` and
    ``parwatch-signature`` headers (``schemas/SIGNING.md``), kept in the spool with it, and an
    event of another agency is refused (``bad_signature``)."""

    def __post_init__(self) -> None:
        reserved = sorted(RESERVED_KAFKA_OPTIONS.intersection(self.kafka_options))
        if reserved:
            raise ValueError(f"kafka_options may not set {', '.join(reserved)}")
        unknown = sorted(set(self.kafka_options) - set(KafkaProducer.DEFAULT_CONFIG))
        if unknown:
            raise ValueError(f"kafka_options holds unknown kafka-python settings: {unknown}")
        if self.delivery_timeout_s * 1000 < self.linger_ms + self.request_timeout_s * 1000:
            raise ValueError("delivery_timeout_s must be at least linger + request_timeout_s")


class PublishError(ProducerError, ValueError):
    """The event breaks the contract and was not sent. ``invalid`` says why (reason, errors)."""

    def __init__(self, invalid: InvalidEvent) -> None:
        super().__init__(str(invalid))
        self.invalid = invalid

    @property
    def reason(self) -> Reason:
        return self.invalid.reason


class Refusal(NamedTuple):
    """An event that ``publish_many`` refused: its position in the events given (from 0) and
    why (the ``PublishError`` that ``publish`` would have raised). It was not sent."""

    position: int
    error: PublishError


class PublisherClosed(ProducerError, RuntimeError):
    """``publish`` after ``close``."""


class TopicMissing(ProducerError, RetryableError):
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
