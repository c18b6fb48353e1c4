"""The worker's bounded state cache drops only states whose rows are all in the warehouse."""

from __future__ import annotations

from streams.worker.state_cache import StateCache


def test_trim_keeps_buffered_and_in_flight_states() -> None:
    cache = StateCache(capacity=2)
    for key in ("a", "b", "c"):
        cache[key] = key.upper()  # buffered
    assert cache.trim() == 0  # all three have rows not yet written
    cache.write_started()  # a, b, c are being written
    cache["d"] = "D"  # buffered
    assert cache.trim() == 0
    cache.write_done()  # a, b, c are in the warehouse now
    assert cache.trim() == 2  # over capacity by 2: the oldest written ones go
    assert sorted(cache) == ["c", "d"]
    cache["c"] = "C2"  # a change moves it to the end and pins it again
    cache.write_started()
    cache.write_done()
    cache["e"] = "E"
    assert cache.trim() == 1
    assert sorted(cache) == ["c", "e"]
    assert cache.get("zzz") is None and cache.get("e") == "E"
