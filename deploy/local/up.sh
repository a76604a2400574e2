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
export SCHEMA_REGISTRY_URL="${SCHEMA_REGISTRY_URL:-http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7}"
kafka_creds="$IONFLUX_RUN/kafka/credentials"
vault_tokens="$IONFLUX_RUN/vault"
local_kafka=0
[ -z "${KAFKA_BROKERS:-}" ] && local_kafka=1
export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:$KAFKA_PORT}"

# What the CLI (and createHubClient) in another terminal needs to reach this hub as the admin,
# with nothing to export: the broker and the admin's SCRAM credentials, the secret store the
# services use and the registry. Mode 0600.
mkdir -p .ionflux
if [ "$local_kafka" = 1 ]; then
  install -m 600 "$IONFLUX_RUN/kafka/admin.env" .ionflux/kafka.env
  log "admin client settings (Kafka): $PWD/.ionflux/kafka.env"
fi
if [ -z "${VAULT_TOKEN:-}" ] && [ -s "$vault_tokens/ionflux-admin.token" ]; then
  (umask 077 && printf 'VAULT_ADDR=%s\nVAULT_TOKEN=%s\nSCHEMA_REGISTRY_URL=%s\n' "$VAULT_ADDR" "$(cat "$vault_tokens/ionflux-admin.token")" "$SCHEMA_REGISTRY_URL" >.ionflux/hub.env)
  log "admin client settings (secret store, registry): $PWD/.ionflux/hub.env"
fi

# service_env NAME: the variables that make a service its own Kafka principal and give it its own
# OpenBao token (policy limited to its paths); a service the plan does not know runs as the admin.
service_env() {
  local principal="ionflux-$1"
  if [ "$local_kafka" = 1 ]; then
    if [ -s "$kafka_creds/$principal.password" ]; then
      printf 'export KAFKA_SASL_MECHANISM=scram-sha-256 KAFKA_SASL_USERNAME=%q KAFKA_SASL_PASSWORD_FILE=%q\n' "$principal" "$kafka_creds/$principal.password"
    else
      log "NOTICE: no Kafka principal for $1 (add it to shared/security/principals.ts); it runs as ionflux-admin"
      printf 'export KAFKA_SASL_MECHANISM=scram-sha-256 KAFKA_SASL_USERNAME=ionflux-admin KAFKA_SASL_PASSWORD_FILE=%q\n' "$kafka_creds/ionflux-admin.password"
    fi
  fi
  # A VAULT_TOKEN of the caller's own is used as given.
  [ -n "${VAULT_TOKEN:-}" ] && return
  local token="$vault_tokens/$principal.token"
  if [ ! -s "$token" ]; then
    log "NOTICE: no OpenBao token for $1 (add it to shared/security/vault-policies.ts); it uses the admin's"
    token="$vault_tokens/ionflux-admin.token"
  fi
  printf 'export VAULT_TOKEN=%q\n' "$(cat "$token")"
}

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
  # In a subshell, so credentials never appear on a command line.
  # shellcheck disable=SC2046
  (eval "$(service_env "$name")" && exec node $(node_flags "$name") --import tsx "services/$name/main.ts") \
    > >(node_modules/.bin/pino-pretty --singleLine --colorize --ignore pid,hostname,service | sed -u "s/^/[$name] /") 2>&1 &
  pids+=($!)
done
log "hub running (${services[*]:-no services}); Ctrl-C to stop"
if [ ${#pids[@]} -gt 0 ]; then wait -n "${pids[@]}" || true; log "a service exited"; else while true; do sleep 3600; done; fi
