#!/usr/bin/env bash
# `make bench-state`: what one connector worker costs when its command table holds 1M finished
# commands within the dedupe window (RELIABILITY.md item 28). bench/state/fill.ts writes them to
# ionflux.state.commands-noop; then the real worker (services/connector-worker serving the no-op
# connector of bench/commands/connectors) is started and timed from spawn to /readyz = 200, and
# its resident memory read from /proc 5 s after; "table" is the command table's own start as it logs it:
#   hub cold        this tree, empty state dir: the LMDB store is built from the topic
#   hub restart     the same state dir after a clean stop: resumes from its checkpoint
#   hub after kill  the same after SIGKILL: the store is tried in a probe process, then resumed
#                   (ready also waits for the killed member to leave the worker's consumer group)
#   in-heap         the tree before the disk store (BENCH_BASELINE_REF), same topic, same run
# RSS is split into anonymous memory (heap and the rest of the process) and file pages (LMDB's
# memory map, page cache the kernel can take back). Prints one table, writes reports/bench-state.json.
#   BENCH_STATE_COMMANDS   finished commands in the topic (default 1000000)
#   BENCH_BASELINE_REF     the in-heap tree (default: the parent of the commit that removed shared/bus/table.ts)
#   BENCH_SKIP_BASELINE=1  measure only this tree
# Uses a Kafka broker of its own (ports from 39092 up, data removed at the end); starts the
# registry and OpenBao only if they are not running and stops only what it started.
set -uo pipefail
source "$(dirname "$0")/../../deploy/local/env.sh"
ROOT="$(cd "$LOCAL_DIR/../.." && pwd)"
cd "$ROOT"
N="${BENCH_STATE_COMMANDS:-1000000}"
# BENCH_STATE_TARGET=ingester (make bench-state-ingester): the webhook ingester's inbox processor
# with N delivery markers in ionflux.state.webhook-deliveries instead (no in-heap baseline).
TARGET="${BENCH_STATE_TARGET:-worker}"
export BENCH_STATE_TARGET="$TARGET"
if [ "$TARGET" = ingester ]; then TABLE_TOPIC=ionflux.state.webhook-deliveries; BENCH_SKIP_BASELINE=1; else TABLE_TOPIC=ionflux.state.commands-noop; fi

bash "$LOCAL_DIR/npm-install.sh" || exit 1
record=$(mktemp)
work=$(mktemp -d)
broker_run=""
worker_pid=""

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{process.stdout.write(String(s.address().port));s.close()})'; }
stop_pid() {
  local pid=$1 i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 1 240); do kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }; sleep 0.25; done
  kill -KILL "$pid" 2>/dev/null
}
cleanup() {
  stop_pid "$worker_pid"
  if [ -n "$broker_run" ]; then
    IONFLUX_RUN="$broker_run" bash "$LOCAL_DIR/infra-down.sh" kafka
    rm -rf "$broker_run/kafka"
  fi
  # shellcheck disable=SC2046
  [ -s "$record" ] && bash "$LOCAL_DIR/infra-down.sh" $(cat "$record")
  rm -rf "$record" "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bash "$LOCAL_DIR/infra-up.sh" --only "registry vault" --record "$record" || exit 1
port=39092
while port_open "$port" || port_open $((port + 1)); do port=$((port + 2)); done
broker_run="$IONFLUX_CACHE/run-bench-state-$port"
rm -rf "$broker_run"
IONFLUX_RUN="$broker_run" KAFKA_PORT="$port" KAFKA_CONTROLLER_PORT=$((port + 1)) bash "$LOCAL_DIR/infra-up.sh" --only kafka || exit 1
kafka_admin_env "$broker_run" # the bench acts as that broker's admin
export KAFKA_BROKERS="127.0.0.1:$port" SCHEMA_REGISTRY_URL="http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7" VAULT_TOKEN="${VAULT_TOKEN:-$(cat "$IONFLUX_RUN/vault/ionflux-admin.token")}"

log "writing $N $([ "$TARGET" = ingester ] && echo delivery markers || echo finished commands)"
fill=$(BENCH_STATE_COMMANDS="$N" node --import tsx bench/state/fill.ts) || exit 1
log "filled: $fill"

# measure NAME TREE STATE_DIR [kill]: starts the worker of TREE, times it to ready, reads its
# memory after 5 s, then stops it (SIGKILL with `kill`). Prints one JSON line.
measure() {
  local name=$1 tree=$2 state=$3 how=${4:-stop} ops t0 t1 status
  ops=$(free_port)
  t0=$(date +%s%N)
  if [ "$TARGET" = ingester ]; then
    (cd "$tree" && INGESTER_ROLE=processor INGESTER_OPS_PORT="$ops" INGESTER_INSTANCE_ID=bench \
      IONFLUX_STATE_DIR="$state" LOG_LEVEL=info exec node $(node_flags webhook-ingester) --import tsx services/webhook-ingester/main.ts >>"$work/$name.log" 2>&1) &
  else
    (cd "$tree" && WORKER_CONNECTORS=noop EXTRA_CONNECTORS_DIR=bench/commands/connectors WORKER_OPS_PORT="$ops" WORKER_INSTANCE_ID=bench \
      IONFLUX_STATE_DIR="$state" LOG_LEVEL=info exec node $(node_flags connector-worker) --import tsx services/connector-worker/main.ts >>"$work/$name.log" 2>&1) &
  fi
  worker_pid=$!
  until curl -fs -o /dev/null "http://127.0.0.1:$ops/readyz"; do
    kill -0 "$worker_pid" 2>/dev/null || { log "$name exited; see below"; tail -n 20 "$work/$name.log" >&2; return 1; }
    sleep 0.1
  done
  t1=$(date +%s%N)
  sleep 5
  status=$(cat "/proc/$worker_pid/status")
  if [ "$how" = kill ]; then kill -KILL "$worker_pid"; wait "$worker_pid" 2>/dev/null; else stop_pid "$worker_pid"; fi
  worker_pid=""
  kb() { sed -n "s/^$1:[[:space:]]*\([0-9]*\) kB/\1/p" <<<"$status"; }
  # The table's own start (open, checkpoint, catch up), as it logs it; the in-heap tree does not.
  table=$(grep '"table ready"' "$work/$name.log" | grep "$TABLE_TOPIC" | tail -n 1 | node -e 'let s="";process.stdin.on("data",(d)=>(s+=d)).on("end",()=>{const l=s.trim()?JSON.parse(s):null;process.stdout.write(JSON.stringify(l?{ms:l.ms,records_read:l.records_read,from:l.from}:null))})')
  printf '{"name":"%s","ready_ms":%d,"table":%s,"rss_mb":%d,"rss_anon_mb":%d,"rss_file_mb":%d}\n' "$name" $(((t1 - t0) / 1000000)) "$table" $(($(kb VmRSS) / 1024)) $(($(kb RssAnon) / 1024)) $(($(kb RssFile) / 1024))
}

results=()
state="$work/state"
results+=("$(measure 'hub cold' "$ROOT" "$state")") || exit 1
results+=("$(measure 'hub restart' "$ROOT" "$state" kill)") || exit 1
results+=("$(measure 'hub after kill' "$ROOT" "$state")") || exit 1
if [ "${BENCH_SKIP_BASELINE:-0}" != 1 ]; then
  ref="${BENCH_BASELINE_REF:-$(git log -n1 --diff-filter=D --format=%H -- shared/bus/table.ts)^}"
  mkdir -p "$work/baseline"
  git archive "$ref" | tar -x -C "$work/baseline" && ln -s "$ROOT/node_modules" "$work/baseline/node_modules"
  results+=("$(measure 'in-heap' "$work/baseline" "$work/baseline-state")") || exit 1
fi

mkdir -p reports
printf '%s\n' "${results[@]}" | node -e '
  const rows = require("fs").readFileSync(0, "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const fill = JSON.parse(process.argv[1]);
  console.log(process.env.BENCH_STATE_TARGET === "ingester" ? `\n1 ingester inbox processor, ${fill.records} delivery markers in the dedupe window (values ~${fill.avg_value_bytes} B)` : `\n1 worker, ${fill.records} finished commands in the window (values ~${fill.avg_value_bytes} B)`);
  console.log("run              ready (s)  table (s)  records read   RSS MB   anon MB   file MB");
  const t = (r) => (r.table ? (r.table.ms / 1000).toFixed(1) : "-").padStart(10);
  const n = (r) => String(r.table ? r.table.records_read : "-").padStart(13);
  for (const r of rows) console.log(`${r.name.padEnd(16)} ${(r.ready_ms / 1000).toFixed(1).padStart(9)} ${t(r)} ${n(r)} ${String(r.rss_mb).padStart(8)} ${String(r.rss_anon_mb).padStart(9)} ${String(r.rss_file_mb).padStart(9)}`);
  require("fs").writeFileSync(process.env.BENCH_STATE_TARGET === "ingester" ? "reports/bench-state-ingester.json" : "reports/bench-state.json", JSON.stringify({ fill, runs: rows }, null, 2));
' "$fill"
