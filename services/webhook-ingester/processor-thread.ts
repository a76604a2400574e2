import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { parseEnv } from '../../shared/config.ts';
import { openLinks } from '../../shared/links.ts';
import { createRuntime, type Runtime } from '../../shared/runtime.ts';
import { openDeliveryLog, openEntityVersions, stateTopicsFor } from './deliveries.ts';
import { SERVICE } from './edge.ts';
import { ingesterEnv, type IngesterEnv } from './env.ts';
import { startProcessor, type ProcessorMetrics } from './processor.ts';

/** What the processor thread tells the thread that serves /metrics and /readyz. */
export type ProcessorMessage =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'counts'; committed: number; processed: [vendor: string, outcome: string, n: number][] };

/**
 * The inbox processor of one ingester process (processor.ts) with its Kafka clients and tables.
 * `onCounts` receives what it committed, for the process's metrics.
 */
export async function runProcessor(env: IngesterEnv, metrics: ProcessorMetrics, rt?: Runtime): Promise<Runtime> {
  const runtime = rt ?? (await createRuntime(SERVICE, env, { instanceId: env.INGESTER_INSTANCE_ID }));
  const links = await openLinks(runtime);
  runtime.onClose(() => links.close());
  const state = stateTopicsFor(env.IONFLUX_INBOX_TOPIC);
  const deliveries = await openDeliveryLog(runtime, env.WEBHOOK_DEDUPE_HOURS * 3600_000, state.deliveries);
  runtime.onClose(() => deliveries.close());
  const versions = await openEntityVersions(runtime, undefined, state.versions);
  runtime.onClose(() => versions.close());
  const sub = await startProcessor({ bus: runtime.bus, codec: runtime.codec, logger: runtime.logger, links, deliveries, versions, metrics, dedupeWindowMs: env.WEBHOOK_DEDUPE_HOURS * 3600_000, inboxTopic: env.IONFLUX_INBOX_TOPIC, fetch: { minBytes: env.INGESTER_PROCESSOR_FETCH_MIN_BYTES, maxWaitMs: env.INGESTER_PROCESSOR_FETCH_MAX_WAIT_MS } });
  runtime.onClose(() => sub.stop());
  return runtime;
}

// As a worker thread of main.ts (INGESTER_ROLE=all): the edge keeps the main thread's event loop
// to itself, and the processor's batches run on another core. State lives in its own directory.
if (!isMainThread && parentPort) {
  const port = parentPort;
  const send = (m: ProcessorMessage) => port.postMessage(m);
  const processed = new Map<string, number>();
  const metrics: ProcessorMetrics = {
    processed: { inc: ({ vendor, outcome }, n = 1) => void processed.set(`${vendor} ${outcome}`, (processed.get(`${vendor} ${outcome}`) ?? 0) + n) },
    committed: {
      inc: (n) => {
        send({ type: 'counts', committed: n, processed: [...processed].map(([k, c]) => [...(k.split(' ') as [string, string]), c]) });
        processed.clear();
      },
    },
  };
  const env = parseEnv(ingesterEnv, { ...process.env, IONFLUX_STATE_DIR: (workerData as { stateDir: string }).stateDir });
  // setpriority(2) on Linux takes a thread id: /proc/thread-self names this thread's.
  if (env.INGESTER_PROCESSOR_NICE && process.platform === 'linux') setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), env.INGESTER_PROCESSOR_NICE);
  try {
    const rt = await runProcessor(env, metrics);
    port.on('message', (m) => {
      if (m === 'stop') void rt.close().finally(() => port.close());
    });
    send({ type: 'ready' });
  } catch (e) {
    send({ type: 'failed', message: (e as Error).message });
  }
}
