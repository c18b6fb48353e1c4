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
configs_bin=/opt/kafka/bin/kafka-configs.sh

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

# require_compacted NAME: an existing topic keeps the policy it was created with (create skips
# it), so check it: a deleted offering would make a service vanish from the KPIs.
require_compacted() {
    local name="$1" policy
    policy=$("$configs_bin" --bootstrap-server "$bootstrap" --describe --all \
        --entity-type topics --entity-name "$name" \
        | awk '$1 ~ /^cleanup\.policy=/ && !seen { seen = 1; sub(/^[^=]*=/, "", $1); print $1 }')
    if [[ "$policy" != "compact" ]]; then
        echo "kafka-init: topic $name has cleanup.policy=${policy:-unknown}, expected compact;" \
            "set it with kafka-configs.sh --alter --add-config cleanup.policy=compact" >&2
        exit 1
    fi
    echo "kafka-init: $name is compacted"
}

# Event topics: delete retention long enough to rebuild the warehouse by replaying them.
create "${PARWATCH_TOPIC_INSPECTIONS:-inspection-events}" "$partitions" \
    cleanup.policy=delete "retention.ms=${KAFKA_EVENT_RETENTION_MS:-7776000000}"
create "${PARWATCH_TOPIC_SERVICES:-service-events}" "$partitions" \
    cleanup.policy=delete "retention.ms=${KAFKA_EVENT_RETENTION_MS:-7776000000}"
# Offerings (contract v2): compacted, so each service's latest offering/1 event (its key is
# agency:procedure) is kept for good while older ones may go; no time-based deletion.
create "${PARWATCH_TOPIC_OFFERINGS:-service-offerings}" "$partitions" cleanup.policy=compact
require_compacted "${PARWATCH_TOPIC_OFFERINGS:-service-offerings}"
create "${PARWATCH_TOPIC_DEAD_LETTERS:-dead-letters}" "${PARWATCH_DEAD_LETTER_PARTITIONS:-3}" \
    cleanup.policy=delete "retention.ms=${KAFKA_DEAD_LETTER_RETENTION_MS:-7776000000}"
# classify -> sink rows: co-partitioned with the event topics; only needed until written.
create "${PARWATCH_TOPIC_WAREHOUSE_ROWS:-warehouse-rows}" "$partitions" \
    cleanup.policy=delete "retention.ms=${KAFKA_WAREHOUSE_ROWS_RETENTION_MS:-604800000}"
# No state topics: workers rebuild entity states from the warehouse (streams/worker/restore.py).
echo "kafka-init: all topics ready on $bootstrap"
