-- Replays of dead letters (`parwatch dead-letters replay`): one row per dead letter sent again
-- to its topic. `dl_*` is the dead letter's Kafka position (the key of `dead_letters`), `new_*`
-- where the copy was written; the worker then handles the copy as a new message (a copy that is
-- now valid is counted once; a second replay of it is a duplicate). One `replay_id` per run.
CREATE TABLE IF NOT EXISTS dead_letter_replays
(
    replay_id     UUID,
    replayed_at   DateTime64(3, 'UTC'),
    dl_topic      LowCardinality(String),
    dl_partition  UInt32,
    dl_offset     UInt64,
    reason        LowCardinality(String),
    agency_code   LowCardinality(Nullable(String)),
    event_id      Nullable(String),
    new_topic     LowCardinality(String),
    new_partition UInt32,
    new_offset    UInt64,
    note          String
)
ENGINE = ReplacingMergeTree
ORDER BY (dl_topic, dl_partition, dl_offset, new_topic, new_partition, new_offset)
SETTINGS non_replicated_deduplication_window = 1000;
