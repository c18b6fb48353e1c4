"""The worker's status file: what it has made durable, for operators, the demo and tests.

Written atomically (temporary file + rename) after every flush, so a reader never sees half a
file. Counts are since the worker process started.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streams.sink import SinkStats


def write_status(path: Path, stats: SinkStats, **extra: Any) -> None:
    doc = {
        "pid": os.getpid(),
        "updated_at": datetime.now(UTC).isoformat(),
        **asdict(stats),
        **extra,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    except (FileNotFoundError, ValueError):
        return None
