#!/usr/bin/env bash
# `make test`: installs what is missing, starts the infrastructure unless it is already running,
# runs the whole vitest suite (unit + integration) and stops only what it started.
# The JSON report lands in reports/vitest.json.
set -uo pipefail
source "$(dirname "$0")/env.sh"
cd "$LOCAL_DIR/../.."
bash "$LOCAL_DIR/npm-install.sh" || exit 1
record=$(mktemp)
cleanup() {
  # Only what this run started; with no names infra-down would stop everything.
  # shellcheck disable=SC2046
  [ -s "$record" ] && bash "$LOCAL_DIR/infra-down.sh" $(cat "$record")
  rm -f "$record"
}
trap cleanup EXIT
bash "$LOCAL_DIR/infra-up.sh" --record "$record" || exit 1
echo "[test] typecheck" >&2
node_modules/.bin/tsc --noEmit -p . || exit 1
mkdir -p reports
export VAULT_TOKEN="${VAULT_TOKEN:-$VAULT_DEV_ROOT_TOKEN}"
node_modules/.bin/vitest run --reporter=default --reporter=json --outputFile.json=reports/vitest.json "$@"
