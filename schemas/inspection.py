"""``inspection/1``: events of one state inspection (EVENTS.md, "Inspection events")."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.fields import AgencyCode, EventId, Text, Timestamp, bounded_text

_MODEL_CONFIG = ConfigDict(frozen=True, extra="allow", populate_by_name=True, strict=True)


class ActivityMode(StrEnum):
    ON_SITE = "on_site"
    IN_PERSON_MEETING = "in_person_meeting"
    VIDEO_CONFERENCE = "video_conference"
    REMOTE_DOCUMENT_REVIEW = "remote_document_review"
    INFORMATION_SYSTEM = "information_system"
    ONLINE_REPORTING = "online_reporting"

    @property
    def is_online(self) -> bool:
        """Carried out through networks and information systems (the 40% target)."""
        return self not in IN_PERSON_MODES


IN_PERSON_MODES = frozenset({ActivityMode.ON_SITE, ActivityMode.IN_PERSON_MEETING})
ONLINE_MODES = frozenset(set(ActivityMode) - IN_PERSON_MODES)


class Activity(BaseModel):
    model_config = _MODEL_CONFIG

    mode: ActivityMode
    system_code: Text | None = None


InspectionKind = Literal["kiem_tra", "thanh_tra"]
"""``kiem_tra``: a check by a state management agency (the 40% target counts these);
``thanh_tra``: an inspectorate's inspection (stored, classified and shown, outside the target)."""


def _when(event_type: str, then: dict[str, Any], otherwise: dict[str, Any] | None = None) -> Any:
    rule: dict[str, Any] = {
        "if": {"properties": {"event_type": {"const": event_type}}, "required": ["event_type"]},
        "then": then,
    }
    if otherwise is not None:
        rule["else"] = otherwise
    return rule


class InspectionEventV1(BaseModel):
    """One event of an inspection. Key: ``{agency_code}:{inspection_id}``.

    ``kind`` (contract v2, optional in ``inspection/1``): absent is ``kiem_tra``.
    """

    model_config = ConfigDict(
        **_MODEL_CONFIG,
        title="inspection/1",
        json_schema_extra={
            # The cross-field rule, for validators in other languages.
            "allOf": [
                _when(
                    "activity",
                    {"required": ["activity"], "properties": {"activity": {"type": "object"}}},
                    {"properties": {"activity": {"type": "null"}}},
                )
            ],
        },
    )

    schema_version: Literal["inspection/1"] = Field(alias="schema")
    event_id: EventId
    event_type: Literal["opened", "activity", "concluded", "cancelled"]
    occurred_at: Timestamp
    agency_code: AgencyCode
    inspection_id: bounded_text(64)  # type: ignore[valid-type]
    activity: Activity | None = None
    sector: Text | None = None
    subject_type: Literal["enterprise", "household", "individual", "organization"] | None = None
    # New in contract v2, optional: absent means ``kiem_tra``; the latest event carrying it decides.
    kind: InspectionKind | None = None

    @model_validator(mode="after")
    def _activity_iff_activity_event(self) -> InspectionEventV1:
        if self.event_type == "activity" and self.activity is None:
            raise ValueError("activity is required when event_type is 'activity'")
        if self.event_type != "activity" and self.activity is not None:
            raise ValueError("activity must be absent unless event_type is 'activity'")
        return self

    @property
    def key(self) -> str:
        """The Kafka key: all events of one inspection share it, so they stay in order."""
        return f"{self.agency_code}:{self.inspection_id}"
