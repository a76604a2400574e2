#!/usr/bin/env bash
# Starts Kafka (KRaft), Apicurio Registry and OpenBao (dev) on 127.0.0.1 unless they already
# answer, and waits until each is healthy. Writes a pid file only for what it started, so
# infra-down.sh stops only that. With --record FILE, also appends the names it started to FILE.
set -euo pipefail
source "$(dirname "$0")/env.sh"
record=""
only="kafka registry vault"
while [ $# -gt 0 ]; do
  case $1 in
    --record) record=$2; shift 2 ;;
    --only) only=$2; shift 2 ;; # e.g. --only kafka: a second broker for the reliability tests
    *) log "unknown option $1"; exit 2 ;;
  esac
done
wanted() { [[ " $only " == *" $1 "* ]]; }

bash "$LOCAL_DIR/install.sh"

kafka_healthy() { port_open "$KAFKA_PORT"; }
registry_healthy() { curl -fs -o /dev/null "http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7/subjects"; }
vault_healthy() { curl -fs -o /dev/null "http://127.0.0.1:$VAULT_PORT/v1/sys/health"; }

# alive_and PID CHECK: fails the wait at once when the process died.
alive_and() { kill -0 "$1" 2>/dev/null || { log "process $1 exited"; return 2; }; "$2"; }

# start NAME HEALTHCHECK TIMEOUT COMMAND...: runs COMMAND detached unless NAME is healthy.
start() {
  local name=$1 check=$2 secs=$3; shift 3
  if $check; then log "$name already running"; return; fi
  log "starting $name (log: $IONFLUX_RUN/logs/$name.log)"
  setsid nohup "$@" >"$IONFLUX_RUN/logs/$name.log" 2>&1 < /dev/null &
  echo $! >"$IONFLUX_RUN/$name.pid"
  [ -n "$record" ] && echo "$name" >>"$record"
  wait_for "$name" "$secs" alive_and "$!" $check
  log "$name healthy"
}

kafka_prepare() {
  local dir="$IONFLUX_RUN/kafka"
  mkdir -p "$dir"
  sed -e "s#@LOG_DIRS@#$dir/data#" -e "s#@PORT@#$KAFKA_PORT#" -e "s#@CONTROLLER_PORT@#$KAFKA_CONTROLLER_PORT#" \
    "$LOCAL_DIR/kafka/server.properties" >"$dir/server.properties"
  if [ ! -f "$dir/data/meta.properties" ]; then
    java -cp "$KAFKA_HOME/lib/*" -Dlog4j2.configurationFile="$LOCAL_DIR/kafka/log4j2.properties" \
      kafka.tools.StorageTool format --standalone -t "$(java -cp "$KAFKA_HOME/lib/*" kafka.tools.StorageTool random-uuid 2>/dev/null)" \
      -c "$dir/server.properties" --ignore-formatted >/dev/null
  fi
}

wanted kafka && kafka_prepare && start kafka kafka_healthy 90 java -Xms512m -Xmx1g -cp "$KAFKA_HOME/lib/*" \
  -Dlog4j2.configurationFile="$LOCAL_DIR/kafka/log4j2.properties" kafka.Kafka "$IONFLUX_RUN/kafka/server.properties"
wanted registry && start registry registry_healthy 120 "$(modern_java)" -Xmx512m -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$REGISTRY_PORT" -Dquarkus.management.host=127.0.0.1 \
  -jar "$APICURIO_HOME/quarkus-run.jar"
wanted vault && start vault vault_healthy 60 "$IONFLUX_VENV/bin/bao" server -dev -dev-root-token-id="$VAULT_DEV_ROOT_TOKEN" \
  -dev-listen-address="127.0.0.1:$VAULT_PORT"

cat >&2 <<EOT
[infra] ready:
  KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
  SCHEMA_REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7
  VAULT_ADDR=http://127.0.0.1:$VAULT_PORT  (dev root token: $VAULT_DEV_ROOT_TOKEN)
  logs: $IONFLUX_RUN/logs/
EOT
