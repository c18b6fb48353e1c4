"""Warehouse retry delays: decorrelated jitter, bounded, from the generator passed in."""

from __future__ import annotations

import random

import pytest

from streams.worker.backoff import Backoff


def _delays(seed: int, n: int = 12, initial_s: float = 0.2, max_s: float = 10.0) -> list[float]:
    backoff = Backoff(initial_s, max_s, random.Random(seed))
    return [backoff.next() for _ in range(n)]


def test_delays_are_the_seeded_decorrelated_jitter_sequence() -> None:
    rng = random.Random(7)
    previous, expected = 0.2, []
    for _ in range(12):
        previous = rng.uniform(0.2, min(10.0, 3 * previous))
        expected.append(previous)
    assert _delays(7) == expected
    assert _delays(7) == _delays(7)


def test_delays_stay_within_bounds_and_grow_at_most_threefold() -> None:
    for seed in range(200):
        delays = _delays(seed, n=30)
        assert all(0.2 <= d <= 10.0 for d in delays)
        assert delays[0] <= 0.6
        assert all(b <= 3 * a for a, b in zip(delays, delays[1:], strict=False))


def test_workers_that_failed_together_do_not_retry_together() -> None:
    # 50 workers (own generators) on their 6th retry: delays spread, none in lockstep.
    sixth = [_delays(seed, n=6)[-1] for seed in range(50)]
    assert len({round(d, 3) for d in sixth}) == 50
    assert max(sixth) - min(sixth) > 2.0


def test_the_global_generator_is_not_used() -> None:
    random.seed(1)
    before = random.random()
    random.seed(1)
    _delays(3)
    assert random.random() == before


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(0, 1, random.Random(0))
    with pytest.raises(ValueError):
        Backoff(2, 1, random.Random(0))
