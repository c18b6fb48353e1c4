-- Contract v2 (EVENTS.md version 2): the dossier lifecycle's facts on service events, the kind
-- of an inspection, service offerings over time, and the province's annual index results.
-- Rows written before this migration are service/1 and inspection/1 events: the new columns
-- stay NULL for them (no due date, no kind: `kiem_tra`).

-- inspection_events.kind: as sent; NULL when the event did not carry one.
ALTER TABLE inspection_events
    ADD COLUMN IF NOT EXISTS kind LowCardinality(Nullable(String));

-- The latest `kind` an inspection's events carried (by occurred_at); `kiem_tra` when none did.
-- Its activities, each once: when each occurred and whether it was online (the KPI views count
-- activities per period from here instead of re-reading every inspection event).
ALTER TABLE inspection_classifications
    ADD COLUMN IF NOT EXISTS kind LowCardinality(String) DEFAULT 'kiem_tra',
    ADD COLUMN IF NOT EXISTS activities_at Array(DateTime64(3, 'UTC')),
    ADD COLUMN IF NOT EXISTS activities_online Array(UInt8);

ALTER TABLE service_events
    ADD COLUMN IF NOT EXISTS due_at Nullable(DateTime64(3, 'UTC')),
    ADD COLUMN IF NOT EXISTS digitized Nullable(UInt8),
    ADD COLUMN IF NOT EXISTS reused_components Nullable(UInt32),
    ADD COLUMN IF NOT EXISTS payment_channel LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS result_electronic Nullable(UInt8);

ALTER TABLE service_submissions
    ADD COLUMN IF NOT EXISTS due_at Nullable(DateTime64(3, 'UTC')),
    ADD COLUMN IF NOT EXISTS digitized Nullable(UInt8),
    ADD COLUMN IF NOT EXISTS reused_components UInt32 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS schema LowCardinality(String) DEFAULT 'service/1';

-- Every accepted offering/1 event: the state of a service (agency x procedure) from
-- occurred_at on. The state at t is the row with the latest occurred_at <= t, ties broken by
-- the later Kafka offset (all events of a service are on one partition). See the views
-- service_offering_history and service_offerings_at in the next migration.
CREATE TABLE IF NOT EXISTS offering_events
(
    event_id         UUID,
    occurred_at      DateTime64(3, 'UTC'),
    agency_code      LowCardinality(String),
    procedure_code   LowCardinality(String),
    level            LowCardinality(String),  -- full_process | partial | not_online | not_offered
    prefill_designed UInt8,
    schema           LowCardinality(String),
    payload          String CODEC(ZSTD(1)),
    _topic           LowCardinality(String),
    _partition       UInt32,
    _offset          UInt64,
    _ingested_at     DateTime64(3, 'UTC'),
    _inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (agency_code, procedure_code, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- The province's published annual index results, from schemas/reference/annual_indices.csv
-- (reloaded with the catalogs). `rank` among `ranked_of` provinces (63 before the 2025
-- merger); `scale` is the score's maximum (100 for PAR INDEX, SIPAS and PCI; 80 for PAPI).
CREATE TABLE IF NOT EXISTS annual_indices
(
    index_name  LowCardinality(String),  -- PAR_INDEX | SIPAS | PAPI | PCI
    year        UInt16,
    score       Float64,
    scale       Float64,
    rank        Nullable(UInt16),
    ranked_of   Nullable(UInt16),
    publisher   String,
    source      String
)
ENGINE = ReplacingMergeTree
ORDER BY (index_name, year);
