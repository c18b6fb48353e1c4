"""The root of the errors ``dashboards`` raises on purpose."""

from __future__ import annotations


class DashboardsError(Exception):
    """Root of every error the dashboards, their publisher and the report raise on purpose."""
