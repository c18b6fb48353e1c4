"""The publisher's key-to-partition choice equals kafka-python's DefaultPartitioner's."""

from __future__ import annotations

import random

import pytest
from kafka.partitioner.default import murmur2 as kafka_murmur2

from producers.sdk.partitioning import murmur2


def test_murmur2_equals_kafka_pythons_for_every_length() -> None:
    rnd = random.Random(7)
    for n in range(0, 300):
        for _ in range(20):
            data = bytes(rnd.randrange(256) for _ in range(n))
            assert murmur2(data) == kafka_murmur2(data), (n, data)


@pytest.mark.parametrize(
    ("key", "expected"),
    [  # values of Kafka's Java client (Utils.murmur2), as its own tests list them
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_matches_the_java_client(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected & 0xFFFFFFFF


def test_murmur2_of_vietnamese_keys() -> None:
    key = "TH-S-TP:Thanh tra Sở Tài chính".encode()
    assert murmur2(key) == kafka_murmur2(key)
