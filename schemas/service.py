"""``service/1``: events of one public-service dossier (EVENTS.md, "Service events")."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from schemas.fields import AgencyCode, EventId, Text, Timestamp, bounded_text

_MODEL_CONFIG = ConfigDict(frozen=True, extra="allow", populate_by_name=True, strict=True)

MAX_FIELDS = 2**31 - 1

IdHash = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class Form(BaseModel):
    model_config = _MODEL_CONFIG

    # Upper bounds are storage limits (UInt32 in ClickHouse), far above any real form.
    fields_total: int = Field(ge=1, le=MAX_FIELDS)
    fields_prefilled: int = Field(ge=0, le=MAX_FIELDS)
    prefill_sources: list[Text] | None = None

    @model_validator(mode="after")
    def _prefilled_within_total(self) -> Form:
        if self.fields_prefilled > self.fields_total:
            raise ValueError("fields_prefilled must not exceed fields_total")
        return self

    @property
    def prefill_class(self) -> Literal["full", "partial", "none"]:
        if self.fields_prefilled == 0:
            return "none"
        if self.fields_prefilled == self.fields_total:
            return "full"
        return "partial"


class Applicant(BaseModel):
    model_config = _MODEL_CONFIG

    type: Literal["citizen", "enterprise", "organization"] | None = None
    id_hash: IdHash | None = None


def _if(conditions: dict[str, str], required: list[str], types: dict[str, str]) -> Any:
    return {
        "if": {
            "properties": {k: {"const": v} for k, v in conditions.items()},
            "required": list(conditions),
        },
        "then": {"required": required, "properties": {k: {"type": t} for k, t in types.items()}},
    }


class ServiceEventV1(BaseModel):
    """One event of a dossier. Key: ``{agency_code}:{dossier_id}``.

    Not expressible in JSON Schema, checked by the pipeline: ``form.fields_prefilled`` at most
    ``form.fields_total``; the agency catalog; timestamps in the future; personal data.
    """

    model_config = ConfigDict(
        **_MODEL_CONFIG,
        title="service/1",
        json_schema_extra={
            "allOf": [
                _if({"event_type": "submitted"}, ["channel"], {"channel": "string"}),
                _if(
                    {"event_type": "submitted", "channel": "online"},
                    ["service_level", "form"],
                    {"service_level": "string", "form": "object"},
                ),
                _if({"event_type": "completed"}, ["on_time"], {"on_time": "boolean"}),
            ],
        },
    )

    schema_version: Literal["service/1"] = Field(alias="schema")
    event_id: EventId
    event_type: Literal["submitted", "completed", "rejected"]
    occurred_at: Timestamp
    agency_code: AgencyCode
    procedure_code: bounded_text(32)  # type: ignore[valid-type]
    dossier_id: bounded_text(64)  # type: ignore[valid-type]
    channel: Literal["online", "counter", "postal"] | None = None
    service_level: Literal["full_process", "partial"] | None = None
    form: Form | None = None
    on_time: bool | None = None
    applicant: Applicant | None = None

    @model_validator(mode="after")
    def _required_by_event_type(self) -> ServiceEventV1:
        if self.event_type == "submitted":
            if self.channel is None:
                raise ValueError("channel is required on 'submitted'")
            if self.channel == "online":
                missing = [n for n in ("service_level", "form") if getattr(self, n) is None]
                if missing:
                    raise ValueError(
                        f"{' and '.join(missing)} required on 'submitted' when channel is 'online'"
                    )
        if self.event_type == "completed" and self.on_time is None:
            raise ValueError("on_time is required on 'completed'")
        return self

    @property
    def key(self) -> str:
        """The Kafka key: all events of one dossier share it, so they stay in order."""
        return f"{self.agency_code}:{self.dossier_id}"


ServiceEventType = Literal[
    "submitted", "supplement_requested", "supplement_received", "paid", "completed", "rejected",
    "withdrawn",
]  # fmt: skip

END_EVENT_TYPES = frozenset({"completed", "rejected", "withdrawn"})
"""The event types that end a dossier: after the first of them it is no longer open."""


class ServiceEventV2(BaseModel):
    """One event of a dossier's lifecycle (contract v2). Key: ``{agency_code}:{dossier_id}``.

    Every ``service/1`` field keeps its meaning. Required by event type: on ``submitted``,
    ``channel``, ``due_at`` (the appointment date) and ``digitized``, and with channel ``online``
    also ``service_level`` and ``form``; ``payment_channel`` on ``paid``; ``result_electronic``
    on ``completed``. ``reused_components`` is optional (absent counts as 0); ``on_time`` is
    accepted and only used where a dossier has no ``due_at``. Not expressible in JSON Schema,
    checked by the pipeline: as for ``service/1``.
    """

    model_config = ConfigDict(
        **_MODEL_CONFIG,
        title="service/2",
        json_schema_extra={
            "allOf": [
                _if(
                    {"event_type": "submitted"},
                    ["channel", "due_at", "digitized"],
                    {"channel": "string", "due_at": "string", "digitized": "boolean"},
                ),
                _if(
                    {"event_type": "submitted", "channel": "online"},
                    ["service_level", "form"],
                    {"service_level": "string", "form": "object"},
                ),
                _if({"event_type": "paid"}, ["payment_channel"], {"payment_channel": "string"}),
                _if(
                    {"event_type": "completed"},
                    ["result_electronic"],
                    {"result_electronic": "boolean"},
                ),
            ],
        },
    )

    schema_version: Literal["service/2"] = Field(alias="schema")
    event_id: EventId
    event_type: ServiceEventType
    occurred_at: Timestamp
    agency_code: AgencyCode
    procedure_code: bounded_text(32)  # type: ignore[valid-type]
    dossier_id: bounded_text(64)  # type: ignore[valid-type]
    channel: Literal["online", "counter", "postal"] | None = None
    due_at: Timestamp | None = None
    digitized: bool | None = None
    reused_components: int | None = Field(default=None, ge=0, le=MAX_FIELDS)
    service_level: Literal["full_process", "partial"] | None = None
    form: Form | None = None
    payment_channel: Literal["online", "counter"] | None = None
    result_electronic: bool | None = None
    on_time: bool | None = None
    applicant: Applicant | None = None

    @model_validator(mode="after")
    def _required_by_event_type(self) -> ServiceEventV2:
        kind = self.event_type
        if kind == "submitted":
            missing = [n for n in ("channel", "due_at", "digitized") if getattr(self, n) is None]
            if missing:
                raise ValueError(f"{' and '.join(missing)} required on 'submitted'")
            if self.channel == "online":
                missing = [n for n in ("service_level", "form") if getattr(self, n) is None]
                if missing:
                    raise ValueError(
                        f"{' and '.join(missing)} required on 'submitted' when channel is 'online'"
                    )
        elif kind == "paid" and self.payment_channel is None:
            raise ValueError("payment_channel is required on 'paid'")
        elif kind == "completed" and self.result_electronic is None:
            raise ValueError("result_electronic is required on 'completed'")
        return self

    @property
    def key(self) -> str:
        """The Kafka key: all events of one dossier share it, so they stay in order."""
        return f"{self.agency_code}:{self.dossier_id}"


ServiceEvent = ServiceEventV1 | ServiceEventV2
"""A dossier event of any accepted version: ``service/1`` is not upgraded (it lacks the facts
``service/2`` requires), so stream code handles both, reading v2-only fields as absent."""
