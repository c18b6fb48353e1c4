"""Decoding in a second process, so that the worker uses two cores.

Validating an event and building its own rows (``processor.decode_many``) needs no entity state,
and it is about half of the worker's Python time. In one process it shares one GIL with
everything else (the Kafka client, classification, the serialising of inserts). Here it runs in
a child process while the worker applies the batch before; batches go there as lists of bytes
and come back as named tuples of plain values (``processor.Decoded``/``Refusal``), cheap to
pickle.

``processes=0`` decodes in the calling process instead (same functions, same results).

The child is started with ``spawn`` (a fork of a process holding threads, an event loop and an
embedded ClickHouse is not safe). It holds no state: if it dies, the worker stops with an error,
nothing has been committed for the batches it had, and they are read again after a restart.

A batch and its results (about 10 MB each for 20,000 events) go through files in a folder of
the worker's own in memory (``/dev/shm``), not through the pool's pipes: a pipe moves 64 KB at a
time, and each step needs the worker's GIL for the pool's feeder or reader thread, which waits
while the worker's event loop runs; the child sat idle a quarter of the time. Only the small
call and its answer (a file name) go through the pipes. The folder is removed when the decoder
closes, or by the child when the worker dies without closing it.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import multiprocessing
import os
import pickle
import shutil
import tempfile
import threading
import time
from array import array
from collections.abc import Collection, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import Any

from streams.errors import StreamsError
from streams.worker.processor import Decoding, Origins, decode_many, pack_batch

INLINE_START = 0.25  # share of a batch decoded in the worker's own process, at first
INLINE_STEP = 0.02  # moved after each batch, towards whichever side waits
INLINE_MAX = 0.5


class DecoderError(StreamsError, RuntimeError):
    """The decoding process died."""


def _start_child(parent: int, folder: str) -> None:
    """In the child: build the validators now (not on the first batch), and exit when the
    worker is gone, removing the batch files' folder. A worker killed with SIGKILL cannot stop
    its pool, and the pool's queue would never tell the child (the child holds both ends of its
    pipe)."""
    import schemas.decoding  # noqa: F401

    # The worker's collector policy (``parwatch.gc_policy.configure``): start-up objects frozen,
    # young collections rare. A batch's results (hundreds of thousands of objects) live until
    # they are pickled; with the default thresholds the collector walked them again and again.
    gc.freeze()
    gc.set_threshold(100_000, 10, 10)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        shutil.rmtree(folder, ignore_errors=True)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _ready() -> bool:
    return True


SHM_NEEDED = 256 * 1024 * 1024  # a few batches and results in flight, with room to spare


def _folder(shm: str = "/dev/shm") -> str:  # noqa: S108 (mkdtemp: a new private folder, 0700)
    """A new folder for batch files: in memory where the system has ``/dev/shm`` with room
    (a container's is 64 MB unless set larger), else in the temporary folder (the page cache
    keeps such short-lived files in memory all the same)."""
    base = None
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        fs = os.statvfs(shm)
        if fs.f_bavail * fs.f_frsize >= SHM_NEEDED:
            base = shm
    return tempfile.mkdtemp(prefix="parwatch-decode-", dir=base)


def _write(path: str, *chunks: bytes | array[int]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for chunk in chunks:
            view = memoryview(chunk).cast("B")
            while view:
                view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _take(path: str) -> bytes:
    """The file's bytes; the file is removed."""
    with open(path, "rb", buffering=0) as f:
        data = f.readall()
    os.unlink(path)
    return data


def decode_file(
    path: str, count: int, origins: list[tuple[str, int, int]], now: datetime,
    known_agencies: Collection[str], partitions: Mapping[str, int] | None = None,
) -> str:  # fmt: skip
    """In the child: the batch in ``path`` (``count`` value lengths, then the offsets, then the
    values: ``Decoder._put``) decoded; the results pickled to a file whose name is returned."""
    data = _take(path)
    lengths = array("Q")
    lengths.frombytes(data[: 8 * count])
    offsets = array("q")
    offsets.frombytes(data[8 * count : 16 * count])
    runs: Origins = []
    start = 0
    for topic, partition, n in origins:
        runs.append((topic, partition, offsets[start : start + n]))
        start += n
    out = decode_many(data[16 * count :], lengths, runs, now, known_agencies, partitions)
    done = path[: -len(".in")] + ".out"
    # As plain tuples: a named tuple unpickles through a Python call each (its ``__new__``),
    # a tuple in C; the worker reads Decodings by position (``processor``).
    _write(done, pickle.dumps(list(map(tuple, out)), protocol=pickle.HIGHEST_PROTOCOL))
    return done


class Decoder:
    def __init__(self, processes: int = 1) -> None:
        if processes < 0:
            raise ValueError("decode processes: 0 (in this process) or more")
        self.processes = processes
        # The share of each batch decoded here, beside the children (see ``balance``).
        self.inline_share = INLINE_START if processes else 1.0
        self._pool: ProcessPoolExecutor | None = None
        self._folder: str | None = None
        self._names = itertools.count()
        self._running: list[asyncio.Future[str]] = []  # the children's parts not yet collected
        if processes:
            self._folder = _folder()
            self._pool = ProcessPoolExecutor(
                max_workers=processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_child,
                initargs=(os.getpid(), self._folder),
            )

    async def start(self) -> None:
        """Wait until the children are up (their start-up is not charged to the first batch)."""
        if self._pool is not None:
            loop = asyncio.get_running_loop()
            await asyncio.gather(
                *(loop.run_in_executor(self._pool, _ready) for _ in range(self.processes))
            )

    def submit(
        self, groups: list[tuple[str, int, list[Any]]], now: datetime,
        known_agencies: Collection[str], partitions: Mapping[str, int] | None = None,
    ) -> asyncio.Future[list[Decoding]]:  # fmt: skip
        """Start decoding a batch given as (topic, partition, Kafka messages) groups; the
        future gives one ``Decoded``, ``Refusal`` or ``Forward`` a message (``partitions``: the
        topics' partition counts, see ``processor.decode_many``), in the groups' order. The last
        ``inline_share`` of the messages are decoded here and now (the children meanwhile
        decode the rest); with several processes, each gets a run of whole groups of about the
        same size."""
        loop = asyncio.get_running_loop()
        if self._pool is None:
            fut: asyncio.Future[list[Decoding]] = loop.create_future()
            fut.set_result(decode_many(*pack_batch(groups), now, known_agencies, partitions))
            return fut
        running = [f for f in self._running if not f.done()]
        if self._running and not running:  # the children finished all they had: they wait
            self.balance(waited=False)
        total = sum(len(ms) for _, _, ms in groups)
        remote, local = _cut(groups, total - int(total * self.inline_share))
        try:
            parts = [
                loop.run_in_executor(
                    self._pool, decode_file, *self._put(part), now, known_agencies, partitions
                )  # fmt: skip
                for part in _split(remote, self.processes)
                if part
            ]
        except BrokenProcessPool as exc:  # a process died while idle
            raise DecoderError(f"a decoding process died: {exc}") from exc
        self._running = running + parts
        here = decode_many(*pack_batch(local), now, known_agencies, partitions) if local else []
        return asyncio.ensure_future(self._joined(parts, here))

    def balance(self, waited: bool) -> None:
        """Move a little work towards the side that is ahead: ``waited``, the caller waited
        for a batch (the children are behind: decode more here); not ``waited``, the children
        had finished everything when the next batch came (this process is behind: decode less
        here; ``submit`` finds that itself). On two cores the worker's own process had time to
        spare while the child decoded (about half of it, measured), and a fixed share would
        suit only one machine and one load."""
        if self._pool is None:
            return
        share = self.inline_share + (INLINE_STEP if waited else -INLINE_STEP)
        self.inline_share = min(INLINE_MAX, max(0.0, share))

    def _put(self, groups: list[tuple[str, int, list[Any]]]) -> tuple[str, int, list[Any]]:
        """Write a run of groups to a batch file: ``decode_file``'s first three arguments."""
        assert self._folder is not None
        blob, lengths, origins = pack_batch(groups)
        path = os.path.join(self._folder, f"{next(self._names)}.in")
        _write(path, lengths, *(offsets for _, _, offsets in origins), blob)
        return path, len(lengths), [(t, p, len(offsets)) for t, p, offsets in origins]

    async def _joined(
        self, parts: list[asyncio.Future[str]], here: list[Decoding]
    ) -> list[Decoding]:
        try:
            done = await asyncio.gather(*parts)
        except BrokenProcessPool as exc:
            raise DecoderError(f"a decoding process died: {exc}") from exc
        # Written by our own child in our private folder (0700), never by anyone else.
        results: list[list[Decoding]] = [
            pickle.loads(_take(path))  # noqa: S301
            for path in done
        ]
        if here:
            results.append(here)
        if len(results) == 1:
            return results[0]
        return [d for part in results for d in part]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def _cut(
    groups: list[tuple[str, int, list[Any]]], n: int
) -> tuple[list[tuple[str, int, list[Any]]], list[tuple[str, int, list[Any]]]]:
    """``groups`` cut after their first ``n`` messages (a group may be cut in two)."""
    head: list[tuple[str, int, list[Any]]] = []
    tail: list[tuple[str, int, list[Any]]] = []
    for topic, partition, ms in groups:
        if n >= len(ms):
            head.append((topic, partition, ms))
        elif n <= 0:
            tail.append((topic, partition, ms))
        else:
            head.append((topic, partition, ms[:n]))
            tail.append((topic, partition, ms[n:]))
        n -= len(ms)
    return head, tail


def _split(groups: list[tuple[str, int, list[Any]]], n: int) -> list[list[Any]]:
    """``groups`` cut into at most ``n`` runs of whole groups, each about 1/n of the messages."""
    total = sum(len(ms) for _, _, ms in groups)
    if n <= 1 or len(groups) <= 1:
        return [groups]
    parts: list[list[Any]] = [[]]
    filled = 0
    for g in groups:
        if filled >= total * len(parts) / n and len(parts) < n:
            parts.append([])
        parts[-1].append(g)
        filled += len(g[2])
    return parts
