#!/usr/bin/env bash
# `make bench-llm`: the latency the LLM orchestrator adds over calling the same OpenAI-API
# simulator directly with the openai package, p50/p99 at 1 and 50 concurrent requests, and req/s
# (bench/llm/drive.ts explains the method). Starts only the infrastructure that is not running and
# stops only that at exit; the simulator and orchestrator it starts are stopped by the driver.
#   BENCH_N1 (400) requests at concurrency 1, BENCH_N50 (3000) at 50, BENCH_WORKSPACES (50)
set -uo pipefail
source "$(dirname "$0")/../../deploy/local/env.sh"
ROOT="$(cd "$LOCAL_DIR/../.." && pwd)"
cd "$ROOT"

export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:$KAFKA_PORT}"
export SCHEMA_REGISTRY_URL="${SCHEMA_REGISTRY_URL:-http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7}"
export VAULT_ADDR="${VAULT_ADDR:-http://127.0.0.1:$VAULT_PORT}"

bash "$LOCAL_DIR/npm-install.sh" || exit 1
record=$(mktemp)
cleanup() {
  # infra-down.sh with no names stops everything: call it only for what this run started.
  # shellcheck disable=SC2046
  [ -s "$record" ] && bash "$LOCAL_DIR/infra-down.sh" $(cat "$record")
  rm -f "$record"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
bash "$LOCAL_DIR/infra-up.sh" --record "$record" || exit 1
kafka_admin_env # the bench acts as the admin
export VAULT_TOKEN="${VAULT_TOKEN:-$(cat "$IONFLUX_RUN/vault/ionflux-admin.token")}"

node --import tsx bench/llm/drive.ts
rc=$?
echo "[bench-llm] report: reports/bench-llm.json" >&2
exit "$rc"
