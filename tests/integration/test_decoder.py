"""The decoding process gives exactly what decoding in the worker's own process gives (whatever
share of a batch each side decodes), and neither it nor its batch files outlive a worker that
was killed."""

from __future__ import annotations

import asyncio
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from producers.simulation.simulator import SimulationConfig, simulate
from schemas.catalog import load_catalog
from schemas.lifecycle import ServiceFacts
from streams.worker.classify import PlainFacts, facts_of
from streams.worker.decoder import Decoder
from streams.worker.processor import INSPECTION, REFUSAL, SERVICE, Decoded, Decoding

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class _Msg:  # what pack_batch reads of an aiokafka ConsumerRecord
    offset: int
    value: bytes | None


def _batch() -> list[tuple[str, int, list[_Msg]]]:
    sim = simulate(SimulationConfig(seed=5, events=1500, invalid_share=0.05), load_catalog())
    groups: list[tuple[str, int, list[_Msg]]] = [("t-a", 0, []), ("t-b", 3, [])]
    for i, m in enumerate(sim.messages):
        groups[i % 2][2].append(_Msg(1000 + 3 * i, m.value))
    groups[1][2].append(_Msg(99_999, None))  # a tombstone: refused, not lost
    return groups


async def _decode(
    processes: int, groups: list[tuple[str, int, list[_Msg]]], inline: float | None = None
) -> list[Decoding]:
    decoder = Decoder(processes)
    if inline is not None:
        decoder.inline_share = inline
    try:
        await decoder.start()
        codes = frozenset(load_catalog().agencies)
        return list(await decoder.submit(groups, NOW, codes))
    finally:
        folder = decoder._folder
        decoder.close()
        assert folder is None or not os.path.exists(folder), "batch files left behind"


def test_child_process_decodes_exactly_as_in_process() -> None:
    groups = _batch()
    here = asyncio.run(_decode(0, groups))
    there = asyncio.run(_decode(1, groups))
    split = asyncio.run(_decode(2, groups))  # two processes, each a run of whole partitions
    assert len(here) == len(there) == sum(len(ms) for _, _, ms in groups)
    assert here == there == split
    # Part decoded here, the rest in the child: a cut inside a partition's run, and the ends.
    for inline in (0.37, 0.0, 1.0):
        assert asyncio.run(_decode(1, groups, inline)) == here, inline
    kinds = [d[0] for d in here]
    assert kinds.count(REFUSAL) >= 10 and kinds.count(INSPECTION) and kinds.count(SERVICE)
    # Positions follow the groups: the first service/inspection row of group 2 has its offset.
    last = here[-1]
    # The dead-letters row ends with _partition, _offset, _refused_at (RowBinary).
    row = last[1]
    assert last[0] == REFUSAL and isinstance(row, bytes)
    assert struct.unpack_from("<Q", row, len(row) - 16) == (99_999,)
    for d in here:
        if d[0] != REFUSAL:
            assert isinstance(d, Decoded)  # no partitions given: nothing is forwarded
            kind, key, event_key, agency, entity, facts, own = d
            assert key == f"{agency}:{entity}" and isinstance(event_key, int)  # UUID.int
            # Own rows: RowBinary, each starting with the event_id (high, low 64 bits).
            assert own and all(isinstance(r, bytes) for r in own)
            assert own[0][:16] == (event_key >> 64).to_bytes(8, "little") + (
                event_key & (2**64 - 1)
            ).to_bytes(8, "little")
            # Facts: an inspection's activity facts, a service event's lifecycle facts.
            assert (facts is not None) == (kind in (INSPECTION, SERVICE)) and len(own) <= 2
            if kind == SERVICE:  # plain tuples, made ServiceFacts again by the worker
                assert type(facts) is tuple
                plain = cast(PlainFacts, facts)  # a service event's facts (``Decoded.facts``)
                assert type(facts_of(plain)) is ServiceFacts


def test_cut_and_balance() -> None:
    from streams.worker.decoder import INLINE_MAX, _cut

    groups = [("t", p, list(range(10 * p, 10 * p + n))) for p, n in enumerate([3, 4, 2])]
    head, tail = _cut(groups, 5)
    assert head == [("t", 0, [0, 1, 2]), ("t", 1, [10, 11])]
    assert tail == [("t", 1, [12, 13]), ("t", 2, [20, 21])]
    assert _cut(groups, 0) == ([], groups)
    assert _cut(groups, 9) == (groups, [])

    d = Decoder(0)
    d.balance(waited=True)
    assert d.inline_share == 1.0  # no child: everything here, always
    d = Decoder(1)
    try:
        start = d.inline_share
        d.balance(waited=True)
        assert d.inline_share > start  # the child was behind: more here
        for _ in range(100):
            d.balance(waited=True)
        assert d.inline_share == INLINE_MAX
        for _ in range(100):
            d.balance(waited=False)
        assert d.inline_share == 0.0
    finally:
        d.close()


def test_batch_folder_is_private_and_falls_back_when_shm_is_small(tmp_path: Any) -> None:
    from streams.worker.decoder import SHM_NEEDED, _folder

    made = _folder()
    try:
        assert os.stat(made).st_mode & 0o777 == 0o700
        shm = "/dev/shm"  # noqa: S108 (only read here)
        fs = os.statvfs(shm)
        if fs.f_bavail * fs.f_frsize >= SHM_NEEDED:
            assert made.startswith(shm + "/")
    finally:
        os.rmdir(made)
    small = _folder(shm=str(tmp_path / "no-such-shm"))  # absent: the temporary folder
    try:
        assert small.startswith(tempfile.gettempdir())
    finally:
        os.rmdir(small)


def test_chunks_keep_order_and_sizes() -> None:
    from streams.worker.decoder import _chunks

    groups = [
        ("t", p, list(range(100 * p, 100 * p + n))) for p, n in enumerate([5, 1, 7, 3, 4, 0, 6])
    ]
    for n in (1, 2, 3, 7, 26, 40):
        runs = _chunks(groups, n)
        flat = [(t, p, m) for run in runs for t, p, ms in run for m in ms]
        assert flat == [(t, p, m) for t, p, ms in groups for m in ms], n
        sizes = [sum(len(ms) for _, _, ms in run) for run in runs]
        assert all(sizes) and len(runs) == min(n, 26) and max(sizes) - min(sizes) <= 1, n


def test_parts_no_child_has_started_are_decoded_here(monkeypatch: Any) -> None:
    """Awaited at once, a batch of many small parts: those the child has not started (it holds
    at most two at a time, and decodes slower than parts are handed over) are taken back and
    decoded here, and the result is the same as decoded anywhere."""
    import streams.worker.decoder as decoder_module

    groups = _batch()
    here = asyncio.run(_decode(0, groups))
    monkeypatch.setattr(decoder_module, "PART_MESSAGES", 50)

    async def stolen() -> tuple[list[Decoding], int]:
        decoder = Decoder(1)
        decoder.inline_share = 0.0
        try:
            await decoder.start()
            job = decoder.submit(groups, NOW, frozenset(load_catalog().agencies))
            assert not job.done()
            return list(await job), decoder.stolen
        finally:
            decoder.close()

    got, count = asyncio.run(stolen())
    assert got == here
    total = sum(len(ms) for _, _, ms in groups)
    assert 0 < count <= total


CHILD = """
import asyncio, os, sys, time
from streams.worker.decoder import Decoder
async def main():
    d = Decoder(1)
    await d.start()
    print(d._folder, flush=True)
    print(" ".join(open(f"/proc/{os.getpid()}/task/{t}/children").read()
                   for t in os.listdir(f"/proc/{os.getpid()}/task")), flush=True)
    time.sleep(600)
asyncio.run(main())
"""


def test_decoding_process_exits_when_the_worker_is_killed() -> None:
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    folder = proc.stdout.readline().strip()
    assert os.path.isdir(folder)
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert pids, "the decoder started no process"
    for pid in pids:
        os.kill(pid, 0)  # alive
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 15
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if _alive(p)]
    assert not alive, f"decoding process {alive} outlived its worker"
    assert not os.path.exists(folder), "the batch files' folder outlived the worker"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False
