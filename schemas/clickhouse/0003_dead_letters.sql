-- Refused events, one row per Kafka message: the reason code (closed set of EVENTS.md), the
-- field errors as JSON, where it came from, and the payload (redacted for pii_detected).
CREATE TABLE IF NOT EXISTS dead_letters
(
    reason      LowCardinality(String),
    detail      String,
    errors      String,               -- JSON list of {"loc": "...", "msg": "..."}
    agency_code LowCardinality(Nullable(String)),
    event_id    Nullable(String),
    payload     String CODEC(ZSTD(3)),
    _topic      LowCardinality(String),
    _partition  UInt32,
    _offset     UInt64,
    _refused_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (_topic, _partition, _offset)
SETTINGS non_replicated_deduplication_window = 1000;

-- Duplicates skipped: a second copy of an event_id already accepted for the same inspection or
-- dossier. Not an error; counted here (one row per duplicate Kafka message).
CREATE TABLE IF NOT EXISTS duplicates
(
    event_id        UUID,
    agency_code     LowCardinality(String),
    entity_key      String,
    first_partition UInt32,
    first_offset    UInt64,
    _topic          LowCardinality(String),
    _partition      UInt32,
    _offset         UInt64,
    _detected_at    DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (_topic, _partition, _offset)
SETTINGS non_replicated_deduplication_window = 1000;
