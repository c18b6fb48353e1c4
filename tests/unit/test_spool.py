"""The publisher's disk spool: order, acknowledgement, reopening, torn tails, segments."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import deque
from pathlib import Path

import pytest

from producers.sdk.spool import MAGIC, Spool, SpoolError, SpoolRecord, encode_record


def rec(i: int, topic: str = "inspection-events") -> SpoolRecord:
    return SpoolRecord(topic, f"TH-S-TP:{i % 7}".encode(), json.dumps({"n": i}).encode())


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def drain_all(spool: Spool) -> list[SpoolRecord]:
    out = spool.peek(spool.pending + 10)
    spool.ack(len(out))
    return out


def test_records_come_back_in_append_order_and_peek_consumes_nothing(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        assert spool.append([rec(0), rec(1), rec(2)]) == 3
        spool.append([rec(3)])
        spool.append([])
        assert spool.pending == 4
        assert spool.peek(2) == [rec(0), rec(1)]
        assert spool.peek(10) == [rec(0), rec(1), rec(2), rec(3)]
        assert spool.pending == 4


def test_ack_removes_from_the_front(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        spool.append(rec(i) for i in range(10))
        spool.ack(3)
        assert spool.pending == 7
        assert spool.peek(2) == [rec(3), rec(4)]
        spool.append([rec(10)])
        spool.ack(7)
        assert spool.peek(5) == [rec(10)]
        spool.ack(1)
        assert spool.pending == 0
        assert spool.peek(5) == []
        with pytest.raises(ValueError, match="only 0 pending"):
            spool.ack(1)


def test_keys_may_be_none_and_values_empty_or_large(tmp_path: Path) -> None:
    big = SpoolRecord("service-events", b"k", b"x" * (3 * 1024 * 1024))  # > one read chunk
    odd = [SpoolRecord("t", None, b""), big, SpoolRecord("dịch-vụ", "Thanh Hóa".encode(), b"{}")]
    with Spool(tmp_path) as spool:
        spool.append(odd)
    with Spool(tmp_path) as spool:
        assert spool.peek(3) == odd


def test_reopen_after_close_keeps_unacked_records_in_order(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        spool.append(rec(i) for i in range(100))
        spool.ack(40)
    with Spool(tmp_path) as spool:
        assert spool.pending == 60
        spool.append([rec(100)])
        assert drain_all(spool) == [rec(i) for i in range(40, 101)]
    with Spool(tmp_path) as spool:
        assert spool.pending == 0
        assert spool.peek(1) == []


def test_a_second_spool_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    with Spool(tmp_path), pytest.raises(SpoolError, match="in use"):
        Spool(tmp_path)
    Spool(tmp_path).close()  # released on close


@pytest.mark.parametrize(
    "torn",
    [
        pytest.param(lambda r: r[:3], id="partial-length-prefix"),
        pytest.param(lambda r: r[: len(r) - 5], id="partial-payload"),
        pytest.param(lambda r: r[:-1] + bytes([r[-1] ^ 0xFF]), id="crc-mismatch"),
        pytest.param(lambda r: b"\xff\xff\xff\xff" + r[4:], id="absurd-length"),
    ],
)
def test_a_torn_last_record_is_ignored_not_fatal(tmp_path: Path, torn: object) -> None:
    with Spool(tmp_path) as spool:
        spool.append(rec(i) for i in range(5))
    last = segments(tmp_path)[-1]
    with last.open("ab") as f:
        f.write(torn(encode_record(rec(5))))  # type: ignore[operator]
    with Spool(tmp_path) as spool:
        assert spool.pending == 5
        assert last.stat().st_size == len(MAGIC) + 5 * len(encode_record(rec(0)))  # cut
        spool.append([rec(6)])  # later appends are readable after the cut
        assert drain_all(spool) == [rec(0), rec(1), rec(2), rec(3), rec(4), rec(6)]


def test_segments_rotate_and_are_deleted_once_acknowledged(tmp_path: Path) -> None:
    size = len(encode_record(rec(0)))
    with Spool(tmp_path, segment_bytes=10 * size) as spool:
        for i in range(50):
            spool.append([rec(i)])
        # 10 records a segment: 0-9 in segment 1, ..., 40-49 in segment 5.
        assert [int(p.stem) for p in segments(tmp_path)] == [1, 2, 3, 4, 5]
        spool.ack(23)
    with Spool(tmp_path, segment_bytes=10 * size) as spool:  # cursor in a middle segment
        assert spool.pending == 27
        assert spool.peek(3) == [rec(23), rec(24), rec(25)]
        spool.ack(2)
        # 0-19 acknowledged: their segments are gone; reopening started segment 6.
        assert [int(p.stem) for p in segments(tmp_path)] == [3, 4, 5, 6]
        assert spool.peek(1) == [rec(25)]
        spool.ack(25)
        assert len(segments(tmp_path)) == 1  # a fresh one; the spent ones are gone
        spool.append([rec(50)])
        assert spool.peek(2) == [rec(50)]
    with Spool(tmp_path, segment_bytes=10 * size) as spool:
        assert spool.peek(5) == [rec(50)]


def test_an_unreadable_cursor_means_re_reading_not_losing(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        spool.append(rec(i) for i in range(10))
        spool.ack(4)
    (tmp_path / "cursor").write_text("{not json")
    with Spool(tmp_path) as spool:
        again = spool.peek(100)
    # At-least-once: acknowledged records may come again, unacknowledged ones all do, in order.
    assert again[-6:] == [rec(i) for i in range(4, 10)]
    assert again == [rec(i) for i in range(10 - len(again), 10)]


def test_a_publishing_and_a_draining_thread_can_share_it(tmp_path: Path) -> None:
    n = 5000
    got: list[SpoolRecord] = []
    with Spool(tmp_path, segment_bytes=16 * 1024) as spool:

        def produce() -> None:
            for i in range(0, n, 10):
                spool.append(rec(j) for j in range(i, i + 10))

        writer = threading.Thread(target=produce)
        writer.start()
        deadline = time.monotonic() + 30
        while len(got) < n and time.monotonic() < deadline:
            batch = spool.peek(37)
            got.extend(batch)
            spool.ack(len(batch))
            if not batch:
                writer.join(0.001)  # caught up with the writer: let it run
        writer.join()
        assert spool.pending == 0
    assert got == [rec(i) for i in range(n)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_appends_acks_and_reopens_behave_like_a_queue(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    model: deque[SpoolRecord] = deque()
    size = len(encode_record(rec(0)))
    spool = Spool(tmp_path, segment_bytes=rng.choice([3, 8, 30]) * size)
    n = 0
    try:
        for _ in range(1500):
            op = rng.random()
            if op < 0.45:
                batch = [rec(n + i) for i in range(rng.randint(0, 5))]
                n += len(batch)
                spool.append(batch)
                model.extend(batch)
            elif op < 0.85:
                k = rng.randint(0, len(model))
                assert spool.peek(k) == list(model)[:k]
                spool.ack(k)
                for _ in range(k):
                    model.popleft()
            else:
                spool.close()
                spool = Spool(tmp_path, segment_bytes=spool.segment_bytes)
            assert spool.pending == len(model)
        assert spool.peek(len(model) + 1) == list(model)
    finally:
        spool.close()
    # Spent segments do not pile up: at most those still holding records, plus the newest.
    assert len(segments(tmp_path)) <= len(model) + 2


def event_rec(i: int) -> SpoolRecord:
    value = {"event_id": f"00000000-0000-4000-8000-{i:012d}", "agency_code": "TH-S-TP"}
    return SpoolRecord("inspection-events", b"k", json.dumps(value).encode())


def test_read_contents_counts_what_waits_after_the_cursor_and_finds_the_oldest(
    tmp_path: Path,
) -> None:
    from producers.sdk.spool_contents import read_contents

    assert read_contents(tmp_path / "none").waiting == 0  # no folder: an empty spool
    with Spool(tmp_path, segment_bytes=2048) as spool:
        for i in range(0, 100, 10):
            spool.append(event_rec(j) for j in range(i, i + 10))
        spool.ack(30)
        held = read_contents(tmp_path, event_ids=True)
        assert held.in_use
        assert (held.waiting, held.oldest) == (70, event_rec(30))
        assert held.event_ids == {f"00000000-0000-4000-8000-{i:012d}" for i in range(30, 100)}
        assert len(segments(tmp_path)) > 2  # the count spans segments
        spool.ack(70)
    after = read_contents(tmp_path, event_ids=True)
    assert (after.waiting, after.oldest, after.event_ids, after.in_use) == (0, None, set(), False)


def test_read_contents_stops_where_the_spool_would_at_a_torn_record(tmp_path: Path) -> None:
    from producers.sdk.spool_contents import read_contents

    with Spool(tmp_path) as spool:
        spool.append(event_rec(i) for i in range(5))
    (seg,) = segments(tmp_path)
    with seg.open("ab") as f:
        f.write(encode_record(event_rec(5))[:-3])  # torn by a crash mid-write
    assert read_contents(tmp_path).waiting == 5
    with Spool(tmp_path) as spool:
        assert spool.pending == 5
