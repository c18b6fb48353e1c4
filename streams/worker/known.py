"""Which entities may have events in the warehouse: a Bloom filter, so that a new entity's
state is not looked for there.

A state missing from the worker's cache is rebuilt from the warehouse (``restore``). Most
missing states belong to entities seen for the first time, whose lookup finds nothing and
still costs a query (about 7 us of CPU a key). The filter answers "certainly not there" for
them. It never says "not there" for a key that is (no false negatives); a false positive
only costs the query that would have run anyway.

Exactness rests on one rule: every key that has rows in the warehouse is in the filter.

* ``load``: on each partition assignment, every entity key already in the event tables (read
  as text, once per assignment);
* ``add``: every key the worker accepts an event for, before that event's rows are written.

Other workers of the group write only the entities of their own partitions (keys map to
partitions), and a worker that takes over partitions rebuilds its filter after the previous
owner wrote and committed. The size is fixed (``bits``), whatever the number of entities:
memory does not grow with the warehouse; the false-positive rate does, slowly (2^25 bits,
1M keys: 0.06%).
"""

from __future__ import annotations

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from streams.warehouse.client import WarehouseError
from streams.worker.restore import ENTITY_TABLES


class KnownKeys:
    """A Bloom filter of entity keys (``f"{agency_code}:{entity id}"``), with Python's own
    string hash: computed in C and cached in the string, so a check costs well under a
    microsecond. That hash is seeded per process, so the filter is never shared or stored:
    ``load`` reads the keys themselves."""

    def __init__(self, bits: int = 1 << 25) -> None:
        if bits < 64 or bits & (bits - 1):
            raise ValueError("bits: a power of two, at least 64")
        self.bits = bits
        self._mask = bits - 1
        self._array = bytearray(bits // 8)
        self.count = 0  # keys added (with repeats)

    # Three positions by double hashing (Kirsch-Mitzenmacher): h, h + g, h + 2g, where g comes
    # from the hash's high bits. Written out: this runs for every missing state.

    def add(self, key: str) -> None:
        h = hash(key)
        g = (h >> 29) | 1
        m, a = self._mask, self._array
        p = h & m
        a[p >> 3] |= 1 << (p & 7)
        p = (h + g) & m
        a[p >> 3] |= 1 << (p & 7)
        p = (h + 2 * g) & m
        a[p >> 3] |= 1 << (p & 7)
        self.count += 1

    def __contains__(self, key: object) -> bool:
        h = hash(key)
        g = (h >> 29) | 1
        m, a = self._mask, self._array
        p = h & m
        if not a[p >> 3] & (1 << (p & 7)):
            return False
        p = (h + g) & m
        if not a[p >> 3] & (1 << (p & 7)):
            return False
        p = (h + 2 * g) & m
        return bool(a[p >> 3] & (1 << (p & 7)))

    def check_add(self, key: str) -> bool:
        """``key in self``, then ``add(key)``: one hash and one pass over the three bits."""
        h = hash(key)
        g = (h >> 29) | 1
        m, a = self._mask, self._array
        p = h & m
        i, b = p >> 3, 1 << (p & 7)
        present = a[i] & b
        a[i] |= b
        p = (h + g) & m
        i, b = p >> 3, 1 << (p & 7)
        present = present and a[i] & b
        a[i] |= b
        p = (h + 2 * g) & m
        i, b = p >> 3, 1 << (p & 7)
        present = present and a[i] & b
        a[i] |= b
        self.count += 1
        return bool(present)

    def clear(self) -> None:
        self._array = bytearray(self.bits // 8)
        self.count = 0

    def load(self, client: Client) -> int:
        """Start again from every entity key in the warehouse's event tables; return how many.
        Raises ``WarehouseError``."""
        self.clear()
        for table, col in ENTITY_TABLES:
            sql = f"SELECT DISTINCT concat(agency_code, ':', {col}) FROM {table}"
            try:
                with client.query_row_block_stream(sql) as stream:
                    for block in stream:
                        for (key,) in block:
                            self.add(key)
            except ClickHouseError as exc:
                raise WarehouseError(f"reading entity keys from {table} failed: {exc}") from exc
        return self.count
