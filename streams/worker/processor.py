"""One message in, rows out: decode -> dedupe/classify -> rows. Pure apart from ``states``.

Two steps, so that the first can run in another process (``streams.worker.decoder``):

1. ``decode_many`` (no state): each message's bytes become a ``Decoded`` (the event's own rows,
   and the few facts the second step needs), a ``Refusal`` (its dead-letter row and message),
   or a ``Forward`` (a valid event read on another partition than its key's: see
   ``partitioning``; given the topics' partition counts);
2. ``apply_decoded`` (the entity states): dedupe, classify, and add the rows to a buffer.

The states are mutable mappings, one per kind, from the entity key (``{agency}:{inspection_id}``,
``{agency}:{dossier_id}``, ``{agency}:{procedure_code}``) to the entity's state (``None`` or
absent: no events yet): the worker's bounded caches (``state_cache.StateCache``), dicts in tests.
The caller passes ``now`` (for the future-timestamp rule and ``_ingested_at``) and owns the
``RowBuffer``; nothing here blocks or reads the clock.
"""

from __future__ import annotations

import json
from array import array
from collections import defaultdict
from collections.abc import Container, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, NamedTuple

from schemas.decoding import MAX_FUTURE_SKEW, decode, decode_timed
from schemas.errors import InvalidEvent
from schemas.inspection import InspectionEventV1
from schemas.lifecycle import service_facts
from schemas.offering import OfferingEventV1
from schemas.service import ServiceEvent
from streams.warehouse.tables import Row
from streams.worker import rowbinary, rows
from streams.worker.classify import (
    ActivityFacts,
    DossierState,
    InspectionState,
    OfferingState,
    Outcome,
    PlainFacts,
    activity_facts,
    apply_inspection,
    apply_offering,
    apply_service,
    plain_facts,
    ticks_ms,
)
from streams.worker.partitioning import KEY_HASHES, key_hash


class Result(Enum):
    ACCEPTED = "accepted"
    REDELIVERED = "redelivered"
    DUPLICATE = "duplicate"
    REFUSED = "refused"
    FORWARDED = "forwarded"  # produced to its key's partition, processed there


# The values, for the per-message path (an Enum member's ``.value`` is a property lookup).
_ACCEPTED, _REDELIVERED, _DUPLICATE = (
    Result.ACCEPTED.value,
    Result.REDELIVERED.value,
    Result.DUPLICATE.value,
)


@dataclass
class RowBuffer:
    """Rows waiting for the warehouse, per table, in arrival order; and the latest state of each
    inspection (``states``) and of each dossier (``dossiers``) changed since the last write,
    with the ``now`` it changed at (its ``updated_at``). Only that state is written: the tables
    keep the highest ``version`` of an entity (ReplacingMergeTree(version)), and the states
    between two writes would be replaced anyway."""

    tables: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    states: dict[str, tuple[str, str, InspectionState, datetime]] = field(default_factory=dict)
    dossiers: dict[str, tuple[str, str, DossierState, datetime]] = field(default_factory=dict)

    def add(self, table: str, row: Row | bytes) -> None:
        self.tables[table].append(row)

    def __len__(self) -> int:
        return (
            sum(len(v) for v in self.tables.values()) + len(self.states) + len(self.dossiers)
        )  # fmt: skip

    def take(self) -> dict[str, list[Any]]:
        """The rows to write (classifications and lifecycles as RowBinary), and an empty
        buffer."""
        out = dict(self.tables)
        ms = _Ticks()
        if self.states:
            out["inspection_classifications"] = [
                rowbinary.classification(agency, iid, st, ms(now))
                for agency, iid, st, now in self.states.values()
            ]
        if self.dossiers:
            out["dossier_lifecycle"] = [
                rowbinary.lifecycle(agency, did, st.lifecycle, st.version, ms(now))
                for agency, did, st, now in self.dossiers.values()
            ]
        self.tables, self.states, self.dossiers = defaultdict(list), {}, {}
        return out


class _Ticks:
    """``ticks_ms`` of the few distinct ``now`` of a buffer (one a fetched batch)."""

    __slots__ = ("moment", "ms")

    def __init__(self) -> None:
        self.moment: datetime | None = None
        self.ms = 0

    def __call__(self, moment: datetime) -> int:
        if moment is not self.moment:
            self.moment, self.ms = moment, ticks_ms(moment)
        return self.ms


@dataclass(frozen=True, slots=True)
class Processed:
    result: Result
    refusal: InvalidEvent | None = None
    agency_code: str | None = None


Event = InspectionEventV1 | ServiceEvent | OfferingEventV1
_NO_INSPECTION, _NO_OFFERING = InspectionState(), OfferingState()
# The ``kind`` of a Decoded (INSPECTION, SERVICE, OFFERING), a Refusal or a Forward.
INSPECTION, SERVICE, OFFERING, REFUSAL, FORWARD = 0, 1, 2, 3, 4


class Decoded(NamedTuple):
    """A valid event, ready for ``apply_decoded``. Plain values, nothing twice (a 128-bit
    integer is slow to pickle) and agency codes shared: they cross processes
    (``streams.worker.decoder``), and pickling them is on the decoding process's clock."""

    kind: int  # INSPECTION, SERVICE or OFFERING
    key: str  # the entity key: {agency_code}:{inspection_id, dossier_id or procedure_code}
    event_key: int  # event_id.int
    agency_code: str
    entity_id: str  # inspection_id, dossier_id or procedure_code
    # An inspection's ``InspectionFacts`` after the event key; a service event's
    # ``ServiceFacts`` (what its dossier's lifecycle reads) as ``PlainFacts``; None for an
    # offering.
    facts: ActivityFacts | PlainFacts | None
    # The event's own RowBinary rows, written unless it is a duplicate: an inspection's
    # ``inspection_events`` row; a service event's ``service_events`` row, then its
    # ``service_submissions`` row if it is a submission; an offering's ``offering_events`` row.
    own_rows: tuple[bytes, ...]


_AGENCY_CODES: dict[str, str] = {}  # one string per code: pickled once a batch, then referenced


class Refusal(NamedTuple):
    """A refused message: what goes to the dead-letters table and topic."""

    kind: int  # always REFUSAL
    row: bytes  # its dead_letters row, RowBinary (``rowbinary.dead_letter``)
    message: bytes  # the value for the dead-letters topic
    agency_code: str | None
    reason: str  # the refusal's ``Reason`` value


class Forward(NamedTuple):
    """A valid event read on another partition than the one its entity key maps to: it is
    produced again, unchanged, to ``partition`` of the same topic, and not processed here."""

    kind: int  # always FORWARD
    key: str  # the entity key (the message key it is produced with)
    partition: int  # where the key maps (``partitioning``)
    agency_code: str
    event_key: int  # event_id.int (for a signature refusal)


def summarize(
    event: Event, raw: bytes, at: rows.Origin, now_ms: int, occurred_ts: float | None = None
) -> Decoded:
    """The ``Decoded`` of a valid event; ``now_ms`` is ``ticks_ms(now)``, ``occurred_ts`` is
    ``event.occurred_at.timestamp()`` if known. Its own rows are RowBinary (``rowbinary``):
    cheap to pickle, and inserted without re-encoding."""
    occurred_ms = ticks_ms(event.occurred_at, occurred_ts)
    agency = event.agency_code
    shared = _AGENCY_CODES.get(agency)
    if shared is None:
        if len(_AGENCY_CODES) < 10_000:  # bounded, whatever comes
            _AGENCY_CODES[agency] = agency
    else:
        agency = shared
    if isinstance(event, InspectionEventV1):
        entity = event.inspection_id
        facts = activity_facts(event, occurred_ms)
        row = rowbinary.inspection_event(event, raw, at, now_ms, occurred_ms)
        return Decoded(
            INSPECTION, f"{agency}:{entity}", event.event_id.int, agency, entity, facts, (row,),
        )  # fmt: skip
    if isinstance(event, OfferingEventV1):
        entity = event.procedure_code
        row = rowbinary.offering_event(event, raw, at, now_ms, occurred_ms)
        return Decoded(
            OFFERING, f"{agency}:{entity}", event.event_id.int, agency, entity, None, (row,),
        )  # fmt: skip
    entity = event.dossier_id
    due = rowbinary.due_ms(event)
    own: tuple[bytes, ...] = (rowbinary.service_event(event, raw, at, now_ms, occurred_ms, due),)
    if event.event_type == "submitted":
        own = (own[0], rowbinary.submission(event, now_ms, occurred_ms, due))
    return Decoded(
        SERVICE, f"{agency}:{entity}", event.event_id.int, agency, entity,
        plain_facts(service_facts(event, occurred_ms, due)), own,
    )  # fmt: skip


def refusal_of(invalid: InvalidEvent, at: rows.Origin, now: datetime) -> Refusal:
    """The ``Refusal`` of an invalid event (from decoding or a check outside it)."""
    invalid.at(at.topic, at.partition, at.offset)
    return Refusal(
        REFUSAL, rowbinary.dead_letter(invalid, ticks_ms(now)), dead_letter_message(invalid, now),
        invalid.agency_code, invalid.reason.value,
    )  # fmt: skip


Origins = list[tuple[str, int, "array[int]"]]
"""Where a batch's messages were read: (topic, partition, offsets), in message order."""


Decoding = Decoded | Refusal | Forward
"""What decoding gives for a message. Read it by position (a decoding process sends each as a
plain tuple): ``[0]`` is the kind (``Decoded`` when ``<= OFFERING``), ``[3]`` the agency code
for all three; the rest by each type's fields."""


def decode_many(
    blob: bytes, lengths: array[int], origins: Origins, now: datetime,
    known_agencies: Container[str], partitions: Mapping[str, int] | None = None,
) -> list[Decoding]:  # fmt: skip
    """Step 1 over a batch: the messages' values are ``blob`` cut at ``lengths`` (one bytes
    object and two arrays pickle as fast as copying them; what the decoding process runs).
    ``partitions``: each topic's partition count; a valid event of a topic listed there whose
    key maps to another partition than the one it was read from becomes a ``Forward`` (a
    refused one is refused here, never forwarded)."""
    now_ms = ticks_ms(now)
    Origin = rows.Origin
    out: list[Decoding] = []
    append = out.append
    start = 0
    sizes = iter(lengths)
    hashes = KEY_HASHES
    for topic, partition, offsets in origins:
        n = partitions.get(topic, 0) if partitions else 0
        for offset in offsets:
            end = start + next(sizes)
            raw = blob[start:end]
            start = end
            at = Origin(topic, partition, offset)
            try:
                event, ts = decode_timed(raw, known_agencies, now, MAX_FUTURE_SKEW)
            except InvalidEvent as invalid:
                append(refusal_of(invalid, at, now))
                continue
            d = summarize(event, raw, at, now_ms, ts)
            if n:  # one lookup a message: the key's hash is remembered (``partitioning``)
                h = hashes.get(d.key)
                if h is None:
                    h = key_hash(d.key)
                if h % n != partition:
                    append(Forward(FORWARD, d.key, h % n, d.agency_code, d.event_key))
                    continue
            append(d)
    return out


def pack_batch(
    groups: list[tuple[str, int, list[Any]]],
) -> tuple[bytes, array[int], Origins]:
    """``decode_many``'s arguments from (topic, partition, Kafka messages) groups."""
    values = [m.value or b"" for _, _, ms in groups for m in ms]
    lengths = array("Q", [len(v) for v in values])
    origins = [(topic, part, array("q", [m.offset for m in ms])) for topic, part, ms in groups]
    return b"".join(values), lengths, origins


def dead_letter_message(refusal: InvalidEvent, refused_at: datetime) -> bytes:
    """The value published on the dead-letters topic (JSON, payload redacted where PII)."""
    return json.dumps(
        {
            "reason": refusal.reason.value,
            "detail": refusal.detail,
            "errors": [e.as_dict() for e in refusal.errors],
            "agency_code": refusal.agency_code,
            "event_id": refusal.event_id,
            "topic": refusal.topic,
            "partition": refusal.partition,
            "offset": refusal.offset,
            "refused_at": refused_at.isoformat(),
            "payload": refusal.payload.decode("utf-8", errors="replace"),
        },
        ensure_ascii=False,
    ).encode()


def apply_decoded(
    d: Decoded,
    topic: str,
    partition: int,
    offset: int,
    now: datetime,
    inspection_states: MutableMapping[str, Any],
    dossier_states: MutableMapping[str, Any],
    offering_states: MutableMapping[str, Any],
    out: RowBuffer,
) -> str:
    """Dedupe and classify a decoded event against its entity's state (in the map of its
    kind); append its rows. Returns the ``Result``'s value. Positional, and the message's
    position as three values: the worker calls it for every message."""
    kind, key, event_key, agency, entity_id, facts, own = d
    position = (partition, offset)
    tables = out.tables
    if kind == INSPECTION:
        before = inspection_states.get(key) or _NO_INSPECTION
        state, outcome = apply_inspection(before, (event_key, *facts), position)  # type: ignore[misc]
        if outcome is Outcome.DUPLICATE:
            at = rows.Origin(topic, partition, offset)
            return _duplicate(d, before.seen[event_key], at, now, out)
        if outcome is Outcome.NEW:
            inspection_states[key] = state
        tables["inspection_events"].append(own[0])
        out.states[key] = (agency, entity_id, state, now)  # ``updated_at``: ``now``
    elif kind == SERVICE:
        dossier = dossier_states.get(key)
        if dossier is None:  # a new state: ``apply_service`` changes it in place
            dossier = DossierState()
        new_dossier, outcome = apply_service(dossier, event_key, position, facts)  # type: ignore[arg-type]
        if outcome is Outcome.DUPLICATE:
            at = rows.Origin(topic, partition, offset)
            return _duplicate(d, dossier.seen[event_key], at, now, out)
        if outcome is Outcome.NEW:
            dossier_states[key] = new_dossier
        tables["service_events"].append(own[0])
        if len(own) > 1:
            tables["service_submissions"].append(own[1])
        # Its lifecycle row, written again on a redelivery too: the event's own rows and the
        # lifecycle's are separate inserts, and a crash between them heals on the re-read.
        out.dossiers[key] = (agency, entity_id, new_dossier, now)
    else:  # OFFERING: dedup only, in the services' own map
        service = offering_states.get(key) or _NO_OFFERING
        new_service, outcome = apply_offering(service, event_key, position)
        if outcome is Outcome.DUPLICATE:
            at = rows.Origin(topic, partition, offset)
            return _duplicate(d, service.seen[event_key], at, now, out)
        if outcome is Outcome.NEW:
            offering_states[key] = new_service
        tables["offering_events"].append(own[0])
    return _ACCEPTED if outcome is Outcome.NEW else _REDELIVERED


def process(
    raw: bytes,
    at: rows.Origin,
    *,
    now: datetime,
    known_agencies: Container[str],
    inspection_states: MutableMapping[str, Any],
    dossier_states: MutableMapping[str, Any],
    out: RowBuffer,
    offering_states: MutableMapping[str, Any] | None = None,
) -> Processed:
    """Handle one message in this process, with the worker's two steps (``decode_many``'s body
    for one message, then ``apply_decoded``); a refusal keeps its exception in the result.
    Without ``offering_states``, offering events are deduplicated within this call only.
    Never forwards (no partition counts)."""
    try:
        event = decode(raw, known_agency=known_agencies, now=now)
    except InvalidEvent as invalid:
        invalid.__traceback__ = None  # its frames would hold the caller's batch alive
        out.add("dead_letters", refusal_of(invalid, at, now).row)
        return Processed(Result.REFUSED, invalid, invalid.agency_code)
    result = apply_decoded(
        summarize(event, raw, at, ticks_ms(now)), at.topic, at.partition, at.offset, now,
        inspection_states, dossier_states, {} if offering_states is None else offering_states,
        out,
    )  # fmt: skip
    return Processed(Result(result), agency_code=event.agency_code)


def _duplicate(
    d: Decoded, first: tuple[int, int], at: rows.Origin, now: datetime, out: RowBuffer
) -> str:
    # by position: ``d`` may be a plain tuple (see ``Decoding``)
    out.add("duplicates", rowbinary.duplicate(d[2], d[3], d[1], first, at, ticks_ms(now)))
    return _DUPLICATE
