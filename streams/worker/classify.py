"""Pure classification: functions of (state, event, position). No I/O, no clock, no globals.

Per-entity state is keyed by the Kafka key (``{agency}:{inspection_id}``,
``{agency}:{dossier_id}`` or ``{agency}:{procedure_code}``; one map per kind, since the same
string may name a dossier and a service), so every update of one entity happens on one
partition, in order.
Each state remembers the Kafka position of the first accepted copy of every event_id it
applied, which separates the two kinds of repeat:

* ``REDELIVERED``: the same message again (same partition and offset), after a crash or a
  rebalance. Not a duplicate: its rows are written again (idempotent writes).
* ``DUPLICATE``: another message with an event_id already applied. Counted and skipped.

The inspection classification depends only on the set of activities, never on their order, and
so does the list of its activities (``activity_log``, kept sorted); its ``kind`` is the one
carried by the latest event (by ``occurred_at``) that carries one (ties: the one applied later),
``kiem_tra`` when none does. ``version`` (the number of distinct events applied) grows with
every change, so the warehouse keeps the row with the highest version, which is the complete
state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from schemas.inspection import IN_PERSON_MODES, InspectionEventV1
from schemas.kpi import InspectionClass, classify_inspection
from schemas.lifecycle import Ending, Lifecycle, ServiceFacts, Submission, service_facts
from schemas.offering import OfferingEventV1
from schemas.service import ServiceEvent

Position = tuple[int, int]  # (partition, offset) of the first accepted copy
EventKey = int  # ``event_id.int``: cheaper per event than the UUID's text, and the same identity


class Outcome(Enum):
    NEW = "new"
    REDELIVERED = "redelivered"
    DUPLICATE = "duplicate"


def _outcome(seen: dict[EventKey, Position], event_id: EventKey, position: Position) -> Outcome:
    first = seen.get(event_id)
    if first is None:
        return Outcome.NEW
    return Outcome.REDELIVERED if tuple(first) == tuple(position) else Outcome.DUPLICATE


DEFAULT_KIND = "kiem_tra"  # EVENTS.md: an inspection none of whose events carries ``kind``

Activity = tuple[int, bool]
"""One activity event of an inspection: (occurred_at in milliseconds since 1970 UTC, online?)."""


@dataclass(slots=True)  # not frozen: a frozen init costs a call per field, per event
class InspectionState:
    has_online: bool = False
    has_in_person: bool = False
    # Each activity event once (the dedup by event_id), sorted by (time, online): the same
    # events in any order give the same tuple, and the classification row does not depend on
    # arrival order. A tuple, replaced with the state, never changed in place.
    activity_log: tuple[Activity, ...] = ()
    opened_at: int | None = None  # milliseconds since 1970 UTC (``ticks_ms``), the earliest
    concluded_at: int | None = None  # the latest `concluded` event, milliseconds
    cancelled: bool = False
    sector: str | None = None
    seen: dict[EventKey, Position] = field(default_factory=dict)
    kind: str = DEFAULT_KIND  # of the latest event (by occurred_at) that carried one
    kind_at: int | None = None  # that event's occurred_at, milliseconds

    @property
    def version(self) -> int:
        return len(self.seen)

    @property
    def activities(self) -> int:
        return len(self.activity_log)

    @property
    def classification(self) -> InspectionClass:
        return classify_inspection(self.has_online, self.has_in_person)


InspectionFacts = tuple[EventKey, str, bool | None, int, str | None, str | None]
"""What the classification reads of an inspection event: (event key, event type, in person?
(activity events only), occurred_at in milliseconds since 1970 UTC, sector, kind as sent). A
plain tuple: it crosses processes (``streams.worker.decoder``), and plain tuples pickle
fastest."""


ActivityFacts = tuple[str, bool | None, int, str | None, str | None]
"""``InspectionFacts`` after the event key: what the decoding process sends (the key travels
beside it once, see ``processor.Decoded``)."""


def ticks_ms(moment: datetime, timestamp: float | None = None) -> int:
    """Milliseconds since 1970 UTC, floored: what a ``DateTime64(3)`` column stores, computed
    as clickhouse-connect computes it for a datetime (whole seconds of ``timestamp()``, then the
    microseconds), so rows built either way are equal. ``timestamp``: ``moment.timestamp()``,
    when the caller has it already."""
    if timestamp is None:
        timestamp = moment.timestamp()
    return (int(timestamp) * 1_000_000 + moment.microsecond) // 1000


def activity_facts(event: InspectionEventV1, occurred_ms: int) -> ActivityFacts:
    """The facts of ``event`` after its key; ``occurred_ms`` is ``ticks_ms(occurred_at)``."""
    act = event.activity
    in_person = None if act is None else act.mode in IN_PERSON_MODES
    return (event.event_type, in_person, occurred_ms, event.sector, event.kind)


def inspection_facts(event: InspectionEventV1) -> InspectionFacts:
    return (event.event_id.int, *activity_facts(event, ticks_ms(event.occurred_at)))


def apply_inspection(
    state: InspectionState, event: InspectionEventV1 | InspectionFacts, position: Position
) -> tuple[InspectionState, Outcome]:
    """The state after ``event``; unchanged for a redelivery or a duplicate."""
    eid, event_type, in_person, occurred_ms, sector, kind = (
        event if isinstance(event, tuple) else inspection_facts(event)
    )
    outcome = _outcome(state.seen, eid, position)
    if outcome is not Outcome.NEW:
        return state, outcome
    has_online, has_in_person, log = state.has_online, state.has_in_person, state.activity_log
    opened_at, concluded_at, cancelled = state.opened_at, state.concluded_at, state.cancelled
    if event_type == "activity" and in_person is not None:
        activity = (occurred_ms, not in_person)
        if not log or activity >= log[-1]:  # the usual case: events come in time order
            log = (*log, activity)
        else:
            log = tuple(sorted((*log, activity)))
        if in_person:
            has_in_person = True
        else:
            has_online = True
    elif event_type == "opened":
        if opened_at is None or occurred_ms < opened_at:
            opened_at = occurred_ms
    elif event_type == "concluded":
        if concluded_at is None or occurred_ms > concluded_at:
            concluded_at = occurred_ms
    elif event_type == "cancelled":
        cancelled = True
    kind_at = state.kind_at
    if kind is None:
        kind = state.kind
    elif kind_at is None or occurred_ms >= kind_at:  # the latest; a tie: this one, applied later
        kind_at = occurred_ms
    else:
        kind = state.kind
    # The constructor, not dataclasses.replace: this runs for every event (replace is slow).
    new = InspectionState(
        has_online, has_in_person, log, opened_at, concluded_at, cancelled,
        sector if sector is not None else state.sector,
        {**state.seen, eid: position}, kind, kind_at,
    )  # fmt: skip
    return new, outcome


_SUPPLEMENTS = frozenset({"supplement_requested", "supplement_received"})


@dataclass(slots=True)  # not frozen: a frozen init costs a call per field, per event
class DossierState:
    """A dossier's state: the events applied (for dedup) and its lifecycle
    (``schemas.lifecycle``), written to ``dossier_lifecycle``. Changed in place by
    ``apply_service`` (one state a dossier: copying the lifecycle for every event cost more
    than applying it), so whoever builds rows from it does so before the next event is applied
    (``RowBuffer.take``, called when a write starts)."""

    seen: dict[EventKey, Position] = field(default_factory=dict)
    lifecycle: Lifecycle = field(default_factory=Lifecycle)

    @property
    def version(self) -> int:
        return len(self.seen)


PlainFacts = tuple[
    str, int, tuple[Any, ...] | None, tuple[Any, ...] | None, str | None
]  # fmt: skip
"""A ``ServiceFacts`` as plain tuples (its ``Submission`` and ``Ending`` too): what the decoding
process sends. Named tuples pickle through a Python call each (about 2 us a service event,
measured); plain tuples stay in C (0.2 us). ``facts_of`` makes the named tuples again."""

_new = tuple.__new__


def plain_facts(facts: ServiceFacts) -> PlainFacts:
    sub, end = facts.submission, facts.ending
    return (
        facts.event_type, facts.ms, None if sub is None else tuple(sub),
        None if end is None else tuple(end), facts.payment_channel,
    )  # fmt: skip


def facts_of(plain: PlainFacts) -> ServiceFacts:
    """The ``ServiceFacts`` of ``plain_facts(facts)``: equal to ``facts``."""
    event_type, ms, sub, end, payment = plain
    return _new(
        ServiceFacts, (
            event_type, ms, None if sub is None else _new(Submission, sub),
            None if end is None else _new(Ending, end), payment,
        ),
    )  # fmt: skip


def apply_service(
    state: DossierState, event: ServiceEvent | EventKey, position: Position,
    facts: ServiceFacts | PlainFacts | None = None,
) -> tuple[DossierState, Outcome]:  # fmt: skip
    """The dossier's state after ``event``: ``state`` itself, with the event applied in place
    (see ``DossierState``); unchanged for a redelivery or a duplicate. ``event`` may be given
    as its ``event_id.int`` with its ``facts`` (``service_facts``, or ``plain_facts`` of them:
    what the decoding process sends); an event model's facts are read from it."""
    eid = event if isinstance(event, int) else event.event_id.int
    seen = state.seen
    first = seen.get(eid)
    if first is not None:
        same = tuple(first) == tuple(position)
        return state, Outcome.REDELIVERED if same else Outcome.DUPLICATE
    if facts is None:
        assert not isinstance(event, int), "an event key needs its facts"
        facts = service_facts(event, ticks_ms(event.occurred_at))
    elif type(facts) is not ServiceFacts:
        facts = facts_of(facts)
    lifecycle = state.lifecycle
    lifecycle.apply(facts, eid)
    if facts.event_type in _SUPPLEMENTS:
        # Kept sorted (by time, then event key): the same events in any order give equal
        # states, as a state rebuilt from the warehouse in Kafka order must equal the live one.
        lifecycle.supplements.sort()
    seen[eid] = position
    return state, Outcome.NEW


@dataclass(slots=True)  # not frozen: a frozen init costs a call per field, per event
class OfferingState:
    """A service's (agency x procedure) state: the events applied, for dedup only; kept in a
    map of its own (one key string may name a dossier and a service)."""

    seen: dict[EventKey, Position] = field(default_factory=dict)


def apply_offering(
    state: OfferingState, event: OfferingEventV1 | EventKey, position: Position
) -> tuple[OfferingState, Outcome]:
    """Dedup only: every accepted offering event becomes a row of its own. ``event`` may be
    given as its ``event_id.int``."""
    eid = event if isinstance(event, int) else event.event_id.int
    outcome = _outcome(state.seen, eid, position)
    if outcome is not Outcome.NEW:
        return state, outcome
    return OfferingState(seen={**state.seen, eid: position}), outcome


def prefill_class(event: ServiceEvent) -> str:
    """``full`` / ``partial`` / ``none`` for an online submission, ``not_online`` otherwise."""
    if event.channel != "online" or event.form is None:
        return "not_online"
    return event.form.prefill_class
