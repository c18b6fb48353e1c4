"""The states of the entities in the owned partitions: three bounded caches (``StateCache``: one
per kind, inspections, dossiers and services, since one key string may name a dossier and a
service), the
filter of the entities the warehouse may hold (``KnownKeys``), and their rebuilding from the
warehouse (``restore.load_states``).

* ``restore`` (per batch, before classification): the states missing from the caches are read
  from the warehouse on the reader connection, in one query per batch; entities the filter
  says are certainly not there are marked as known first (before their rows are written).
* ``generation`` moves when partitions are revoked (``forget``): a batch decoded under an older
  generation is dropped, not applied (its messages will be read again).
* ``load_known`` runs after an assignment, once the previous owners wrote and committed.
* Warehouse outages are retried by the reader (``ClickHouseSink``): these calls wait, never
  fail for an outage. Not thread-safe: one event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from streams.worker.known import KnownKeys
from streams.worker.metrics import Tally
from streams.worker.processor import INSPECTION, OFFERING, SERVICE, Decoding
from streams.worker.restore import load_offering_states, load_states
from streams.worker.sink import ClickHouseSink
from streams.worker.state_cache import StateCache

log = logging.getLogger("parwatch.worker")


class _Everything:
    """Stands in for the filter while it loads: every key may be in the warehouse."""

    def check_add(self, key: str) -> bool:
        return True


_EVERYTHING = _Everything()


class EntityStates:
    def __init__(self, capacity: int, reader: ClickHouseSink) -> None:
        self.inspections = StateCache(capacity)
        self.dossiers = StateCache(capacity)
        self.offerings = StateCache(capacity)
        self.reader = reader
        # Entities that may be in the warehouse: None until loaded after an assignment (records
        # can arrive while it loads: then every missing state is looked for, and its key noted).
        self.known: KnownKeys | None = None
        self._noted: list[str] = []
        self.generation = 0

    @property
    def caches(self) -> tuple[StateCache, StateCache, StateCache]:
        return (self.inspections, self.dossiers, self.offerings)

    def __len__(self) -> int:
        return sum(len(c) for c in self.caches)

    def write_started(self) -> None:
        for c in self.caches:
            c.write_started()

    def write_done(self) -> None:
        for c in self.caches:
            c.write_done()

    def trim(self) -> None:
        """Between batches only (see ``StateCache``)."""
        for c in self.caches:
            c.trim()

    def revoke(self) -> None:
        """Partitions are about to move: decoded batches not yet applied are dropped, and
        whatever comes next is looked for until the filter is loaded again."""
        self.generation += 1
        self.known = None

    def forget(self) -> None:
        """After the last write of the revoked partitions: another worker may own those
        entities next; their states come back from the warehouse."""
        for c in self.caches:
            c.clear()

    async def restore(self, decoded: Sequence[Decoding], tally: Tally) -> None:
        """Fetch from the warehouse the states of the entities not in the caches (refused and
        forwarded messages are not processed here: their states are not needed)."""
        want_i: dict[str, tuple[str, str]] = {}
        want_d: dict[str, tuple[str, str]] = {}
        want_o: dict[str, tuple[str, str]] = {}
        # Certainly not in the warehouse: nothing to fetch. A key string names no rows of any
        # kind then (the filter holds keys, not kinds), so one set serves the three.
        fresh: set[str] = set()
        # The caches' dicts: a membership test in C, not through ``StateCache.__contains__``.
        inspections = self.inspections.entries
        dossiers = self.dossiers.entries
        offerings = self.offerings.entries
        known: Any = self.known if self.known is not None else _EVERYTHING
        d: Any
        for d in decoded:  # by position: plain tuples from a decoding process (``Decoding``)
            kind = d[0]
            if kind > OFFERING:  # a Refusal or a Forward
                continue
            key = d[1]
            cache = (
                dossiers if kind == SERVICE else inspections if kind == INSPECTION else offerings
            )
            if key in cache or key in fresh:
                continue
            # Marked as known now, before its rows are written (see ``known``), whether or not
            # it may be there already.
            if known.check_add(key):
                want = want_i if kind == INSPECTION else want_d if kind == SERVICE else want_o
                want[key] = (d[3], d[4])  # agency_code, entity_id
            else:
                fresh.add(key)
        tally.looked_up(len(want_i) + len(want_d) + len(want_o), len(fresh))
        if self.known is None:  # loading: the keys go in once it is loaded
            self._noted += want_i
            self._noted += want_d
            self._noted += want_o
        if not want_i and not want_d and not want_o:
            return

        def load(client: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
            ins, dos = load_states(client, want_i.values(), want_d.values())
            offs = load_offering_states(client, want_o.values()) if want_o else {}
            return ins, dos, offs

        ins, dos, offs = await self.reader.call(load)
        self.inspections.load(ins, set(want_i))
        self.dossiers.load(dos, set(want_d))
        self.offerings.load(offs, set(want_o))

    async def load_known(self) -> None:
        """Rebuild the filter of entities in the warehouse (after the partitions' previous
        owners wrote and committed everything: they do before they give partitions up)."""
        self.known, self._noted = None, []
        generation = self.generation
        started = time.monotonic()
        loaded = KnownKeys()
        count = await self.reader.call(loaded.load)
        if generation != self.generation:
            return  # partitions moved again meanwhile; the next assignment loads it again
        for key in self._noted:  # looked for while it loaded: their rows may not be in it
            loaded.add(key)
        self.known, self._noted = loaded, []
        log.info("%d entity keys in the warehouse, read in %.1f s", count,
                 time.monotonic() - started)  # fmt: skip
