"""Entity states of the owned partitions, bounded; ``None`` marks "no events yet".

* Bounded: ``trim`` drops the oldest states whose rows are all in the warehouse (not in the
  buffer, not in the write in flight); a dropped state is rebuilt from the warehouse when its
  entity shows up again (``entity_states``).
* Order: the dict's order is the order of last change (a change re-inserts the key).
* The engines trim only between batches, never while a batch waits for states, so a state
  looked up for a batch stays until that batch is applied. Not thread-safe; never blocks.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any


class StateCache(MutableMapping[str, Any]):
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data: dict[str, Any] = {}
        self.dirty: set[str] = set()  # changed since the last write started: rows buffered
        self.flushing: set[str] = set()  # changed in the write in flight

    @property
    def entries(self) -> dict[str, Any]:
        """The states by key, to read (``in``, ``get``) without a Python call a lookup;
        changed only through the cache."""
        return self._data

    def write_started(self) -> None:
        self.flushing, self.dirty = self.dirty, set()

    def write_done(self) -> None:
        self.flushing = set()

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __contains__(self, key: object) -> bool:  # the mixin's goes through KeyError
        return key in self._data

    def get(self, key: str, default: Any = None) -> Any:  # the mixin's goes through KeyError
        return self._data.get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        self._data.pop(key, None)  # re-insert: the dict's order is the order of last change
        self._data[key] = value
        self.dirty.add(key)

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def load(self, states: dict[str, Any], wanted: set[str]) -> None:
        for key in wanted:
            self._data[key] = states.get(key)

    def trim(self) -> int:
        excess = len(self._data) - self.capacity
        if excess <= 0:
            return 0
        drop = []
        dirty, flushing = self.dirty, self.flushing
        want = excess + self.capacity // 10
        for key in self._data:
            if key not in dirty and key not in flushing:
                drop.append(key)
                if len(drop) >= want:
                    break
        for key in drop:
            del self._data[key]
        return len(drop)

    def clear(self) -> None:
        self._data.clear()
        self.dirty.clear()
        self.flushing = set()
