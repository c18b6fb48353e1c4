"""parwatch: the composition root (settings, the ``parwatch`` command, the embedded stack)."""

__version__ = "0.1.0"
