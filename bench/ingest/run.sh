#!/usr/bin/env bash
# `make bench-ingest`: signed 2 KB Shopify orders/create deliveries (distinct webhook ids) from a
# load generator on loopback (bench/ingest/load.ts, autocannon), against
#   1. the hub: services/webhook-ingester (verify, map, dedupe, Avro, event + marker in one
#      Kafka transaction, acks=all), answering after Kafka acknowledged;
#   2. the peer from INFRA.md: Redpanda Connect, http_server -> kafka_franz (acks=all), on the
#      same requests; it also checks the HMAC and keys by the order id, as the hub does;
#   3. a Node floor: the peer's job written plainly with node:http and kafkajs (bench/ingest/bare.ts:
#      HMAC, key by order id, idempotent acks=all produce, 200 after the ack; nothing of the hub),
#      so the hub is read against what a Node HTTP-to-Kafka bridge reaches here at all;
#   4. the design floor: the Kafka work of the hub's own design with none of its logic
#      (bench/ingest/bare-inbox.ts: the floor's edge appending to an inbox, and a processor thread
#      turning each inbox batch into one transaction of events, delivery markers, entity versions
#      and the consumed offsets, the markers and versions read back), so the hub is read against
#      what its design reaches here at all;
#   5. Kafka's ProducerPerformance (2 KB records, acks=all) as the ceiling.
# Payload: Shopify's published orders/create sample trimmed to exactly 2048 bytes, the same for
# both systems; each request gets its own order id (same length, HMAC per request): the ingester
# publishes one entity's deliveries one at a time, so identical bodies would measure one order
# created thousands of times a second (that worst case is the 'hub1' row).
# For 1 to 3: the highest sustained 2xx/s with zero errors (fixed-connection runs), then
# p50/p99 at half that rate. Prints one table with the ratios; writes reports/bench-ingest.json.
# After each HTTP run the records on its topic are counted (read_committed) against the 2xx answers.
#   BENCH_CONNECTIONS      connection counts tried for the max rate (default 16,32,64,128,256)
#   BENCH_STEP_SECONDS     seconds per max-rate run (8); BENCH_HALF_SECONDS half-load run (10)
#   BENCH_HALF_RATE        the "half load" rate for every system, in req/s (default: each system's
#                          own half of its max rate), so that their latencies compare at one load; the
#                          report names a system that fell behind that rate or got errors there
#   BENCH_PP_RECORDS       ProducerPerformance records (200000)
#   PEER_MAX_IN_FLIGHT     kafka_franz max_in_flight (default 256, as many as connections: its own
#                          default of 10 caps it at about half its throughput here)
#   BENCH_CPU_PROF=1       V8 CPU profile of the ingester to reports/bench-ingest-prof/
#   BENCH_ONLY=hub,hub1,peer,floor,design,pp  which parts to run (default all): hub = every delivery another
#                          order (the default payload mode), hub1 = the very same bytes each time
#                          (one order; the ingester serializes an entity's deliveries)
#   BENCH_SAME_ORDER_CONNECTIONS  connection counts for hub1 (default 16,64)
#   BENCH_KEEP_TOPICS=1    keep the bench topics (deleted by default)
# Starts only the infrastructure that is not running, and stops only that at exit; stops the
# ingester and the peer it started.
set -uo pipefail
source "$(dirname "$0")/../../deploy/local/env.sh"
ROOT="$(cd "$LOCAL_DIR/../.." && pwd)"
cd "$ROOT"

BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
REGISTRY_URL="http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7"
RUN_ID="$(date +%s)$$"
ONLY="${BENCH_ONLY:-hub,hub1,peer,floor,design,pp}"
PP_RECORDS="${BENCH_PP_RECORDS:-200000}"
PP_TOPIC="bench.ingest-pp.$RUN_ID"
PEER_TOPIC="bench.ingest-peer.$RUN_ID"
FLOOR_TOPIC="bench.ingest-floor.$RUN_ID"
DESIGN_INBOX="bench.ingest-design-inbox.$RUN_ID"
DESIGN_TOPIC="bench.ingest-design.$RUN_ID"
DESIGN_STATE="bench.ingest-design-state.$RUN_ID"
DESIGN_GROUP="bench-ingest-design-$RUN_ID"
WS=bench
SHOP=bench-shop.myshopify.com
HUB_TOPIC="ionflux.shopify.ws_$WS.orders.created"
# An inbox of the bench's own (and so a processor group of its own): a running hub never sees it.
INBOX_TOPIC="ionflux.inbox.bench-$RUN_ID"
# ... and with it, state topics of its own (services/webhook-ingester/deliveries.ts stateTopicsFor).
BENCH_STATE_TOPICS="ionflux.state.webhook-deliveries-bench-$RUN_ID ionflux.state.entity-versions-bench-$RUN_ID"
SECRET="$(node -e 'process.stdout.write(require("crypto").randomBytes(24).toString("hex"))')"
export KAFKA_BROKERS="$BOOTSTRAP" SCHEMA_REGISTRY_URL="$REGISTRY_URL"
export LOAD_CONNECTIONS="${BENCH_CONNECTIONS:-16,32,64,128,256}" LOAD_STEP_SECONDS="${BENCH_STEP_SECONDS:-8}" LOAD_HALF_SECONDS="${BENCH_HALF_SECONDS:-10}" LOAD_HALF_RATE="${BENCH_HALF_RATE:-}"

bash "$LOCAL_DIR/npm-install.sh" || exit 1
record=$(mktemp)
work=$(mktemp -d)
ingester_pid=""
peer_pid=""
floor_pid=""
design_pid=""

topic_cmd() { kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --command-config "${KAFKA_ADMIN_PROPERTIES:-/dev/null}" "$@"; }
has() { [[ ",$ONLY," == *",$1,"* ]]; }
CLK_TCK=$(getconf CLK_TCK)
# cpu_s PID: user+system CPU seconds the process has used so far (0 when it is not readable).
cpu_s() { awk -v t="$CLK_TCK" '{ print ($14 + $15) / t }' "/proc/$1/stat" 2>/dev/null || echo 0; }
broker_pid() { cat "$IONFLUX_RUN/kafka.pid" 2>/dev/null || echo 0; }
# load_run LABEL PORT PID: the load generator against one system, with the CPU the system and the
# broker used meanwhile (the load generator reports its own).
load_run() {
  local label=$1 port=$2 pid=$3 s0 b0 t0 rc
  s0=$(cpu_s "$pid"); b0=$(cpu_s "$(broker_pid)"); t0=$(date +%s.%N)
  LOAD_URL="http://127.0.0.1:$port/webhooks/shopify" LOAD_LABEL="$label" node --import tsx bench/ingest/load.ts run >"$work/$label.json"
  rc=$?
  printf '{"wall_s":%s,"system_cpu_s":%s,"broker_cpu_s":%s}\n' "$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { print a - b }')" \
    "$(awk -v a="$(cpu_s "$pid")" -v b="$s0" 'BEGIN { print a - b }')" "$(awk -v a="$(cpu_s "$(broker_pid)")" -v b="$b0" 'BEGIN { print a - b }')" >"$work/$label-cpu.json"
  return $rc
}
# wait_ready NAME PID LOG CHECK...: up to 30 s for CHECK to succeed while PID runs; else its log's tail.
wait_ready() {
  local name=$1 pid=$2 log=$3
  shift 3
  for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || break
    "$@" && return 0
    sleep 0.2
  done
  echo "[bench] the $name did not become ready:" >&2
  tail -n 30 "$log" >&2
  return 1
}
# wrong_signature NAME PORT: the signature check must bite; says what a wrong HMAC is answered.
wrong_signature() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' -H 'X-Shopify-Hmac-Sha256: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' \
    --data-binary @"$LOAD_PAYLOAD" "http://127.0.0.1:$2/webhooks/shopify")
  echo "[bench] $1 answers $code to a wrong signature" >&2
}
free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{process.stdout.write(String(s.address().port));s.close()})'; }
# stop_pid PID: SIGTERM, then SIGKILL after 20 s; only processes this script started.
stop_pid() {
  local pid=$1 i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
  kill -KILL "$pid" 2>/dev/null
}

cleanup() {
  stop_pid "$ingester_pid"
  stop_pid "$peer_pid"
  stop_pid "$floor_pid"
  stop_pid "$design_pid"
  if [ "${BENCH_KEEP_TOPICS:-0}" != 1 ] && port_open "$KAFKA_PORT"; then
    # shellcheck disable=SC2086
    for t in "$PP_TOPIC" "$PEER_TOPIC" "$FLOOR_TOPIC" "$DESIGN_INBOX" "$DESIGN_TOPIC" "$DESIGN_STATE" "$HUB_TOPIC" "$INBOX_TOPIC" $BENCH_STATE_TOPICS; do
      topic_cmd --delete --if-exists --topic "${t//./\\.}" >/dev/null 2>&1 || true
    done
    # The processor group of the bench's inbox (its name derives from the inbox, services/webhook-ingester/processor.ts).
    kafka_java org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$BOOTSTRAP" --command-config "${KAFKA_ADMIN_PROPERTIES:-/dev/null}" \
      --delete --group "ionflux-webhook-ingester-processor.$INBOX_TOPIC" >/dev/null 2>&1 || true
    for g in "$DESIGN_GROUP" "$DESIGN_GROUP-state"; do
      kafka_java org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$BOOTSTRAP" --command-config "${KAFKA_ADMIN_PROPERTIES:-/dev/null}" \
        --delete --group "$g" >/dev/null 2>&1 || true
    done
  fi
  # The state directories of the run's ingesters (INGESTER_INSTANCE_ID=bench<run><name>).
  rm -rf ".ionflux/state/webhook-ingester-bench$RUN_ID"*
  # infra-down.sh with no names stops everything: call it only for what this run started.
  # shellcheck disable=SC2046
  [ -s "$record" ] && bash "$LOCAL_DIR/infra-down.sh" $(cat "$record")
  rm -rf "$record" "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
bash "$LOCAL_DIR/infra-up.sh" --record "$record" || exit 1
kafka_admin_env # the bench acts as the admin
bash "$ROOT/bench/warm-broker.sh" || exit 1
# The figures are only comparable when nothing else is busy: say how loaded the machine was.
export LOADAVG_START="$(cut -d' ' -f1-3 /proc/loadavg)"

PEER_BIN=""
if has peer; then
  PEER_BIN=$(bash "$ROOT/bench/ingest/build-peer.sh") || { echo "[bench] could not build Redpanda Connect" >&2; exit 1; }
fi

node --import tsx bench/ingest/load.ts payload tests/helpers/fixtures/shopify/orders-create.json "$work/payload.json" || exit 1
export LOAD_PAYLOAD="$work/payload.json" LOAD_SECRET="$SECRET"
for f in hub hub1 peer floor design; do echo '{}' >"$work/$f.json"; echo '{}' >"$work/$f-count.json"; done; : >"$work/pp.txt"

# count TOPIC EXPECT OUT
count_topic() { COUNT_TOPIC="$1" COUNT_EXPECT="$2" node --import tsx bench/ingest/load.ts count >"$3"; }
ok_2xx() { node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));process.stdout.write(String(r.totals?.ok_2xx??0))' "$1"; }

# ---- 1. the hub -------------------------------------------------------------------------------
# run_hub NAME ORDERS CONNECTIONS: a fresh ingester (and a fresh event topic, so its record count
# is this run's; the ingester provisions it again), the load, then the count.
run_hub() {
  local name=$1 orders=$2 conns=$3 port ops_port code ready profdir profile expect
  topic_cmd --delete --if-exists --topic "${HUB_TOPIC//./\\.}" >/dev/null 2>&1
  for _ in $(seq 1 40); do topic_cmd --list 2>/dev/null | grep -qxF "$HUB_TOPIC" || break; sleep 0.25; done
  SECRETS_FILE="$work/secrets.enc" SECRETS_KEY_FILE="$work/secrets.key" LOG_LEVEL=warn \
    node bin/ionflux.mjs link shopify "$SHOP" "$WS" >&2 || { echo "[bench] ionflux link failed" >&2; return 1; }
  port=$(free_port)
  ops_port=$(free_port)
  local prof=()
  profdir="reports/bench-ingest-prof/$name-$RUN_ID"
  if [ "${BENCH_CPU_PROF:-0}" = 1 ]; then
    mkdir -p "$profdir"
    prof=(--cpu-prof --cpu-prof-dir "$ROOT/$profdir")
  fi
  echo "[bench] $name: webhook ingester on 127.0.0.1:$port, orders: $orders (log $work/$name-ingester.log)" >&2
  SHOPIFY_API_SECRET="$SECRET" INGESTER_EDGE_PRODUCERS="${INGESTER_EDGE_PRODUCERS:-1}" INGESTER_PORT="$port" INGESTER_OPS_PORT="$ops_port" INGESTER_HOST=127.0.0.1 LOG_LEVEL=warn \
    INGESTER_INSTANCE_ID="bench$RUN_ID$name" IONFLUX_INBOX_TOPIC="$INBOX_TOPIC" SECRETS_FILE="$work/secrets.enc" SECRETS_KEY_FILE="$work/secrets.key" \
    node $(node_flags webhook-ingester) "${prof[@]}" --import tsx services/webhook-ingester/main.ts >"$work/$name-ingester.log" 2>&1 &
  ingester_pid=$!
  ready=0
  for _ in $(seq 1 300); do
    kill -0 "$ingester_pid" 2>/dev/null || break
    curl -fs -o /dev/null "http://127.0.0.1:$ops_port/readyz" && { ready=1; break; }
    sleep 0.2
  done
  [ "$ready" = 1 ] || { echo "[bench] the ingester did not become ready:" >&2; tail -n 30 "$work/$name-ingester.log" >&2; return 1; }
  # Links reach a running ingester within about a second; probe until a signed delivery gets 200
  # (earlier probes are dead-lettered as unlinked: they do not reach the event topic).
  for _ in $(seq 1 50); do
    code=$(node -e '
      const fs=require("fs"),c=require("crypto"),b=fs.readFileSync(process.env.LOAD_PAYLOAD);
      fetch(process.argv[1],{method:"POST",body:b,headers:{"content-type":"application/json","x-shopify-hmac-sha256":c.createHmac("sha256",process.env.LOAD_SECRET).update(b).digest("base64"),
        "x-shopify-topic":"orders/create","x-shopify-shop-domain":process.argv[2],"x-shopify-webhook-id":"probe-"+c.randomUUID()}})
        .then(r=>process.stdout.write(String(r.status)),()=>process.stdout.write("0"))' "http://127.0.0.1:$port/webhooks/shopify" "$SHOP")
    [ "$code" = 200 ] && break
    sleep 0.2
  done
  [ "$code" = 200 ] || { echo "[bench] the ingester answers $code to a signed delivery" >&2; tail -n 30 "$work/$name-ingester.log" >&2; return 1; }
  LOAD_METRICS_URL="http://127.0.0.1:$ops_port/metrics" LOAD_E2E_TOPIC="$HUB_TOPIC" LOAD_ORDERS="$orders" LOAD_CONNECTIONS="$conns" load_run "$name" "$port" "$ingester_pid" || { echo "[bench] $name load run failed" >&2; return 1; }
  # The 2xx answers came once the inbox append was acknowledged: let the processor finish them.
  for _ in $(seq 1 600); do
    curl -fs "http://127.0.0.1:$ops_port/metrics" | awk '/^ionflux_inbox_appended_total/ { a = $2 } /^ionflux_inbox_committed_total/ { c = $2 } END { exit !(c >= a) }' && break
    sleep 0.1
  done
  stop_pid "$ingester_pid"; ingester_pid=""
  mkdir -p reports && cp "$work/$name-ingester.log" "reports/bench-ingest-$name-ingester.log"
  grep -c 'concurrent operation on the same transaction' "$work/$name-ingester.log" >"$work/$name-concurrent-txn.txt"
  echo "[bench] $name ingester log (reports/bench-ingest-$name-ingester.log): $(cat "$work/$name-concurrent-txn.txt") kafkajs CONCURRENT_TRANSACTIONS errors, $(grep -c '"level":[45]0' "$work/$name-ingester.log") warn/error lines" >&2
  if [ "${BENCH_CPU_PROF:-0}" = 1 ]; then
    # One file per thread (tsx's module-hooks thread too): the biggest is the main thread.
    profile=$(ls -S "$profdir"/*.cpuprofile 2>/dev/null | head -n 1)
    [ -n "$profile" ] && node --import tsx bench/ingest/prof-summary.ts "$profile" 20 >"$profdir/summary.txt" 2>&1 && cat "$profdir/summary.txt" >&2
  fi
  # 200 answers = the load generator's 2xx + the probe that answered 200 (one).
  expect=$(( $(ok_2xx "$work/$name.json") + 1 ))
  echo "[bench] counting committed records on $HUB_TOPIC (expect $expect)" >&2
  count_topic "$HUB_TOPIC" "$expect" "$work/$name-count.json" || echo '{}' >"$work/$name-count.json"
}
if has hub; then run_hub hub distinct "$LOAD_CONNECTIONS" || exit 1; fi
# The same bytes every time: one order "created" thousands of times a second. The ingester
# publishes one entity's deliveries one at a time (stale-update check), so this is its worst case.
if has hub1; then run_hub hub1 same "${BENCH_SAME_ORDER_CONNECTIONS:-16,64}" || exit 1; fi

# ---- 2. the peer: Redpanda Connect ------------------------------------------------------------
if has peer; then
  topic_cmd --create --topic "$PEER_TOPIC" --partitions 3 --replication-factor 1 >/dev/null || exit 1
  port=$(free_port); admin=$(free_port)
  cat >"$work/peer.yaml" <<EOF
http:
  enabled: true
  address: 127.0.0.1:$admin
logger:
  level: WARN
input:
  http_server:
    address: 127.0.0.1:$port
    path: /webhooks/shopify
    allowed_verbs: [POST]
    timeout: 5s
pipeline:
  processors:
    # What the hub does before Kafka, in the peer's own terms: check the Shopify HMAC of the raw
    # body and key the record by the order id (admin_graphql_api_id). A 'mapping', not a
    # 'mutation': in a mutation content() is the parsed JSON re-serialized (keys sorted), so the
    # HMAC never matches; here root = content() keeps the raw bytes, which go to Kafka unchanged.
    - mapping: |
        root = if metadata("X-Shopify-Hmac-Sha256") == content().hash("hmac_sha256", env("PEER_SHOPIFY_SECRET")).encode("base64") { content() } else { throw("invalid signature") }
        meta kafka_key = this.admin_graphql_api_id
output:
  # A message that failed the check is nacked: http_server then answers 502 instead of 200.
  reject_errored:
    kafka_franz:
      seed_brokers: [ "$BOOTSTRAP" ]
      sasl:
        - mechanism: SCRAM-SHA-256
          username: "$KAFKA_SASL_USERNAME"
          password: "\${PEER_KAFKA_PASSWORD}"
      topic: $PEER_TOPIC
      key: \${! @kafka_key }
      max_in_flight: ${PEER_MAX_IN_FLIGHT:-256}
EOF
  echo "[bench] peer: Redpanda Connect ($(tr '\n' ' ' <"$IONFLUX_CACHE/redpanda-connect/versions.txt" 2>/dev/null)) on 127.0.0.1:$port -> $PEER_TOPIC" >&2
  PEER_SHOPIFY_SECRET="$SECRET" PEER_KAFKA_PASSWORD="$KAFKA_SASL_PASSWORD" "$PEER_BIN" run "$work/peer.yaml" >"$work/peer.log" 2>&1 &
  peer_pid=$!
  wait_ready peer "$peer_pid" "$work/peer.log" curl -fs -o /dev/null "http://127.0.0.1:$admin/ready" || exit 1
  wrong_signature peer "$port"
  load_run peer "$port" "$peer_pid" || { echo "[bench] peer load run failed" >&2; exit 1; }
  stop_pid "$peer_pid"; peer_pid=""
  mkdir -p reports && cp "$work/peer.log" reports/bench-ingest-peer.log
  grep -v '^\s*$' "$work/peer.log" | tail -n 5 >&2
  expect=$(ok_2xx "$work/peer.json")
  echo "[bench] counting records on $PEER_TOPIC (expect $expect)" >&2
  COUNT_MODE=offsets count_topic "$PEER_TOPIC" "$expect" "$work/peer-count.json" || echo '{}' >"$work/peer-count.json"
fi

# ---- 3. the Node floor ------------------------------------------------------------------------
if has floor; then
  topic_cmd --create --topic "$FLOOR_TOPIC" --partitions 3 --replication-factor 1 >/dev/null || exit 1
  port=$(free_port)
  echo "[bench] floor: bench/ingest/bare.ts (node:http + kafkajs) on 127.0.0.1:$port -> $FLOOR_TOPIC" >&2
  FLOOR_PORT="$port" FLOOR_TOPIC="$FLOOR_TOPIC" FLOOR_SHOPIFY_SECRET="$SECRET" node --import tsx bench/ingest/bare.ts >"$work/floor.log" 2>&1 &
  floor_pid=$!
  wait_ready floor "$floor_pid" "$work/floor.log" grep -qx ready "$work/floor.log" || exit 1
  wrong_signature floor "$port"
  load_run floor "$port" "$floor_pid" || { echo "[bench] floor load run failed" >&2; exit 1; }
  stop_pid "$floor_pid"; floor_pid=""
  expect=$(ok_2xx "$work/floor.json")
  echo "[bench] counting records on $FLOOR_TOPIC (expect $expect)" >&2
  COUNT_MODE=offsets count_topic "$FLOOR_TOPIC" "$expect" "$work/floor-count.json" || echo '{}' >"$work/floor-count.json"
fi

# ---- 4. the design floor ---------------------------------------------------------------------
if has design; then
  for t in "$DESIGN_INBOX" "$DESIGN_TOPIC"; do topic_cmd --create --topic "$t" --partitions 3 --replication-factor 1 >/dev/null || exit 1; done
  topic_cmd --create --topic "$DESIGN_STATE" --partitions 3 --replication-factor 1 --config cleanup.policy=compact >/dev/null || exit 1
  port=$(free_port)
  echo "[bench] design floor: bench/ingest/bare-inbox.ts on 127.0.0.1:$port -> $DESIGN_INBOX -> $DESIGN_TOPIC + $DESIGN_STATE" >&2
  FLOOR_PORT="$port" FLOOR_INBOX="$DESIGN_INBOX" FLOOR_TOPIC="$DESIGN_TOPIC" FLOOR_STATE="$DESIGN_STATE" FLOOR_GROUP="$DESIGN_GROUP" FLOOR_SHOPIFY_SECRET="$SECRET" \
    node --import tsx bench/ingest/bare-inbox.ts >"$work/design.log" 2>&1 &
  design_pid=$!
  wait_ready "design floor" "$design_pid" "$work/design.log" grep -qx ready "$work/design.log" || exit 1
  wrong_signature "design floor" "$port"
  load_run design "$port" "$design_pid" || { echo "[bench] design floor load run failed" >&2; exit 1; }
  # Its processor finishes what was appended while the records are counted (read_committed).
  expect=$(ok_2xx "$work/design.json")
  echo "[bench] counting committed records on $DESIGN_TOPIC (expect $expect)" >&2
  count_topic "$DESIGN_TOPIC" "$expect" "$work/design-count.json" || echo '{}' >"$work/design-count.json"
  stop_pid "$design_pid"; design_pid=""
fi

# ---- 5. ProducerPerformance: the ceiling ------------------------------------------------------
if has pp; then
  topic_cmd --create --topic "$PP_TOPIC" --partitions 3 --replication-factor 1 >/dev/null || exit 1
  echo "[bench] ProducerPerformance: $PP_RECORDS records of 2048 B, acks=all -> $PP_TOPIC" >&2
  kafka_java org.apache.kafka.tools.ProducerPerformance --topic "$PP_TOPIC" --num-records "$PP_RECORDS" --record-size 2048 \
    --throughput -1 --producer.config "$KAFKA_ADMIN_PROPERTIES" --producer-props bootstrap.servers="$BOOTSTRAP" acks=all | tee "$work/pp.txt" >&2
fi

mkdir -p reports
LOADAVG_END="$(cut -d' ' -f1-3 /proc/loadavg)" PP_LINE="$(grep 'records sent' "$work/pp.txt" | tail -n 1)" node - "$work" reports/bench-ingest.json <<'EOF'
const fs = require('node:fs');
const [work, outFile] = process.argv.slice(2);
const read = (f) => { try { return JSON.parse(fs.readFileSync(`${work}/${f}`, 'utf8')); } catch { return {}; } };
const hub = read('hub.json'), hub1 = read('hub1.json'), peer = read('peer.json'), floor = read('floor.json'), design = read('design.json');
const counts = { hub: read('hub-count.json'), hub1: read('hub1-count.json'), peer: read('peer-count.json'), floor: read('floor-count.json'), design: read('design-count.json') };
const cpu = { hub: read('hub-cpu.json'), hub1: read('hub1-cpu.json'), peer: read('peer-cpu.json'), floor: read('floor-cpu.json'), design: read('design-cpu.json') };
const concurrentTxn = {};
for (const n of ['hub', 'hub1']) { try { concurrentTxn[n] = Number(fs.readFileSync(`${work}/${n}-concurrent-txn.txt`, 'utf8').trim()); } catch {} }
const line = process.env.PP_LINE ?? '';
const num = (re) => { const m = re.exec(line); return m ? Number(m[1]) : null; };
const pp = line ? {
  records: num(/^(\d+) records sent/), records_per_sec: num(/([\d.]+) records\/sec/), mb_per_sec: num(/\(([\d.]+) MB\/sec\)/),
  avg_latency_ms: num(/([\d.]+) ms avg latency/), max_latency_ms: num(/([\d.]+) ms max latency/),
  p50_ms: num(/([\d.]+) ms 50th/), p99_ms: num(/([\d.]+) ms 99th/), summary: line.trim(),
} : null;
const ratio = (a, b) => (a && b ? Math.round((a / b) * 1000) / 1000 : null);
const row = (name, r, c) => ({
  system: name,
  max_zero_error_rps: r.max_zero_error_rps ?? null,
  at_connections: r.max_at_connections ?? null,
  half_rate: r.half_rate ?? null,
  p50_ms: r.half_autocannon?.p50_ms ?? null, p99_ms: r.half_autocannon?.p99_ms ?? null,
  paced_p50_ms: r.half_paced?.p50_ms ?? null, paced_p99_ms: r.half_paced?.p99_ms ?? null,
  half_zero_error: r.half_autocannon && r.half_paced ? r.half_autocannon.zero_error && r.half_paced.zero_error : null,
  half_achieved_rps: r.half_autocannon && r.half_paced ? Math.min(r.half_autocannon.rps_2xx, r.half_paced.rps_2xx) : null,
  cpu: c && c.wall_s ? { ...c, system_cpu_pct: Math.round((100 * c.system_cpu_s) / c.wall_s), broker_cpu_pct: Math.round((100 * c.broker_cpu_s) / c.wall_s), loadgen_cpu_s: r.loadgen_cpu_s ?? null } : null,
});
const rows = [
  row('hub (webhook-ingester)', hub, cpu.hub),
  row('hub, one order (worst)', hub1, cpu.hub1),
  row('peer (Redpanda Connect)', peer, cpu.peer),
  row('Node floor (bare.ts)', floor, cpu.floor),
  row('design floor (bare-inbox)', design, cpu.design),
  { system: 'Kafka ProducerPerformance', max_zero_error_rps: pp?.records_per_sec ?? null, at_connections: null, half_rate: null, p50_ms: pp?.p50_ms ?? null, p99_ms: pp?.p99_ms ?? null, paced_p50_ms: null, paced_p99_ms: null, half_zero_error: null, cpu: null },
];
const ratios = {
  hub_to_peer: ratio(hub.max_zero_error_rps, peer.max_zero_error_rps),
  hub_one_order_to_peer: ratio(hub1.max_zero_error_rps, peer.max_zero_error_rps),
  hub_to_producer_performance: ratio(hub.max_zero_error_rps, pp?.records_per_sec),
  peer_to_producer_performance: ratio(peer.max_zero_error_rps, pp?.records_per_sec),
  floor_to_peer: ratio(floor.max_zero_error_rps, peer.max_zero_error_rps),
  hub_to_floor: ratio(hub.max_zero_error_rps, floor.max_zero_error_rps),
  design_floor_to_peer: ratio(design.max_zero_error_rps, peer.max_zero_error_rps),
  hub_to_design_floor: ratio(hub.max_zero_error_rps, design.max_zero_error_rps),
};
const fmt = (v, w) => String(v ?? '-').padStart(w);
const out = [''];
out.push(`payload ${hub.body_bytes ?? peer.body_bytes ?? '-'} B orders/create, signed, distinct X-Shopify-Webhook-Id, another order id per request (row 'one order': identical bytes); acks=all everywhere; load generator, system and broker share 2 cores`);
out.push(`${'system'.padEnd(27)}${fmt('max 0-err req/s', 16)}${fmt('conns', 6)}${fmt('half rate', 10)}${fmt('p50 ms', 8)}${fmt('p99 ms', 8)}${fmt('paced p50', 10)}${fmt('paced p99', 10)}${fmt('sys CPU', 8)}${fmt('broker', 7)}`);
for (const r of rows) {
  out.push(`${r.system.padEnd(27)}${fmt(r.max_zero_error_rps, 16)}${fmt(r.at_connections, 6)}${fmt(r.half_rate, 10)}${fmt(r.p50_ms, 8)}${fmt(r.p99_ms, 8)}${fmt(r.paced_p50_ms, 10)}${fmt(r.paced_p99_ms, 10)}${fmt(r.cpu ? `${r.cpu.system_cpu_pct}%` : null, 8)}${fmt(r.cpu ? `${r.cpu.broker_cpu_pct}%` : null, 7)}`);
}
out.push(`p50/p99: autocannon overallRate at ${process.env.LOAD_HALF_RATE ? `${process.env.LOAD_HALF_RATE} req/s for every system (BENCH_HALF_RATE)` : 'half the max rate'} (it sends each second's quota per connection back to back: bursty; CO-corrected).`);
out.push('paced p50/p99: the same rate evenly spaced, open loop, timed from the scheduled send. sys CPU / broker: average over the whole load run (100% = one core).');
out.push('ProducerPerformance row: records/s of 2048 B records (no key, 3 partitions) and its own p50/p99 latency at full speed.');
// A half-load phase that fell behind its rate or was not all 2xx (BENCH_HALF_RATE above what a
// system holds, say) did not time that system at the load its row names.
for (const r of rows) {
  if (r.half_rate == null || (r.half_zero_error !== false && r.half_achieved_rps >= 0.95 * r.half_rate)) continue;
  out.push(`${r.system}: did not hold ${r.half_rate} req/s in its half-load phases (2xx/s ${r.half_achieved_rps} at the slower one${r.half_zero_error === false ? '; non-2xx answers, socket errors or unanswered requests' : ''}): its p50/p99 there are not of that load`);
}
const e2e = hub.half_paced?.e2e_ms;
for (const [name, r] of [['hub', hub], ['hub, one order', hub1]]) {
  if (r.max_step_processed_rps != null) out.push(`${name} in its max-rate step: answered ${r.max_zero_error_rps} 2xx/s, its processor committed ${r.max_step_processed_rps} deliveries/s, ${r.max_step_backlog_at_end} appended deliveries not yet committed at the step's end (a processor that keeps up commits as many as are answered)`);
}
const slow = hub.half_paced?.slow_share;
const edge = hub.half_paced?.edge_thread;
if (edge) out.push(`hub at the paced half rate, its edge thread: event-loop delay p99 ${edge.loop_delay_p99_ms} ms, max ${edge.loop_delay_max_ms} ms; GC ms per second ${Object.entries(edge.gc_ms_per_s).map(([k, v]) => `${k} ${v}`).join(', ')}`);
if (slow) out.push(`hub at the paced half rate: answers over 25 ms ${slow.answers_over_25ms}% (over 100 ms ${slow.answers_over_100ms}%), the edge's inbox appends over 25 ms ${slow.appends_over_25ms}% (over 100 ms ${slow.appends_over_100ms}%): a slow answer whose append was fast waited on the process, not on Kafka`);
if (e2e) out.push(`hub at the paced half rate, from the 2xx answer to its event being readable (read_committed) on the workspace topic: p50 ${e2e.p50} ms, p99 ${e2e.p99} ms, max ${e2e.max} ms (${e2e.count} events, ${e2e.missing} not read within 10 s)`);
const perK = (c, r) => (c && r.totals?.ok_2xx ? Math.round((1000 * 1000 * c.system_cpu_s) / r.totals.ok_2xx) : null);
const brokerPerK = (c, r) => (c && r.totals?.ok_2xx ? Math.round((1000 * 1000 * c.broker_cpu_s) / r.totals.ok_2xx) : null);
out.push(`CPU per 1,000 deliveries over the whole load run (ms): hub process ${perK(cpu.hub, hub) ?? '-'} (broker ${brokerPerK(cpu.hub, hub) ?? '-'}), peer process ${perK(cpu.peer, peer) ?? '-'} (broker ${brokerPerK(cpu.peer, peer) ?? '-'}), Node floor process ${perK(cpu.floor, floor) ?? '-'} (broker ${brokerPerK(cpu.floor, floor) ?? '-'}), design floor process ${perK(cpu.design, design) ?? '-'} (broker ${brokerPerK(cpu.design, design) ?? '-'})`);
out.push(`ratios: hub/peer ${ratios.hub_to_peer ?? '-'}   hub one order/peer ${ratios.hub_one_order_to_peer ?? '-'}   hub/ProducerPerformance ${ratios.hub_to_producer_performance ?? '-'}   peer/ProducerPerformance ${ratios.peer_to_producer_performance ?? '-'}   Node floor/peer ${ratios.floor_to_peer ?? '-'}   hub/Node floor ${ratios.hub_to_floor ?? '-'}   design floor/peer ${ratios.design_floor_to_peer ?? '-'}   hub/design floor ${ratios.hub_to_design_floor ?? '-'}`);
const check = (name, r, c) => {
  if (!r.totals) return null;
  const isHub = name.startsWith('hub');
  const probe = isHub ? 1 : 0;
  // Sure to be there: every 2xx. May be there too: requests still in flight when autocannon
  // stopped, and (hub) deliveries answered 503 because Kafka's ack took over 4 s: the ingester
  // does not cancel those, they may land and a vendor's retry then dedupes (docs/webhooks.md).
  const low = r.totals.ok_2xx + probe, high = low + r.totals.unanswered_at_stop + (r.totals.status_503 ?? 0);
  const distinctOk = !isHub || c.distinct_event_ids === c.records;
  const match = typeof c.records === 'number' && c.records >= low && c.records <= high && distinctOk;
  out.push(`${name}: ${r.totals.ok_2xx} 2xx${probe ? ' + 1 probe' : ''}, ${r.totals.non_2xx} non-2xx (${r.totals.status_503 ?? 0} of them 503), ${r.totals.errors} socket errors/timeouts, ${r.totals.unanswered_at_stop} in flight when autocannon stopped (sent, answer not counted); ` +
    `${c.records ?? '?'} records on ${c.topic ?? '?'}${isHub ? ` (read_committed, ${c.distinct_event_ids ?? '?'} distinct event ids)` : ''}: expected ${low}..${high} -> ${match ? 'MATCH' : 'MISMATCH'}`);
  return { answered_2xx: r.totals.ok_2xx, probes: probe, unanswered_at_stop: r.totals.unanswered_at_stop, expected_min: low, expected_max: high, consumed_records: c.records ?? null, distinct_event_ids: c.distinct_event_ids ?? null, match };
};
const record_counts = { hub: check('hub', hub, counts.hub), hub1: check('hub1', hub1, counts.hub1), peer: check('peer', peer, counts.peer), floor: check('floor', floor, counts.floor), design: check('design floor', design, counts.design) };
out.push(`load average at start ${process.env.LOADAVG_START}, at end ${process.env.LOADAVG_END} (2 cores; other work on the machine skews every figure)`);
for (const [n, v] of Object.entries(concurrentTxn)) out.push(`${n}: kafkajs logged ${v} CONCURRENT_TRANSACTIONS errors (AddPartitionsToTxn while the previous commit completes; each retried after 5 ms, doubling).`);
out.push('');
console.log(out.join('\n'));
const report = { at: new Date().toISOString(), loadavg: { start: process.env.LOADAVG_START, end: process.env.LOADAVG_END }, rows, ratios, record_counts, hub_concurrent_transactions_errors: concurrentTxn, producer_performance: pp, hub, hub_one_order: hub1, peer, floor, design, counts };
fs.writeFileSync(outFile, `${JSON.stringify(report, null, 2)}\n`);
console.log(JSON.stringify(ratios));
if (Object.values(record_counts).some((c) => c && !c.match)) process.exitCode = 3;
EOF
rc=$?
echo "[bench] full report: reports/bench-ingest.json" >&2
exit "$rc"
