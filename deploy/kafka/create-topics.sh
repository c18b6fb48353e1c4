#!/bin/bash
# Creates parwatch's topics on the cluster at KAFKA_BOOTSTRAP, with their partitions, replication,
# retention and cleanup policy. Run by the one-shot `kafka-init` service (deploy/compose.yaml);
# safe to run again: an existing topic is kept, and its partition count is checked, never changed
# (adding partitions would move keys to other partitions and split per-inspection state).
set -euo pipefail

bootstrap="${KAFKA_BOOTSTRAP:-kafka:9092}"
rf="${KAFKA_REPLICATION_FACTOR:-1}"
min_isr="${KAFKA_MIN_INSYNC_REPLICAS:-1}"
partitions="${PARWATCH_PARTITIONS:-6}"

topics_bin=/opt/kafka/bin/kafka-topics.sh

# create NAME PARTITIONS CONFIG...  (CONFIG as key=value)
create() {
    local name="$1" want="$2"
    shift 2
    local args=()
    for c in "min.insync.replicas=${min_isr}" "$@"; do
        args+=(--config "$c")
    done
    "$topics_bin" --bootstrap-server "$bootstrap" --create --if-not-exists --topic "$name" \
        --partitions "$want" --replication-factor "$rf" "${args[@]}"
    local have
    have=$("$topics_bin" --bootstrap-server "$bootstrap" --describe --topic "$name" \
        | grep -o 'PartitionCount: *[0-9]*' | grep -o '[0-9]*$')
    if [[ "$have" != "$want" ]]; then
        echo "kafka-init: topic $name has $have partitions, expected $want;" \
            "partition counts are fixed once data flows (see deploy/README.md)" >&2
        exit 1
    fi
    echo "kafka-init: $name ok ($have partitions)"
}

# Event topics: delete retention long enough to rebuild the warehouse by replaying them.
create "${PARWATCH_TOPIC_INSPECTIONS:-inspection-events}" "$partitions" \
    cleanup.policy=delete "retention.ms=${KAFKA_EVENT_RETENTION_MS:-7776000000}"
create "${PARWATCH_TOPIC_SERVICES:-service-events}" "$partitions" \
    cleanup.policy=delete "retention.ms=${KAFKA_EVENT_RETENTION_MS:-7776000000}"
create "${PARWATCH_TOPIC_DEAD_LETTERS:-dead-letters}" "${PARWATCH_DEAD_LETTER_PARTITIONS:-3}" \
    cleanup.policy=delete "retention.ms=${KAFKA_DEAD_LETTER_RETENTION_MS:-7776000000}"
# classify -> sink rows: co-partitioned with the event topics; only needed until written.
create "${PARWATCH_TOPIC_WAREHOUSE_ROWS:-warehouse-rows}" "$partitions" \
    cleanup.policy=delete "retention.ms=${KAFKA_WAREHOUSE_ROWS_RETENTION_MS:-604800000}"
# No state topics: workers rebuild entity states from the warehouse (streams/worker/restore.py).
echo "kafka-init: all topics ready on $bootstrap"
