"""Decoding in a second process, so that the worker uses two cores.

Validating an event and building its own rows (``processor.decode_many``) needs no entity state,
and it is about half of the worker's Python time. In one process it shares one GIL with
everything else (the Kafka client, classification, the serialising of inserts). Here it runs in
a child process while the worker applies the batch before; batches go there as lists of bytes
and come back as named tuples of plain values (``processor.Decoded``/``Refusal``), cheap to
pickle.

``processes=0`` decodes in the calling process instead (same functions, same results).

Who decodes what: a share of each batch (``inline_share``, moved by ``balance``) is decoded in
the worker's process when the batch is submitted; the rest goes to the children in parts of
about ``PART_MESSAGES``, which a free child takes in order. When the worker needs a batch
(``Job``), it takes back the parts no child has started and decodes them itself, so it waits
only for the part or two a child holds: neither side sits idle while the other has a queue.

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
import contextlib
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
from collections.abc import Collection, Generator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streams.errors import StreamsError
from streams.worker.processor import Decoding, Origins, decode_many, pack_batch

INLINE_START = 0.25  # share of a batch decoded in the worker's own process, at first
INLINE_STEP = 0.02  # moved after each batch, towards whichever side waits
INLINE_MAX = 0.5
PART_MESSAGES = 4_000  # a part for the children: small enough to steal, large enough to cost little


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


class Job:
    """A batch being decoded: the children's parts (in message order), then the messages
    decoded here at submit. Await it for one ``Decoding`` a message, in the batch's order.

    Awaiting it steals: a part no child has started yet (still in the pool's queue) is taken
    back and decoded here, from the last such part backwards, while the child finishes the
    parts it has; only then does the caller wait. The worker's process never sits idle waiting
    for a child that has a queue of work (a fixed share suits one machine and one load)."""

    def __init__(
        self, decoder: Decoder, parts: list[_Part], here: list[Decoding],
        args: tuple[datetime, Collection[str], Mapping[str, int] | None],
    ) -> None:  # fmt: skip
        self._decoder, self._parts, self._here, self._args = decoder, parts, here, args
        self._result: list[Decoding] | None = None

    def done(self) -> bool:
        """Whether the children have finished every part (nothing left to wait for)."""
        return self._result is not None or all(p.future.done() for p in self._parts)

    def __await__(self) -> Generator[Any, None, list[Decoding]]:
        return self._collect().__await__()

    async def _collect(self) -> list[Decoding]:
        if self._result is not None:
            return self._result
        parts, now, known, partitions = self._parts, *self._args
        results: list[list[Decoding] | None] = [None] * len(parts)
        for i in reversed(range(len(parts))):
            part = parts[i]
            if part.future.cancel():  # no child has it yet: decoded here, now
                _unlink(part.path)
                results[i] = decode_many(*pack_batch(part.groups), now, known, partitions)
                self._decoder.stolen += sum(len(ms) for _, _, ms in part.groups)
        for i, part in enumerate(parts):
            if results[i] is None:
                try:
                    done = await asyncio.wrap_future(part.future)
                except BrokenProcessPool as exc:
                    raise DecoderError(f"a decoding process died: {exc}") from exc
                # Written by our own child in our private folder (0700), never by anyone else.
                results[i] = pickle.loads(_take(done))  # noqa: S301
        if self._here:
            results.append(self._here)
        whole = [r for r in results if r is not None]
        self._result = whole[0] if len(whole) == 1 else [d for r in whole for d in r]
        self._parts = []
        return self._result


@dataclass
class _Part:
    """A run of a batch given to the children: its future (the results file's name), its
    messages (decoded here if it is stolen) and its batch file."""

    future: Future[str]
    groups: list[tuple[str, int, list[Any]]]
    path: str


class Decoder:
    def __init__(self, processes: int = 1) -> None:
        if processes < 0:
            raise ValueError("decode processes: 0 (in this process) or more")
        self.processes = processes
        # The share of each batch decoded here at submit, beside the children (``balance``).
        self.inline_share = INLINE_START if processes else 1.0
        self.stolen = 0  # messages given to the children, then decoded here (``Job``)
        self._pool: ProcessPoolExecutor | None = None
        self._folder: str | None = None
        self._names = itertools.count()
        self._running: list[Future[str]] = []  # the children's parts not yet finished
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
    ) -> Job:  # fmt: skip
        """Start decoding a batch given as (topic, partition, Kafka messages) groups; the
        ``Job`` gives one ``Decoded``, ``Refusal`` or ``Forward`` a message (``partitions``:
        the topics' partition counts, see ``processor.decode_many``), in the groups' order. The
        last ``inline_share`` of the messages are decoded here and now; the rest goes to the
        children in parts of about ``PART_MESSAGES`` (at least one a process), which any child
        takes when it is free, and which the ``Job`` takes back if no child has started them
        by the time it is awaited."""
        args = (now, known_agencies, partitions)
        if self._pool is None:
            return Job(self, [], decode_many(*pack_batch(groups), *args), args)
        running = [f for f in self._running if not f.done()]
        if self._running and not running:  # the children finished all they had: they wait
            self.balance(waited=False)
        total = sum(len(ms) for _, _, ms in groups)
        remote_n = total - int(total * self.inline_share)
        remote, local = _cut(groups, remote_n)
        parts: list[_Part] = []
        count = max(self.processes, -(-remote_n // PART_MESSAGES)) if remote_n else 0
        try:
            for run in _chunks(remote, count):
                path, n, origins = self._put(run)
                future = self._pool.submit(decode_file, path, n, origins, *args)
                parts.append(_Part(future, run, path))
        except BrokenProcessPool as exc:  # a process died while idle
            raise DecoderError(f"a decoding process died: {exc}") from exc
        self._running = running + [p.future for p in parts]
        here = decode_many(*pack_batch(local), *args) if local else []
        return Job(self, parts, here, args)

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

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


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


def _chunks(
    groups: list[tuple[str, int, list[Any]]], n: int
) -> list[list[tuple[str, int, list[Any]]]]:
    """``groups`` cut into ``n`` runs of about the same number of messages, in order (a group
    may be cut); no empty run."""
    total = sum(len(ms) for _, _, ms in groups)
    runs: list[list[tuple[str, int, list[Any]]]] = []
    rest = groups
    for k in range(n, 0, -1):
        size = -(-total // k)  # ceil: the runs differ by at most one message
        run, rest = _cut(rest, size)
        total -= size
        if run:
            runs.append(run)
    return runs
