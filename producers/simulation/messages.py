"""Simulated messages as they go on the wire, and their JSON Lines file form.

A ``Message`` is a topic kind (``inspection`` / ``service`` / ``offering``) and the exact value
bytes; its key is derived from the value. A JSON Lines file holds one value per line, nothing
else, so it is exactly what agencies would send; the kind is restored from the value
(``topic_kind``), including for deliberately broken values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

_SCHEMA_KIND = re.compile(rb'"schema"\s*:\s*"(inspection|service|offering)/')


class Message(NamedTuple):
    """One message to publish: topic kind (``inspection`` / ``service`` / ``offering``) and the
    exact value."""

    kind: str
    value: bytes

    @property
    def key(self) -> bytes | None:
        """The contract's key, ``{agency_code}:{inspection_id|dossier_id|procedure_code}``;
        ``None`` when the value is too broken to have one (the producer then lets the broker pick
        a partition)."""
        return message_key(self.value)


def topic_kind(raw: bytes) -> str:
    """The topic kind of a value: from its schema, else ``inspection`` if it names an
    inspection, ``service`` if it names a dossier, ``offering`` if it names an offering level,
    else ``service``. Every simulated message's ``kind`` is ``topic_kind(value)``."""
    m = _SCHEMA_KIND.search(raw)
    if m:
        return m.group(1).decode()
    if b'"inspection_id"' in raw:
        return "inspection"
    if b'"dossier_id"' not in raw and b'"prefill_designed"' in raw:
        return "offering"
    return "service"


def message_key(raw: bytes) -> bytes | None:
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):  # ValueError includes UnicodeDecodeError
        return None
    if not isinstance(obj, dict):
        return None
    agency = obj.get("agency_code")
    ident = obj.get("inspection_id", obj.get("dossier_id", obj.get("procedure_code")))
    if isinstance(agency, str) and isinstance(ident, str):
        try:
            return f"{agency}:{ident}".encode()
        except UnicodeEncodeError:  # a lone surrogate (``"\ud800"``): no valid event has it
            return None
    return None


def write_messages(messages: Iterable[Message], path: Path) -> int:
    """Write each value on its own line (the exact bytes, then ``\\n``); return the count.

    Values never contain a newline byte, so ``read_jsonl`` gives the messages back.
    """
    n = 0
    with Path(path).open("wb") as f:
        for m in messages:
            f.write(m.value + b"\n")
            n += 1
    return n


def read_jsonl(path: Path) -> Iterator[Message]:
    """The messages written by ``write_messages``, kinds restored with ``topic_kind``."""
    with Path(path).open("rb") as f:
        for line in f:
            value = line.removesuffix(b"\n")
            yield Message(topic_kind(value), value)
