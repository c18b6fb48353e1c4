"""The root of the errors ``streams`` raises on purpose (the worker and the warehouse room)."""

from __future__ import annotations

from schemas.errors import PipelineError


class StreamsError(PipelineError):
    """Root of every error the worker and the warehouse code raise on purpose."""
