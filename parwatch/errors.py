"""Errors a command reports to its user as one line (``parwatch: error: …``), exit code 2."""

from __future__ import annotations


class ParwatchError(Exception):
    """Root of every error the composition root raises on purpose."""


class UsageError(ParwatchError):
    """A bad argument, file or setting: the message says what is wrong and how to fix it."""
