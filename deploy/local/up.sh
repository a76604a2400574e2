#!/usr/bin/env bash
# `make up`: installs what is missing, starts Kafka, the registry and OpenBao (unless running),
# then every service of the hub (services/*/main.ts) as its own process with prefixed, readable
# logs. Ctrl-C stops the services gracefully, then the infrastructure this run started.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$LOCAL_DIR/../.."
bash "$LOCAL_DIR/npm-install.sh"
record=$(mktemp)
bash "$LOCAL_DIR/infra-up.sh" --record "$record"

export VAULT_ADDR="${VAULT_ADDR:-http://127.0.0.1:$VAULT_PORT}"
export VAULT_TOKEN="${VAULT_TOKEN:-$VAULT_DEV_ROOT_TOKEN}"
export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:$KAFKA_PORT}"
export SCHEMA_REGISTRY_URL="${SCHEMA_REGISTRY_URL:-http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7}"

pids=()
stop_all() {
  trap - INT TERM EXIT
  log "stopping services"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  # Only what this run started; with no names infra-down would stop everything.
  # shellcheck disable=SC2046
  [ -s "$record" ] && bash "$LOCAL_DIR/infra-down.sh" $(cat "$record")
  rm -f "$record"
}
trap stop_all INT TERM EXIT

services=()
for main in services/*/main.ts; do
  name=$(basename "$(dirname "$main")")
  [ "$name" = cli ] && continue
  services+=("$name")
done
[ ${#services[@]} -gt 0 ] || log "no services yet; infrastructure is up"

for name in "${services[@]}"; do
  log "starting $name"
  # Each service prints pino JSON; pino-pretty makes it readable and sed prefixes the name.
  node --import tsx "services/$name/main.ts" \
    > >(node_modules/.bin/pino-pretty --singleLine --colorize --ignore pid,hostname,service | sed -u "s/^/[$name] /") 2>&1 &
  pids+=($!)
done
log "hub running (${services[*]:-no services}); Ctrl-C to stop"
if [ ${#pids[@]} -gt 0 ]; then wait -n "${pids[@]}" || true; log "a service exited"; else while true; do sleep 3600; done; fi
