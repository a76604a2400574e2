import express from 'express';
import { KafkaTable, jsonValue } from '../../shared/bus/table/table.ts';
import { topics } from '../../shared/bus/topics.ts';
import { openSharedTables, runCommandService } from '../../shared/commands/service.ts';
import { parseEnv } from '../../shared/config.ts';
import { createArtifactStore } from './connector/artifacts.ts';
import { createSpendStore, spendEntrySchema, type SpendEntry, type SpendStore } from './connector/budget.ts';
import { buildLlmConfig } from './connector/config.ts';
import { createLlmConnector } from './connector/index.ts';
import { TokenBuckets } from '../../shared/connectors/rate-limit.ts';
import { listen, mountOpsRoutes } from '../../shared/http.ts';
import { registerSecret } from '../../shared/redact.ts';
import { closeOnSignals, createRuntime } from '../../shared/runtime.ts';
import { createSecretStore } from '../../shared/secrets/index.ts';
import { mountArtifactRoutes } from './artifacts-route.ts';
import { llmOrchestratorEnv } from './env.ts';
import { llmMetrics } from './metrics.ts';

const env = parseEnv(llmOrchestratorEnv);
const config = buildLlmConfig(env);
const rt = await createRuntime('llm-orchestrator', env, { transactionalId: `ionflux-llm-orchestrator-${env.LLM_INSTANCE_ID}`, instanceId: env.LLM_INSTANCE_ID });
closeOnSignals(() => rt.close(), rt.logger);
const store = createSecretStore(env);
let serving = false;

// The ops server first: its address is where stored artifacts are served from.
const app = express();
mountOpsRoutes(app, { metrics: rt.metrics, checks: { ...rt.checks, secret_store: () => store.health(), command_worker: async () => serving } });
const ops = await listen(app, env.LLM_OPS_PORT, env.LLM_OPS_HOST);
rt.onClose(() => ops.close());
const ttlMs = env.LLM_ARTIFACTS_TTL_HOURS * 3600_000;
registerSecret(env.LLM_ARTIFACTS_SIGNING_KEY);
const artifacts = createArtifactStore({ dir: env.LLM_ARTIFACTS_DIR, baseUrl: env.LLM_ARTIFACTS_BASE_URL ?? ops.url, urlTtlMs: ttlMs, signingKey: env.LLM_ARTIFACTS_SIGNING_KEY });
mountArtifactRoutes(app, artifacts);
const sweep = () => void artifacts.sweep(ttlMs).catch((e: unknown) => rt.logger.warn({ err: e }, 'artifact sweep failed'));
sweep();
const sweeper = setInterval(sweep, 3600_000).unref();
rt.onClose(() => clearInterval(sweeper));

// Every billed command writes its workspace's totals here, and this process counts on the totals
// it staged (createSpendStore) until it reads them back: its reader need not wake for each of its
// own writes. With the default fetch (answered as soon as one record is there) it did, one more
// fetch per command for the broker and this process (make bench-llm at 1 in flight: 5 Kafka
// requests per command, 4 without it). It waits for 1 MiB or SPEND_FETCH_MAX_WAIT_MS instead: totals
// another instance wrote (a workspace's command on ionflux.cmd.llm owned elsewhere) are seen that
// much later at most, and a partition's new owner reads the table to its end first (resumeTables).
const SPEND_FETCH_MAX_WAIT_MS = 100;
// A workspace's spend is the sum of its totals per command partition: the store learns of one it
// did not write as the table reads it (those read at start, before it exists, from the table itself).
let spend: SpendStore | undefined;
const spendTable = new KafkaTable<SpendEntry>({
  ...rt,
  topic: topics.state(env.LLM_SERVICE === 'llm' ? 'llm-spend' : `${env.LLM_SERVICE}-spend`),
  parse: jsonValue((v) => spendEntrySchema.parse(v)),
  fetch: { minBytes: 1 << 20, maxWaitMs: SPEND_FETCH_MAX_WAIT_MS },
  onChange: (key, value) => spend?.changed(key, value),
});
const [shared] = await Promise.all([openSharedTables(rt), spendTable.start(120_000)]);
rt.onClose(() => spendTable.close());
// Spend totals go with each command's outcome (the handler stages them). Budgets set by
// llm.set_budget go through a producer of their own, outside transactions: extra transactions on
// the outcome producer would queue outcomes behind them and collide with the next commit
// (CONCURRENT_TRANSACTIONS, retried after 5 ms and more).
const spendBus = rt.createBus();
spend = createSpendStore({ table: spendTable, publish: (records) => spendBus.publishAtomic(records), config, now: Date.now });

const connector = createLlmConnector({
  config, store, spend, artifacts, logger: rt.logger, onCall: llmMetrics(rt.metrics),
});
await runCommandService(rt, {
  service: env.LLM_SERVICE, connector, store, shared,
  buckets: new TokenBuckets(env.LLM_RATE_PER_SECOND, env.LLM_RATE_BURST),
  retry: { maxAttempts: env.LLM_RETRY_MAX_ATTEMPTS, initialMs: 250, maxWaitMs: env.LLM_RETRY_MAX_WAIT_MS },
  actionTimeoutMs: env.LLM_ACTION_TIMEOUT_MS,
  dedupeWindowHours: env.COMMAND_DEDUPE_WINDOW_HOURS,
  groupPrefix: env.COMMAND_GROUP_PREFIX,
  rebalanceTimeoutMs: env.COMMAND_REBALANCE_TIMEOUT_MS,
  rescanTopicsMs: env.COMMAND_TOPIC_RESCAN_MS,
  partitionsConsumedConcurrently: env.LLM_PARTITIONS_CONCURRENTLY,
  // Budgets and spend totals a previous owner wrote are known before a command is checked against them.
  resumeTables: [spendTable],
});
serving = true;
const keyed = Object.values(config.providers).filter((p) => p.envKey).map((p) => p.id);
rt.logger.info({ ops: ops.url, providers: Object.keys(config.providers), platform_keys_in_env: keyed, models: Object.keys(config.models).length }, 'llm orchestrator running');
