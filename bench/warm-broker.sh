#!/usr/bin/env bash
# Warms the broker up before a bench measures anything. A broker that just started compiles its
# request paths (JIT) during the first system's run, and that system alone pays for it: in
# bench-ingest, the hub (measured first) showed 236-322 ms of broker CPU per 1,000 deliveries on a
# broker the bench had just started, 75-105 on one that had run before, and 148 on a fresh broker
# after this warm-up (one run; the hub's own paths, compacted topics and read_committed fetches,
# still warm up during its run). This drives the plain and transactional produce paths and the
# fetch path with Kafka's own perf tools, on a topic and a group of its own, deleted after; it
# acts as the admin principal.
#   BENCH_WARM_BROKER=0 skips it.
set -uo pipefail
[ "${BENCH_WARM_BROKER:-1}" = 1 ] || exit 0
source "$(dirname "$0")/../deploy/local/env.sh"
[ -n "${KAFKA_ADMIN_PROPERTIES:-}" ] || kafka_admin_env
bootstrap="${KAFKA_BROKERS:-127.0.0.1:$KAFKA_PORT}"
props="${KAFKA_ADMIN_PROPERTIES:-/dev/null}"
topic="bench.warm-broker.$(date +%s)$$"
group="bench-warm-broker-$$"
started=$(date +%s)
kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" --command-config "$props" --create --topic "$topic" --partitions 3 --replication-factor 1 >/dev/null || exit 1
kafka_java org.apache.kafka.tools.ProducerPerformance --topic "$topic" --num-records 200000 --record-size 2048 --throughput -1 \
  --producer.config "$props" --producer-props bootstrap.servers="$bootstrap" acks=all >/dev/null
kafka_java org.apache.kafka.tools.ProducerPerformance --topic "$topic" --num-records 100000 --record-size 2048 --throughput -1 --transaction-duration-ms 20 \
  --producer.config "$props" --producer-props bootstrap.servers="$bootstrap" acks=all >/dev/null
kafka_java org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$bootstrap" --consumer.config "$props" --topic "$topic" --group "$group" \
  --messages 300000 --timeout 60000 >/dev/null
kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" --command-config "$props" --delete --topic "${topic//./\\.}" >/dev/null 2>&1
kafka_java org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$bootstrap" --command-config "$props" --delete --group "$group" >/dev/null 2>&1
echo "[bench] broker warmed up in $(( $(date +%s) - started )) s (200k plain and 100k transactional 2 KB records produced, all read back)" >&2
