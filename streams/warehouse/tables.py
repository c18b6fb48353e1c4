"""The columns the worker writes, per table, in the order rows are built and inserted.

The tables themselves are in ``schemas/clickhouse/``; a test runs every example payload through
decode -> classify -> rows -> insert, so a drift between the two fails.
"""

from __future__ import annotations

from typing import Any

Row = list[Any]

COLUMNS: dict[str, tuple[str, ...]] = {
    "inspection_events": (
        "event_id", "event_type", "occurred_at", "agency_code", "inspection_id",
        "activity_mode", "activity_online", "system_code", "sector", "subject_type", "schema",
        "payload", "_topic", "_partition", "_offset", "_ingested_at", "kind",
    ),
    "service_events": (
        "event_id", "event_type", "occurred_at", "agency_code", "procedure_code", "dossier_id",
        "channel", "service_level", "fields_total", "fields_prefilled", "prefill_sources",
        "on_time", "applicant_type", "schema", "payload", "_topic", "_partition", "_offset",
        "_ingested_at", "due_at", "digitized", "reused_components", "payment_channel",
        "result_electronic",
    ),
    "inspection_classifications": (
        "agency_code", "inspection_id", "classification", "has_online", "has_in_person",
        "activities", "opened_at", "concluded_at", "cancelled", "sector", "version",
        "updated_at", "kind", "activities_at", "activities_online",
    ),
    "service_submissions": (
        "event_id", "occurred_at", "agency_code", "procedure_code", "dossier_id", "channel",
        "service_level", "fields_total", "fields_prefilled", "prefill_class", "prefill_sources",
        "_ingested_at", "due_at", "digitized", "reused_components", "schema",
    ),
    "offering_events": (
        "event_id", "occurred_at", "agency_code", "procedure_code", "level", "prefill_designed",
        "schema", "payload", "_topic", "_partition", "_offset", "_ingested_at",
    ),
    "dossier_lifecycle": (
        "agency_code", "dossier_id", "procedure_code", "submitted_at", "submission_schema",
        "channel", "service_level", "fields_total", "fields_prefilled", "due_at", "digitized",
        "reused_components", "ended_at", "end_type", "end_schema", "on_time",
        "result_electronic", "paid_at", "payment_channel", "pause_starts", "pause_ends",
        "effective_due_at", "paused_ms", "version", "updated_at",
    ),
    "dead_letters": (
        "reason", "detail", "errors", "agency_code", "event_id", "payload", "_topic",
        "_partition", "_offset", "_refused_at",
    ),
    "duplicates": (
        "event_id", "agency_code", "entity_key", "first_partition", "first_offset", "_topic",
        "_partition", "_offset", "_detected_at",
    ),
}  # fmt: skip
