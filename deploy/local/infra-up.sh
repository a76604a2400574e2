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
bash "$LOCAL_DIR/npm-install.sh" # the Kafka principals are provisioned by the ionflux CLI

kafka_healthy() { port_open "$KAFKA_PORT"; }
registry_healthy() { curl -fs -o /dev/null "http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7/subjects"; }
vault_healthy() { curl -fs -o /dev/null "http://127.0.0.1:$VAULT_PORT/v1/sys/health"; }

# alive_and PID CHECK: fails the wait at once when the process died.
alive_and() { kill -0 "$1" 2>/dev/null || { log "process $1 exited"; return 2; }; "$2"; }

# start NAME HEALTHCHECK TIMEOUT COMMAND...: runs COMMAND detached unless NAME is healthy.
start() {
  local name=$1 check=$2 secs=$3; shift 3
  if $check; then log "$name already running"; return; fi
  local out="$IONFLUX_RUN/logs/$name.log"
  log "starting $name (log: $out)"
  # The owner's only: a dev OpenBao prints its root token and unseal key there.
  (umask 077 && : >"$out") && chmod 600 "$out"
  # With no descriptor of the caller's but stdin/out/err: a server that kept one open (such as the
  # lock of `flock /tmp/ionflux-itest.lock bash deploy/local/test.sh`) would hold it for as long as
  # it runs, after the caller ended.
  (
    for fd in /proc/"$BASHPID"/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
    exec setsid nohup "$@" >"$out" 2>&1 < /dev/null
  ) &
  echo $! >"$IONFLUX_RUN/$name.pid"
  [ -n "$record" ] && echo "$name" >>"$record"
  wait_for "$name" "$secs" alive_and "$!" $check
  log "$name healthy"
}

# secret FILE: prints the secret kept in FILE, creating it (random, mode 0600) when missing.
secret() {
  [ -s "$1" ] || (umask 077 && head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$1")
  cat "$1"
}

# The broker listens with SASL/SCRAM and ACLs only (deploy/local/kafka/server.properties). Its
# own user and the admin's are written into the metadata when the data folder is formatted; every
# other principal is created afterwards by `ionflux principals sync` (kafka_provision).
kafka_prepare() {
  local dir="$IONFLUX_RUN/kafka"
  local creds="$dir/credentials"
  mkdir -p "$dir" && (umask 077 && mkdir -p "$creds")
  chmod 700 "$creds"
  local broker_pw admin_pw controller_pw
  broker_pw=$(secret "$creds/ionflux-broker.password")
  admin_pw=$(secret "$creds/ionflux-admin.password")
  controller_pw=$(secret "$creds/controller.password")
  # Filled in by the shell itself: a password in sed's arguments would be on its command line.
  local props
  props=$(<"$LOCAL_DIR/kafka/server.properties")
  props=${props//@LOG_DIRS@/"$dir/data"}
  props=${props//@PORT@/"$KAFKA_PORT"}
  props=${props//@CONTROLLER_PORT@/"$KAFKA_CONTROLLER_PORT"}
  props=${props//@BROKER_PASSWORD@/"$broker_pw"}
  props=${props//@CONTROLLER_PASSWORD@/"$controller_pw"}
  (umask 077 && printf '%s\n' "$props" >"$dir/server.properties")
  # What a client needs to act as the admin: env lines for the hub and the CLI, properties for Kafka's Java tools.
  (umask 077 && printf 'KAFKA_BROKERS=127.0.0.1:%s\nKAFKA_SASL_MECHANISM=scram-sha-256\nKAFKA_SASL_USERNAME=ionflux-admin\nKAFKA_SASL_PASSWORD=%s\n' "$KAFKA_PORT" "$admin_pw" >"$dir/admin.env")
  (umask 077 && printf 'security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\nsasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="ionflux-admin" password="%s";\n' "$admin_pw" >"$dir/admin.properties")

  # A data folder formatted before SASL (or with credentials since lost) cannot authenticate
  # anyone: it is moved aside, not deleted, and a fresh one is formatted.
  local stamp; stamp=$(printf '%s %s' "$broker_pw" "$admin_pw" | sha256sum | cut -c1-16)
  if [ -f "$dir/data/meta.properties" ] && [ "$(cat "$dir/data/.ionflux-sasl" 2>/dev/null)" != "$stamp" ]; then
    local aside; aside="$dir/data.before-sasl-$(date +%Y%m%d-%H%M%S)"
    [ -f "$dir/data/.ionflux-sasl" ] && aside="$dir/data.old-credentials-$(date +%Y%m%d-%H%M%S)"
    mv "$dir/data" "$aside"
    log "NOTICE: $dir/data was formatted without the current SASL credentials; moved to $aside (delete it when no longer needed) and formatting a new one"
  fi
  if [ ! -f "$dir/data/meta.properties" ]; then
    # The broker's and the admin's SCRAM credentials (salted, but whoever has them can log in) reach
    # the storage tool in a java @argfile (mode 0600 in the credentials folder, removed at once),
    # main class included: on its command line any local user would read them (ps, /proc/<pid>/cmdline).
    local cluster broker_scram admin_scram args="$creds/format.args" rc=0
    cluster=$(java -cp "$KAFKA_HOME/lib/*" kafka.tools.StorageTool random-uuid 2>/dev/null) &&
      broker_scram=$(node "$LOCAL_DIR/kafka/scram-credential.mjs" ionflux-broker "$creds/ionflux-broker.password") &&
      admin_scram=$(node "$LOCAL_DIR/kafka/scram-credential.mjs" ionflux-admin "$creds/ionflux-admin.password") ||
      { log "could not prepare the SCRAM credentials to format $dir/data"; return 1; }
    # One argument a line, single-quoted (the credentials hold double quotes).
    (umask 077 && printf "'%s'\n" kafka.tools.StorageTool format --standalone -t "$cluster" -c "$dir/server.properties" \
      --ignore-formatted --add-scram "$broker_scram" --add-scram "$admin_scram" >"$args")
    java -cp "$KAFKA_HOME/lib/*" -Dlog4j2.configurationFile="$LOCAL_DIR/kafka/log4j2.properties" "@$args" >/dev/null || rc=$?
    rm -f "$args"
    [ "$rc" = 0 ] || { log "formatting $dir/data failed (exit $rc)"; return 1; }
    echo "$stamp" >"$dir/data/.ionflux-sasl"
  fi
}

# Service principals (passwords in $IONFLUX_RUN/kafka/credentials/, mode 0600) and every ACL.
kafka_provision() {
  local dir="$IONFLUX_RUN/kafka"
  if ! [ -s "$dir/admin.env" ] || ! (set -a && source "$dir/admin.env" && node "$LOCAL_DIR/../../bin/ionflux.mjs" principals sync --credentials-dir "$dir/credentials" >&2); then
    log "could not provision Kafka principals on 127.0.0.1:$KAFKA_PORT as ionflux-admin (a broker started without SASL, or by another checkout, holds the port? \`make infra-down\` stops the one this checkout started)"
    return 1
  fi
}

if wanted kafka; then
  # A broker already running keeps its settings and data untouched (never move a live data folder).
  kafka_healthy || kafka_prepare
  start kafka kafka_healthy 90 java -Xms512m -Xmx1g -cp "$KAFKA_HOME/lib/*" \
    -Dlog4j2.configurationFile="$LOCAL_DIR/kafka/log4j2.properties" kafka.Kafka "$IONFLUX_RUN/kafka/server.properties"
  kafka_provision
fi
wanted registry && start registry registry_healthy 120 "$(modern_java)" -Xmx512m -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$REGISTRY_PORT" -Dquarkus.management.host=127.0.0.1 \
  -jar "$APICURIO_HOME/quarkus-run.jar"
# The root token goes in bao's environment (BAO_DEV_ROOT_TOKEN_ID), not its arguments: a server's
# command line is anyone's to read for as long as it runs.
wanted vault && BAO_DEV_ROOT_TOKEN_ID="$VAULT_DEV_ROOT_TOKEN" start vault vault_healthy 60 "$IONFLUX_VENV/bin/bao" server -dev \
  -dev-listen-address="127.0.0.1:$VAULT_PORT"
# Per-service policies and tokens, and the admin's ($IONFLUX_RUN/vault/<principal>.token); the root
# token is used for this setup only.
if wanted vault; then
  VAULT_ADDR="http://127.0.0.1:$VAULT_PORT" VAULT_TOKEN="$VAULT_DEV_ROOT_TOKEN" node "$LOCAL_DIR/../../bin/ionflux.mjs" principals vault --tokens-dir "$IONFLUX_RUN/vault" >&2 ||
    { log "could not set up OpenBao policies and tokens with the dev root token (VAULT_DEV_ROOT_TOKEN)"; exit 1; }
fi

cat >&2 <<EOT
[infra] ready:
  KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT  (SASL/SCRAM; admin client settings: $IONFLUX_RUN/kafka/admin.env)
  SCHEMA_REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7
  VAULT_ADDR=http://127.0.0.1:$VAULT_PORT  (tokens per service and the admin's: $IONFLUX_RUN/vault/)
  logs: $IONFLUX_RUN/logs/
EOT
