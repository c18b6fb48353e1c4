"""Export the contract as JSON Schema (draft 2020-12), for agencies validating in any language.

One file per versioned schema (``inspection-1.schema.json``, ``service-1.schema.json``,
``service-2.schema.json``, ``offering-1.schema.json``) and one for the union
(``event.schema.json``). Cross-field rules (what ``event_type`` requires) are ``if``/``then``
clauses. What JSON Schema cannot express is checked by the pipeline only and listed in each
file's ``description``, for the fields that schema has: the agency catalog, timestamps more than
10 minutes ahead, personal data in unnamed fields, and ``form.fields_prefilled`` at most
``form.fields_total``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.events import EVENT_ADAPTER, MODELS

DIALECT = "https://json-schema.org/draft/2020-12/schema"

_CATALOG = "agency_code must be in the agency catalog (unknown_agency)"
_FUTURE = "occurred_at at most 10 minutes ahead of processing time (future_timestamp)"
_FUTURE_DUE = (
    "occurred_at at most 10 minutes ahead of processing time (future_timestamp; due_at may lie "
    "in the future)"
)
_PII = "no raw 12-digit citizen ID or phone number in any unnamed field (pii_detected)"
_PREFILL = "form.fields_prefilled <= form.fields_total (invalid_event)"


def _pipeline_only(rules: list[str]) -> str:
    return f"Checked by the pipeline, not by this schema: {'; '.join(rules)}."


PIPELINE_ONLY = _pipeline_only([_CATALOG, _FUTURE_DUE, _PII, _PREFILL])
"""The rules no schema expresses, for the union (``event.schema.json``): every schema's."""


def pipeline_only(model: type[BaseModel]) -> str:
    """The rules of ``model`` that its JSON Schema cannot express, as one sentence."""
    fields = set(model.model_fields)
    rules = [_CATALOG, _FUTURE_DUE if "due_at" in fields else _FUTURE, _PII]
    if "form" in fields:
        rules.append(_PREFILL)
    return _pipeline_only(rules)


def _finish(schema: dict[str, Any], schema_id: str, rules: str) -> dict[str, Any]:
    schema = {"$schema": DIALECT, "$id": schema_id, **schema}
    desc = schema.get("description", "")
    schema["description"] = f"{desc}\n\n{rules}".strip()
    return schema


def schema_file(schema: str) -> str:
    """The file name of a versioned schema: ``service/2`` -> ``service-2.schema.json``."""
    return f"{schema.replace('/', '-')}.schema.json"


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema document: one per versioned schema, then the union."""
    out: dict[str, dict[str, Any]] = {}
    for name, model in MODELS.items():
        file = schema_file(name)
        out[file] = _finish(model.model_json_schema(by_alias=True), file, pipeline_only(model))
    union = EVENT_ADAPTER.json_schema(by_alias=True)
    union["title"] = "parwatch event (any supported schema version)"
    out["event.schema.json"] = _finish(union, "event.schema.json", PIPELINE_ONLY)
    return out


def export(directory: Path) -> list[Path]:
    """Write every schema file into ``directory`` (created if needed); return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = directory / name
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written
