"""Which entities may have events in the warehouse: a Bloom filter, so that a new entity's
state is not looked for there.

A state missing from the worker's cache is rebuilt from the warehouse (``restore``). Most
missing states belong to entities seen for the first time, whose lookup finds nothing and
still costs a query (about 7 us of CPU a key). The filter answers "certainly not there" for
them. It never says "not there" for a key that is (no false negatives); a false positive
only costs the query that would have run anyway.

Exactness rests on one rule: every key that has rows in the warehouse is in the filter.

* ``load``: on each partition assignment, every entity key already in the event tables;
* ``add``: every key the worker accepts an event for, before that event's rows are written.

Other workers of the group write only the entities of their own partitions (keys map to
partitions), and a worker that takes over partitions rebuilds its filter after the previous
owner wrote and committed. The size is fixed (``bits``), whatever the number of entities:
memory does not grow with the warehouse; the false-positive rate does, slowly (2^25 bits,
1M keys: 0.06%).
"""

from __future__ import annotations

import hashlib

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from streams.warehouse import WarehouseError

# (table, entity column): the entity key is f"{agency_code}:{entity}", as the Kafka key.
ENTITY_TABLES = (("inspection_events", "inspection_id"), ("service_events", "dossier_id"))
_MASK64 = (1 << 64) - 1


def _hash(key: str) -> int:
    """64 bits of MD5 of the key's UTF-8 (ClickHouse computes the same: ``_SQL_HASH``)."""
    digest = hashlib.md5(key.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "little")


_SQL_HASH = "reinterpretAsUInt64(MD5(concat(agency_code, ':', {col})))"


class KnownKeys:
    def __init__(self, bits: int = 1 << 25, hashes: int = 3) -> None:
        if bits < 64 or bits & (bits - 1):
            raise ValueError("bits: a power of two, at least 64")
        self.bits, self.hashes = bits, hashes
        self._mask = bits - 1
        self._array = bytearray(bits // 8)
        self.count = 0  # keys added (with repeats)

    def _positions(self, h: int) -> list[int]:
        # Double hashing (Kirsch-Mitzenmacher): h1 + i*h2, from the two halves of 64 bits.
        h1, h2 = h & 0xFFFFFFFF, (h >> 32) | 1
        return [(h1 + i * h2) & self._mask for i in range(self.hashes)]

    def add_hash(self, h: int) -> None:
        a = self._array
        for p in self._positions(h):
            a[p >> 3] |= 1 << (p & 7)
        self.count += 1

    def add(self, key: str) -> None:
        self.add_hash(_hash(key))

    def __contains__(self, key: str) -> bool:
        a = self._array
        return all(a[p >> 3] & (1 << (p & 7)) for p in self._positions(_hash(key)))

    def clear(self) -> None:
        self._array = bytearray(self.bits // 8)
        self.count = 0

    def load(self, client: Client) -> int:
        """Start again from every entity key in the warehouse's event tables; return how many.
        Raises ``WarehouseError``."""
        self.clear()
        for table, col in ENTITY_TABLES:
            sql = f"SELECT DISTINCT {_SQL_HASH.format(col=col)} FROM {table}"
            try:
                with client.query_row_block_stream(sql) as stream:
                    for block in stream:
                        for (h,) in block:
                            self.add_hash(int(h) & _MASK64)
            except ClickHouseError as exc:
                raise WarehouseError(f"reading entity keys from {table} failed: {exc}") from exc
        return self.count
