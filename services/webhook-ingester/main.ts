import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { parseEnv } from '../../shared/config.ts';
import express from 'express';
import { listen, mountOpsRoutes, type ReadinessCheck } from '../../shared/http.ts';
import { openLinks } from '../../shared/links.ts';
import { closeOnSignals, createRuntime } from '../../shared/runtime.ts';
import { createSecretStore } from '../../shared/secrets/index.ts';
import { createApp } from './app.ts';
import { RecentAnswers, SERVICE } from './edge.ts';
import { ingesterEnv } from './env.ts';
import { createIngesterMetrics } from './metrics.ts';
import { runProcessor, type ProcessorMessage } from './processor-thread.ts';
import { createSecretsFor } from './secrets.ts';

// Wiring only: what each piece does lives in its own file. INGESTER_ROLE=all (the default) runs
// the edge on this thread and the inbox processor on a worker thread. The edge's bus is
// idempotent, not transactional: an append is one acks=all produce. The processor's
// transactions are per inbox partition (processor.ts).
const env = parseEnv(ingesterEnv);
const rt = await createRuntime(SERVICE, env, { instanceId: env.INGESTER_INSTANCE_ID, producerLanes: env.INGESTER_EDGE_PRODUCERS });
closeOnSignals(() => rt.close(), rt.logger);
const metrics = createIngesterMetrics(rt.metrics);
const edge = env.INGESTER_ROLE !== 'processor';

if (env.INGESTER_ROLE === 'processor') await runProcessor(env, metrics, rt);
else if (env.INGESTER_ROLE === 'all') await startProcessorThread();

/**
 * The processor on a thread of its own (another core; the edge's event loop never waits for a
 * batch), its state in `<state dir>/processor`. Its counts feed this thread's /metrics. Should it
 * stop unexpectedly the process exits, so its supervisor restarts the whole ingester.
 */
async function startProcessorThread(): Promise<void> {
  // The thread loads TypeScript the way this process does (tsx registers its loader per thread).
  const entry = new URL('./processor-thread.ts', import.meta.url).href;
  const boot = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); })`;
  const worker = new Worker(boot, { eval: true, workerData: { stateDir: join(rt.stateDir, 'processor') } });
  let stopping = false;
  await new Promise<void>((resolve, reject) => {
    worker.on('message', (m: ProcessorMessage) => {
      if (m.type === 'ready') resolve();
      else if (m.type === 'failed') reject(new Error(`inbox processor failed to start: ${m.message}`));
      else {
        metrics.committed.inc(m.committed);
        for (const [vendor, outcome, n] of m.processed) metrics.processed.inc({ vendor, outcome }, n);
      }
    });
    worker.on('error', reject);
    worker.on('exit', (code) => {
      if (stopping) return;
      rt.logger.error({ code }, 'inbox processor thread stopped; exiting');
      process.exit(1);
    });
  });
  rt.onClose(async () => {
    stopping = true;
    worker.postMessage('stop');
    await new Promise((r) => worker.once('exit', r));
  });
}

let publicUrl: string | undefined;
// The edge reads generic endpoints' and SendGrid accounts' secrets from the store; without it those
// routes answer 503 while the others (secrets from the environment) go on, so /readyz says
// `degraded` rather than taking the whole edge out of a load balancer.
const degraded: Record<string, ReadinessCheck> = {};
if (edge) {
  const links = await openLinks(rt);
  rt.onClose(() => links.close());
  const store = createSecretStore(env);
  rt.onClose(() => store.close?.());
  degraded.secret_store = () => store.health();
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
mountOpsRoutes(opsApp, { metrics: rt.metrics, checks: rt.checks, degraded });
const ops = await listen(opsApp, env.INGESTER_OPS_PORT, env.INGESTER_OPS_HOST);
rt.onClose(() => ops.close());

if (publicUrl) rt.logger.info({ url: publicUrl, ops: ops.url, role: env.INGESTER_ROLE }, 'webhook ingester listening');
else rt.logger.info({ ops: ops.url, role: env.INGESTER_ROLE }, 'webhook ingester processing the inbox');

