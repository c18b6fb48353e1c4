"""The publisher's connections to Kafka: producer settings, connecting, checking that topics
exist, logging outages, and retiring a producer.

Contract of ``Connector``:

* Settings: the SDK owns the ones its guarantees rest on (idempotence, ``acks=all``, no topic
  auto-creation, timeouts: see ``RESERVED_KAFKA_OPTIONS``); ``kafka_options`` adds the rest
  (security, compression...).
* Topics are never created. Existence is checked with a metadata request for *all* topics,
  because some brokers (Tansu among them) create a topic that a metadata request names,
  whatever ``allow_auto_create_topics`` says (with 4 partitions, and not compacted). A missing
  topic raises ``TopicMissing``: an outage to retry, like a ``KafkaError``.
* ``connect`` needs the inspection and service topics; the offerings topic (contract v2) is
  verified too when it exists, and otherwise on the first spooled offering (``verify``), so a
  publisher of dossier events runs where the offerings topic is not created yet. ``verified``
  holds the topics checked for the current producer: only records of those topics may be
  handed to it directly (a send to any other topic would name it in a metadata request and so
  create it). It is replaced, never changed in place, so any thread may read it.
* Blocking: ``connect`` and ``verify`` block for about ``connect_timeout_s`` per request at
  most; ``retire`` for up to ``delivery_timeout_s + request_timeout_s`` and one second more.
* ``outage`` logs a warning when an outage starts and every minute of it, debug in between; the
  next successful ``connect`` ends the outage.
* Thread safety: none, but for reading ``verified``. One thread at a time uses a
  ``Connector``: the publisher's constructor, then its drainer, then ``close`` once the drainer
  has stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

from producers.sdk.publisher_config import PublisherConfig, TopicMissing

# The whole SDK logs as producers.sdk.publisher, so logging set up for it covers every part of it.
log = logging.getLogger("producers.sdk.publisher")


class Connector:
    """Connects producers for one ``PublisherConfig``; see the module docstring."""

    def __init__(self, config: PublisherConfig) -> None:
        self.config = config
        self._required = (config.topics.inspections, config.topics.services)
        self._optional = (config.topics.offerings,)
        self.verified: frozenset[str] = frozenset()
        self._outage_since: float | None = None
        self._outage_logged = 0.0

    def connect(self) -> KafkaProducer:
        """A fresh producer whose topics exist and whose metadata is loaded. Raises KafkaError
        (broker unreachable) or TopicMissing."""
        existing = self._check_topics_exist(self._required)
        topics = self._required + tuple(t for t in self._optional if t in existing)
        self.verified = frozenset()
        producer = KafkaProducer(**self._producer_options())
        try:
            for topic in topics:
                producer.partitions_for(topic)
        except KafkaError:
            self.retire(producer)
            raise
        self.verified = frozenset(topics)
        self._outage_since = None
        return producer

    def verify(self, producer: KafkaProducer, topics: Iterable[str]) -> None:
        """Check that ``topics`` exist and load their metadata into ``producer`` (once per topic
        and connection). Raises KafkaError or TopicMissing."""
        unknown = set(topics) - self.verified
        if not unknown:
            return
        self._check_topics_exist(unknown)
        for topic in unknown:
            producer.partitions_for(topic)
        self.verified = self.verified | unknown

    def outage(self, exc: BaseException, spool_pending: int) -> None:
        """Log a failed connection: a warning at the start of an outage and every minute of it
        (a wrong setting looks like an outage too), debug in between."""
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = self._outage_logged = now
            log.warning("Kafka not reachable (%s); events go to the spool", describe(exc))
        elif now - self._outage_logged >= 60:
            self._outage_logged = now
            log.warning(
                "Kafka not reachable for %.0f s (%s); %d events wait in the spool",
                now - self._outage_since,
                describe(exc),
                spool_pending,
            )
        else:
            log.debug("Kafka still not reachable: %s", describe(exc))

    def retire(self, producer: KafkaProducer) -> None:
        """Let a producer finish (every send it took gets its answer), and close it."""
        try:
            producer.flush(timeout=self.config.delivery_timeout_s + self.config.request_timeout_s)
        except KafkaError as exc:
            log.debug("flushing a retired producer: %s", describe(exc))
        try:
            producer.close(timeout=1.0)
        except KafkaError as exc:
            log.debug("closing a retired producer: %s", describe(exc))

    def _check_topics_exist(self, topics: tuple[str, ...] | set[str]) -> set[str]:
        """Raise TopicMissing unless every one of ``topics`` exists; return all that exist."""
        # A metadata request for *all* topics, which never creates one (a request naming a
        # missing topic makes Tansu create it with 4 partitions, whatever the flag says).
        probe = KafkaConsumer(**self._probe_options())
        try:
            existing: set[str] = probe.topics()
        finally:
            probe.close()
        missing = sorted(t for t in topics if t not in existing)
        if missing:
            raise TopicMissing(
                f"topic(s) {', '.join(missing)} do not exist; create them with their partition "
                "counts (the publisher never creates topics)"
            )
        return existing

    def _common_options(self) -> dict[str, Any]:
        return common_options(self.config)

    def _producer_options(self) -> dict[str, Any]:
        return producer_options(self.config)

    def _probe_options(self) -> dict[str, Any]:
        accepted = KafkaConsumer.DEFAULT_CONFIG
        options: dict[str, Any] = {"reconnect_backoff_max_ms": 1000}
        options.update((k, v) for k, v in self.config.kafka_options.items() if k in accepted)
        options.update(self._common_options())
        options.update(group_id=None, enable_auto_commit=False, allow_auto_create_topics=False)
        return options


def describe(exc: BaseException | None) -> str:
    """A short description of ``exc`` for a log line (at most 300 characters)."""
    if exc is None:
        return "unknown error"
    text, name = str(exc), type(exc).__name__
    return (text if text.startswith(name) else f"{name}: {text}")[:300]


def common_options(cfg: PublisherConfig) -> dict[str, Any]:
    """The kafka-python options every client of the publisher shares (address, timeouts)."""
    return {
        "bootstrap_servers": cfg.bootstrap,
        "client_id": cfg.client_id,
        "request_timeout_ms": int(cfg.request_timeout_s * 1000),
        "bootstrap_timeout_ms": int(cfg.connect_timeout_s * 1000),
    }


def producer_options(cfg: PublisherConfig) -> dict[str, Any]:
    """The kafka-python producer options the SDK runs with: the caller's security options, then
    the settings its guarantees rest on (idempotence, ``acks=all``, no topic creation) and its
    linger, batch and timeouts. One definition, for the SDK and for whoever compares with it."""
    options: dict[str, Any] = {"reconnect_backoff_max_ms": 1000}
    options.update(cfg.kafka_options)
    options.update(common_options(cfg))
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
