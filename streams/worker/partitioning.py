"""Which partition an entity key belongs on: Kafka's default partitioner (murmur2).

EVENTS.md (Transport): the partition of an event is ``(murmur2(key) & 0x7fffffff) % partitions``
of its entity key (``{agency}:{inspection_id|dossier_id|procedure_code}``), as the Java client and
kafka-python compute it (``kafka.partitioner.default``). librdkafka clients default to crc32, so
an entity's events may arrive on two partitions, read by two workers; the worker forwards an
event read elsewhere to its key's partition (``processor.Forward``, ``forwarding``).

* ``murmur2`` equals kafka-python's (a test compares them), reading four bytes at a time.
* ``key_hash`` remembers the masked hash of each key in ``KEY_HASHES`` (keys repeat: all events of
  an entity share one), up to ``MAX_KEYS``, then forgets them all at once; the decoding process
  looks keys up there first, so the check costs one dict lookup a message. Process-local,
  recomputed identically anywhere: nothing to keep in step between processes.
"""

from __future__ import annotations

import struct

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_SEED = 0x9747B28C
_WORDS = [struct.Struct(f"<{n}I") for n in range(64)]  # keys of up to 255 bytes at once

MAX_KEYS = 200_000
KEY_HASHES: dict[str, int] = {}
"""key -> ``murmur2(key) & 0x7fffffff``, bounded by ``MAX_KEYS`` (filled by ``key_hash``)."""


def murmur2(data: bytes) -> int:
    """MurmurHash2 (32-bit, Kafka's seed) of ``data``, as the Java client and kafka-python
    compute it: little-endian 32-bit words, then the 1-3 bytes left, then the final mix."""
    n = len(data)
    h = _SEED ^ n
    words = n >> 2
    unpack = _WORDS[words].unpack_from if words < 64 else struct.Struct(f"<{words}I").unpack_from
    for k in unpack(data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    rest = n & 3
    if rest:
        h = ((h ^ int.from_bytes(data[n - rest :], "little")) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def key_hash(key: str) -> int:
    """``murmur2(key as UTF-8) & 0x7fffffff``, remembered in ``KEY_HASHES``."""
    h = KEY_HASHES.get(key)
    if h is None:
        if len(KEY_HASHES) >= MAX_KEYS:
            KEY_HASHES.clear()
        h = KEY_HASHES[key] = murmur2(key.encode()) & 0x7FFFFFFF
    return h


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` among ``partitions``."""
    return key_hash(key) % partitions
