"""Progress lines on stderr for long work (one line, rewritten in place on a terminal)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``Progress("publishing", total)(done)`` prints at most ~4 updates a second."""

    def __init__(self, label: str, total: int | None = None, stream: TextIO = sys.stderr) -> None:
        self.label, self.total, self.stream = label, total, stream
        self._last = 0.0
        self._start = time.monotonic()
        self._tty = stream.isatty()

    def __call__(self, done: int, total: int | None = None, *, force: bool = False) -> None:
        total = total if total is not None else self.total
        now = time.monotonic()
        if not force and now - self._last < (0.25 if self._tty else 5.0):
            return
        self._last = now
        rate = done / max(now - self._start, 1e-9)
        of = f"/{total:,}" if total else ""
        pct = f" ({100 * done / total:.0f}%)" if total else ""
        line = f"{self.label}: {done:,}{of}{pct}, {rate:,.0f}/s"
        self.stream.write(f"\r{line}\033[K" if self._tty else line + "\n")
        self.stream.flush()

    def done(self, done: int) -> None:
        self(done, force=True)
        if self._tty:
            self.stream.write("\n")
