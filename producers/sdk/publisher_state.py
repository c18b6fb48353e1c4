"""The state a ``Publisher`` shares with its drainer thread and kafka-python's sender thread.

Contract:

* One lock guards every field. ``drain_cv`` (wakes the drainer) and ``idle_cv`` (wakes
  ``flush``/``drain`` waiters) are conditions on that lock; whoever changes what a waiter waits
  for notifies the matching condition while holding the lock.
* The one unlocked read: ``publish`` reads ``direct`` and ``producer`` (and the connector's
  ``verified`` topics) on its fast path. A stale value costs no event: the send then fails into
  the spool, or the event is spooled behind whatever the drainer is sending.
* Holding the lock, code does no network I/O and waits for nothing but these conditions
  (a spool ``append`` is one local ``write``).
"""

from __future__ import annotations

import threading

from kafka import KafkaProducer


class PublisherState:
    """Mode flags, the current producer and the counters of one ``Publisher``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.drain_cv = threading.Condition(self.lock)  # wakes the drainer
        self.idle_cv = threading.Condition(self.lock)  # wakes flush() / drain() waiters
        self.producer: KafkaProducer | None = None
        self.direct = False  # publish() may hand records straight to self.producer
        self.broken = False  # the current producer failed; the drainer replaces it
        self.kick = False  # cut the drainer's backoff short
        self.stopping = False  # the drainer is to stop
        self.accepted = self.refused = self.sent = 0
        self.delivered = self.spooled = self.failed = 0
