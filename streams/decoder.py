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
from array import array
from collections.abc import Collection
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import Any

from streams.processor import Decoded, Origins, Refused, decode_many


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
        if processes not in (0, 1):
            raise ValueError("decode processes: 0 (in this process) or 1")
        self._pool: ProcessPoolExecutor | None = None
        if processes:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_child,
                initargs=(os.getpid(),),
            )

    @property
    def in_process(self) -> bool:
        return self._pool is None

    async def start(self) -> None:
        """Wait until the child is up (its start-up is not charged to the first batch)."""
        if self._pool is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool, _ready)

    def submit(
        self,
        blob: bytes,
        lengths: array[int],
        origins: Origins,
        now: datetime,
        known_agencies: Collection[str],
    ) -> asyncio.Future[list[Decoded | Refused]]:
        """Start decoding a batch (``processor.pack_batch``); the future gives one ``Decoded``
        or ``Refused`` a message."""
        loop = asyncio.get_running_loop()
        args = (blob, lengths, origins, now, known_agencies)
        if self._pool is None:
            fut: asyncio.Future[list[Decoded | Refused]] = loop.create_future()
            fut.set_result(decode_many(*args))
            return fut
        return asyncio.ensure_future(self._remote(args))

    async def _remote(self, args: tuple[Any, ...]) -> list[Decoded | Refused]:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, decode_many, *args)
        except BrokenProcessPool as exc:
            raise DecoderError(f"the decoding process died: {exc}") from exc

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
