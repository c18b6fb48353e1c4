"""The worker's garbage-collector policy: young collections rare, full ones when the heap grew.

Why the worker tunes the collector at all: it keeps many long-lived objects (entity states,
buffered rows), and with CPython's default thresholds the collector rescanned them every few
thousand allocations (decode + classify ran at half speed). So ``parwatch worker`` freezes its
start-up objects and raises the young threshold to 100,000 (``configure``).

Why that alone is not enough: with those thresholds a full (oldest-generation) collection needs
about ten million net allocations, and ran once in 800,000 events. Anything that becomes garbage
inside a reference cycle after it reached the oldest generation then stays in memory. Measured
(``parwatch bench``, N = 200,000, before the worker decoded in a second process): a refused
event's exception kept its traceback, whose frames reached back to the batch being handled, so
every batch (each has a refusal) became cyclic garbage with its 20,000 Kafka records and
events. At 4N, 4.8 of 5.5 million Python blocks were such garbage, and RSS grew 744 -> 1,131
MiB. Any future cycle (a stored exception, a callback closing over its owner) would do the same.

``GarbageGuard`` bounds that garbage: ``check`` (one counter read) runs a full collection when
the allocated Python blocks grew by ``growth`` (a quarter) and by at least ``min_blocks`` since
the last full collection. Blocking: the collection runs in the calling thread (the event loop's),
and its time grows with the objects it walks. Measured (bench, N = 200,000, 2 cores): with the
cycle above, 25 collections of 0.1-1.7 s (millions of garbage objects each) kept RSS 645 -> 654
MiB; without it (the worker as it is), 4 collections of at most 0.11 s in the whole run.

Python versions: every figure above, and ``YOUNG_THRESHOLD``, was measured on CPython 3.11
(``THRESHOLDS_MEASURED_ON``); they hold for the three-generation collector of 3.11 to 3.13.
CPython 3.14's incremental collector has two generations and reads the thresholds differently
(the second value sets how fast the old generation is scanned, increment by increment; the third
is ignored), so ``pyproject.toml`` bounds ``requires-python`` to ``<3.14`` until they are
measured there.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from collections.abc import Callable

log = logging.getLogger("parwatch.gc")

YOUNG_THRESHOLD = 100_000
THRESHOLDS_MEASURED_ON = (3, 11)  # CPython version; valid up to 3.13 (module docstring)


def configure() -> None:
    """Freeze what start-up allocated (modules, catalogs) and make young collections rare."""
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 10, 10)


class GarbageGuard:
    """Full collections driven by heap growth (see the module docstring)."""

    def __init__(
        self,
        *,
        growth: float = 0.25,
        min_blocks: int = 500_000,
        blocks: Callable[[], int] = sys.getallocatedblocks,
        collect: Callable[[], int] = gc.collect,
    ) -> None:
        if growth <= 0 or min_blocks < 0:
            raise ValueError("growth must be positive and min_blocks not negative")
        self.growth, self.min_blocks = growth, min_blocks
        self._blocks, self._collect = blocks, collect
        self.baseline = blocks()
        self.collections = 0

    def due(self) -> bool:
        grown = self._blocks() - self.baseline
        return grown >= self.min_blocks and grown >= self.growth * self.baseline

    def check(self) -> bool:
        """Collect if due; return whether it did. The new baseline is what survived."""
        if not self.due():
            return False
        before, started = self._blocks(), time.perf_counter()
        found = self._collect()
        self.baseline = self._blocks()
        self.collections += 1
        log.debug(
            "full collection: %d unreachable objects, blocks %d -> %d, %.0f ms",
            found, before, self.baseline, (time.perf_counter() - started) * 1000,
        )  # fmt: skip
        return True

    async def run(self, interval_s: float = 1.0) -> None:
        """``check`` every ``interval_s`` on the running loop, until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            self.check()
