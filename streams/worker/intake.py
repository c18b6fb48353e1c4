"""The per-batch steps before the write, for any engine: decode and validate, signature,
restore states, dedupe and classify, rows and dead letters into the open ``Batch``; events read
on another partition than their key's are forwarded there instead (``forwarding``).

* Input: a fetched batch as ``(partition, messages)`` groups, in fetch order; a partition is a
  ``(topic, partition)`` named tuple, a message anything with ``offset``, ``key``, ``value``
  and ``headers`` (aiokafka's ``ConsumerRecord``, faust's ``Message``). Messages of one
  partition must be in offset order and follow those of earlier groups of that partition.
* ``submit`` starts decoding at once (in the decoding process, see ``decoder``) and returns a
  ``Pending``; ``apply`` waits for it, then checks signatures, restores the missing states,
  classifies every message in order and buffers its rows, sends refusals to the dead-letters
  topic and forwarded events to their partition, and records the batch's positions (what may
  be committed once it is written, and those sends acknowledged).
* ``apply`` returns False, and changes nothing, if the partitions were revoked since
  ``submit`` (``EntityStates.generation``): those messages will be read again by their owner.
* Errors: an invalid message is a refusal (never an exception); a warehouse outage while
  restoring waits (retried by the reader); a dead decoding process raises ``DecoderError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any
from uuid import UUID

from schemas.signing import Keyring, check_signature
from streams.worker.batch import Batch
from streams.worker.catalog_holder import CatalogHolder
from streams.worker.dead_letter_topic import DeadLetterTopic
from streams.worker.decoder import Decoder, Job
from streams.worker.entity_states import EntityStates
from streams.worker.forwarding import Forwarder
from streams.worker.keyring_holder import KeyringHolder
from streams.worker.processor import (
    FORWARD,
    OFFERING,
    REFUSAL,
    Decoding,
    Result,
    apply_decoded,
    refusal_of,
)
from streams.worker.rows import Origin

Groups = Sequence[tuple[Any, Sequence[Any]]]
"""A fetched batch: (partition, messages) pairs, in fetch order."""

_AGENCY = itemgetter(3)  # the agency code of any Decoding (by position: see ``Decoding``)


@dataclass
class Pending:
    """A fetched batch being decoded."""

    groups: Groups
    decoded: Job
    generation: int
    now: datetime


class Intake:
    def __init__(
        self, catalog: CatalogHolder, keyring: KeyringHolder | None, decoder: Decoder,
        states: EntityStates, dead_letters: DeadLetterTopic, forwarder: Forwarder,
    ) -> None:  # fmt: skip
        self.catalog = catalog
        self.keyring = keyring
        self.decoder = decoder
        self.states = states
        self.dead_letters = dead_letters
        self.forwarder = forwarder

    def submit(self, groups: Groups) -> Pending:
        """Hand a fetched batch to the decoder (it starts at once)."""
        now = datetime.now(UTC)
        decoded = self.decoder.submit(
            [(tp.topic, tp.partition, list(ms)) for tp, ms in groups], now, self.catalog.codes,
            self.forwarder.partitions,
        )  # fmt: skip
        return Pending(groups, decoded, self.states.generation, now)

    async def apply(self, p: Pending, batch: Batch) -> bool:
        """Dedupe, classify and buffer a decoded batch into ``batch`` (after fetching missing
        states). False: dropped, the partitions were revoked meanwhile."""
        if not p.decoded.done():
            self.decoder.balance(waited=True)  # the decoder is behind the engine
        decoded = await p.decoded
        states = self.states
        if p.generation != states.generation:
            return False  # a rebalance happened meanwhile: these messages will be read again
        now = p.now
        if self.keyring is not None:
            self._check_signatures(p, decoded, self.keyring.keyring)
        await states.restore(decoded, batch.tally)
        if p.generation != states.generation:
            return False
        out = batch.rows
        tally = batch.tally
        tally.agencies.update(map(_AGENCY, decoded))  # one pass, in C
        inspections, dossiers, offerings = states.inspections, states.dossiers, states.offerings
        i = 0
        refused, forwarded = Result.REFUSED.value, Result.FORWARDED.value
        for tp, messages in p.groups:
            topic, partition = tp.topic, tp.partition
            results = tally.by_topic[topic]
            for m in messages:
                d: Any = decoded[i]  # by position: it may be a plain tuple (see ``Decoding``)
                i += 1
                kind = d[0]
                if kind <= OFFERING:  # Decoded
                    result = apply_decoded(
                        d, topic, partition, m.offset, now, inspections, dossiers, offerings, out
                    )  # fmt: skip
                elif kind == FORWARD:  # Forward: kind, key, partition, agency_code, event_key
                    batch.forwards.append(
                        await self.forwarder.send(topic, d[2], d[1], m.value, m.headers)
                    )
                    result = forwarded
                else:  # Refusal: kind, row, message, agency_code, reason
                    out.tables["dead_letters"].append(d[1])
                    batch.dead_letters.append(await self.dead_letters.send(m.key, d[2]))
                    tally.refused(topic, d[4], d[3])
                    result = refused
                results[result] += 1
            batch.first.setdefault(tp, messages[0].offset)
            batch.offsets[tp] = messages[-1].offset + 1
            batch.messages += len(messages)
        return True

    def _check_signatures(self, p: Pending, decoded: list[Decoding], keyring: Keyring) -> None:
        """A decoded event whose signature does not hold with ``keyring`` becomes a refusal
        (also one to forward: a refusal is dead-lettered where it is read)."""
        i = 0
        for tp, messages in p.groups:
            for m in messages:
                d: Any = decoded[i]  # by position (see ``Decoding``)
                kind = d[0]
                if kind != REFUSAL:
                    forged = check_signature(m.value or b"", m.headers, keyring, d[3], now=p.now)
                    if forged is not None:  # the event key: Decoded's third, Forward's fifth
                        forged.event_id = str(UUID(int=d[2] if kind <= OFFERING else d[4]))
                        at = Origin(tp.topic, tp.partition, m.offset)
                        decoded[i] = refusal_of(forged, at, p.now)
                i += 1
