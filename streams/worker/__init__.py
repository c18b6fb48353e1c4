"""The stream worker: Kafka batches in, decoded, deduplicated and classified, rows out to the
warehouse, offsets committed after; its state, status and metrics."""
