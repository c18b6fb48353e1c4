"""The event contract (EVENTS.md version 2): models, decoding, reference data, KPI definitions.

Bottom of the dependency graph: imports pydantic and the standard library only.
"""

from schemas.decoding import decode
from schemas.errors import FieldError, InvalidEvent, PipelineError, Reason, RetryableError
from schemas.events import EVENT_ADAPTER, Event, LatestEvent, upgrade
from schemas.inspection import Activity, ActivityMode, InspectionEventV1
from schemas.offering import OfferingEventV1
from schemas.service import Applicant, Form, ServiceEventV1, ServiceEventV2

__all__ = [
    "EVENT_ADAPTER",
    "Activity",
    "ActivityMode",
    "Applicant",
    "Event",
    "FieldError",
    "Form",
    "InspectionEventV1",
    "InvalidEvent",
    "OfferingEventV1",
    "LatestEvent",
    "PipelineError",
    "Reason",
    "RetryableError",
    "ServiceEventV1",
    "ServiceEventV2",
    "decode",
    "upgrade",
]
