-- Raw accepted events, one row per event_id (first accepted copy), typed columns plus the exact
-- JSON received in `payload` (unnamed fields included). `_topic`, `_partition`, `_offset` say
-- where the worker read it; `_ingested_at` when it wrote it. ReplacingMergeTree collapses a row
-- written twice after a crash and restart (same event_id, same entity); read with FINAL.
CREATE TABLE IF NOT EXISTS inspection_events
(
    event_id        UUID,
    event_type      LowCardinality(String),
    occurred_at     DateTime64(3, 'UTC'),
    agency_code     LowCardinality(String),
    inspection_id   String,
    activity_mode   LowCardinality(Nullable(String)),
    activity_online Nullable(UInt8),
    system_code     Nullable(String),
    sector          Nullable(String),
    subject_type    LowCardinality(Nullable(String)),
    schema          LowCardinality(String),
    payload         String CODEC(ZSTD(3)),
    _topic          LowCardinality(String),
    _partition      UInt32,
    _offset         UInt64,
    _ingested_at    DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (agency_code, inspection_id, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS service_events
(
    event_id         UUID,
    event_type       LowCardinality(String),
    occurred_at      DateTime64(3, 'UTC'),
    agency_code      LowCardinality(String),
    procedure_code   LowCardinality(String),
    dossier_id       String,
    channel          LowCardinality(Nullable(String)),
    service_level    LowCardinality(Nullable(String)),
    fields_total     Nullable(UInt32),
    fields_prefilled Nullable(UInt32),
    prefill_sources  Array(String),
    on_time          Nullable(UInt8),
    applicant_type   LowCardinality(Nullable(String)),
    schema           LowCardinality(String),
    payload          String CODEC(ZSTD(3)),
    _topic           LowCardinality(String),
    _partition       UInt32,
    _offset          UInt64,
    _ingested_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (agency_code, dossier_id, event_id)
SETTINGS non_replicated_deduplication_window = 1000;
