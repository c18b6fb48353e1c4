"""Decoding in a second process, so that the worker uses two cores.

Validating an event and building its own rows (``processor.decode_many``) needs no entity state,
and it is about half of the worker's Python time. In one process it shares one GIL with
everything else (the Kafka client, classification, the serialising of inserts). Here it runs in
a child process while the worker applies the batch before; batches go there as lists of bytes
and come back as plain tuples (``processor.Decoded``/``Refused``), both cheap to pickle.

``processes=0`` decodes in the calling process instead (same functions, same results).

The child is started with ``spawn`` (a fork of a process holding threads, an event loop and an
embedded ClickHouse is not safe). It holds no state: if it dies, the worker stops with an error,
nothing has been committed for the batches it had, and they are read again after a restart.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from collections.abc import Collection
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import Any

from streams.processor import Decoded, Refused, decode_many, pack_batch


class DecoderError(RuntimeError):
    """The decoding process died."""


def _start_child(parent: int) -> None:
    """In the child: build the validators now (not on the first batch), and exit when the
    worker is gone. A worker killed with SIGKILL cannot stop its pool, and the pool's queue
    would never tell the child (the child holds both ends of its pipe)."""
    import schemas.decoding  # noqa: F401

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _ready() -> bool:
    return True


class Decoder:
    def __init__(self, processes: int = 1) -> None:
        if processes < 0:
            raise ValueError("decode processes: 0 (in this process) or more")
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        if processes:
            self._pool = ProcessPoolExecutor(
                max_workers=processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_child,
                initargs=(os.getpid(),),
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
        known_agencies: Collection[str],
    ) -> asyncio.Future[list[Decoded | Refused]]:  # fmt: skip
        """Start decoding a batch given as (topic, partition, Kafka messages) groups; the
        future gives one ``Decoded`` or ``Refused`` a message, in the groups' order. With
        several processes, each gets a run of whole groups of about the same size."""
        loop = asyncio.get_running_loop()
        if self._pool is None:
            fut: asyncio.Future[list[Decoded | Refused]] = loop.create_future()
            fut.set_result(decode_many(*pack_batch(groups), now, known_agencies))
            return fut
        try:
            parts = [
                loop.run_in_executor(
                    self._pool, decode_many, *pack_batch(part), now, known_agencies
                )
                for part in _split(groups, self.processes)
            ]
        except BrokenProcessPool as exc:  # a process died while idle
            raise DecoderError(f"a decoding process died: {exc}") from exc
        return asyncio.ensure_future(self._joined(parts))

    async def _joined(self, parts: list[asyncio.Future[list[Any]]]) -> list[Decoded | Refused]:
        try:
            results = await asyncio.gather(*parts)
        except BrokenProcessPool as exc:
            raise DecoderError(f"a decoding process died: {exc}") from exc
        if len(results) == 1:
            return results[0]
        return [d for part in results for d in part]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


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
