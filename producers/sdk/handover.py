"""The hand-over of the publisher's direct sends to kafka-python, with backpressure measured on
kafka-python's own backlog.

kafka-python sends from its own thread (the sender), which needs the GIL to build and send
requests and to complete futures. A thread publishing in a tight loop holds the GIL but for the
moments Python forces a switch (every 5 ms), so the sender may get it late. How late depends on
the machine, so the hand-over watches what the sender has not taken yet, and gives it the GIL
when that shows it is behind.

Contract of ``Handover`` (one per kafka-python producer; any thread may call it):

* ``send(tp, topic, key, value, headers)`` puts a record where ``KafkaProducer.send(topic,
  value=value, key=key, headers=list(headers), partition=tp.partition)`` puts it: into
  kafka-python's record accumulator, behind the records sent before it to that partition, in
  the same batch, with the same future (``FutureRecordMetadata``). Ordering per partition,
  idempotence, retries, the delivery timeout, ``flush`` and ``close`` are kafka-python's own.
* What it skips are the checks ``send`` repeats for every record and the SDK has made once:
  key and value are bytes (the SDK owns the serialisers: ``RESERVED_KAFKA_OPTIONS``), the
  topic's metadata is loaded (``Connector``), the partition comes from the producer's metadata
  of the last second (``KeyPartitioner``), the producer is not transactional. That is about
  5 us a record on the bench machine. A partition that vanished within that second (a topic
  deleted and re-created smaller) is not re-checked: its records fail by the delivery timeout,
  are spooled and re-sent (``direct_sends``). With ``tp`` None (no metadata, or a partitioner
  in ``kafka_options``), or for a record that might not fit a request (``max_request_size``),
  it calls ``send`` itself, which checks and raises as usual.
* Waking the sender (a system call, and a hand-over of the GIL): when a record opens a new
  batch, unless the batch whose opening last woke it is still waiting in the accumulator (the
  sender then wakes by itself within ``linger_ms`` and takes both). ``send`` wakes it for every
  batch opened and for every record appended while a full batch waits: one system call a
  record just when the sender is behind. ``wakeups`` counts them.
* Backpressure: when a record opens a new batch, ``send`` counts the batches that are complete
  and not yet taken by the sender. When they fill a produce request (``max_request_size`` /
  ``batch_size`` of them), the sender is behind (starved of the GIL, or at its limit of
  requests in flight); the calling thread then releases the GIL until the oldest of them is
  answered, for at most ``linger_ms``. So a publishing thread runs at most about a request
  ahead of the sender, and never waits for the broker longer than linger per batch it opens.
  ``waits`` counts those waits.
* Raises ``KafkaError`` (``IllegalStateError``) once the producer is closed.
* Fallback: a producer without the internals this relies on (another kafka-python than the
  3.0 line the SDK is pinned to) gets ``send`` for every record; ``direct`` says which.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kafka import KafkaProducer
from kafka import __version__ as kafka_version
from kafka.producer.future import FutureRecordMetadata
from kafka.structs import TopicPartition

Headers = tuple[tuple[str, bytes], ...]

_RECORD_OVERHEAD = 128  # bytes a record adds to its key, value and headers, generously


class Handover:
    """Direct sends into one producer; see the module docstring."""

    def __init__(self, producer: KafkaProducer) -> None:
        self.producer = producer
        config = producer.config
        self.waits = 0
        self.wakeups = 0
        self._woken_for: Any = None  # the batch whose opening last woke the sender
        self._room = int(config["max_request_size"]) - _RECORD_OVERHEAD
        self._mark = max(1, int(config["max_request_size"]) // max(1, int(config["batch_size"])))
        self._linger_s = max(0.001, int(config["linger_ms"]) / 1000)
        internals = _internals(producer)
        self.direct = internals is not None
        if internals is not None:
            self._append, self._wakeup, self._batches = internals

    def send(
        self, tp: TopicPartition | None, topic: str, key: bytes, value: bytes, headers: Headers
    ) -> FutureRecordMetadata:
        """Hand one record to kafka-python (see the module docstring)."""
        size = len(value) + len(key)
        if headers:
            size += sum(len(name) + len(data) for name, data in headers)
        if tp is None or size > self._room or not self.direct:
            return self._send(tp, topic, key, value, headers)
        future, _, opened, _ = self._append(tp, None, key, value, headers)
        if opened:
            woken = self._woken_for  # taken, or failed by the delivery timeout: wake it
            if woken is None or woken.drained is not None or woken.produce_future.is_done:
                self.wakeups += 1
                self._wakeup()
                try:
                    self._woken_for = self._batches[tp][-1]
                except IndexError:  # the sender has taken it already
                    self._woken_for = None
            self._hold_back()
        return future

    def _send(
        self, tp: TopicPartition | None, topic: str, key: bytes, value: bytes, headers: Headers
    ) -> FutureRecordMetadata:
        header_list = list(headers) if headers else None
        if tp is not None:
            try:
                return self.producer.send(
                    topic, value=value, key=key, headers=header_list, partition=tp.partition
                )
            except ValueError:
                pass  # the topic shrank under our partition list: kafka-python chooses
        return self.producer.send(topic, value=value, key=key, headers=header_list)

    def _hold_back(self) -> None:
        """Wait (GIL released) while the sender is a request or more behind; see the module
        docstring."""
        waiting = 0
        oldest = None
        for queue in list(self._batches.values()):
            complete = len(queue) - 1
            if complete > 0:
                waiting += complete
                try:
                    first = queue[0]
                except IndexError:  # the sender took it meanwhile
                    continue
                if oldest is None or first.created < oldest.created:
                    oldest = first
        if waiting >= self._mark and oldest is not None:
            self.waits += 1
            oldest.produce_future.wait(self._linger_s)


_Internals = tuple[Callable[..., Any], Callable[[], None], dict[Any, Any]]


def _internals(producer: KafkaProducer) -> _Internals | None:
    """The accumulator's ``append``, the sender's ``wakeup`` and the accumulator's batches by
    partition, if this producer has them as kafka-python 3 does; None otherwise."""
    if not kafka_version.startswith("3."):
        return None
    accumulator = getattr(producer, "_accumulator", None)
    sender = getattr(producer, "_sender", None)
    append = getattr(accumulator, "append", None)
    wakeup = getattr(sender, "wakeup", None)
    batches = getattr(accumulator, "_batches", None)
    transactions = getattr(producer, "_transaction_manager", None)
    if append is None or wakeup is None or not isinstance(batches, dict):
        return None
    if transactions is not None and transactions.is_transactional():
        return None
    return append, wakeup, batches
