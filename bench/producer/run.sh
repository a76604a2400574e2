#!/usr/bin/env bash
# `make bench-producer`: Kafka's own ProducerPerformance and the hub's producer (KafkaBus with
# Avro PlatformEvents), one after the other against the same local broker, each on a fresh
# 3-partition topic, with acks=all and ~1 KB records. Prints both side by side and the ratio.
#   BENCH_RECORDS     records per run (default 200000)
#   BENCH_INFLIGHT    publish() calls the hub keeps outstanding (default 8000)
#   BENCH_CPU_PROF=1  also write a V8 CPU profile of the hub run to reports/bench-producer-prof/
#   BENCH_KEEP_TOPICS=1  keep the bench topics (deleted by default)
# Starts only the infrastructure that is not running, and stops only that at exit.
# The combined figures are also written to reports/bench-producer.json.
set -uo pipefail
source "$(dirname "$0")/../../deploy/local/env.sh"
ROOT="$(cd "$LOCAL_DIR/../.." && pwd)"
cd "$ROOT"

N="${BENCH_RECORDS:-200000}"
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
REGISTRY_URL="http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7"
RUN_ID="$(date +%s)$$"
PP_TOPIC="bench.producer-perf.$RUN_ID"
HUB_TOPIC_REGEX="ionflux\\.bench\\.ws_b$RUN_ID\\..*"

bash "$LOCAL_DIR/npm-install.sh" || exit 1
record=$(mktemp)
work=$(mktemp -d)

cleanup() {
  if [ "${BENCH_KEEP_TOPICS:-0}" != 1 ] && port_open "$KAFKA_PORT"; then
    for t in "${PP_TOPIC//./\\.}" "$HUB_TOPIC_REGEX"; do
      kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --command-config "${KAFKA_ADMIN_PROPERTIES:-/dev/null}" --delete --if-exists --topic "$t" >/dev/null 2>&1 || true
    done
  fi
  # infra-down.sh with no names stops everything: call it only for what this run started.
  # shellcheck disable=SC2046
  [ -s "$record" ] && bash "$LOCAL_DIR/infra-down.sh" $(cat "$record")
  rm -rf "$record" "$work"
}
trap cleanup EXIT
bash "$LOCAL_DIR/infra-up.sh" --record "$record" || exit 1
kafka_admin_env # the bench acts as the admin

echo "[bench] $N records of ~1 KB per run, acks=all, 3 partitions, RF 1" >&2

# (a) Kafka's ProducerPerformance.
kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --command-config "$KAFKA_ADMIN_PROPERTIES" --create --topic "$PP_TOPIC" \
  --partitions 3 --replication-factor 1 >/dev/null || exit 1
echo "[bench] ProducerPerformance -> $PP_TOPIC" >&2
kafka_java org.apache.kafka.tools.ProducerPerformance --topic "$PP_TOPIC" --num-records "$N" --record-size 1024 \
  --throughput -1 --producer.config "$KAFKA_ADMIN_PROPERTIES" --producer-props bootstrap.servers="$BOOTSTRAP" acks=all | tee "$work/pp.txt" >&2
pp_line=$(grep 'records sent' "$work/pp.txt" | tail -n 1)
[ -n "$pp_line" ] || { echo "[bench] ProducerPerformance printed no summary" >&2; exit 1; }

# (b) The hub's producer.
echo "[bench] hub producer (bench/producer/hub-producer.ts)" >&2
prof=()
[ "${BENCH_CPU_PROF:-0}" = 1 ] && prof=(--cpu-prof --cpu-prof-dir "$ROOT/reports/bench-producer-prof")
BENCH_RECORDS="$N" BENCH_RUN_ID="$RUN_ID" KAFKA_BROKERS="$BOOTSTRAP" SCHEMA_REGISTRY_URL="$REGISTRY_URL" LOG_LEVEL=warn \
  node "${prof[@]}" --import tsx bench/producer/hub-producer.ts >"$work/hub.json"
hub_rc=$?
[ -s "$work/hub.json" ] || { echo "[bench] hub producer failed (exit $hub_rc)" >&2; exit 1; }

mkdir -p reports
PP_LINE="$pp_line" node - "$work/hub.json" reports/bench-producer.json <<'EOF'
const fs = require('node:fs');
const [hubFile, outFile] = process.argv.slice(2);
const hub = JSON.parse(fs.readFileSync(hubFile, 'utf8'));
// "200000 records sent, 85034.0 records/sec (83.04 MB/sec), 310.49 ms avg latency, 652.00 ms max latency, ..."
const line = process.env.PP_LINE;
const num = (re) => { const m = re.exec(line); return m ? Number(m[1]) : null; };
const pp = {
  records: num(/^(\d+) records sent/),
  records_per_sec: num(/([\d.]+) records\/sec/),
  mb_per_sec: num(/\(([\d.]+) MB\/sec\)/),
  avg_latency_ms: num(/([\d.]+) ms avg latency/),
  max_latency_ms: num(/([\d.]+) ms max latency/),
  summary: line.trim(),
};
const ratio = (x) => Math.round((x / pp.records_per_sec) * 1000) / 1000;
const rows = [
  ['ProducerPerformance (Java, 1024 B, no key)', pp],
  ['hub end_to_end (buildEvent+encode+publish)', hub.end_to_end],
  ['hub pre_encoded (KafkaBus.publish only)', hub.pre_encoded],
  ['hub encode_only (buildEvent+encode, no Kafka)', hub.encode_only],
];
const fmt = (v, w) => String(v ?? '-').padStart(w);
const out = [];
out.push('');
out.push(`records per run: ${hub.records}; hub: ${hub.inflight} publish() in flight, avg encoded value ${hub.avg_encoded_value_bytes} B + ${hub.key_and_header_bytes_per_record} B key/headers`);
out.push(`${'run'.padEnd(46)}${fmt('records/s', 12)}${fmt('MB/s', 9)}${fmt('avg lat ms', 12)}${fmt('max lat ms', 12)}${fmt('hub/PP', 9)}`);
for (const [name, r] of rows) {
  out.push(`${name.padEnd(46)}${fmt(r.records_per_sec, 12)}${fmt(r.mb_per_sec, 9)}${fmt(r.avg_latency_ms, 12)}${fmt(r.max_latency_ms, 12)}${fmt(r === pp ? 1 : ratio(r.records_per_sec), 9)}`);
}
out.push(`encode cost: ${hub.encode_only.us_per_record} us/record on one core`);
out.push('');
console.log(out.join('\n'));
const report = {
  producer_performance: pp,
  hub,
  ratio_hub_to_producer_performance: { end_to_end: ratio(hub.end_to_end.records_per_sec), pre_encoded: ratio(hub.pre_encoded.records_per_sec) },
};
fs.writeFileSync(outFile, `${JSON.stringify(report, null, 2)}\n`);
console.log(JSON.stringify(report.ratio_hub_to_producer_performance));
EOF
[ "$hub_rc" = 0 ] || { echo "[bench] the hub producer lost or failed records (exit $hub_rc)" >&2; exit 1; }
echo "[bench] full report: reports/bench-producer.json" >&2
