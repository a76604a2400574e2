import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import express from 'express';
import { TokenBuckets } from '../../shared/connectors/rate-limit.ts';
import { registerContracts } from '../../shared/connectors/contracts.ts';
import { loadConnectors } from '../../shared/connectors/registry.ts';
import { openApprovals, openCommandStates, openWorkspaceConnectors } from '../../shared/commands/state.ts';
import { startCommandWorker } from '../../shared/commands/worker.ts';
import { parseEnv } from '../../shared/config.ts';
import { listen, mountOpsRoutes } from '../../shared/http.ts';
import { closeOnSignals, createRuntime } from '../../shared/runtime.ts';
import { createSecretStore } from '../../shared/secrets/index.ts';
import { workerEnv } from './env.ts';
import { startPlatformWorker } from './platform.ts';

// Connectors that have a service of their own (llm, shopify, ...) are served there, not here.
const DEDICATED = new Set(['llm', 'shopify', 'tiktok', 'email']);

const env = parseEnv(workerEnv);
const rt = await createRuntime('connector-worker', env, { transactionalId: `ionflux-connector-worker-${env.WORKER_INSTANCE_ID}`, instanceId: env.WORKER_INSTANCE_ID });
closeOnSignals(() => rt.close(), rt.logger);
const store = createSecretStore(env);
const connectors = await loadConnectors();
// Connectors kept outside the tree (a plugin folder of the same shape as shared/connectors/builtin/).
if (env.EXTRA_CONNECTORS_DIR) for (const [id, c] of await loadConnectors(pathToFileURL(`${resolve(env.EXTRA_CONNECTORS_DIR)}/`))) connectors.set(id, c);
const served = [...connectors.keys()].filter((id) => (env.WORKER_CONNECTORS.length ? env.WORKER_CONNECTORS.includes(id) : !DEDICATED.has(id)));
const [approvals, workspaceConnectors] = await Promise.all([openApprovals(rt), openWorkspaceConnectors(rt)]);
rt.onClose(() => approvals.close());
rt.onClose(() => workspaceConnectors.close());
await rt.bus.ensureTopics(['platform', ...served].map((s) => `ionflux.cmd.${s}`));

await registerContracts(rt.registry, served.map((id) => connectors.get(id)!));

const buckets = new TokenBuckets(env.RATE_LIMIT_PER_SECOND, env.RATE_LIMIT_BURST);
for (const service of served) {
  const states = await openCommandStates(rt, service);
  rt.onClose(() => states.close());
  const runner = await startCommandWorker({
    rt, service, connectors, store, states, approvals, workspaceConnectors, buckets,
    retry: { maxAttempts: env.RETRY_MAX_ATTEMPTS, initialMs: 250, maxWaitMs: env.RETRY_MAX_WAIT_MS },
    actionTimeoutMs: env.ACTION_TIMEOUT_MS,
    partitionsConsumedConcurrently: env.WORKER_PARTITIONS_CONCURRENTLY,
  });
  // Registered after the tables, so it stops first: finish in-flight commands, commit, leave.
  rt.onClose(() => runner.stop());
}
const platform = await startPlatformWorker(rt, approvals);
rt.onClose(() => platform.stop());

const app = express();
mountOpsRoutes(app, { metrics: rt.metrics, checks: { ...rt.checks, secret_store: async () => (await store.health()).ok } });
const ops = await listen(app, env.WORKER_OPS_PORT, env.WORKER_OPS_HOST);
rt.onClose(() => ops.close());
rt.logger.info({ connectors: served, ops: ops.url }, 'connector worker running');
