"""The pipeline's exception hierarchy and the closed set of refusal reasons.

Two kinds of failure, handled in opposite ways:

* ``InvalidEvent``: the input itself is bad. Retrying cannot help; the event goes to dead letters
  with its ``Reason`` and the pipeline moves on.
* ``RetryableError``: something outside the input failed (broker, warehouse). The input is fine;
  the caller retries with backoff and applies backpressure. Never dead-lettered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Reason(StrEnum):
    """Why an event was refused. Closed set, as in EVENTS.md ("What the pipeline refuses")."""

    MALFORMED_JSON = "malformed_json"
    UNSUPPORTED_SCHEMA = "unsupported_schema"
    INVALID_EVENT = "invalid_event"
    UNKNOWN_AGENCY = "unknown_agency"
    FUTURE_TIMESTAMP = "future_timestamp"
    PII_DETECTED = "pii_detected"
    BAD_SIGNATURE = "bad_signature"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One field-level problem: ``loc`` is a dotted path (``form.fields_prefilled``)."""

    loc: str
    msg: str

    def as_dict(self) -> dict[str, str]:
        return {"loc": self.loc, "msg": self.msg}


class PipelineError(Exception):
    """Root of every error the pipeline raises on purpose."""


class RetryableError(PipelineError):
    """A dependency (broker, warehouse) failed; the same input may succeed later."""


@dataclass(eq=False)
class InvalidEvent(PipelineError):
    """An event that the contract refuses.

    ``payload`` is what may be stored in dead letters: the original bytes, or a redacted copy
    when the reason is personal data (``pii_detected``), so dead letters never hold raw PII.
    ``topic``/``partition``/``offset`` are filled in by the consumer boundary that knows them.
    """

    reason: Reason
    detail: str
    errors: tuple[FieldError, ...] = ()
    payload: bytes = b""
    agency_code: str | None = None
    event_id: str | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(f"{self.reason.value}: {self.detail}")

    def at(self, topic: str, partition: int, offset: int) -> InvalidEvent:
        """Return this refusal with its origin in Kafka recorded."""
        self.topic, self.partition, self.offset = topic, partition, offset
        return self
