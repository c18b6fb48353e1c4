"""The lifecycle of one dossier (EVENTS.md version 2, "Service events"), from its events.

Pure and order-independent: ``Lifecycle.apply`` takes the dossier's accepted events in any
order (each ``event_id`` once) and the result depends only on the set. The worker keeps one per
dossier and writes it to ``dossier_lifecycle``; ``schemas.kpi.reference_kpis`` uses the same
class, so both read a dossier alike. Instants are whole milliseconds since 1970 UTC (what a
``DateTime64(3)`` column stores).

* The submission facts come from the first ``submitted`` (by ``occurred_at``, ties: the smaller
  ``event_id`` text); the end from the first ``completed``/``rejected``/``withdrawn``; the
  payment from the first ``paid``.
* Pauses: the union of the spans from each ``supplement_requested`` to the next
  ``supplement_received`` (a request while paused starts no new pause; a reply without a
  request is ignored; a pause without a reply runs on: its end is ``None``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import EllipsisType
from typing import NamedTuple
from uuid import UUID

from schemas.service import END_EVENT_TYPES, ServiceEventV1, ServiceEventV2

Order = tuple[int, int]  # (occurred_at ms, event_id as an int); ties compared by the id's text


def ms_of(moment: object) -> int:
    """Milliseconds since 1970 UTC of an aware datetime, floored (as ``DateTime64(3)``)."""
    from datetime import datetime

    assert isinstance(moment, datetime)
    return (int(moment.timestamp()) * 1_000_000 + moment.microsecond) // 1000


def earlier(a: Order, b: Order) -> bool:
    """Whether ``a`` comes before ``b``: by time, then by the event_id's canonical text."""
    if a[0] != b[0]:
        return a[0] < b[0]
    return str(UUID(int=a[1])) < str(UUID(int=b[1]))


class Submission(NamedTuple):
    procedure_code: str
    schema: str  # service/1 or service/2
    channel: str
    service_level: str  # '' unless online
    fields_total: int  # 0 unless online
    fields_prefilled: int
    due_ms: int | None  # service/2 only
    digitized: bool | None  # service/2 only
    reused_components: int


class Ending(NamedTuple):
    event_type: str  # completed / rejected / withdrawn
    schema: str
    on_time: bool | None  # the completing event's own flag (service/1), if any
    result_electronic: bool | None  # service/2 completions


class ServiceFacts(NamedTuple):
    """What the lifecycle reads of one service event (plain values: it crosses processes)."""

    event_type: str
    ms: int
    submission: Submission | None  # on `submitted`
    ending: Ending | None  # on completed / rejected / withdrawn
    payment_channel: str | None  # on `paid` (service/2)


def service_facts(
    event: ServiceEventV1 | ServiceEventV2, ms: int, due_ms: int | None | EllipsisType = ...
) -> ServiceFacts:
    """The facts of ``event``; ``ms`` is its ``occurred_at`` in milliseconds, ``due_ms`` its
    ``due_at``'s (None without one; computed here when not given)."""
    kind = event.event_type
    v2 = isinstance(event, ServiceEventV2)
    submission = ending = payment = None
    if kind == "submitted":
        form = event.form if event.channel == "online" else None
        due = event.due_at if v2 else None  # type: ignore[union-attr]
        submission = Submission(
            event.procedure_code, event.schema_version, event.channel or "",
            (event.service_level or "") if form is not None else "",
            form.fields_total if form is not None else 0,
            form.fields_prefilled if form is not None else 0,
            (ms_of(due) if due is not None else None) if due_ms is ... else due_ms,
            event.digitized if v2 else None,  # type: ignore[union-attr]
            (event.reused_components or 0) if v2 else 0,  # type: ignore[union-attr]
        )  # fmt: skip
    elif kind in END_EVENT_TYPES:
        electronic = event.result_electronic if v2 else None  # type: ignore[union-attr]
        ending = Ending(kind, event.schema_version, event.on_time, electronic)
    elif kind == "paid" and v2:
        payment = event.payment_channel  # type: ignore[union-attr]
    return ServiceFacts(kind, ms, submission, ending, payment)


@dataclass(slots=True)
class Lifecycle:
    """A dossier's lifecycle so far. ``apply`` each accepted event once, in any order."""

    submitted: Order | None = None
    submission: Submission | None = None
    ended: Order | None = None
    ending: Ending | None = None
    paid: Order | None = None
    payment_channel: str | None = None
    supplements: list[tuple[Order, bool]] = field(default_factory=list)  # (order, request?)

    def apply(self, facts: ServiceFacts, event_key: int) -> None:
        order = (facts.ms, event_key)
        if facts.submission is not None:
            if self.submitted is None or earlier(order, self.submitted):
                self.submitted, self.submission = order, facts.submission
        elif facts.ending is not None:
            if self.ended is None or earlier(order, self.ended):
                self.ended, self.ending = order, facts.ending
        elif facts.payment_channel is not None:
            if self.paid is None or earlier(order, self.paid):
                self.paid, self.payment_channel = order, facts.payment_channel
        elif facts.event_type in ("supplement_requested", "supplement_received"):
            self.supplements.append((order, facts.event_type == "supplement_requested"))

    def copy(self) -> Lifecycle:
        return Lifecycle(
            self.submitted, self.submission, self.ended, self.ending, self.paid,
            self.payment_channel, list(self.supplements),
        )  # fmt: skip

    def pauses(self) -> list[tuple[int, int | None]]:
        """The pause spans (start ms, end ms or None while unanswered), in time order."""
        out: list[tuple[int, int | None]] = []
        start: int | None = None
        ordered = sorted(self.supplements, key=lambda s: (s[0][0], str(UUID(int=s[0][1]))))
        for (ms, _), request in ordered:
            if request and start is None:
                start = ms
            elif not request and start is not None:
                out.append((start, ms))
                start = None
        if start is not None:
            out.append((start, None))
        return out


def effective_due(due_ms: int, pauses: list[tuple[int, int | None]]) -> int | None:
    """The instant T after which the dossier is overdue: ``due + paused_before(t) < t`` holds
    exactly for t > T (None: never, while a pause that began by the deadline has no reply).

    ``due + paused_before(t) - t`` does not increase with t (slope -1 outside pauses, 0 inside),
    so it crosses 0 once: at ``due``, pushed back by each pause that starts by the deadline
    reached so far. A completion at c is on time exactly when c <= T. The KPI views compare
    instants with T instead of summing pauses at every period end."""
    deadline = due_ms
    for start, end in pauses:
        if start > deadline:
            break
        if end is None:
            return None
        deadline += end - start
    return deadline


def paused_before(pauses: list[tuple[int, int | None]], t: int) -> int:
    """Milliseconds of pause before instant ``t`` (an unanswered pause runs to ``t``)."""
    total = 0
    for start, end in pauses:
        if start < t:
            total += min(t if end is None else end, t) - start
    return total


def stored_facts(
    event_type: str, ms: int, procedure_code: str, schema: str, channel: str | None,
    service_level: str | None, fields_total: int | None, fields_prefilled: int | None,
    due_ms: int | None, digitized: int | None, reused_components: int | None,
    on_time: int | None, result_electronic: int | None, payment_channel: str | None,
) -> ServiceFacts:  # fmt: skip
    """``service_facts`` of an event read back from its ``service_events`` row (its columns of
    the same names; instants in milliseconds, flags as 0/1 or NULL), equal to what
    ``service_facts`` gave for the event itself: the row keeps every field those facts read
    (``fields_*`` NULL when the event had no form; the v2 columns NULL on ``service/1``)."""
    submission = ending = payment = None
    v2 = schema == "service/2"
    if event_type == "submitted":
        form = channel == "online" and fields_total is not None
        submission = Submission(
            procedure_code, schema, channel or "",
            (service_level or "") if form else "",
            (fields_total or 0) if form else 0,
            (fields_prefilled or 0) if form else 0,
            due_ms if v2 else None,
            (None if digitized is None else bool(digitized)) if v2 else None,
            (reused_components or 0) if v2 else 0,
        )  # fmt: skip
    elif event_type in END_EVENT_TYPES:
        ending = Ending(
            event_type, schema, None if on_time is None else bool(on_time),
            (None if result_electronic is None else bool(result_electronic)) if v2 else None,
        )  # fmt: skip
    elif event_type == "paid" and v2:
        payment = payment_channel
    return ServiceFacts(event_type, ms, submission, ending, payment)
