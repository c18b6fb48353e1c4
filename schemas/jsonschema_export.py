"""Export the contract as JSON Schema (draft 2020-12), for agencies validating in any language.

One file per versioned schema (``inspection-1.schema.json``, ``service-1.schema.json``) and one
for the union (``event.schema.json``). What JSON Schema cannot express is checked by the pipeline
only and listed in each file's ``description``: the agency catalog, ``fields_prefilled`` at most
``fields_total``, timestamps more than 10 minutes ahead, and personal data in unnamed fields.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.events import EVENT_ADAPTER, MODELS

DIALECT = "https://json-schema.org/draft/2020-12/schema"
PIPELINE_ONLY = (
    "Checked by the pipeline, not by this schema: agency_code must be in the agency catalog "
    "(unknown_agency); occurred_at at most 10 minutes ahead of processing time "
    "(future_timestamp); no raw 12-digit citizen ID or phone number in any unnamed field "
    "(pii_detected); form.fields_prefilled <= form.fields_total (invalid_event)."
)


def _finish(schema: dict[str, Any], schema_id: str) -> dict[str, Any]:
    schema = {"$schema": DIALECT, "$id": schema_id, **schema}
    desc = schema.get("description", "")
    schema["description"] = f"{desc}\n\n{PIPELINE_ONLY}".strip()
    return schema


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema document."""
    out: dict[str, dict[str, Any]] = {}
    for name, model in MODELS.items():
        file = f"{name.replace('/', '-')}.schema.json"
        out[file] = _finish(model.model_json_schema(by_alias=True), file)
    union = EVENT_ADAPTER.json_schema(by_alias=True)
    union["title"] = "parwatch event (any supported schema version)"
    out["event.schema.json"] = _finish(union, "event.schema.json")
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
