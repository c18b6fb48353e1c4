"""Kafka topic names (EVENTS.md "Transport"): defaults, configurable through settings."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.events import TOPIC_KIND

COMPACTED_KINDS = frozenset({"offering"})
"""Topic kinds whose topic is compacted (``cleanup.policy=compact``): the latest event of each
key is the state, so older ones may go."""


@dataclass(frozen=True, slots=True)
class Topics:
    inspections: str = "inspection-events"
    services: str = "service-events"
    dead_letters: str = "dead-letters"
    offerings: str = "service-offerings"

    def for_schema(self, schema: str) -> str:
        """The topic that events of ``schema`` (``inspection/1``, ``service/2``, ...) belong on."""
        kind = TOPIC_KIND[schema]
        if kind == "inspection":
            return self.inspections
        if kind == "offering":
            return self.offerings
        return self.services

    def events(self) -> tuple[str, str, str]:
        """The topics the worker reads: inspections, services, offerings."""
        return (self.inspections, self.services, self.offerings)

    def all(self) -> tuple[str, str, str, str]:
        return (self.inspections, self.services, self.offerings, self.dead_letters)
