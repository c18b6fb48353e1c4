"""The example payloads under ``schemas/examples/``, each with what it must give.

Layout: ``examples/<topic>/<version>/<name>.json`` (and ``examples/refused/`` for payloads that
have no valid schema). Each file holds ``description``, ``expect`` (``reason``: null when the
event is accepted, else the refusal reason; ``json_schema_valid``: the exported JSON Schema's
verdict), and the payload as ``payload`` (a JSON object), ``payload_text`` (raw text) or
``payload_base64`` (raw bytes). Every consumer test runs all of them.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from schemas.errors import Reason


@dataclass(frozen=True, slots=True)
class Example:
    name: str  # e.g. "inspection-events/1/cancelled"
    description: str
    raw: bytes
    reason: Reason | None
    json_schema_valid: bool


def examples_dir() -> Path:
    return Path(str(resources.files("schemas") / "examples"))


def load_examples(directory: Path | None = None) -> list[Example]:
    root = directory or examples_dir()
    out = []
    for path in sorted(root.rglob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if "payload" in doc:
            raw = json.dumps(doc["payload"], ensure_ascii=False).encode()
        elif "payload_text" in doc:
            raw = doc["payload_text"].encode()
        else:
            raw = base64.b64decode(doc["payload_base64"])
        expect = doc["expect"]
        out.append(
            Example(
                name=str(path.relative_to(root).with_suffix("")),
                description=doc["description"],
                raw=raw,
                reason=Reason(expect["reason"]) if expect["reason"] else None,
                json_schema_valid=expect["json_schema_valid"],
            )
        )
    return out
