-- `_inserted_at`: when the row reached the warehouse, i.e. became queryable (the server's clock
-- when it processed the insert). `_ingested_at` is the worker's processing time, taken before
-- the row waits in the worker's batch; the difference is the batching delay. `parwatch bench`
-- reads `_inserted_at` to measure publish-to-queryable latency.
-- Rows written before this migration get their `_ingested_at` (materialized once, so the value
-- does not change on every read); rows written after it get the insert time from the default,
-- since the worker's inserts name their columns and leave this one out.
ALTER TABLE inspection_events
    ADD COLUMN IF NOT EXISTS _inserted_at DateTime64(3, 'UTC') DEFAULT _ingested_at;

ALTER TABLE inspection_events MATERIALIZE COLUMN _inserted_at SETTINGS mutations_sync = 2;

ALTER TABLE inspection_events
    MODIFY COLUMN _inserted_at DateTime64(3, 'UTC') DEFAULT now64(3);

ALTER TABLE service_events
    ADD COLUMN IF NOT EXISTS _inserted_at DateTime64(3, 'UTC') DEFAULT _ingested_at;

ALTER TABLE service_events MATERIALIZE COLUMN _inserted_at SETTINGS mutations_sync = 2;

ALTER TABLE service_events
    MODIFY COLUMN _inserted_at DateTime64(3, 'UTC') DEFAULT now64(3);
