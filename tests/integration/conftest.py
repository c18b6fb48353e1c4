"""Fixtures of the integration tests that start (and restart) brokers themselves."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from parwatch.broker import free_port
from schemas.topics import Topics


@pytest.fixture
def fresh_topics() -> Topics:
    """Event topic names no other test uses."""
    suffix = uuid.uuid4().hex[:12]
    return Topics(f"inspection-events-{suffix}", f"service-events-{suffix}", f"dl-{suffix}")


@pytest.fixture
def port() -> Iterator[int]:
    """A free loopback port for a broker that the test starts (and restarts) itself."""
    yield free_port()
