"""``offering/1``: how an agency offers one procedure online, from when (EVENTS.md, "Service
offerings"). Published on the compacted topic ``service-offerings``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.fields import AgencyCode, EventId, Timestamp, bounded_text

OfferingLevel = Literal["full_process", "partial", "not_online", "not_offered"]
"""Decree 42/2022's levels: ``full_process`` (information, submission, resolution and result all
online), ``partial`` (online, not the whole process), ``not_online``; ``not_offered``: the
agency no longer handles the procedure."""

ONLINE_LEVELS = frozenset({"full_process", "partial"})


class OfferingEventV1(BaseModel):
    """The state of one service (agency x procedure) from ``occurred_at`` on. Key:
    ``{agency_code}:{procedure_code}``, so a service's events stay in order and compaction keeps
    its latest. The state at instant t is the event with the latest ``occurred_at`` <= t (ties:
    the later-published event wins); before its first event the service does not exist."""

    model_config = ConfigDict(
        frozen=True, extra="allow", populate_by_name=True, strict=True, title="offering/1"
    )

    schema_version: Literal["offering/1"] = Field(alias="schema")
    event_id: EventId
    occurred_at: Timestamp
    agency_code: AgencyCode
    procedure_code: bounded_text(32)  # type: ignore[valid-type]
    level: OfferingLevel
    prefill_designed: bool

    @property
    def key(self) -> str:
        """The Kafka key: all events of one service share it."""
        return f"{self.agency_code}:{self.procedure_code}"
