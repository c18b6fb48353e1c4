"""Retry delays with decorrelated jitter, so that workers that lost the warehouse together do not
retry it together.

``Backoff.next()`` returns the next delay: ``min(max_s, uniform(initial_s, 3 * previous))``,
starting from ``previous = initial_s`` ("decorrelated jitter", AWS Architecture Blog,
"Exponential Backoff And Jitter"). Bounds: every delay is in ``[initial_s, max_s]`` and at most
three times the one before; the expected delay grows about 1.5x per retry until ``max_s``. The
random numbers come from the ``random.Random`` passed in (seed it in tests), never the module's
global generator. Not thread-safe: one ``Backoff`` per retry loop.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial_s: float, max_s: float, rng: random.Random) -> None:
        if not 0 < initial_s <= max_s:
            raise ValueError("backoff needs 0 < initial_s <= max_s")
        self.initial_s, self.max_s, self._rng = initial_s, max_s, rng
        self._previous = initial_s

    def next(self) -> float:
        """The delay before the next try, in seconds."""
        upper = max(self.initial_s, min(self.max_s, 3 * self._previous))
        self._previous = self._rng.uniform(self.initial_s, upper)
        return self._previous
