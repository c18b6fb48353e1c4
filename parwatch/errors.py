"""Errors a command reports to its user as one line (``parwatch: error: …``), exit code 2."""

from __future__ import annotations


class UsageError(Exception):
    """A bad argument, file or setting: the message says what is wrong and how to fix it."""
