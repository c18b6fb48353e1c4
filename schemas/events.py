"""The versioned event union: one discriminated union on ``schema``, and ``upgrade()``.

A breaking change to the contract is a new version (``inspection/2``) added to the union beside
the old one; ``upgrade()`` maps every accepted version to the latest, so the stream code only ever
handles the latest models.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, TypeAdapter

from schemas.inspection import InspectionEventV1
from schemas.service import ServiceEventV1

Event = Annotated[InspectionEventV1 | ServiceEventV1, Field(discriminator="schema_version")]
"""Any event of any supported version, discriminated on ``schema``."""

LatestEvent = InspectionEventV1 | ServiceEventV1

EVENT_ADAPTER: TypeAdapter[InspectionEventV1 | ServiceEventV1] = TypeAdapter(Event)

MODELS: dict[str, type[InspectionEventV1] | type[ServiceEventV1]] = {
    "inspection/1": InspectionEventV1,
    "service/1": ServiceEventV1,
}
SUPPORTED_SCHEMAS = frozenset(MODELS)

TOPIC_KIND = {"inspection/1": "inspection", "service/1": "service"}
"""Which default topic each schema belongs on: ``inspection-events`` or ``service-events``."""


def upgrade(event: InspectionEventV1 | ServiceEventV1) -> LatestEvent:
    """Return ``event`` in the latest version of its kind (v1 is the latest: identity)."""
    return event
