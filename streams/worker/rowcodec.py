"""The ``warehouse-rows`` topic's messages: one classified batch, from a classifier to a sink.

JSON, so any tool can read it, with the types JSON lacks tagged: ``{"t": ISO-8601}`` for a
timestamp, ``{"u": "..."}`` for a UUID and ``{"b": base64}`` for a row already in RowBinary
(``rowbinary``: the event tables' rows). The token is the classifier's batch token (from the
Kafka positions of its source messages), so a batch written twice leaves one copy.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any
from uuid import UUID

from streams.warehouse.tables import Row


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, UUID):
        return {"u": str(value)}
    if isinstance(value, bytes):
        return {"b": base64.b64encode(value).decode()}
    raise TypeError(f"cannot encode {type(value).__name__} in a rows message")


def _hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        if "t" in obj:
            return datetime.fromisoformat(obj["t"])
        if "u" in obj:
            return UUID(obj["u"])
        if "b" in obj:
            return base64.b64decode(obj["b"])
    return obj


# Rows per message: about 0.5 MB of JSON, under Kafka's default 1 MB message limit.
ROWS_PER_MESSAGE = 500


def encode_batch(
    tables: dict[str, list[Row]],
    token: str,
    messages: int,
    rows_per_message: int = ROWS_PER_MESSAGE,
) -> list[bytes]:
    """The batch as one or more messages, each with its own token (``token:i``); the source
    message count travels in the first one."""
    chunks: list[dict[str, list[Row]]] = [{}]
    room = rows_per_message
    for table, rows in tables.items():
        i = 0
        while i < len(rows):
            if room == 0:
                chunks.append({})
                room = rows_per_message
            take = rows[i : i + room]
            chunks[-1][table] = take
            room -= len(take)
            i += len(take)
    return [
        json.dumps(
            {"token": f"{token}:{i}", "messages": messages if i == 0 else 0, "tables": chunk},
            default=_default, ensure_ascii=False, separators=(",", ":"),
        ).encode()
        for i, chunk in enumerate(chunks)
    ]  # fmt: skip


def decode_batch(value: bytes) -> tuple[dict[str, list[Row]], str, int]:
    doc = json.loads(value, object_hook=_hook)
    return doc["tables"], doc["token"], int(doc["messages"])
