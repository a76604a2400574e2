#!/usr/bin/env bash
# `make bench-tiktok`: videos per second that tiktok-sync lists from a TikTok v2 simulator and
# publishes as video.created events, under TikTok's per-minute limit for /v2/video/list/ and as a
# fraction of what that limit allows; next to a bare fetch loop against the same simulator and the
# hub with the limits lifted (bench/tiktok/drive.ts explains the method). Starts only the
# infrastructure that is not running and stops only that at exit.
#   BENCH_ACCOUNTS (40), BENCH_VIDEOS (1000 per account), BENCH_LIMITED_S (180)
set -uo pipefail
source "$(dirname "$0")/../../deploy/local/env.sh"
ROOT="$(cd "$LOCAL_DIR/../.." && pwd)"
cd "$ROOT"

export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:$KAFKA_PORT}"
export SCHEMA_REGISTRY_URL="${SCHEMA_REGISTRY_URL:-http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7}"
export VAULT_ADDR="${VAULT_ADDR:-http://127.0.0.1:$VAULT_PORT}"
export VAULT_TOKEN="${VAULT_TOKEN:-$VAULT_DEV_ROOT_TOKEN}"

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

node --import tsx bench/tiktok/drive.ts
rc=$?
echo "[bench-tiktok] report: reports/bench-tiktok.json" >&2
exit "$rc"
