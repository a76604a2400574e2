import express from 'express';
import type { Shopify } from '@shopify/shopify-api';
import { topics } from '../../shared/bus/topics.ts';
import { openSharedTables, runCommandService } from '../../shared/commands/service.ts';
import { kafkaAuth, parseEnv } from '../../shared/config.ts';
import { createKafkaBus } from '../../shared/bus/kafka/bus.ts';
import { TokenBuckets } from '../../shared/connectors/rate-limit.ts';
import { listen, mountOpsRoutes } from '../../shared/http.ts';
import { openLinks } from '../../shared/links.ts';
import { registerSecret } from '../../shared/redact.ts';
import { closeOnSignals, createRuntime } from '../../shared/runtime.ts';
import { connectGrants, grantedLink } from '../../shared/security/connect-grant.ts';
import { openAccountClaims } from '../../shared/security/oauth-claim.ts';
import { createSecretStore } from '../../shared/secrets/index.ts';
import { createAdminApi } from './api/admin.ts';
import { createShopify, installSdkFetch } from './api/sdk.ts';
import { CostThrottle } from './api/throttle.ts';
import { createShopifyConnector } from './connector.ts';
import { publicBaseUrl, shopifySyncEnv } from './env.ts';
import { shopifyEvent } from './events.ts';
import { startLifecycle } from './lifecycle.ts';
import { shopifyMetrics } from './metrics.ts';
import { mountOAuthRoutes } from './oauth/routes.ts';
import { CONNECTIONS_TOPIC, openConnections, parseConnection, type Connection } from './state/connections.ts';
import { openSyncState, SYNC_STATE_TOPIC } from './state/sync-state.ts';
import { BulkFinishes } from './sync/bulk.ts';
import type { SyncDeps } from './sync/run.ts';
import { createScheduler } from './sync/scheduler.ts';
import { createTokenAccess } from './tokens/access.ts';

const env = parseEnv(shopifySyncEnv);
const instanceId = env.SHOPIFY_SYNC_INSTANCE_ID;
const rt = await createRuntime('shopify-sync', env, { transactionalId: `ionflux-shopify-sync-${instanceId}`, instanceId });
closeOnSignals(() => rt.close(), rt.logger);
// Single records that need no transaction (refreshed connection records, progress events).
const stateBus = rt.createBus();
// Sync pages and their checkpoints, one transaction each, apart from the command outcomes' producer.
const syncBus = rt.createBus({ transactionalId: `ionflux-shopify-sync-pages-${instanceId}` });
const store = createSecretStore(env);
registerSecret(env.SHOPIFY_API_SECRET);
const base = publicBaseUrl(env);
installSdkFetch(env.SHOPIFY_ADMIN_BASE_URL);
const shopifyApp: Shopify | null = env.SHOPIFY_API_KEY && env.SHOPIFY_API_SECRET
  ? createShopify({ apiKey: env.SHOPIFY_API_KEY, apiSecret: env.SHOPIFY_API_SECRET, scopes: env.SHOPIFY_SCOPES, apiVersion: env.SHOPIFY_API_VERSION, publicBaseUrl: base, adminBaseUrl: env.SHOPIFY_ADMIN_BASE_URL }, rt.logger)
  : null;
const shopify = () => shopifyApp;
const grants = connectGrants(store, 'shopify');
/**
 * A workspace's marking producer, one per marking or fence (rare: refusals, installs, refreshes):
 * the same transactional id in every instance, so the newest holder fences the others
 * (tokens/reauth.ts). Under the service's own transactional-id prefix.
 */
const markProducer = (ws: string) => createKafkaBus({ brokers: env.KAFKA_BROKERS, clientId: `${env.KAFKA_CLIENT_ID}-${rt.service}-reauth`, auth: kafkaAuth(env), logger: rt.logger, transactionalId: `${env.SHOPIFY_SYNC_GROUP}-reauth-${ws}`, topicDefaults: { partitions: env.KAFKA_TOPIC_PARTITIONS, replicationFactor: env.KAFKA_REPLICATION_FACTOR } });
/** An install link for the workspace, as its failures tell it (or the CLI command, if no grant can be issued). */
const installUrl = (ws: string, shop = '<shop>.myshopify.com') => grantedLink(grants, `${base}/shopify/install?shop=${shop}&workspace=${ws}`, ws, `(an admin runs: ionflux connect shopify --workspace ${ws} --shop ${shop})`);
let serving = false;
let owned = () => 0;
const metrics = shopifyMetrics(rt.metrics, () => owned());
const api = createAdminApi({ shopify, throttle: new CostThrottle(), onCall: metrics.onCall });

await rt.bus.ensureTopics([topics.internal('shopify'), CONNECTIONS_TOPIC, SYNC_STATE_TOPIC, env.IONFLUX_INBOX_TOPIC]);
const [shared, links, connections, syncState, claims] = await Promise.all([openSharedTables(rt), openLinks(rt), openConnections(rt), openSyncState(rt), openAccountClaims(rt, env, `${env.SHOPIFY_SYNC_GROUP}-claim`)]);
for (const t of [links, connections, syncState, claims]) rt.onClose(() => t.close());
const { workspaceConnectors } = shared;

const app = express();
mountOpsRoutes(app, { metrics: rt.metrics, checks: { ...rt.checks, secret_store: () => store.health(), command_worker: async () => serving } });
mountOAuthRoutes(app, {
  bus: rt.bus, codec: rt.codec, store, api, logger: rt.logger, links, connections, workspaceConnectors, markProducer,
  webhookUrl: env.SHOPIFY_WEBHOOK_URL ?? `${base}/webhooks/shopify`,
  shopify, apiSecret: () => env.SHOPIFY_API_SECRET, scopes: env.SHOPIFY_SCOPES, publicBaseUrl: base, adminBaseUrl: env.SHOPIFY_ADMIN_BASE_URL, stateTtlMs: env.SHOPIFY_INSTALL_TTL_MS, grants, claims,
});
const http = await listen(app, env.SHOPIFY_SYNC_PORT, env.SHOPIFY_SYNC_HOST);
rt.onClose(() => http.close());

/** Tests only: holds a needs_reauthorization mark at the test's gate (SHOPIFY_TEST_REAUTH_GATE_URL). */
const gate = env.SHOPIFY_TEST_REAUTH_GATE_URL;
const beforeMark = gate ? async (ws: string) => void (await fetch(gate, { method: 'POST', body: JSON.stringify({ workspace: ws }) })).arrayBuffer() : undefined;
const tokens = createTokenAccess({ shopify, store, bus: stateBus, connections, markProducer, workspaceConnectors, beforeMark, installUrl, marginMs: env.SHOPIFY_REFRESH_MARGIN_MS, onRefresh: metrics.onRefresh });
const sync: SyncDeps = {
  api, tokens, bus: syncBus, inboxTopic: env.IONFLUX_INBOX_TOPIC, state: syncState, logger: rt.logger, pageSize: env.SHOPIFY_PAGE_SIZE, onEntities: metrics.onEntities,
  async onProgress(ws, runId, c) {
    if (c.pages % 10 !== 1) return;
    const shop = connections.get(ws)?.shop ?? '';
    await stateBus.publish(await shopifyEvent(rt.codec, { workspaceId: ws, type: 'sync.progress', idempotencyKey: `progress:${runId}:${c.pages}`, payload: { shop, run_id: runId, entity: c.entity, mode: c.mode, count: c.count, pages: c.pages } })).catch(() => undefined);
  },
};
const finishes = new BulkFinishes();
const bulk = { pollMs: env.SHOPIFY_BULK_POLL_MS, timeoutMs: env.SHOPIFY_BULK_TIMEOUT_MS, finishes };
const connector = createShopifyConnector({ api, tokens, connections, sync, bulk });
await runCommandService(rt, {
  service: env.SHOPIFY_SERVICE, connector, store, shared,
  buckets: new TokenBuckets(env.SHOPIFY_RATE_PER_SECOND, env.SHOPIFY_RATE_BURST),
  retry: { maxAttempts: env.SHOPIFY_RETRY_MAX_ATTEMPTS, initialMs: 250, maxWaitMs: env.SHOPIFY_RETRY_MAX_WAIT_MS },
  actionTimeoutMs: env.SHOPIFY_ACTION_TIMEOUT_MS,
  dedupeWindowHours: env.COMMAND_DEDUPE_WINDOW_HOURS,
  groupPrefix: env.COMMAND_GROUP_PREFIX,
  rebalanceTimeoutMs: env.COMMAND_REBALANCE_TIMEOUT_MS,
  partitionsConsumedConcurrently: env.SHOPIFY_PARTITIONS_CONCURRENTLY,
  // A resumed sync reads the run checkpoint (cursor, bulk operation) its previous owner wrote.
  resumeTables: [syncState],
});
rt.logger.info('starting the lifecycle consumer');
const lifecycle = await startLifecycle({ rt, store, links, connections, syncState, workspaceConnectors, groupId: `${env.SHOPIFY_SYNC_GROUP}-lifecycle`, onBulkFinished: (id) => finishes.finished(id) });
rt.onClose(() => lifecycle.stop());

const scheduler = createScheduler({
  sync, bulk, tokens, state: syncState, logger: rt.logger,
  pollIntervalMs: env.SHOPIFY_POLL_INTERVAL_MS, fullIntervalMs: env.SHOPIFY_FULL_SYNC_INTERVAL_MS, refreshMarginMs: env.SHOPIFY_REFRESH_MARGIN_MS,
  async onCompleted(ws, shop, runId, trigger, s) {
    await stateBus.publish(await shopifyEvent(rt.codec, { workspaceId: ws, type: 'sync.completed', idempotencyKey: `completed:${runId}:${s.started_at}`, payload: { ...s, shop, run_id: runId, trigger } }));
  },
});
owned = () => scheduler.shops;
rt.logger.info('joining the shop owners group');
// Who polls and refreshes which shop: the owner of its connection record's partition.
const owner = await rt.bus.own<Connection>({
  topic: CONNECTIONS_TOPIC, parse: parseConnection,
  groupId: `${env.SHOPIFY_SYNC_GROUP}-owners`, transactionalPrefix: `${env.SHOPIFY_SYNC_GROUP}-owner`,
  onAcquired: (p) => scheduler.onAcquired(p), onReleased: (p) => scheduler.onReleased(p), onChange: (p, k, v) => scheduler.onChange(p, k, v),
});
// Registered last, so it stops first: no sync starts while the rest shuts down.
rt.onClose(() => owner.stop());
rt.onClose(() => scheduler.stopAll());
serving = true;
rt.logger.info({ url: http.url, install: `${base}/shopify/install`, configured: Boolean(shopifyApp), scopes: env.SHOPIFY_SCOPES, api_version: env.SHOPIFY_API_VERSION, poll_interval_ms: env.SHOPIFY_POLL_INTERVAL_MS, admin_base_url: env.SHOPIFY_ADMIN_BASE_URL ?? null }, shopifyApp ? 'shopify sync running' : 'shopify sync running without Shopify credentials (SHOPIFY_API_KEY, SHOPIFY_API_SECRET): installing answers 503, commands fail not_connected');
