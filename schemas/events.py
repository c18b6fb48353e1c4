"""The versioned event union: one discriminated union on ``schema``, and ``upgrade()``.

A breaking change to the contract is a new version (``service/2``) added to the union beside
the old one. ``upgrade()`` maps an accepted version to the latest where the latest can hold it;
``service/1`` stays as it is (it lacks facts ``service/2`` requires: ``due_at``, ``digitized``),
so stream code handles ``ServiceEvent`` (either version) and reads v2-only fields as absent.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, TypeAdapter

from schemas.inspection import InspectionEventV1
from schemas.offering import OfferingEventV1
from schemas.service import ServiceEventV1, ServiceEventV2

AnyEvent = InspectionEventV1 | ServiceEventV1 | ServiceEventV2 | OfferingEventV1

Event = Annotated[AnyEvent, Field(discriminator="schema_version")]
"""Any event of any supported version, discriminated on ``schema``."""

LatestEvent = AnyEvent

EVENT_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(Event)

MODELS: dict[
    str,
    type[InspectionEventV1] | type[ServiceEventV1] | type[ServiceEventV2] | type[OfferingEventV1],
] = {
    "inspection/1": InspectionEventV1,
    "service/1": ServiceEventV1,
    "service/2": ServiceEventV2,
    "offering/1": OfferingEventV1,
}
SUPPORTED_SCHEMAS = frozenset(MODELS)

TOPIC_KIND = {
    "inspection/1": "inspection",
    "service/1": "service",
    "service/2": "service",
    "offering/1": "offering",
}
"""Which default topic each schema belongs on: ``inspection-events``, ``service-events`` or
``service-offerings``."""


def upgrade(event: AnyEvent) -> LatestEvent:
    """Return ``event`` in the latest version its kind can hold (identity today: ``service/1``
    is kept as it is, see the module's docstring)."""
    return event
