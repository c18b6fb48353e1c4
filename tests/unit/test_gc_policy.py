"""The worker's garbage guard: cyclic garbage is collected once the heap grew by a quarter."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator

import pytest

from parwatch.gc_policy import GarbageGuard


@pytest.fixture
def no_automatic_gc() -> Iterator[None]:
    """Only the guard collects (the automatic collector would hide whether it did)."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _cyclic_garbage(n: int) -> None:
    """``n`` objects that only the cyclic collector can free (each list holds itself)."""
    for _ in range(n):
        cycle: list[object] = []
        cycle.append(cycle)


def test_collects_cyclic_garbage_once_the_heap_grew_by_a_quarter(no_automatic_gc: None) -> None:
    guard = GarbageGuard(growth=0.25, min_blocks=50_000)
    start = guard.baseline
    assert guard.check() is False  # nothing grew yet

    _cyclic_garbage(max(60_000, start // 3))  # more than a quarter and more than min_blocks
    grown = sys.getallocatedblocks()
    assert grown - start >= max(60_000, start // 3)
    assert guard.check() is True
    assert guard.collections == 1
    # What was garbage is gone, and the baseline is what survived.
    assert sys.getallocatedblocks() < start + 10_000
    assert guard.baseline < start + 10_000
    assert guard.check() is False


def test_waits_below_the_thresholds(no_automatic_gc: None) -> None:
    guard = GarbageGuard(growth=0.25, min_blocks=10**9)  # min_blocks not reached
    _cyclic_garbage(100_000)
    assert guard.check() is False
    big = GarbageGuard(growth=100.0, min_blocks=0)  # growth not reached
    assert big.check() is False
    assert sys.getallocatedblocks() - guard.baseline >= 100_000  # the garbage is still there
    gc.collect()


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="growth must be positive"):
        GarbageGuard(growth=0)


def test_requires_python_stops_before_the_incremental_collector() -> None:
    """The thresholds were measured on 3.11 (three generations); 3.14 reads them differently."""
    import tomllib
    from pathlib import Path

    from packaging.specifiers import SpecifierSet

    from parwatch.gc_policy import THRESHOLDS_MEASURED_ON

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    spec = SpecifierSet(tomllib.loads(pyproject.read_text())["project"]["requires-python"])
    assert THRESHOLDS_MEASURED_ON == (3, 11)
    allowed = [v for v in ("3.10", "3.11", "3.12", "3.13.5", "3.14", "3.14.1") if v in spec]
    assert allowed == ["3.11", "3.12", "3.13.5"]
