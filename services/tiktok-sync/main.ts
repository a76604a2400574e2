import express from 'express';
import { topics } from '../../shared/bus/topics.ts';
import { openSharedTables, runCommandService } from '../../shared/commands/service.ts';
import { kafkaAuth, parseEnv } from '../../shared/config.ts';
import { createKafkaBus } from '../../shared/bus/kafka/bus.ts';
import { withDeadline } from '../../shared/deadline.ts';
import { TokenBuckets } from '../../shared/connectors/rate-limit.ts';
import { listen, mountOpsRoutes } from '../../shared/http.ts';
import { openLinks } from '../../shared/links.ts';
import { registerSecret } from '../../shared/redact.ts';
import { closeOnSignals, createRuntime } from '../../shared/runtime.ts';
import { connectGrants, grantedLink } from '../../shared/security/connect-grant.ts';
import { openAccountClaims } from '../../shared/security/oauth-claim.ts';
import { createSecretStore } from '../../shared/secrets/index.ts';
import { createTikTokApi } from './api/client.ts';
import { limitsFrom } from './api/endpoints.ts';
import { EndpointLimiter } from './api/limiter.ts';
import type { OAuthConfig } from './api/oauth.ts';
import { createTikTokConnector } from './connector.ts';
import { publicBaseUrl, tiktokSyncEnv } from './env.ts';
import { startLifecycle } from './lifecycle.ts';
import { tiktokMetrics } from './metrics.ts';
import { mountOAuthRoutes } from './oauth/routes.ts';
import { createSupervisor } from './owner/supervisor.ts';
import { CONNECTIONS_TOPIC, openConnections, parseConnection, type Connection } from './state/connections.ts';
import { openPublishLedger } from './state/publishes.ts';
import { openSeenVideos, VIDEOS_TOPIC } from './state/videos.ts';
import { createTokenAccess } from './tokens/access.ts';
import { createClientTokens } from './tokens/client-token.ts';

const env = parseEnv(tiktokSyncEnv);
const rt = await createRuntime('tiktok-sync', env, { transactionalId: `ionflux-tiktok-sync-${env.TIKTOK_SYNC_INSTANCE_ID}`, instanceId: env.TIKTOK_SYNC_INSTANCE_ID });
closeOnSignals(() => rt.close(), rt.logger);
// Single records that must be durable but need no transaction (the publish ledger, refresh
// requests, webhook statuses) go through a producer of their own: on the transactional one they
// would queue behind outcomes and meet CONCURRENT_TRANSACTIONS.
const stateBus = rt.createBus();
const store = createSecretStore(env);
registerSecret(env.TIKTOK_CLIENT_SECRET);
const base = publicBaseUrl(env);
const instanceId = env.TIKTOK_SYNC_INSTANCE_ID;
const oauthCfg: OAuthConfig | null = env.TIKTOK_CLIENT_KEY && env.TIKTOK_CLIENT_SECRET ? { baseUrl: env.TIKTOK_API_BASE_URL, authorizeUrl: env.TIKTOK_AUTHORIZE_URL, clientKey: env.TIKTOK_CLIENT_KEY, clientSecret: env.TIKTOK_CLIENT_SECRET } : null;
const oauth = () => oauthCfg;
const grants = connectGrants(store, 'tiktok');
/**
 * A workspace's marking producer, one per marking or fence (rare: refusals, connects, refreshes):
 * the same transactional id in every instance, so the newest holder fences the others
 * (tokens/reauth.ts). Under the service's own transactional-id prefix.
 */
const markProducer = (ws: string) => createKafkaBus({ brokers: env.KAFKA_BROKERS, clientId: `${env.KAFKA_CLIENT_ID}-${rt.service}-reauth`, auth: kafkaAuth(env), logger: rt.logger, transactionalId: `${env.TIKTOK_SYNC_GROUP}-reauth-${ws}`, topicDefaults: { partitions: env.KAFKA_TOPIC_PARTITIONS, replicationFactor: env.KAFKA_REPLICATION_FACTOR } });
/** Tests only: holds a needs_reauthorization marking at the test's gate (TIKTOK_TEST_REAUTH_GATE_URL). */
const gate = env.TIKTOK_TEST_REAUTH_GATE_URL;
const beforeMark = gate ? async (ws: string) => void (await fetch(gate, { method: 'POST', body: JSON.stringify({ workspace: ws }) })).arrayBuffer() : undefined;
/** A connect link for the workspace, as its failures and events tell it (or the CLI command, if no grant can be issued). */
const connectUrl = (ws: string) => grantedLink(grants, `${base}/tiktok/connect?workspace=${ws}`, ws, `(an admin runs: ionflux connect tiktok --workspace ${ws})`);
let serving = false;
let supervisorSize = () => 0;
const metrics = tiktokMetrics(rt.metrics, () => supervisorSize());
const api = createTikTokApi({ baseUrl: env.TIKTOK_API_BASE_URL, clientKey: env.TIKTOK_CLIENT_KEY ?? 'unconfigured', limiter: new EndpointLimiter(limitsFrom(env.TIKTOK_RATE_LIMITS)), throttleMs: env.TIKTOK_THROTTLE_WAIT_MS, onCall: metrics.onCall });

// The seen-videos table also tells the owner when a barrier it wrote has been read (owner/supervisor.ts).
const barriers = new Map<string, () => void>();
await rt.bus.ensureTopics([topics.internal('tiktok'), CONNECTIONS_TOPIC, VIDEOS_TOPIC]);
const [shared, links, connections, seen, ledger, claims] = await Promise.all([
  openSharedTables(rt), openLinks(rt), openConnections(rt), openSeenVideos(rt, (key) => barriers.get(key)?.()), openPublishLedger(rt), openAccountClaims(rt, env, `${env.TIKTOK_SYNC_GROUP}-claim`),
]);
for (const t of [links, connections, seen, ledger, claims]) rt.onClose(() => t.close());
const { workspaceConnectors } = shared;

const app = express();
mountOpsRoutes(app, { metrics: rt.metrics, checks: { ...rt.checks, secret_store: () => store.health(), command_worker: async () => serving } });
mountOAuthRoutes(app, { bus: rt.bus, codec: rt.codec, store, links, connections, workspaceConnectors, markProducer, logger: rt.logger, oauth, scopes: env.TIKTOK_SCOPES, publicBaseUrl: base, stateTtlMs: env.TIKTOK_CONNECT_TTL_MS, grants, claims });
const http = await listen(app, env.TIKTOK_SYNC_PORT, env.TIKTOK_SYNC_HOST);
rt.onClose(() => http.close());

const tokens = createTokenAccess({ bus: stateBus, markProducer, codec: rt.codec, store, connections, workspaceConnectors, connectUrl, waitMs: env.TIKTOK_REFRESH_WAIT_MS, oauth, beforeMark });
const connector = createTikTokConnector({
  api, tokens, clientTokens: createClientTokens(oauth), ledger, bus: stateBus,
  publish: { pollMs: env.TIKTOK_PUBLISH_POLL_MS, timeoutMs: env.TIKTOK_PUBLISH_TIMEOUT_MS, maxBytes: env.TIKTOK_UPLOAD_MAX_BYTES, chunkBytes: env.TIKTOK_UPLOAD_CHUNK_BYTES },
});
await runCommandService(rt, {
  service: env.TIKTOK_SERVICE, connector, store, shared,
  buckets: new TokenBuckets(env.TIKTOK_RATE_PER_SECOND, env.TIKTOK_RATE_BURST),
  retry: { maxAttempts: env.TIKTOK_RETRY_MAX_ATTEMPTS, initialMs: 250, maxWaitMs: env.TIKTOK_RETRY_MAX_WAIT_MS },
  actionTimeoutMs: env.TIKTOK_ACTION_TIMEOUT_MS,
  dedupeWindowHours: env.COMMAND_DEDUPE_WINDOW_HOURS,
  groupPrefix: env.COMMAND_GROUP_PREFIX,
  rebalanceTimeoutMs: env.COMMAND_REBALANCE_TIMEOUT_MS,
  partitionsConsumedConcurrently: env.TIKTOK_PARTITIONS_CONCURRENTLY,
  // A resumed videos.publish reads the publish id its previous owner got (init is never called twice).
  resumeTables: [ledger],
});
const lifecycle = await startLifecycle({ rt, stateBus, store, links, connections, workspaceConnectors, ledger, groupId: `${env.TIKTOK_SYNC_GROUP}-lifecycle` });
rt.onClose(() => lifecycle.stop());

// Seen-state records live in their connection's partition number, so both topics need the same count.
const [videoParts, connectionParts] = await Promise.all([rt.bus.offsets(VIDEOS_TOPIC), rt.bus.offsets(CONNECTIONS_TOPIC)]);
const pollable = videoParts.length === connectionParts.length;
if (!pollable) rt.logger.error({ connections: connectionParts.length, videos: videoParts.length }, `video polling is off: ${VIDEOS_TOPIC} and ${CONNECTIONS_TOPIC} must have the same partition count`);
const supervisor = createSupervisor({
  logger: rt.logger,
  marginMs: env.TIKTOK_REFRESH_MARGIN_MS,
  claimStaleMs: env.TIKTOK_CLAIM_STALE_MS,
  pollIntervalMs: env.TIKTOK_POLL_INTERVAL_MS,
  refresh: { store, codec: rt.codec, logger: rt.logger, oauth, workspaceConnectors, connectUrl, instanceId, onRefresh: metrics.onRefresh, markProducer, beforeMark },
  poll: pollable && env.TIKTOK_POLL_INTERVAL_MS > 0 ? { api, store, codec: rt.codec, logger: rt.logger, seen, maxPages: env.TIKTOK_POLL_MAX_PAGES, onVideos: metrics.onVideos } : null,
  async barrier(owned, key) {
    const read = new Promise<void>((resolve) => barriers.set(key, resolve));
    try {
      await owned.writer.send([{ record: { topic: VIDEOS_TOPIC, key, value: null }, partition: owned.partition }]);
      await withDeadline(read, 60_000, () => new Error('seen-videos barrier not read within 60 s'));
    } finally {
      barriers.delete(key);
    }
  },
});
supervisorSize = () => supervisor.connections;
// Who refreshes and polls which connection: the owner of its partition (docs/tiktok-sync.md).
const owner = await rt.bus.own<Connection>({
  topic: CONNECTIONS_TOPIC, parse: parseConnection,
  groupId: `${env.TIKTOK_SYNC_GROUP}-owners`, transactionalPrefix: `${env.TIKTOK_SYNC_GROUP}-owner`,
  onAcquired: (p) => supervisor.onAcquired(p), onReleased: (p) => supervisor.onReleased(p), onChange: (p, k, v) => supervisor.onChange(p, k, v),
});
// Registered last, so it stops first: no refresh or poll starts while the rest shuts down.
rt.onClose(() => owner.stop());
serving = true;
rt.logger.info({ url: http.url, connect: `${base}/tiktok/connect`, configured: Boolean(oauthCfg), scopes: env.TIKTOK_SCOPES, poll_interval_ms: env.TIKTOK_POLL_INTERVAL_MS }, oauthCfg ? 'tiktok sync running' : 'tiktok sync running without TikTok credentials (TIKTOK_CLIENT_KEY, TIKTOK_CLIENT_SECRET): connecting answers 503, commands fail not_connected');
