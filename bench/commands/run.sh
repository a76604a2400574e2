#!/usr/bin/env bash
# `make bench-commands`: commands per second through ONE connector worker
# (services/connector-worker, serving the no-op connector of bench/commands/connectors/noop), and
# produce-to-outcome p50/p99 at a steady rate of half that, next to the same measurements of a
# bare kafkajs relay (bench/commands/relay.ts: consume, produce unchanged with acks=all, commit)
# in the same run: "a Kafka round trip with no hub logic". Also measured: the relay with one
# Kafka transaction per batch (consumed offsets inside it), the exactly-once shape the worker has;
# and the worker's floor: relay.ts RELAY_MODE=floor, the Kafka traffic the worker has for each
# command (an outcome and a state record out, the state read back) with none of its logic.
# Load and timing: bench/commands/drive.ts (one process, one clock). Prints one table, writes
# reports/bench-commands.json.
#   BENCH_COMMANDS         backlog for the throughput phase (default 30000)
#   BENCH_WARMUP           untimed warm-up commands per system (2000)
#   BENCH_STEADY_SECONDS   steady-rate phase length (10); BENCH_MAX_RATE cap of its rate (20000/s)
#                          (a cap below every system's half rate times them all at one rate, so their
#                          tails compare at the same load; p99 in ms, hub / floor / relay / relay-txn:
#                          BENCH_MAX_RATE=4000 56.17 / 56.75 / 39.5 / 496.06, BENCH_MAX_RATE=3000
#                          135.25 / 78.37 / 34.16 / 423.96, one run each)
#   BENCH_ONLY             systems to run: hub,floor,relay,relay-txn (default all four)
#   BENCH_ROUNDS           run the systems in turn this many times (default 1); the table shows each
#                          system's median round (the lower middle one for an even count: use an odd
#                          one), one line per round gives its figures and ratios, and one their medians
#   BENCH_CPU_PROF=1       V8 CPU profile of the worker to reports/bench-commands-prof/, summarized
#   BENCH_KEEP_TOPICS=1    keep the bench topics (deleted by default)
# Starts only the infrastructure that is not running and stops only that at exit; stops the
# worker and relays it started.
set -uo pipefail
source "$(dirname "$0")/../../deploy/local/env.sh"
ROOT="$(cd "$LOCAL_DIR/../.." && pwd)"
cd "$ROOT"

BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
REGISTRY_URL="http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7"
RUN_ID="$(date +%s)$$"
ONLY="${BENCH_ONLY:-hub,floor,relay,relay-txn}"
export KAFKA_BROKERS="$BOOTSTRAP" SCHEMA_REGISTRY_URL="$REGISTRY_URL" BENCH_RUN_ID="$RUN_ID" BENCH_CLK_TCK="$(getconf CLK_TCK)"
export BENCH_BROKER_PID="$(cat "$IONFLUX_RUN/kafka.pid" 2>/dev/null || echo 0)"

bash "$LOCAL_DIR/npm-install.sh" || exit 1
record=$(mktemp)
work=$(mktemp -d)
worker_pid=""
relay_pid=""

has() { [[ ",$ONLY," == *",$1,"* ]]; }
free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{process.stdout.write(String(s.address().port));s.close()})'; }
# stop_pid PID: SIGTERM, then SIGKILL after 20 s; only processes this script started.
stop_pid() {
  local pid=$1 i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }; sleep 0.25; done
  kill -KILL "$pid" 2>/dev/null
}
drive() { node --import tsx bench/commands/drive.ts "$@"; }

cleanup() {
  stop_pid "$worker_pid"
  stop_pid "$relay_pid"
  if [ "${BENCH_KEEP_TOPICS:-0}" != 1 ] && port_open "$KAFKA_PORT"; then
    drive cleanup || true
  fi
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
[ "$BENCH_BROKER_PID" = 0 ] && export BENCH_BROKER_PID="$(cat "$IONFLUX_RUN/kafka.pid" 2>/dev/null || echo 0)"

drive prepare || exit 1
ROUNDS="${BENCH_ROUNDS:-1}"

# ---- 1. the hub: one connector worker ---------------------------------------------------------
run_hub() {
  local round=$1 port prof ready hub_rc
  port=$(free_port)
  prof=()
  if [ "${BENCH_CPU_PROF:-0}" = 1 ]; then
    rm -rf reports/bench-commands-prof; mkdir -p reports/bench-commands-prof
    prof=(--cpu-prof --cpu-prof-dir "$ROOT/reports/bench-commands-prof")
  fi
  echo "[bench] hub: services/connector-worker serving noop (ops 127.0.0.1:$port, log $work/worker.log)" >&2
  WORKER_CONNECTORS=noop EXTRA_CONNECTORS_DIR=bench/commands/connectors LOG_LEVEL=warn COMMAND_GROUP_PREFIX=bench-commands \
    RATE_LIMIT_PER_SECOND=1000000 RATE_LIMIT_BURST=1000000 VAULT_TOKEN="${VAULT_TOKEN:-$(cat "$IONFLUX_RUN/vault/ionflux-admin.token")}" \
    WORKER_INSTANCE_ID="bench$RUN_ID" WORKER_OPS_PORT="$port" IONFLUX_STATE_DIR="$work/state-$round" \
    node $(node_flags connector-worker) "${prof[@]}" --import tsx services/connector-worker/main.ts >"$work/worker.log" 2>&1 &
  worker_pid=$!
  ready=0
  for _ in $(seq 1 450); do
    kill -0 "$worker_pid" 2>/dev/null || break
    curl -fs -o /dev/null "http://127.0.0.1:$port/readyz" && { ready=1; break; }
    sleep 0.2
  done
  [ "$ready" = 1 ] || { echo "[bench] the worker did not become ready:" >&2; tail -n 30 "$work/worker.log" >&2; exit 1; }
  BENCH_TARGET=hub BENCH_SYSTEM_PID="$worker_pid" drive run >"$work/hub.$round.json"
  hub_rc=$?
  stop_pid "$worker_pid"; worker_pid=""
  # kafkajs logs each CONCURRENT_TRANSACTIONS answer twice (Connection, then Producer): count one.
  grep 'concurrent operation on the same transaction' "$work/worker.log" | grep -c '"kafkajs":"Connection"' >"$work/hub-concurrent-txn.txt"
  echo "[bench] worker log: $(cat "$work/hub-concurrent-txn.txt") CONCURRENT_TRANSACTIONS answers to AddPartitionsToTxn (kafkajs retries each after 5 ms, doubling), $(grep -c '"level":[45]0' "$work/worker.log") warn/error lines" >&2
  grep -v '^\s*$' "$work/worker.log" | tail -n 3 >&2
  [ "$hub_rc" = 0 ] || echo "[bench] the hub run reported missing or failed outcomes (exit $hub_rc)" >&2
  return 0
}

# ---- 2./3. the yardsticks: bare kafkajs relays -------------------------------------------------
run_relay() {
  local target=$1 mode=$2 in=$3 out=$4 round=$5 rc ready=0
  echo "[bench] $target: bench/commands/relay.ts RELAY_MODE=$mode ($in -> $out)" >&2
  RELAY_MODE="$mode" RELAY_IN="$in" RELAY_OUT="$out" RELAY_STATE=ionflux.cmd.noop-floor-state RELAY_GROUP="bench-commands-$target-$RUN_ID" \
    node --import tsx bench/commands/relay.ts >"$work/$target.log" 2>&1 &
  relay_pid=$!
  for _ in $(seq 1 300); do
    kill -0 "$relay_pid" 2>/dev/null || break
    grep -q 'relay ready' "$work/$target.log" && { ready=1; break; }
    sleep 0.2
  done
  [ "$ready" = 1 ] || { echo "[bench] $target did not become ready:" >&2; tail -n 30 "$work/$target.log" >&2; return 1; }
  BENCH_TARGET="$target" BENCH_SYSTEM_PID="$relay_pid" drive run >"$work/$target.$round.json"
  rc=$?
  stop_pid "$relay_pid"; relay_pid=""
  grep 'concurrent operation on the same transaction' "$work/$target.log" | grep -c 'AddPartitionsToTxn' >"$work/$target-concurrent-txn.txt"
  [ "$rc" = 0 ] || echo "[bench] the $target run reported missing outcomes (exit $rc)" >&2
  return 0
}

for round in $(seq 1 "$ROUNDS"); do
  # Each round's commands have ids of their own (the worker would take repeated ids for re-sends).
  export BENCH_RUN_ID="${RUN_ID}r$round"
  [ "$ROUNDS" = 1 ] || echo "[bench] round $round of $ROUNDS" >&2
  has hub && run_hub "$round"
  has floor && { run_relay floor floor ionflux.cmd.noop-floor ionflux.cmd.noop-floor-out "$round" || exit 1; }
  has relay && { run_relay relay plain ionflux.cmd.noop-relay ionflux.cmd.noop-relay-out "$round" || exit 1; }
  has relay-txn && { run_relay relay-txn txn ionflux.cmd.noop-relay-txn ionflux.cmd.noop-relay-txn-out "$round" || exit 1; }
done

# ---- report ------------------------------------------------------------------------------------
mkdir -p reports
node - "$work" reports/bench-commands.json "$ROUNDS" <<'EOF'
const fs = require('node:fs');
const [work, outFile, roundsArg] = process.argv.slice(2);
const read = (f) => { try { return JSON.parse(fs.readFileSync(`${work}/${f}`, 'utf8')); } catch { return {}; } };
const SYSTEMS = ['hub', 'floor', 'relay', 'relay-txn'];
const roundNumbers = Array.from({ length: Number(roundsArg) || 1 }, (_, i) => i + 1);
/** Per system, every round's run; the table shows its median round (by commands/s). */
const rounds = Object.fromEntries(SYSTEMS.map((s) => [s, roundNumbers.map((r) => read(`${s}.${r}.json`))]));
const rate = (r) => r.throughput?.commands_per_sec;
/** The middle of a sorted list (the lower of the two middle ones for an even count). */
const middle = (sorted) => sorted[Math.floor((sorted.length - 1) / 2)];
const median = (list) => middle(list.filter((r) => rate(r) != null).sort((a, b) => rate(a) - rate(b))) ?? {};
const runs = Object.fromEntries(SYSTEMS.map((s) => [s, median(rounds[s])]));
const concurrentTxn = {};
for (const k of ['hub', 'relay-txn']) {
  try { concurrentTxn[k] = Number(fs.readFileSync(`${work}/${k}-concurrent-txn.txt`, 'utf8').trim()); } catch {}
}
const names = {
  hub: 'hub (connector-worker, noop action)',
  floor: 'floor (the worker\'s Kafka traffic only)',
  relay: 'relay (kafkajs, idempotent, acks=all)',
  'relay-txn': 'relay-txn (+ 1 transaction per batch)',
};
const ratio = (a, b) => (a && b ? Math.round((a / b) * 1000) / 1000 : null);
const rows = Object.entries(runs).filter(([, r]) => r.throughput).map(([k, r]) => ({
  system: names[k],
  commands_per_sec: r.throughput.commands_per_sec,
  complete: r.throughput.complete && r.steady.complete,
  steady_rate: r.steady.target_rate,
  p50_ms: r.steady.latency.p50_ms,
  p99_ms: r.steady.latency.p99_ms,
  max_ms: r.steady.latency.max_ms,
  system_cpu_pct: r.throughput.cpu.system_pct,
  broker_cpu_pct: r.throughput.cpu.broker_pct,
  driver_cpu_pct: r.throughput.cpu.driver_pct,
}));
const hub = runs.hub.throughput?.commands_per_sec;
const ratios = {
  hub_to_relay: ratio(hub, runs.relay.throughput?.commands_per_sec),
  hub_to_relay_txn: ratio(hub, runs['relay-txn'].throughput?.commands_per_sec),
  relay_txn_to_relay: ratio(runs['relay-txn'].throughput?.commands_per_sec, runs.relay.throughput?.commands_per_sec),
  hub_to_floor: ratio(hub, runs.floor.throughput?.commands_per_sec),
  floor_to_relay_txn: ratio(runs.floor.throughput?.commands_per_sec, runs['relay-txn'].throughput?.commands_per_sec),
};
const fmt = (v, w) => String(v ?? '-').padStart(w);
const n = Object.values(runs).find((r) => r.throughput)?.throughput.commands;
const out = [''];
out.push(`one process each; ${n} commands backlog for commands/s (first produce -> last outcome consumed); p50/p99/max at the steady rate (half of it), produce -> outcome consumed; 16 workspaces, 3 partitions, acks=all; driver, system and broker share 2 cores`);
out.push(`${'system'.padEnd(40)}${fmt('commands/s', 11)}${fmt('vs relay', 9)}${fmt('steady/s', 9)}${fmt('p50 ms', 8)}${fmt('p99 ms', 8)}${fmt('max ms', 8)}${fmt('sys CPU', 8)}${fmt('broker', 7)}${fmt('driver', 7)}`);
for (const r of rows) {
  out.push(`${r.system.padEnd(40)}${fmt(r.commands_per_sec, 11)}${fmt(ratio(r.commands_per_sec, runs.relay.throughput?.commands_per_sec), 9)}${fmt(r.steady_rate, 9)}${fmt(r.p50_ms, 8)}${fmt(r.p99_ms, 8)}${fmt(r.max_ms, 8)}${fmt(r.system_cpu_pct != null ? `${r.system_cpu_pct}%` : null, 8)}${fmt(r.broker_cpu_pct != null ? `${r.broker_cpu_pct}%` : null, 7)}${fmt(r.driver_cpu_pct != null ? `${r.driver_cpu_pct}%` : null, 7)}`);
}
out.push('CPU columns: average during the throughput phase, 100% = one core.');
if (roundNumbers.length > 1) {
  out.push(`${roundNumbers.length} rounds, the systems in turn in each; the rows above are each system's median round. Per round:`);
  for (const r of roundNumbers) {
    const at = (s) => rate(rounds[s][r - 1]);
    out.push(`  round ${r}: ${SYSTEMS.map((s) => `${s} ${at(s) ?? '-'}`).join(', ')}; hub/relay-txn ${ratio(at('hub'), at('relay-txn')) ?? '-'}, hub/floor ${ratio(at('hub'), at('floor')) ?? '-'}, hub p99 ${rounds.hub[r - 1].steady?.latency.p99_ms ?? '-'} ms`);
  }
  const per = (a, b) => middle(roundNumbers.map((r) => ratio(rate(rounds[a][r - 1]), rate(rounds[b][r - 1]))).filter((x) => x != null).sort((x, y) => x - y));
  out.push(`  median of the rounds' ratios: hub/relay-txn ${per('hub', 'relay-txn') ?? '-'}, hub/floor ${per('hub', 'floor') ?? '-'}, floor/relay-txn ${per('floor', 'relay-txn') ?? '-'}`);
}
out.push(`ratios: hub/relay ${ratios.hub_to_relay ?? '-'}   hub/relay-txn ${ratios.hub_to_relay_txn ?? '-'}   relay-txn/relay ${ratios.relay_txn_to_relay ?? '-'}   hub/floor ${ratios.hub_to_floor ?? '-'}   floor/relay-txn ${ratios.floor_to_relay_txn ?? '-'}   (aim: hub/relay-txn >= 0.4)`);
for (const [k, r] of Object.entries(runs)) {
  if (!r.throughput) continue;
  const bad = [];
  if (!r.throughput.complete || !r.steady.complete) bad.push('MISSING OUTCOMES');
  if (r.throughput.duplicates || r.steady.duplicates) bad.push(`${r.throughput.duplicates + r.steady.duplicates} duplicate outcomes`);
  if (r.unexpected_outcome_types?.count) bad.push(`${r.unexpected_outcome_types.count} outcomes not succeeded (e.g. ${r.unexpected_outcome_types.sample})`);
  if (r.send_errors?.count) bad.push(`${r.send_errors.count} send errors`);
  out.push(`${k}: ${r.throughput.received}/${r.throughput.commands} + ${r.steady.received}/${r.steady.commands} outcomes; steady sent at ${r.steady.achieved_send_rate}/s in ${r.steady.produce_batches} batches; backlog latency p50 ${r.throughput.backlog_latency.p50_ms} ms; latency from schedule p99 ${r.steady.latency_from_schedule.p99_ms} ms${bad.length ? `; ${bad.join(', ')}` : ''}`);
}
const m = runs.hub.transaction_markers;
if (m && m.commands) out.push(`hub transactions: ${m.state_topic_markers} commit markers on the 3 state partitions for ${m.commands} commands (${(m.commands / Math.max(1, m.state_topic_markers)).toFixed(1)} commands per transaction-partition)`);
for (const [k, c] of Object.entries(concurrentTxn)) out.push(`${k}: the broker answered AddPartitionsToTxn with CONCURRENT_TRANSACTIONS ${c} times (kafkajs retries each after 5 ms, doubling: the previous commit's markers were still being written).`);
out.push(`load average: ${Object.entries(runs).filter(([, r]) => r.loadavg).map(([k, r]) => `${k} ${r.loadavg.start} -> ${r.loadavg.end}`).join('; ')} (2 cores; other work on the machine skews every figure)`);
out.push('');
console.log(out.join('\n'));
const report = { at: new Date().toISOString(), rows, ratios, aim_commands_per_sec: 5000, concurrent_transactions_answers: concurrentTxn, runs, ...(roundNumbers.length > 1 ? { rounds } : {}) };
fs.writeFileSync(outFile, `${JSON.stringify(report, null, 2)}\n`);
console.log(JSON.stringify(ratios));
const incomplete = Object.values(rounds).flat().some((r) => r.throughput && (!r.throughput.complete || !r.steady.complete || r.unexpected_outcome_types?.count || r.send_errors?.count));
if (incomplete || !rows.length) process.exitCode = 3;
EOF
rc=$?

if [ "${BENCH_CPU_PROF:-0}" = 1 ]; then
  # CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: thread 0 is the main thread (1 is tsx's loader).
  f=$(ls -t reports/bench-commands-prof/CPU.*.0.*.cpuprofile 2>/dev/null | head -n 1)
  if [ -n "$f" ]; then
    secs=$(node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));process.stdout.write(String(Math.max(1,Math.round(r.throughput?.seconds??1))))' "$work/hub.$ROUNDS.json")
    { echo "== whole run (start-up, warm-up, throughput, steady)"; node --import tsx bench/commands/prof-summary.ts "$f" 20
      echo; echo "== the busiest ${secs} s (the throughput phase)"; node --import tsx bench/commands/prof-summary.ts "$f" 25 --busiest="$secs"
    } | tee reports/bench-commands-prof/summary.txt
  fi
fi
echo "[bench] full report: reports/bench-commands.json" >&2
exit "$rc"
