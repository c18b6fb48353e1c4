"""Kafka topic names (EVENTS.md "Transport"): defaults, configurable through settings."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.events import TOPIC_KIND


@dataclass(frozen=True, slots=True)
class Topics:
    inspections: str = "inspection-events"
    services: str = "service-events"
    dead_letters: str = "dead-letters"

    def for_schema(self, schema: str) -> str:
        """The topic that events of ``schema`` (``inspection/1``, ``service/1``) belong on."""
        return self.inspections if TOPIC_KIND[schema] == "inspection" else self.services

    def all(self) -> tuple[str, str, str]:
        return (self.inspections, self.services, self.dead_letters)
