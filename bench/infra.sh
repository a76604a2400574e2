# Sourced by bench/*/run.sh: the hub's addresses, npm packages, and the local infrastructure
# (started only where it is not running, and only that stopped at exit). The bench acts as the
# admin principal, with the admin's OpenBao token.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../deploy/local/env.sh"
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
kafka_admin_env
bash "$ROOT/bench/warm-broker.sh" || exit 1
export VAULT_TOKEN="${VAULT_TOKEN:-$(cat "$IONFLUX_RUN/vault/ionflux-admin.token")}"
