"""The worker's Prometheus metrics: what operators watch and alert on (deploy/prometheus/).

Every metric, once (names and label values are closed sets; STYLE.md 13). "Durable": the rows
are written and the offsets committed.

Counters:
- ``parwatch_messages_total{topic, result}``: messages made durable; ``result`` is ``accepted``,
  ``redelivered`` (read again after a crash or rebalance), ``duplicate``, ``refused`` or
  ``forwarded``.
- ``parwatch_events_forwarded_total{topic}``: valid events read on another partition than the
  one their entity key maps to (murmur2, EVENTS.md Transport), produced to that partition (and
  acknowledged) instead of being processed where read; they are processed, and counted again,
  there. Above 0: a publisher uses another partitioner (librdkafka's crc32 default).
- ``parwatch_refused_total{topic, reason}``: refused messages made durable, by ``Reason``.
- ``parwatch_agency_messages_total{agency}``: messages made durable, by the ``agency_code``
  they carry (``unknown``: none, or not in the catalog).
- ``parwatch_agency_refused_total{agency}``: refused messages made durable, same labels.
- ``parwatch_rows_written_total{table}``: rows written to the warehouse (a classifier's: rows
  published to the rows topic).
- ``parwatch_warehouse_retries_total``: warehouse calls that failed and are being retried.
- ``parwatch_state_lookups_total{outcome}``: entity states for valid events: ``cached`` (in
  memory), ``restored`` (read from the warehouse), ``new`` (certainly not there). Restored and
  new count entities once a batch; cached, the batch's other valid events.

Histograms:
- ``parwatch_flush_duration_seconds``: one write: insert (or publish), dead letters
  acknowledged, offsets committed.
- ``parwatch_flush_messages``: messages per write (the batch size).

Gauges:
- ``parwatch_last_flush_timestamp_seconds``: when the last write was committed (epoch s).
- ``parwatch_last_accepted_timestamp_seconds``: when the last write that held accepted events
  was committed (how fresh the KPIs are).
- ``parwatch_warehouse_down``: 1 while warehouse calls fail (partitions paused), else 0.
- ``parwatch_assigned_partitions``: partitions this worker owns.
- ``parwatch_committed_offset{topic, partition}``: the next offset to read, as last committed.
- ``parwatch_end_offset{topic, partition}``: the broker's end offset, read every 10 s.
- ``parwatch_consumer_lag{topic, partition}``: end offset minus committed offset (>= 0).
- ``parwatch_state_cache_entities``: entity states held in memory.
- ``parwatch_decoder_inline_share``: share of each batch decoded in the worker's own process
  (the rest goes to the decoding process).
- ``parwatch_catalog_version``: the agency catalog's version, its files' newest modification
  time (epoch s); ``parwatch_catalog_agencies``: agencies in it.
- ``parwatch_build_info{version, python, role}``: always 1.

plus the client library's ``process_*`` metrics (CPU, memory, file descriptors, start time).

Cost: nothing here runs per event. The engine gathers a batch's counts in a ``Tally`` (per
partition group, per refusal, and one counting pass over the batch in C), and ``flushed`` adds
them to the counters once per write; the gauges that describe state are sampled by
``metrics_watch`` once a second. The end offsets (and so the lag) come from the broker: Tansu,
the embedded broker, reports them too low (README), so its lag is not to be trusted.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, Info
from prometheus_client import Counter as PromCounter
from prometheus_client.process_collector import ProcessCollector

from schemas.errors import Reason
from streams.warehouse.writer import TABLE_ORDER
from streams.worker.processor import Result

RESULTS = tuple(r.value for r in Result)
REASONS = tuple(r.value for r in Reason)
TABLES = TABLE_ORDER
LOOKUPS = ("cached", "restored", "new")
UNKNOWN_AGENCY = "unknown"
FLUSH_SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
FLUSH_MESSAGES_BUCKETS = (1, 10, 100, 500, 1_000, 2_500, 5_000, 10_000, 20_000, 50_000, 100_000)


@dataclass
class Tally:
    """One batch's contribution to the counters, gathered while it is applied (by partition
    group, by refusal, by one counting pass) and added once it is durable (``flushed``)."""

    by_topic: defaultdict[str, defaultdict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )  # topic -> result value -> messages
    refusals: defaultdict[tuple[str, str, str | None], int] = field(
        default_factory=lambda: defaultdict(int)
    )  # (topic, reason, agency_code) -> messages
    agencies: Counter[str | None] = field(default_factory=Counter)  # agency_code -> messages
    restored: int = 0  # entity states read from the warehouse
    new: int = 0  # entity states certainly not in the warehouse

    def results(self) -> dict[str, int]:
        """Messages by result value, over every topic."""
        out: dict[str, int] = defaultdict(int)
        for by_result in self.by_topic.values():
            for result, n in by_result.items():
                out[result] += n
        return out

    def refused(self, topic: str, reason: str, agency: str | None) -> None:
        self.refusals[(topic, reason, agency)] += 1

    def looked_up(self, restored: int, new: int) -> None:
        self.restored += restored
        self.new += new


class WorkerMetrics:
    """The metrics of one worker process, in a registry of their own (never the library's
    global one: tests build several). Thread-safe: the metrics endpoint's threads read while
    the event loop writes. ``topics`` and ``known_agencies()`` bound the label values; an agency
    code outside the catalog counts as ``unknown``."""

    def __init__(
        self,
        *,
        topics: Iterable[str],
        known_agencies: Callable[[], frozenset[str]],
        version: str,
        role: str,
        python: str,
        process_metrics: bool = True,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        if process_metrics:
            ProcessCollector(registry=self.registry)
        self.topics = tuple(topics)
        self.known_agencies = known_agencies
        r = self.registry
        self.messages = PromCounter(
            "parwatch_messages_total", "Messages made durable, by result.",
            ["topic", "result"], registry=r,
        )  # fmt: skip
        self.forwarded = PromCounter(
            "parwatch_events_forwarded_total",
            "Events produced to their key's partition instead of processed where read.",
            ["topic"], registry=r,
        )  # fmt: skip
        self.refused_ = PromCounter(
            "parwatch_refused_total", "Refused messages made durable, by reason.",
            ["topic", "reason"], registry=r,
        )  # fmt: skip
        self.agency_messages = PromCounter(
            "parwatch_agency_messages_total", "Messages made durable, by agency_code.",
            ["agency"], registry=r,
        )  # fmt: skip
        self.agency_refused = PromCounter(
            "parwatch_agency_refused_total", "Refused messages made durable, by agency_code.",
            ["agency"], registry=r,
        )  # fmt: skip
        self.rows = PromCounter(
            "parwatch_rows_written_total", "Rows written, by table.", ["table"], registry=r
        )
        self.flush_seconds = Histogram(
            "parwatch_flush_duration_seconds", "One write: insert, dead letters, commit.",
            buckets=FLUSH_SECONDS_BUCKETS, registry=r,
        )  # fmt: skip
        self.flush_messages = Histogram(
            "parwatch_flush_messages", "Messages per write.",
            buckets=FLUSH_MESSAGES_BUCKETS, registry=r,
        )  # fmt: skip
        self.last_flush = Gauge(
            "parwatch_last_flush_timestamp_seconds", "When the last write was committed.",
            registry=r,
        )  # fmt: skip
        self.last_accepted = Gauge(
            "parwatch_last_accepted_timestamp_seconds",
            "When the last write with accepted events was committed.", registry=r,
        )  # fmt: skip
        self.retries = PromCounter(
            "parwatch_warehouse_retries_total", "Warehouse calls failed and retried.", registry=r
        )
        self.warehouse_down = Gauge(
            "parwatch_warehouse_down", "1 while warehouse calls fail, else 0.", registry=r
        )
        self.assigned = Gauge(
            "parwatch_assigned_partitions", "Partitions this worker owns.", registry=r
        )
        self.committed = Gauge(
            "parwatch_committed_offset", "Next offset to read, as last committed.",
            ["topic", "partition"], registry=r,
        )  # fmt: skip
        self.end = Gauge(
            "parwatch_end_offset", "The broker's end offset (high watermark).",
            ["topic", "partition"], registry=r,
        )  # fmt: skip
        self.lag = Gauge(
            "parwatch_consumer_lag", "End offset minus committed offset.",
            ["topic", "partition"], registry=r,
        )  # fmt: skip
        self.lookups = PromCounter(
            "parwatch_state_lookups_total", "Entity states for valid events, by where found.",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.cache_entities = Gauge(
            "parwatch_state_cache_entities", "Entity states held in memory.", registry=r
        )
        self.inline_share = Gauge(
            "parwatch_decoder_inline_share", "Share of a batch decoded in the worker's process.",
            registry=r,
        )  # fmt: skip
        self.catalog_version = Gauge(
            "parwatch_catalog_version", "Agency catalog version (files' newest mtime).", registry=r
        )
        self.catalog_agencies = Gauge(
            "parwatch_catalog_agencies", "Agencies in the loaded catalog.", registry=r
        )
        Info("parwatch_build", "The worker's build.", registry=r).info(
            {"version": version, "python": python, "role": role}
        )
        # Every series of a closed label set exists from the start, at 0: an alert on
        # ``increase(...) == 0`` needs a series to compare, and a rate needs a first sample.
        for topic in self.topics:
            self.forwarded.labels(topic)
            for result in RESULTS:
                self.messages.labels(topic, result)
            for reason in REASONS:
                self.refused_.labels(topic, reason)
        for table in TABLES:
            self.rows.labels(table)
        for outcome in LOOKUPS:
            self.lookups.labels(outcome)
        self._agencies: frozenset[str] = frozenset()
        self._agency_labels()
        self.offsets: dict[tuple[str, int], int] = {}  # (topic, partition) -> committed

    def _agency_labels(self) -> frozenset[str]:
        """The catalog's codes (their series created at 0 when new, e.g. after a reload)."""
        codes = self.known_agencies()
        if codes is not self._agencies and codes != self._agencies:
            for code in (*sorted(codes - self._agencies), UNKNOWN_AGENCY):
                self.agency_messages.labels(code)
                self.agency_refused.labels(code)
        self._agencies = codes
        return codes

    def flushed(
        self,
        tally: Tally,
        messages: int,
        tables: Mapping[str, int],
        started: float,
        offsets: Mapping[Any, int],
    ) -> None:
        """Count one durable write: ``messages`` messages whose counts are ``tally``, ``tables``
        rows per table, begun at ``started`` (``time.monotonic()``), committing ``offsets``
        (aiokafka ``TopicPartition`` -> next offset). Called once per write, after the commit."""
        self.flush_seconds.observe(time.monotonic() - started)
        self.flush_messages.observe(messages)
        refused = accepted = forwarded = 0
        for topic, by_result in tally.by_topic.items():
            for result, n in by_result.items():
                self.messages.labels(topic, result).inc(n)
                if result == "refused":
                    refused += n
                elif result == "accepted":
                    accepted += n
                elif result == "forwarded":
                    forwarded += n
                    self.forwarded.labels(topic).inc(n)
        codes = self._agency_labels()
        for (topic, reason, agency), n in tally.refusals.items():
            self.refused_.labels(topic, reason).inc(n)
            self.agency_refused.labels(agency if agency in codes else UNKNOWN_AGENCY).inc(n)
        for agency, n in tally.agencies.items():
            self.agency_messages.labels(agency if agency in codes else UNKNOWN_AGENCY).inc(n)
        for table, n in tables.items():
            if n:
                self.rows.labels(table).inc(n)
        if tally.by_topic:
            valid = messages - refused - forwarded  # forwarded ones are looked up where they go
            self.lookups.labels("restored").inc(tally.restored)
            self.lookups.labels("new").inc(tally.new)
            self.lookups.labels("cached").inc(max(0, valid - tally.restored - tally.new))
        for tp, offset in offsets.items():
            self.offsets[(tp.topic, tp.partition)] = offset
            self.committed.labels(tp.topic, str(tp.partition)).set(offset)
        now = time.time()
        self.last_flush.set(now)
        if accepted:
            self.last_accepted.set(now)

    def ends(self, ends: Mapping[tuple[str, int], int]) -> None:
        """The broker's end offsets of the owned partitions; the lag follows (never below 0)."""
        for (topic, partition), end in ends.items():
            self.end.labels(topic, str(partition)).set(end)
            done = self.offsets.get((topic, partition))
            if done is not None:
                self.lag.labels(topic, str(partition)).set(max(0, end - done))

    def owned(self, partitions: Iterable[tuple[str, int]]) -> None:
        """The partitions owned now: the per-partition series of the others go away."""
        keep = set(partitions)
        self.assigned.set(len(keep))
        for key in [k for k in self.offsets if k not in keep]:
            del self.offsets[key]
        for gauge in (self.committed, self.end, self.lag):
            for labels in list(_label_sets(gauge)):
                if (labels[0], int(labels[1])) not in keep:
                    gauge.remove(*labels)


def _label_sets(gauge: Gauge) -> list[tuple[str, ...]]:
    """The label values of a gauge's children (the client library has no public accessor)."""
    return [tuple(s.labels[n] for n in ("topic", "partition"))
            for m in gauge.collect() for s in m.samples]  # fmt: skip
