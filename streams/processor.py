"""One message in, rows out: decode -> dedupe/classify -> rows. Pure apart from ``states``.

``states`` is any mutable mapping from the entity key (``{agency}:{inspection_id}`` or
``{agency}:{dossier_id}``) to the entity's state (``None`` or absent: no events yet): the
worker's bounded cache (``engine.StateCache``), a dict in tests.
The caller passes ``now`` (for the future-timestamp rule and ``_ingested_at``) and owns the
``RowBuffer``; nothing here blocks or reads the clock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Container, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from schemas.decoding import decode
from schemas.errors import InvalidEvent
from schemas.inspection import InspectionEventV1
from schemas.service import ServiceEventV1
from streams import rows
from streams.classify import DossierState, InspectionState, Outcome, apply_inspection, apply_service


class Result(Enum):
    ACCEPTED = "accepted"
    REDELIVERED = "redelivered"
    DUPLICATE = "duplicate"
    REFUSED = "refused"


@dataclass
class RowBuffer:
    """Rows waiting for the warehouse, per table, in arrival order."""

    tables: dict[str, list[rows.Row]] = field(default_factory=lambda: defaultdict(list))

    def add(self, table: str, row: rows.Row) -> None:
        self.tables[table].append(row)

    def __len__(self) -> int:
        return sum(len(v) for v in self.tables.values())

    def take(self) -> dict[str, list[rows.Row]]:
        out, self.tables = dict(self.tables), defaultdict(list)
        return out


@dataclass(frozen=True, slots=True)
class Processed:
    result: Result
    refusal: InvalidEvent | None = None
    agency_code: str | None = None


Event = InspectionEventV1 | ServiceEventV1
_NO_INSPECTION, _NO_DOSSIER = InspectionState(), DossierState()


def decode_message(
    raw: bytes, at: rows.Origin, *, now: datetime, known_agencies: Container[str], out: RowBuffer
) -> Event | Processed:
    """Decode one message: the event, or a refusal already written to ``out`` as a dead letter."""
    try:
        return decode(raw, known_agency=known_agencies, now=now)
    except InvalidEvent as refusal:
        return refuse(refusal, at, now, out)


def refuse(refusal: InvalidEvent, at: rows.Origin, now: datetime, out: RowBuffer) -> Processed:
    """Record a refusal (from decoding or from a check outside it) as a dead-letter row."""
    refusal.at(at.topic, at.partition, at.offset)
    out.add("dead_letters", rows.dead_letter_row(refusal, now))
    return Processed(Result.REFUSED, refusal, refusal.agency_code)


def apply_event(
    event: Event,
    raw: bytes,
    at: rows.Origin,
    *,
    now: datetime,
    inspection_states: MutableMapping[str, Any],
    dossier_states: MutableMapping[str, Any],
    out: RowBuffer,
) -> Processed:
    """Dedupe and classify a decoded event against its entity's state; append its rows."""
    position = (at.partition, at.offset)
    key = event.key
    if isinstance(event, InspectionEventV1):
        before = inspection_states.get(key) or _NO_INSPECTION
        state, outcome = apply_inspection(before, event, position)
        if outcome is Outcome.DUPLICATE:
            return _duplicate(event, key, before.seen[str(event.event_id)], at, now, out)
        if outcome is Outcome.NEW:
            inspection_states[key] = state
        out.add("inspection_events", rows.inspection_event_row(event, raw, at, now))
        out.add(
            "inspection_classifications",
            rows.classification_row(event.agency_code, event.inspection_id, state, now),
        )
    else:
        dossier = dossier_states.get(key) or _NO_DOSSIER
        new_dossier, outcome = apply_service(dossier, event, position)
        if outcome is Outcome.DUPLICATE:
            return _duplicate(event, key, dossier.seen[str(event.event_id)], at, now, out)
        if outcome is Outcome.NEW:
            dossier_states[key] = new_dossier
        out.add("service_events", rows.service_event_row(event, raw, at, now))
        if event.event_type == "submitted":
            out.add("service_submissions", rows.submission_row(event, now))
    result = Result.ACCEPTED if outcome is Outcome.NEW else Result.REDELIVERED
    return Processed(result, agency_code=event.agency_code)


def process(
    raw: bytes,
    at: rows.Origin,
    *,
    now: datetime,
    known_agencies: Container[str],
    inspection_states: MutableMapping[str, Any],
    dossier_states: MutableMapping[str, Any],
    out: RowBuffer,
) -> Processed:
    """Handle one message: ``decode_message`` then ``apply_event``."""
    event = decode_message(raw, at, now=now, known_agencies=known_agencies, out=out)
    if isinstance(event, Processed):
        return event
    return apply_event(
        event, raw, at, now=now, inspection_states=inspection_states,
        dossier_states=dossier_states, out=out,
    )  # fmt: skip


def _duplicate(
    event: InspectionEventV1 | ServiceEventV1,
    key: str,
    first: tuple[int, int],
    at: rows.Origin,
    now: datetime,
    out: RowBuffer,
) -> Processed:
    out.add(
        "duplicates", rows.duplicate_row(event.event_id, event.agency_code, key, first, at, now)
    )
    return Processed(Result.DUPLICATE, agency_code=event.agency_code)
