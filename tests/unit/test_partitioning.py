"""The publisher's partition choice is kafka-python's default partitioner's, key for key."""

from __future__ import annotations

import random

from kafka.partitioner.default import murmur2 as kafka_murmur2

from producers.partitioning import murmur2


def test_murmur2_equals_kafka_python_for_every_length_and_byte() -> None:
    rng = random.Random(5)
    keys = [b"", b"a", b"ab", b"abc", b"abcd", b"TH-S-TP:KT-2024-0001"]
    keys += ["Sở Tài chính:HS-000123".encode()]  # bytes above 0x7f (sign of Java bytes)
    keys += [bytes(rng.randrange(256) for _ in range(n)) for n in range(0, 70) for _ in range(20)]
    for key in keys:
        assert murmur2(key) == kafka_murmur2(key), key
    # Known values of the Java client (org.apache.kafka.common.utils.Utils.murmur2), as
    # unsigned ints: a wrong constant or shift would change them.
    assert murmur2(b"21") == (-973932308) & 0xFFFFFFFF
    assert murmur2(b"foobar") == (-790332482) & 0xFFFFFFFF
    assert murmur2(b"a-little-bit-long-string") == (-985981536) & 0xFFFFFFFF
