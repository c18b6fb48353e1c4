"""The worker's status file: what it has made durable, for operators, the demo and tests.

Written atomically (temporary file + rename) after every flush, so a reader never sees half a
file. Counts are since the worker process started.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streams.worker.sink import SinkStats


def write_status(path: Path, stats: SinkStats) -> None:
    doc = {
        "pid": os.getpid(),
        "updated_at": datetime.now(UTC).isoformat(),
        **asdict(stats),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    except (FileNotFoundError, ValueError):
        return None


def wait_for_messages(
    path: Path,
    expected: int,
    *,
    timeout_s: float,
    alive: Callable[[], bool] = lambda: True,
    progress: Callable[[int], None] | None = None,
    poll_s: float = 0.2,
) -> dict[str, Any]:
    """Poll the status file until the worker has made ``expected`` messages durable.

    Raises ``TimeoutError`` at the deadline and ``RuntimeError`` when ``alive()`` turns false.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        status = read_status(path) or {}
        done = int(status.get("messages", 0))
        if progress is not None:
            progress(done)
        if done >= expected:
            return status
        if not alive():
            raise RuntimeError("the worker exited before it had processed every message")
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker processed {done} of {expected} messages in {timeout_s} s")
        time.sleep(poll_s)
