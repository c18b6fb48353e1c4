"""Pure classification: functions of (state, event, position). No I/O, no clock, no globals.

Per-entity state is keyed by the Kafka key (``{agency}:{inspection_id}`` or
``{agency}:{dossier_id}``), so every update of one entity happens on one partition, in order.
Each state remembers the Kafka position of the first accepted copy of every event_id it
applied, which separates the two kinds of repeat:

* ``REDELIVERED``: the same message again (same partition and offset), after a crash or a
  rebalance. Not a duplicate: its rows are written again (idempotent writes).
* ``DUPLICATE``: another message with an event_id already applied. Counted and skipped.

The inspection classification depends only on the set of activities, never on their order;
``version`` (the number of distinct events applied) grows with every change, so the warehouse
keeps the row with the highest version, which is the complete state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from schemas.inspection import IN_PERSON_MODES, InspectionEventV1
from schemas.kpi import InspectionClass, classify_inspection
from schemas.service import ServiceEventV1

Position = tuple[int, int]  # (partition, offset) of the first accepted copy


class Outcome(Enum):
    NEW = "new"
    REDELIVERED = "redelivered"
    DUPLICATE = "duplicate"


def _outcome(seen: dict[str, Position], event_id: str, position: Position) -> Outcome:
    first = seen.get(event_id)
    if first is None:
        return Outcome.NEW
    return Outcome.REDELIVERED if tuple(first) == tuple(position) else Outcome.DUPLICATE


@dataclass(frozen=True)
class InspectionState:
    has_online: bool = False
    has_in_person: bool = False
    activities: int = 0
    opened_at: datetime | None = None
    concluded_at: datetime | None = None  # the latest `concluded` event
    cancelled: bool = False
    sector: str | None = None
    seen: dict[str, Position] = field(default_factory=dict)

    @property
    def version(self) -> int:
        return len(self.seen)

    @property
    def classification(self) -> InspectionClass:
        return classify_inspection(self.has_online, self.has_in_person)


def apply_inspection(
    state: InspectionState, event: InspectionEventV1, position: Position
) -> tuple[InspectionState, Outcome]:
    """The state after ``event``; unchanged for a redelivery or a duplicate."""
    eid = str(event.event_id)
    outcome = _outcome(state.seen, eid, position)
    if outcome is not Outcome.NEW:
        return state, outcome
    has_online, has_in_person, activities = state.has_online, state.has_in_person, state.activities
    opened_at, concluded_at, cancelled = state.opened_at, state.concluded_at, state.cancelled
    kind = event.event_type
    if kind == "activity" and event.activity is not None:
        activities += 1
        if event.activity.mode in IN_PERSON_MODES:
            has_in_person = True
        else:
            has_online = True
    elif kind == "opened":
        if opened_at is None or event.occurred_at < opened_at:
            opened_at = event.occurred_at
    elif kind == "concluded":
        if concluded_at is None or event.occurred_at > concluded_at:
            concluded_at = event.occurred_at
    elif kind == "cancelled":
        cancelled = True
    # The constructor, not dataclasses.replace: this runs for every event (replace is slow).
    new = InspectionState(
        has_online, has_in_person, activities, opened_at, concluded_at, cancelled,
        event.sector if event.sector is not None else state.sector,
        {**state.seen, eid: position},
    )  # fmt: skip
    return new, outcome


@dataclass(frozen=True)
class DossierState:
    seen: dict[str, Position] = field(default_factory=dict)


def apply_service(
    state: DossierState, event: ServiceEventV1, position: Position
) -> tuple[DossierState, Outcome]:
    """Dedup only: every accepted service event becomes rows of its own."""
    eid = str(event.event_id)
    outcome = _outcome(state.seen, eid, position)
    if outcome is not Outcome.NEW:
        return state, outcome
    return DossierState(seen={**state.seen, eid: position}), outcome


def prefill_class(event: ServiceEventV1) -> str:
    """``full`` / ``partial`` / ``none`` for an online submission, ``not_online`` otherwise."""
    if event.channel != "online" or event.form is None:
        return "not_online"
    return event.form.prefill_class
