#!/usr/bin/env bash
# `make bench-email`: messages per second over SMTP to a local aiosmtpd server, the email
# dispatcher (commands through Kafka, per-recipient ledger) next to nodemailer sending directly to
# the same server in the same run (bench/email/drive.ts explains the method). Starts only the
# infrastructure that is not running and stops only that at exit.
#   BENCH_SINGLE (1000) send commands over BENCH_WORKSPACES (20); BENCH_BULK_COMMANDS (4) x BENCH_BULK_SIZE (500)
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

node --import tsx bench/email/drive.ts
rc=$?
echo "[bench-email] report: reports/bench-email.json" >&2
exit "$rc"
