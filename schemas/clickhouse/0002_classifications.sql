-- Classification of each inspection, from all of its activities, as the worker's per-inspection
-- state changes. `version` = number of distinct events applied to that inspection, so the row
-- with the highest version is the complete state: ReplacingMergeTree(version) keeps it. Read
-- with FINAL (or the views below). `cancelled` inspections leave every KPI.
CREATE TABLE IF NOT EXISTS inspection_classifications
(
    agency_code    LowCardinality(String),
    inspection_id  String,
    classification LowCardinality(String),  -- online | hybrid | in_person | unclassified
    has_online     UInt8,
    has_in_person  UInt8,
    activities     UInt32,
    opened_at      Nullable(DateTime64(3, 'UTC')),
    concluded_at   Nullable(DateTime64(3, 'UTC')),
    cancelled      UInt8,
    sector         Nullable(String),
    version        UInt64,
    updated_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (agency_code, inspection_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- One row per `submitted` event (any channel), with the prefill class of online submissions:
-- full (every field prefilled), partial, none; `not_online` for counter and postal ones.
CREATE TABLE IF NOT EXISTS service_submissions
(
    event_id         UUID,
    occurred_at      DateTime64(3, 'UTC'),
    agency_code      LowCardinality(String),
    procedure_code   LowCardinality(String),
    dossier_id       String,
    channel          LowCardinality(String),
    service_level    LowCardinality(Nullable(String)),
    fields_total     UInt32,
    fields_prefilled UInt32,
    prefill_class    LowCardinality(String),
    prefill_sources  Array(String),
    _ingested_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (agency_code, dossier_id, event_id)
SETTINGS non_replicated_deduplication_window = 1000;
