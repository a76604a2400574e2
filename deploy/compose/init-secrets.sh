#!/usr/bin/env bash
# Run once before `docker compose up`: generates every credential docker-compose.yml mounts as a
# Docker secret (docs/security.md), and `.env` with the schema registry's Kafka password (its image
# takes it only through its environment). Existing ones are kept, so it is safe to repeat.
#   deploy/compose/secrets/kafka/<principal>.password   SCRAM (broker, admin, each service, registry)
#                                 controller.password    SASL/PLAIN of the KRaft controller listener
#   deploy/compose/secrets/vault/<principal>.token       OpenBao token ids, one per service and the admin
# The folders are 0700; the files 0644 (compose mounts them as they are, and the containers' users
# are not the host's), so keep the folder private.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=deploy/compose/secrets
mkdir -p "$dir/kafka" "$dir/vault" && chmod 700 "$dir" "$dir/kafka" "$dir/vault"
gen() { [ -s "$1" ] || { head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$1"; chmod 644 "$1"; }; }
services="webhook-ingester connector-worker llm-orchestrator email-dispatcher tiktok-sync shopify-sync"
for p in ionflux-broker controller ionflux-admin ionflux-schema-registry; do gen "$dir/kafka/$p.password"; done
for s in $services; do gen "$dir/kafka/ionflux-$s.password"; gen "$dir/vault/ionflux-$s.token"; done
gen "$dir/vault/ionflux-admin.token"
touch .env
grep -q '^IONFLUX_SCHEMA_REGISTRY_KAFKA_PASSWORD=' .env || echo "IONFLUX_SCHEMA_REGISTRY_KAFKA_PASSWORD=$(cat "$dir/kafka/ionflux-schema-registry.password")" >>.env
chmod 600 .env
echo "credentials in $dir/ and .env; now: docker compose up --build" >&2
