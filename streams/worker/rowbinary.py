"""The event tables' rows as ClickHouse RowBinary, built where the event is decoded.

An event's own rows (``inspection_events``, ``service_events``, ``service_submissions``,
``offering_events``) depend
on the event alone, so the decoding process (``streams.worker.decoder``) encodes them (the worker
encodes ``inspection_classifications`` and ``dossier_lifecycle``, one row per changed
inspection or dossier and write); the worker only
joins the rows it keeps (not a duplicate's) and inserts them with ``FORMAT RowBinary``, which
ClickHouse reads in C++. ``occurred_ms`` is ``classify.ticks_ms(ev.occurred_at)``, computed once
per event by the caller. The column lists are ``streams.warehouse.tables.COLUMNS``; ``rows``
keeps the same rows as Python lists, and a test checks both give identical tables.

RowBinary, for the types used here: ``String`` (and ``LowCardinality(String)``) is a LEB128
length then the UTF-8 bytes; ``Nullable(T)`` is a byte (1: NULL) then T when not NULL; ``UUID``
is its high then its low 64 bits, each little-endian; ``DateTime64(3)`` an Int64 of milliseconds;
``UInt8/32/64`` little-endian; ``Array(T)`` a LEB128 count then the elements.
"""

from __future__ import annotations

import json
import struct

from schemas.errors import InvalidEvent
from schemas.inspection import IN_PERSON_MODES, InspectionEventV1
from schemas.lifecycle import Lifecycle, effective_due, paused_before
from schemas.offering import OfferingEventV1
from schemas.service import ServiceEvent, ServiceEventV2
from streams.worker.classify import Activity, InspectionState, prefill_class, ticks_ms
from streams.worker.rows import Origin

_U32 = struct.Struct("<I").pack
_U64 = struct.Struct("<Q").pack
_I64 = struct.Struct("<q").pack
_QQ = struct.Struct("<QQ").pack  # UUID: high, low
_TAIL = struct.Struct("<IQq").pack  # _partition, _offset, _ingested_at
_FIELDS = struct.Struct("<BIBI").pack  # fields_total, fields_prefilled: not NULL
_II = struct.Struct("<II").pack
_LOW64 = (1 << 64) - 1
_NULL = b"\x01"
_V1_SERVICE = b"\x01" * 5  # a service/1 event's v2 columns: all NULL
_FLAG = {None: _NULL, False: b"\x00\x00", True: b"\x00\x01"}  # Nullable(UInt8) of a bool


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    if n < 0x4000:  # a payload's length: two bytes
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _bytes(b: bytes) -> bytes:
    n = len(b)
    return (bytes((n,)) if n < 0x80 else _varint(n)) + b


def _str(v: str) -> bytes:
    b = v.encode()
    n = len(b)
    return (bytes((n,)) if n < 0x80 else _varint(n)) + b


class _Memo(dict[str | None, bytes]):
    """Encodings of the values of a low-cardinality column (event types, agencies, topics):
    a dict lookup instead of encoding them again for every row."""

    def __init__(self, nullable: bool) -> None:
        super().__init__()
        self.nullable = nullable

    def __missing__(self, v: str | None) -> bytes:
        if v is None:
            return _NULL
        enc = b"\x00" + _str(v) if self.nullable else _str(v)
        if len(self) < 10_000:  # bounded, whatever comes
            self[v] = enc
        return enc


_LC = _Memo(nullable=False)
_LCN = _Memo(nullable=True)


def _nstr(v: str | None) -> bytes:
    return _NULL if v is None else b"\x00" + _str(v)


def _strs(vs: list[str] | None) -> bytes:
    if not vs:
        return b"\x00"
    return _varint(len(vs)) + b"".join(_str(v) for v in vs)


def _uuid(x: int) -> bytes:
    return _QQ(x >> 64, x & _LOW64)


def _nu32(v: int | None) -> bytes:
    return _NULL if v is None else b"\x00" + _U32(v)


def _nt64(v: int | None) -> bytes:
    return _NULL if v is None else b"\x00" + _I64(v)


def inspection_event(
    ev: InspectionEventV1, raw: bytes, at: Origin, now_ms: int, occurred_ms: int
) -> bytes:
    act = ev.activity
    if act is None:
        activity = b"\x01\x01\x01"  # activity_mode, activity_online, system_code: NULL
    else:
        online = b"\x00\x00" if act.mode in IN_PERSON_MODES else b"\x00\x01"
        activity = _LCN[act.mode.value] + online + _nstr(act.system_code)
    return b"".join(
        (
            _uuid(ev.event_id.int), _LC[ev.event_type], _I64(occurred_ms),
            _LC[ev.agency_code], _str(ev.inspection_id), activity, _nstr(ev.sector),
            _LCN[ev.subject_type], _LC[ev.schema_version], _bytes(raw), _LC[at.topic],
            _TAIL(at.partition, at.offset, now_ms), _LCN[ev.kind],
        )
    )  # fmt: skip


def due_ms(ev: ServiceEvent) -> int | None:
    """``ticks_ms`` of ``due_at`` (None without one, and for ``service/1``): what the builders
    below take as ``due``, computed once an event by the caller (``timestamp()`` of an aware
    datetime is not free)."""
    if not isinstance(ev, ServiceEventV2) or ev.due_at is None:
        return None
    return ticks_ms(ev.due_at)


def service_event(
    ev: ServiceEvent, raw: bytes, at: Origin, now_ms: int, occurred_ms: int, due: int | None
) -> bytes:
    """``service_events``: one service event (``rows.service_event_row``); ``due`` is
    ``due_ms(ev)``."""
    form = ev.form
    if form is None:
        fields = b"\x01\x01\x00"  # fields_total, fields_prefilled: NULL; prefill_sources: []
    else:
        fields = (
            _FIELDS(0, form.fields_total, 0, form.fields_prefilled) + _strs(form.prefill_sources)
        )  # fmt: skip
    on_time = _NULL if ev.on_time is None else (b"\x00\x01" if ev.on_time else b"\x00\x00")
    applicant = ev.applicant.type if ev.applicant else None
    if isinstance(ev, ServiceEventV2):
        v2 = b"".join(
            (
                _nt64(due), _FLAG[ev.digitized], _nu32(ev.reused_components),
                _LCN[ev.payment_channel], _FLAG[ev.result_electronic],
            )
        )  # fmt: skip
    else:
        v2 = _V1_SERVICE
    return b"".join(
        (
            _uuid(ev.event_id.int), _LC[ev.event_type], _I64(occurred_ms),
            _LC[ev.agency_code], _LC[ev.procedure_code], _str(ev.dossier_id),
            _LCN[ev.channel], _LCN[ev.service_level], fields, on_time, _LCN[applicant],
            _LC[ev.schema_version], _bytes(raw), _LC[at.topic],
            _TAIL(at.partition, at.offset, now_ms), v2,
        )
    )  # fmt: skip


def submission(ev: ServiceEvent, now_ms: int, occurred_ms: int, due: int | None) -> bytes:
    """``service_submissions``: a ``submitted`` event (``rows.submission_row``); ``due`` as
    for ``service_event``."""
    form = ev.form
    online = ev.channel == "online" and form is not None
    total = form.fields_total if online and form else 0
    prefilled = form.fields_prefilled if online and form else 0
    if isinstance(ev, ServiceEventV2):  # due_at, digitized, reused_components (0 when absent)
        v2 = _nt64(due) + _FLAG[ev.digitized] + _U32(ev.reused_components or 0)
    else:
        v2 = b"\x01\x01\x00\x00\x00\x00"
    return b"".join(
        (
            _uuid(ev.event_id.int), _I64(occurred_ms), _LC[ev.agency_code],
            _LC[ev.procedure_code], _str(ev.dossier_id), _LC[ev.channel or ""],
            _LCN[ev.service_level], _II(total, prefilled), _LC[prefill_class(ev)],
            _strs(list(form.prefill_sources or []) if form else None), _I64(now_ms), v2,
            _LC[ev.schema_version],
        )
    )  # fmt: skip


def offering_event(
    ev: OfferingEventV1, raw: bytes, at: Origin, now_ms: int, occurred_ms: int
) -> bytes:
    """``offering_events``: one offering/1 event (``rows.offering_event_row``)."""
    return b"".join(
        (
            _uuid(ev.event_id.int), _I64(occurred_ms), _LC[ev.agency_code],
            _LC[ev.procedure_code], _LC[ev.level], b"\x01" if ev.prefill_designed else b"\x00",
            _LC[ev.schema_version], _bytes(raw), _LC[at.topic],
            _TAIL(at.partition, at.offset, now_ms),
        )
    )  # fmt: skip


def classification(agency: str, inspection_id: str, st: InspectionState, now_ms: int) -> bytes:
    """``inspection_classifications``: an inspection's state (``rows.classification_row``)."""
    return b"".join(
        (
            _LC[agency], _str(inspection_id), _LC[st.classification],
            b"\x01" if st.has_online else b"\x00", b"\x01" if st.has_in_person else b"\x00",
            _U32(st.activities), _nt64(st.opened_at), _nt64(st.concluded_at),
            b"\x01" if st.cancelled else b"\x00", _nstr(st.sector), _U64(st.version),
            _I64(now_ms), _LC[st.kind], _activities(st.activity_log),
        )
    )  # fmt: skip


def _activities(log: tuple[Activity, ...]) -> bytes:
    """activities_at, activities_online: two arrays of the same length, in the log's order."""
    if not log:
        return b"\x00\x00"
    n = len(log)
    count = bytes((n,)) if n < 0x80 else _varint(n)
    return b"".join(
        (count, struct.pack(f"<{n}q", *[ms for ms, _ in log]), count,
         bytes([online for _, online in log]))
    )  # fmt: skip


_NO_SUBMISSION = b"\x00\x01\x00\x00\x00" + b"\x00" * 8 + b"\x01\x01" + b"\x00" * 4
"""procedure_code .. reused_components of a dossier without a submission: procedure_code '',
submitted_at NULL, schema, channel and service_level '', fields 0, due_at and digitized NULL,
reused_components 0."""


_AT = struct.Struct("<Bq").pack  # a Nullable(DateTime64) that is not NULL: 0, then the ms
_FIELDS_DUE = struct.Struct("<IIBq").pack  # fields_total, fields_prefilled, due_at not NULL
_NO_END = b"\x01\x00\x00\x01\x01"  # ended_at NULL, end_type and end_schema '', two NULLs
_NO_PAYMENT = b"\x01\x00"  # paid_at NULL, payment_channel ''
_NO_PAUSES = b"\x00\x00"  # two empty arrays
_TAIL_LC = struct.Struct("<Qq").pack  # version, updated_at


def lifecycle(agency: str, dossier_id: str, lc: Lifecycle, version: int, now_ms: int) -> bytes:
    """``dossier_lifecycle``: a dossier's lifecycle (``rows.lifecycle_row``); ``version`` is
    the number of distinct events applied. Written out: one per changed dossier and write."""
    sub, end, submitted = lc.submission, lc.ending, lc.submitted
    if sub is None or submitted is None:
        head = _NO_SUBMISSION
    else:
        due = sub.due_ms
        head = b"".join(
            (
                _LC[sub.procedure_code], _AT(0, submitted[0]), _LC[sub.schema],
                _LC[sub.channel], _LC[sub.service_level],
                _II(sub.fields_total, sub.fields_prefilled) + _NULL if due is None
                else _FIELDS_DUE(sub.fields_total, sub.fields_prefilled, 0, due),
                _FLAG[sub.digitized], _U32(sub.reused_components),
            )
        )  # fmt: skip
    ended = lc.ended
    if end is None or ended is None:
        tail = _NO_END
    else:
        tail = b"".join(
            (
                _AT(0, ended[0]), _LC[end.event_type], _LC[end.schema], _FLAG[end.on_time],
                _FLAG[end.result_electronic],
            )
        )  # fmt: skip
    paid = lc.paid
    if paid is None:
        tail += _NO_PAYMENT
    else:
        tail += _AT(0, paid[0]) + _LC[lc.payment_channel or ""]
    due = sub.due_ms if sub is not None else None
    if lc.supplements:
        spans = lc.pauses()
        n = _varint(len(spans))
        tail += b"".join((n, *(_I64(s) for s, _ in spans), n, *(_nt64(e) for _, e in spans)))
        effective = None if due is None else effective_due(due, spans)
        paused = paused_before(spans, ended[0]) if ended is not None else 0
    else:
        tail += _NO_PAUSES
        effective, paused = due, 0
    tail += _nt64(effective) + _U64(paused)
    return b"".join(
        (_LC[agency], _str(dossier_id), head, tail, _TAIL_LC(version, now_ms))
    )  # fmt: skip


_DUPLICATE_TAIL = struct.Struct("<IQ").pack  # first_partition, first_offset


def duplicate(
    event_key: int, agency: str, entity_key: str, first: tuple[int, int], at: Origin,
    now_ms: int,
) -> bytes:  # fmt: skip
    """``duplicates``: a message whose event_id was applied already (``rows.duplicate_row``);
    ``first`` is the (partition, offset) of the accepted copy."""
    return b"".join(
        (
            _uuid(event_key), _LC[agency], _str(entity_key), _DUPLICATE_TAIL(*first),
            _LC[at.topic], _TAIL(at.partition, at.offset, now_ms),
        )
    )  # fmt: skip


def _text(v: str) -> bytes:
    """A String of text from outside (a refusal's detail, its agency): lone surrogates, which
    UTF-8 cannot hold, become U+FFFD instead of failing the insert."""
    b = v.encode("utf-8", errors="replace")
    return _varint(len(b)) + b


def _ntext(v: str | None) -> bytes:
    return _NULL if v is None else b"\x00" + _text(v)


def dead_letter(refusal: InvalidEvent, now_ms: int) -> bytes:
    """``dead_letters``: a refused message (``rows.dead_letter_row``), its origin recorded
    (``InvalidEvent.at``). The texts that come from the message (agency code, event id) are
    not memoised: there is no bound on how many different ones arrive."""
    errors = json.dumps([e.as_dict() for e in refusal.errors], ensure_ascii=False)
    return b"".join(
        (
            _LC[refusal.reason.value], _text(refusal.detail), _text(errors),
            _ntext(refusal.agency_code), _ntext(refusal.event_id),
            _text(refusal.payload.decode("utf-8", errors="replace")),
            _LC[refusal.topic or ""],
            _TAIL(refusal.partition or 0, refusal.offset or 0, now_ms),
        )
    )  # fmt: skip
