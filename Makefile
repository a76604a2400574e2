# IONFLUX Integration Hub. `make up` runs the hub, `make test` runs every test.
SHELL := /bin/bash
.PHONY: up test test-reliability test-unit install infra-up infra-down schemas-check typecheck bench-producer bench-ingest bench-commands bench-llm bench-state bench-state-ingester bench-email bench-tiktok bench-shopify

up: ## start Kafka, the schema registry, OpenBao and every service; Ctrl-C stops them
	@bash deploy/local/up.sh

test: ## unit + integration tests against real Kafka, registry and OpenBao
	@bash deploy/local/test.sh

test-reliability: ## only the fault-injection suite (a dedicated broker on 19092 is killed); `make test` runs it too
	@bash deploy/local/test.sh --project reliability

test-unit: install ## tests that need nothing running
	@node_modules/.bin/vitest run --project unit

install: ## npm packages, Kafka jars, Apicurio, OpenBao and the Python interop client
	@bash deploy/local/npm-install.sh
	@bash deploy/local/install.sh

infra-up: ## start the local infrastructure (only what is not already running)
	@bash deploy/local/infra-up.sh

infra-down: ## stop what infra-up started
	@bash deploy/local/infra-down.sh

schemas-check: install ## are schemas/ compatible with what the registry holds?
	@node bin/ionflux.mjs schemas check

typecheck: install
	@node_modules/.bin/tsc --noEmit -p .

bench-producer: install ## Kafka's ProducerPerformance vs the hub's producer, same run
	@bash bench/producer/run.sh

bench-ingest: install ## signed Shopify deliveries over HTTP: the hub vs Redpanda Connect vs ProducerPerformance, same run
	@bash bench/ingest/run.sh

bench-commands: install ## commands/s through one connector worker (no-op action) and p50/p99 at half that, next to bare kafkajs relays and the worker's Kafka-only floor, same run
	@bash bench/commands/run.sh

bench-state: install ## one worker with 1M finished commands in its table: restart-to-ready and RSS, next to the in-heap table, same run
	@bash bench/state/run.sh

bench-state-ingester: install ## the webhook ingester's inbox processor with 1M delivery markers in its table: restart-to-ready and RSS
	@BENCH_STATE_TARGET=ingester bash bench/state/run.sh

bench-llm: install ## LLM orchestrator: latency added over calling the same OpenAI-API simulator directly, p50/p99 at 1 and 50 concurrent, req/s
	@bash bench/llm/run.sh

bench-email: install ## email over SMTP to a local aiosmtpd: the dispatcher's messages/s (single and bulk) next to nodemailer direct, same run
	@bash bench/email/run.sh

bench-shopify: install ## shopify-sync: entities/s synced from a Shopify simulator under the standard cost throttle (1000 points, 50/s) as a fraction of what it allows, and Bulk Operations throughput
	@bash bench/shopify-sync/run.sh

bench-tiktok: install ## tiktok-sync: videos/s listed and published as events under TikTok's per-minute limit, as a fraction of what it allows, next to a bare fetch loop and the hub unthrottled
	@bash bench/tiktok/run.sh
