#!/usr/bin/env bash
# `make test`: installs what is missing, type-checks and runs the whole vitest suite (unit +
# integration). The JSON report lands in reports/vitest.json.
#
# The tests get a Kafka broker of their own: its own ports (from 29092 up, the first free pair)
# and data directory ($IONFLUX_CACHE/run-test-<port>), wiped at start and removed at the end (its
# log stays), so no test topic or consumer group is left in the broker `make up` uses. The schema registry and
# OpenBao are shared (tests use their own subjects and paths; tests/global-setup.ts deletes the
# secrets they wrote when the run ends); they are started if not running
# and stopped afterwards only if this run started them. IONFLUX_TEST_BROKERS=host:port runs the
# suite against a broker you already have instead (export its KAFKA_SASL_* too).
#
# The test broker authenticates like `make up`'s (SASL/SCRAM, ACLs): the tests act as its admin
# (KAFKA_SASL_* exported from its admin.env) and as the OpenBao admin; a test about a service's
# own permissions takes that service's credentials from IONFLUX_KAFKA_CREDENTIALS and
# IONFLUX_VAULT_TOKENS (tests/helpers/principals.ts). The CLI run by tests never reads the
# developer's .ionflux/*.env (IONFLUX_ENV_DIR points to an empty folder).
set -uo pipefail
source "$(dirname "$0")/env.sh"
cd "$LOCAL_DIR/../.."
bash "$LOCAL_DIR/npm-install.sh" || exit 1

record=$(mktemp)
test_run=""
# The test run's temporary folder (services' state directories; tests/global-setup.ts).
export IONFLUX_TEST_TMP
IONFLUX_TEST_TMP="$(mktemp -d -t ionflux-test-run-XXXXXX)"
cleanup() {
  rm -rf "$IONFLUX_TEST_TMP"
  if [ -n "$test_run" ]; then
    IONFLUX_RUN="$test_run" bash "$LOCAL_DIR/infra-down.sh" kafka
    rm -rf "$test_run/kafka" # its data; the log stays for a look at a failed run
  fi
  # Only what this run started; with no names infra-down would stop everything.
  # shellcheck disable=SC2046
  [ -s "$record" ] && bash "$LOCAL_DIR/infra-down.sh" $(cat "$record")
  rm -f "$record"
}
trap cleanup EXIT

bash "$LOCAL_DIR/infra-up.sh" --only "registry vault" --record "$record" || exit 1
if [ -n "${IONFLUX_TEST_BROKERS:-}" ]; then
  export KAFKA_BROKERS="$IONFLUX_TEST_BROKERS"
else
  port=29092
  # A pair of free ports (broker, controller) and nothing left running from an earlier run there.
  while port_open "$port" || port_open $((port + 1)); do port=$((port + 2)); done
  test_run="$IONFLUX_CACHE/run-test-$port"
  rm -rf "$test_run"
  log "test broker on 127.0.0.1:$port (data in $test_run, removed at the end)"
  IONFLUX_RUN="$test_run" KAFKA_PORT="$port" KAFKA_CONTROLLER_PORT=$((port + 1)) \
    bash "$LOCAL_DIR/infra-up.sh" --only kafka || exit 1
  set -a
  # shellcheck disable=SC1091
  source "$test_run/kafka/admin.env" # KAFKA_BROKERS and the admin's KAFKA_SASL_*
  set +a
  export IONFLUX_KAFKA_CREDENTIALS="$test_run/kafka/credentials"
fi
export IONFLUX_VAULT_TOKENS="$IONFLUX_RUN/vault"
export IONFLUX_ENV_DIR="${test_run:-$IONFLUX_CACHE}/no-env" # a folder that does not exist: no make up files

echo "[test] typecheck" >&2
node_modules/.bin/tsc --noEmit -p . || exit 1
mkdir -p reports
VAULT_TOKEN="${VAULT_TOKEN:-$(cat "$IONFLUX_VAULT_TOKENS/ionflux-admin.token")}"
export VAULT_TOKEN
node_modules/.bin/vitest run --reporter=default --reporter=json --outputFile.json=reports/vitest.json "$@"
