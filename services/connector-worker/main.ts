import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import express from 'express';
import { openSharedTables, runCommandService } from '../../shared/commands/service.ts';
import { parseEnv } from '../../shared/config.ts';
import { TokenBuckets } from '../../shared/connectors/rate-limit.ts';
import { loadConnectors } from '../../shared/connectors/registry.ts';
import type { Connector } from '../../shared/connectors/types.ts';
import { listen, mountOpsRoutes } from '../../shared/http.ts';
import { closeOnSignals, createRuntime } from '../../shared/runtime.ts';
import { createSecretStore } from '../../shared/secrets/index.ts';
import { connector as webhook } from './connectors/webhook.ts';
import { workerEnv } from './env.ts';
import { createPlatformConnector } from './platform.ts';

const env = parseEnv(workerEnv);
const rt = await createRuntime('connector-worker', env, { transactionalId: `ionflux-connector-worker-${env.WORKER_INSTANCE_ID}`, instanceId: env.WORKER_INSTANCE_ID });
closeOnSignals(() => rt.close(), rt.logger);
const store = createSecretStore(env);
const shared = await openSharedTables(rt);

// The connectors this service runs: the outbound webhook, the platform's approval decisions, and
// connectors kept outside the tree (a plugin folder: one subfolder per connector, index.ts exporting `connector`).
const connectors = new Map<string, Connector>([
  ['webhook', webhook],
  ['platform', createPlatformConnector({ codec: rt.codec, approvals: shared.approvals, store })],
]);
if (env.EXTRA_CONNECTORS_DIR) for (const [id, c] of await loadConnectors(pathToFileURL(`${resolve(env.EXTRA_CONNECTORS_DIR)}/`))) connectors.set(id, c);
const served = [...connectors.keys()].filter((id) => !env.WORKER_CONNECTORS.length || env.WORKER_CONNECTORS.includes(id));

const buckets = new TokenBuckets(env.RATE_LIMIT_PER_SECOND, env.RATE_LIMIT_BURST);
for (const service of served) {
  await runCommandService(rt, {
    service, connector: connectors.get(service)!, store, buckets, shared,
    retry: { maxAttempts: env.RETRY_MAX_ATTEMPTS, initialMs: 250, maxWaitMs: env.RETRY_MAX_WAIT_MS },
    actionTimeoutMs: env.ACTION_TIMEOUT_MS,
    dedupeWindowHours: env.COMMAND_DEDUPE_WINDOW_HOURS,
    groupPrefix: env.COMMAND_GROUP_PREFIX,
    rebalanceTimeoutMs: env.COMMAND_REBALANCE_TIMEOUT_MS,
    rescanTopicsMs: env.COMMAND_TOPIC_RESCAN_MS,
    partitionsConsumedConcurrently: env.WORKER_PARTITIONS_CONCURRENTLY,
  });
}

const app = express();
mountOpsRoutes(app, { metrics: rt.metrics, checks: { ...rt.checks, secret_store: () => store.health() } });
const ops = await listen(app, env.WORKER_OPS_PORT, env.WORKER_OPS_HOST);
rt.onClose(() => ops.close());
rt.logger.info({ connectors: served, ops: ops.url }, 'connector worker running');
