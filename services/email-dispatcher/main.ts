import express from 'express';
import { topics } from '../../shared/bus/topics.ts';
import { openSharedTables } from '../../shared/commands/service.ts';
import { openCommandStates } from '../../shared/commands/state.ts';
import { startCommandWorker } from '../../shared/commands/worker.ts';
import { parseEnv } from '../../shared/config.ts';
import { registerContracts } from '../../shared/connectors/contracts.ts';
import { TokenBuckets } from '../../shared/connectors/rate-limit.ts';
import { listen, mountOpsRoutes } from '../../shared/http.ts';
import { linkKey, openLinks, platformEmailAccount } from '../../shared/links.ts';
import { registerSecret } from '../../shared/redact.ts';
import { closeOnSignals, createRuntime } from '../../shared/runtime.ts';
import { createSecretStore } from '../../shared/secrets/index.ts';
import { createEmailConnector } from './connector.ts';
import { emailDispatcherEnv } from './env.ts';
import { mountEmailApi } from './http-api.ts';
import { emailMetrics } from './metrics.ts';
import { openLedger, UNITS_RETENTION_MS, UNITS_TOPIC } from './ledger.ts';
import { platformCredentialOf, withPlatformDefault } from './platform-store.ts';
import { platformCredentials, providerFor } from './providers/index.ts';
import { closeSmtpTransports } from './providers/smtp.ts';
import { createSealer, loadSealKey } from './seal.ts';
import { consumeDeliveryEvents, openSuppressions } from './suppressions.ts';
import { Throttle } from './throttle.ts';
import { mountUnsubscribe, unsubscribeBaseProblem, unsubscribeLinks } from './unsubscribe.ts';

// Wiring only: what each piece does lives in its own file (docs/email.md).
const env = parseEnv(emailDispatcherEnv);
for (const s of [env.EMAIL_SMTP_URL, env.SENDGRID_API_KEY, env.EMAIL_API_TOKEN]) registerSecret(s);
const rt = await createRuntime('email-dispatcher', env, { transactionalId: `ionflux-email-dispatcher-${env.EMAIL_INSTANCE_ID}`, instanceId: env.EMAIL_INSTANCE_ID });
closeOnSignals(() => rt.close(), rt.logger);
const platform = platformCredentials(env);
const store = withPlatformDefault(createSecretStore(env), 'email', platform);
rt.onClose(() => store.close?.());
let serving = false;

const app = express();
app.disable('x-powered-by');
mountOpsRoutes(app, { metrics: rt.metrics, checks: { ...rt.checks, secret_store: () => store.health(), command_worker: async () => serving } });
const server = await listen(app, env.EMAIL_PORT, env.EMAIL_HOST);
rt.onClose(() => server.close()); // for a stop during start-up; once running, closed first (below)

// The seal key signs platform notifications and unsubscribe links; nothing is sent without it.
let sealKey: Buffer | undefined;
while (!sealKey) {
  sealKey = await loadSealKey(store).catch((e: unknown) => {
    rt.logger.warn({ err: e }, 'secret store unavailable; retrying in 5 s (nothing is sent meanwhile)');
    return undefined;
  });
  if (!sealKey) await new Promise((r) => setTimeout(r, 5000));
}
const sealer = createSealer(sealKey);
const unsubscribeBase = env.EMAIL_PUBLIC_URL ?? server.url;
const links = unsubscribeLinks(sealKey, unsubscribeBase);
// A warning, not a refusal: a local `make up` runs on 127.0.0.1 and must start clean.
const linkProblem = unsubscribeBaseProblem(unsubscribeBase);
if (linkProblem) rt.logger.warn({ email_public_url: env.EMAIL_PUBLIC_URL ?? null }, linkProblem);

// Unit records go through a producer of their own: plain acks=all writes, never queued behind outcome
// transactions (their topic keeps 7 days, see STATE_RETENTION_MS in shared/bus/kafka/provision.ts).
const ledgerBus = rt.createBus();
const dedupeWindowMs = env.COMMAND_DEDUPE_WINDOW_HOURS * 3600_000;
const [ledger, suppressions, shared, states, accountLinks] = await Promise.all([
  openLedger(rt, ledgerBus),
  openSuppressions(rt),
  openSharedTables(rt),
  // Opened here rather than by runCommandService: the HTTP API's ?wait reads outcomes from it.
  openCommandStates(rt, env.EMAIL_WORKER_SERVICE, dedupeWindowMs),
  openLinks(rt),
]);
for (const t of [ledger, suppressions, states, accountLinks]) rt.onClose(() => t.close());
rt.onClose(() => closeSmtpTransports());

const connector = createEmailConnector({
  ledger,
  suppressions,
  sealer,
  links,
  providerThrottle: new Throttle(env.EMAIL_RATE_PER_SECOND, env.EMAIL_RATE_BURST),
  workspaceThrottle: new Throttle(env.EMAIL_WORKSPACE_RATE_PER_SECOND, env.EMAIL_WORKSPACE_RATE_BURST),
  providerEnv: env,
  platformCredential: platformCredentialOf(store, 'email'),
  attachments: { maxBytes: env.EMAIL_ATTACHMENT_MAX_BYTES, trustedPrefixes: env.EMAIL_TRUSTED_ATTACHMENT_PREFIXES.split(',').map((s) => s.trim()).filter(Boolean), allowPrivate: env.EMAIL_ALLOW_PRIVATE_HOSTS },
  sendgridBatchSize: env.EMAIL_SENDGRID_BATCH_SIZE,
  concurrency: env.EMAIL_SEND_CONCURRENCY,
  waitBudgetMs: env.EMAIL_PROVIDER_WAIT_MAX_MS,
  outageMs: env.EMAIL_PROVIDER_OUTAGE_MS,
  logger: rt.logger,
  observe: emailMetrics(rt.metrics),
  providerFor: (credentials, o) => providerFor(credentials, env, o),
  // Platform SendGrid sends carry ionflux_workspace=<ws>; the ingester maps them, as account platform:<ws>, through a link.
  async onPlatformSendgrid(ws) {
    const key = linkKey('email', platformEmailAccount(ws));
    if (!accountLinks.get(key)) await accountLinks.set(key, { workspaceId: ws, linkedAt: new Date().toISOString() });
  },
});

mountUnsubscribe(app, { links, table: suppressions, logger: rt.logger });
mountEmailApi(app, { bus: rt.bus, states, store, sealer, platformToken: env.EMAIL_API_TOKEN, logger: rt.logger, service: env.EMAIL_WORKER_SERVICE });

await rt.bus.ensureTopics([topics.command(env.EMAIL_WORKER_SERVICE), topics.internal('email')]);
await registerContracts(rt.registry, [connector]);
const learner = await consumeDeliveryEvents(rt, suppressions, `ionflux-${env.EMAIL_WORKER_SERVICE}-suppressions`);
rt.onClose(() => learner.stop());
const runner = await startCommandWorker({
  rt, service: env.EMAIL_WORKER_SERVICE, connector, store, states, ...shared, dedupeWindowMs, groupId: `${env.COMMAND_GROUP_PREFIX}-${env.EMAIL_WORKER_SERVICE}-worker`,
  // Commands per workspace; messages are paced per unit by the throttles above.
  buckets: new TokenBuckets(100, 200),
  retry: { maxAttempts: env.EMAIL_RETRY_MAX_ATTEMPTS, initialMs: 500, maxWaitMs: 30_000 },
  actionTimeoutMs: env.EMAIL_ACTION_TIMEOUT_MS,
  partitionsConsumedConcurrently: env.EMAIL_PARTITIONS_CONCURRENTLY,
  rescanTopicsMs: env.COMMAND_TOPIC_RESCAN_MS,
  rebalanceTimeoutMs: env.COMMAND_REBALANCE_TIMEOUT_MS,
  // A resumed send reads the units its previous owner handed over.
  resumeTables: [ledger],
});
// Registered late, so it stops early: an in-flight bulk hands over before its next recipient, commit, leave.
rt.onClose(() => runner.stop());
// And before it the HTTP API stops taking requests, while the tables it reads (command states for
// ?wait, suppressions for unsubscribes) are still open: a request answered then was really taken.
rt.onClose(async () => {
  serving = false;
  await server.close(); // a second close (the hook above) resolves at once
});
serving = true;
rt.logger.info({ url: server.url, platform_provider: platform ? platform.provider : null, platform_notifications_api: Boolean(env.EMAIL_API_TOKEN) }, platform ? 'email dispatcher running' : 'email dispatcher running without a platform account (EMAIL_FROM with EMAIL_SMTP_URL or SENDGRID_API_KEY); workspaces with their own credentials can send');
