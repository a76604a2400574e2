import { parseEnv } from '../../shared/config.ts';
import express from 'express';
import { listen, mountOpsRoutes } from '../../shared/http.ts';
import { openLinks } from '../../shared/links.ts';
import { closeOnSignals, createRuntime } from '../../shared/runtime.ts';
import { createSecretStore } from '../../shared/secrets/index.ts';
import { createApp } from './app.ts';
import { openDeliveryLog, openEntityVersions, seenWithin } from './deliveries.ts';
import { RecentAnswers, SERVICE } from './edge.ts';
import { ingesterEnv } from './env.ts';
import { createIngesterMetrics } from './metrics.ts';
import { startProcessor } from './processor.ts';
import { createSecretsFor } from './secrets.ts';

// Wiring only: what each piece does lives in its own file. The edge's bus is idempotent, not
// transactional: an append is one acks=all produce. The processor's transactions are per inbox
// partition (processor.ts).
const env = parseEnv(ingesterEnv);
const rt = await createRuntime(SERVICE, env, { instanceId: env.INGESTER_INSTANCE_ID });
closeOnSignals(() => rt.close(), rt.logger);
const metrics = createIngesterMetrics(rt.metrics);
const links = await openLinks(rt);
rt.onClose(() => links.close());
const edge = env.INGESTER_ROLE !== 'processor';
const processor = env.INGESTER_ROLE !== 'edge';

let published: ((key: string) => string | undefined) | undefined;
if (processor) {
  const deliveries = await openDeliveryLog(rt, env.WEBHOOK_DEDUPE_HOURS * 3600_000);
  rt.onClose(() => deliveries.close());
  const versions = await openEntityVersions(rt);
  rt.onClose(() => versions.close());
  const sub = await startProcessor({ bus: rt.bus, codec: rt.codec, logger: rt.logger, links, deliveries, versions, metrics, dedupeWindowMs: env.WEBHOOK_DEDUPE_HOURS * 3600_000, inboxTopic: env.IONFLUX_INBOX_TOPIC });
  rt.onClose(() => sub.stop());
  const window = env.WEBHOOK_DEDUPE_HOURS * 3600_000;
  published = (key) => {
    const d = seenWithin(deliveries, key, window);
    return d?.outcome === 'published' ? d.eventId : undefined;
  };
}

let publicUrl: string | undefined;
if (edge) {
  const store = createSecretStore(env);
  rt.onClose(() => store.close?.());
  const app = createApp({
    deps: {
      bus: rt.bus,
      logger: rt.logger,
      links,
      secretsFor: createSecretsFor(env, store),
      metrics,
      publishTimeoutMs: env.INGESTER_PUBLISH_TIMEOUT_MS,
      recent: new RecentAnswers(env.INGESTER_RECENT_ANSWERS),
      inboxTopic: env.IONFLUX_INBOX_TOPIC,
      published,
    },
    bodyLimit: env.INGESTER_BODY_LIMIT,
    maxInFlight: env.INGESTER_MAX_IN_FLIGHT,
    maxBufferedBytes: env.INGESTER_MAX_BUFFERED_BYTES,
    whatsappVerifyToken: env.WHATSAPP_VERIFY_TOKEN,
  });
  const server = await listen(app, env.INGESTER_PORT, env.INGESTER_HOST, {
    headersTimeoutMs: env.INGESTER_HEADERS_TIMEOUT_MS,
    requestTimeoutMs: env.INGESTER_REQUEST_TIMEOUT_MS,
    maxConnections: env.INGESTER_MAX_CONNECTIONS,
  });
  // Stop taking requests first; in-flight ones finish, then Kafka clients close (reverse order).
  rt.onClose(() => server.close());
  publicUrl = server.url;
}

// Ops routes on their own port, bound to 127.0.0.1 by default: never on the public one. Last,
// so /readyz answers only once everything this process runs is up.
const opsApp = express();
mountOpsRoutes(opsApp, { metrics: rt.metrics, checks: rt.checks });
const ops = await listen(opsApp, env.INGESTER_OPS_PORT, env.INGESTER_OPS_HOST);
rt.onClose(() => ops.close());

if (publicUrl) rt.logger.info({ url: publicUrl, ops: ops.url, role: env.INGESTER_ROLE }, 'webhook ingester listening');
else rt.logger.info({ ops: ops.url, role: env.INGESTER_ROLE }, 'webhook ingester processing the inbox');

