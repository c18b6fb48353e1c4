"""Rows for the warehouse tables, built from events and states. Pure: ``now`` is passed in.

Rows are built in the column order of ``streams.warehouse.tables``; the tables are in
``schemas/clickhouse/``. A test runs every example payload through decode -> classify -> rows
-> insert, so a drift between the two fails. ``event_id`` goes in as ``UUID.int``:
clickhouse-connect writes a UUID column from ints, and an int is cheaper than a ``UUID`` to pass
between processes (``streams.worker.decoder``); so do timestamps, as milliseconds since 1970 UTC
(``ticks_ms``, what a ``DateTime64(3)`` column holds), except in the rows built from states.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, NamedTuple

from schemas.errors import InvalidEvent
from schemas.inspection import IN_PERSON_MODES, InspectionEventV1
from schemas.lifecycle import Lifecycle, effective_due, paused_before
from schemas.offering import OfferingEventV1
from schemas.service import ServiceEvent, ServiceEventV2
from streams.warehouse.tables import Row
from streams.worker.classify import InspectionState, prefill_class, ticks_ms


class Origin(NamedTuple):
    """Where a message was read: its topic, partition and offset (a named tuple: one is made
    per message, and a frozen dataclass costs a call per field to build)."""

    topic: str
    partition: int
    offset: int


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def inspection_event_row(ev: InspectionEventV1, raw: bytes, at: Origin, now_ms: int) -> Row:
    act = ev.activity
    return [
        ev.event_id.int, ev.event_type, ticks_ms(ev.occurred_at), ev.agency_code, ev.inspection_id,
        act.mode.value if act else None,
        (0 if act.mode in IN_PERSON_MODES else 1) if act else None,
        act.system_code if act else None,
        ev.sector, ev.subject_type, ev.schema_version, _text(raw),
        at.topic, at.partition, at.offset, now_ms, ev.kind,
    ]  # fmt: skip


def classification_row(agency: str, inspection_id: str, st: InspectionState, now: datetime) -> Row:
    """``inspection_classifications``: an inspection's state; its activities as two arrays
    (when, online or not), in the state's order (by time, then online)."""
    log = st.activity_log
    return [
        agency, inspection_id, st.classification, int(st.has_online), int(st.has_in_person),
        st.activities, st.opened_at, st.concluded_at, int(st.cancelled), st.sector, st.version,
        now, st.kind, [ms for ms, _ in log], [int(online) for _, online in log],
    ]  # fmt: skip


def lifecycle_row(agency: str, dossier_id: str, lc: Lifecycle, version: int, now: datetime) -> Row:
    """``dossier_lifecycle``: '' and 0 for the facts of an event the dossier has not had, NULL
    for its instants and flags; the effective due date its pauses imply and the pause time
    before its end (``schemas.lifecycle``); ``version``: the number of distinct events applied."""
    sub, end = lc.submission, lc.ending
    spans = lc.pauses()
    return [
        agency, dossier_id, sub.procedure_code if sub else "",
        lc.submitted[0] if lc.submitted else None, sub.schema if sub else "",
        sub.channel if sub else "", sub.service_level if sub else "",
        sub.fields_total if sub else 0, sub.fields_prefilled if sub else 0,
        sub.due_ms if sub else None, _flag(sub.digitized) if sub else None,
        sub.reused_components if sub else 0,
        lc.ended[0] if lc.ended else None, end.event_type if end else "",
        end.schema if end else "", _flag(end.on_time) if end else None,
        _flag(end.result_electronic) if end else None,
        lc.paid[0] if lc.paid else None, lc.payment_channel or "",
        [s for s, _ in spans], [e for _, e in spans],
        effective_due(sub.due_ms, spans) if sub and sub.due_ms is not None else None,
        paused_before(spans, lc.ended[0]) if lc.ended else 0, version, now,
    ]  # fmt: skip


def _flag(v: bool | None) -> int | None:
    return None if v is None else int(v)


def _v2_columns(ev: ServiceEvent) -> list[Any]:
    """due_at, digitized, reused_components, payment_channel, result_electronic: NULL for a
    ``service/1`` event (it has no such fields)."""
    if not isinstance(ev, ServiceEventV2):
        return [None] * 5
    due = None if ev.due_at is None else ticks_ms(ev.due_at)
    return [due, _flag(ev.digitized), ev.reused_components, ev.payment_channel,
            _flag(ev.result_electronic)]  # fmt: skip


def service_event_row(ev: ServiceEvent, raw: bytes, at: Origin, now_ms: int) -> Row:
    form = ev.form
    return [
        ev.event_id.int, ev.event_type, ticks_ms(ev.occurred_at), ev.agency_code, ev.procedure_code,
        ev.dossier_id, ev.channel, ev.service_level,
        form.fields_total if form else None, form.fields_prefilled if form else None,
        list(form.prefill_sources or []) if form else [],
        None if ev.on_time is None else int(ev.on_time),
        ev.applicant.type if ev.applicant else None,
        ev.schema_version, _text(raw), at.topic, at.partition, at.offset, now_ms,
        *_v2_columns(ev),
    ]  # fmt: skip


def submission_row(ev: ServiceEvent, now_ms: int) -> Row:
    form = ev.form
    online = ev.channel == "online" and form is not None
    due, digitized, reused = None, None, 0
    if isinstance(ev, ServiceEventV2):
        due = None if ev.due_at is None else ticks_ms(ev.due_at)
        digitized, reused = _flag(ev.digitized), ev.reused_components or 0
    return [
        ev.event_id.int, ticks_ms(ev.occurred_at), ev.agency_code, ev.procedure_code, ev.dossier_id,
        ev.channel, ev.service_level,
        form.fields_total if online and form else 0,
        form.fields_prefilled if online and form else 0,
        prefill_class(ev),
        list(form.prefill_sources or []) if form else [],
        now_ms, due, digitized, reused, ev.schema_version,
    ]  # fmt: skip


def offering_event_row(ev: OfferingEventV1, raw: bytes, at: Origin, now_ms: int) -> Row:
    return [
        ev.event_id.int, ticks_ms(ev.occurred_at), ev.agency_code, ev.procedure_code, ev.level,
        int(ev.prefill_designed), ev.schema_version, _text(raw),
        at.topic, at.partition, at.offset, now_ms,
    ]  # fmt: skip


def dead_letter_row(refusal: InvalidEvent, now: datetime) -> Row:
    return [
        refusal.reason.value, refusal.detail,
        json.dumps([e.as_dict() for e in refusal.errors], ensure_ascii=False),
        refusal.agency_code, refusal.event_id, _text(refusal.payload),
        refusal.topic or "", refusal.partition or 0, refusal.offset or 0, ticks_ms(now),
    ]  # fmt: skip


def duplicate_row(
    event_id: Any, agency: str, key: str, first: tuple[int, int], at: Origin, now: datetime
) -> Row:
    return [event_id, agency, key, first[0], first[1], at.topic, at.partition, at.offset, now]
