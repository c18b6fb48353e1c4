"""A faster validator for the common case, giving exactly what the contract's models give.

The contract's models (``inspection``, ``service``) run Python validators on every event: the
RFC 3339 check of ``occurred_at``, the canonical form of ``event_id`` and NFC on each text
field, each a call out of pydantic-core's Rust. Here the same models are subclassed with those
fields validated in Rust only:

* ``occurred_at``: a pattern narrower than the contract's (``T``, ``Z`` and at most six fraction
  digits, every field in its range), then pydantic's own parser and ``>= 1970-01-01Z``;
* ``event_id``: the same canonical pattern, then pydantic's UUID parser;
* text fields: no NFC step; ``nfc_safe(raw)`` must hold first (every string in the payload is
  already NFC, so NFC would change nothing);
* unnamed fields are kept, as the contract's models keep them (``extra="allow"``, inherited);
  ``has_unnamed`` tells cheaply whether an event has any, and then ``decode`` checks them for
  personal data exactly as on the contract's path.

So whatever the fast models accept, the contract's models accept too, with equal values (the
instances are of subclasses, so ``isinstance`` checks hold). Whatever they refuse goes to the
contract's models, which decide and say why. ``decode`` uses the fast models first.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import Field, GetPydanticSchema, StringConstraints, TypeAdapter
from pydantic_core import core_schema as cs

from schemas.fields import EARLIEST, UUID_PATTERN
from schemas.inspection import Activity, InspectionEventV1
from schemas.offering import OfferingEventV1
from schemas.service import Applicant, Form, ServiceEventV1, ServiceEventV2

# RFC 3339 as most systems write it; anything else (``t``, ``z``, nanoseconds) takes the
# contract's path, which reads every form the contract allows.
_COMMON_RFC3339 = (
    r"^(?:19[7-9]\d|[2-9]\d{3})-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
    r"T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$"
)

FastTimestamp = Annotated[
    datetime,
    GetPydanticSchema(
        lambda _tp, _handler: cs.chain_schema(
            [
                cs.str_schema(pattern=_COMMON_RFC3339, strict=True),
                cs.datetime_schema(ge=EARLIEST, strict=False),
            ]
        )
    ),
]

FastEventId = Annotated[
    UUID,
    GetPydanticSchema(
        lambda _tp, _handler: cs.chain_schema(
            [cs.str_schema(pattern=UUID_PATTERN, strict=True), cs.uuid_schema(strict=False)]
        )
    ),
]


def _bounded(max_length: int) -> type[str]:
    return Annotated[str, StringConstraints(min_length=1, max_length=max_length)]  # type: ignore[return-value]


class _Activity(Activity):
    system_code: str | None = None


class FastInspectionEventV1(InspectionEventV1):
    event_id: FastEventId
    occurred_at: FastTimestamp
    inspection_id: _bounded(64)  # type: ignore[valid-type]
    activity: _Activity | None = None
    sector: str | None = None


class _Form(Form):
    prefill_sources: list[str] | None = None


class _Applicant(Applicant):
    pass


class FastServiceEventV1(ServiceEventV1):
    event_id: FastEventId
    occurred_at: FastTimestamp
    procedure_code: _bounded(32)  # type: ignore[valid-type]
    dossier_id: _bounded(64)  # type: ignore[valid-type]
    form: _Form | None = None
    applicant: _Applicant | None = None


class FastServiceEventV2(ServiceEventV2):
    event_id: FastEventId
    occurred_at: FastTimestamp
    due_at: FastTimestamp | None = None
    procedure_code: _bounded(32)  # type: ignore[valid-type]
    dossier_id: _bounded(64)  # type: ignore[valid-type]
    form: _Form | None = None
    applicant: _Applicant | None = None


class FastOfferingEventV1(OfferingEventV1):
    event_id: FastEventId
    occurred_at: FastTimestamp
    procedure_code: _bounded(32)  # type: ignore[valid-type]


FastEvent = FastInspectionEventV1 | FastServiceEventV1 | FastServiceEventV2 | FastOfferingEventV1

FAST_ADAPTER: TypeAdapter[InspectionEventV1 | ServiceEventV1 | ServiceEventV2 | OfferingEventV1] = (
    TypeAdapter(Annotated[FastEvent, Field(discriminator="schema_version")])
)


# The fields of each fast model that hold a nested model (``decoding._nested`` of the contract's
# models; a test keeps the two in step).
NESTED: dict[type, tuple[str, ...]] = {
    FastInspectionEventV1: ("activity",),
    FastServiceEventV1: ("form", "applicant"),
    FastServiceEventV2: ("form", "applicant"),
    FastOfferingEventV1: (),
}


def has_unnamed(event: FastEvent) -> bool:
    """Whether a fast event (or a model nested in it) holds fields the contract does not name:
    ``decoding.has_unnamed_fields``, for these models, without its generic walk."""
    if event.__pydantic_extra__:
        return True
    for name in NESTED[type(event)]:
        nested = getattr(event, name)
        if nested is not None and nested.__pydantic_extra__:
            return True
    return False


def nfc_safe(raw: bytes) -> bool:
    """Whether every string in the JSON text ``raw`` is already NFC.

    True when ``raw`` has no ``\\u`` escape (an escape can build any sequence) and the whole text
    is NFC: a string value lies between two ``"``, which never compose with a neighbour, so each
    value is normalised exactly when the text is (Unicode normalisation is local between such
    characters).
    """
    if b"\\u" in raw:
        return False
    if raw.isascii():
        return True
    try:
        return unicodedata.is_normalized("NFC", raw.decode("utf-8"))
    except UnicodeDecodeError:
        return False
