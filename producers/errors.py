"""The root of the errors ``producers`` raises on purpose (the SDK and the simulator)."""

from __future__ import annotations

from schemas.errors import PipelineError


class ProducerError(PipelineError):
    """Root of every error the producers raise on purpose."""
