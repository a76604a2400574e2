import { createServer } from 'node:net';
import { createKafka } from '../../shared/bus/kafka/client.ts';
import { createLogger } from '../../shared/logger.ts';
import { processorGroup } from '../../services/webhook-ingester/processor.ts';
import { infraEnv, testStateDir, uid } from './infra.ts';
import { spawnService } from './service.ts';

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export interface RunningIngester {
  /** The public port: webhook routes only. */
  url: string;
  port: number;
  /** The ops port: /healthz, /readyz, /metrics. */
  opsUrl: string;
  pid(): number;
  /** Every line the process printed (pino JSON), for grepping. */
  output: string[];
  post(path: string, body: Buffer | string, headers: Record<string, string>): Promise<{ status: number; body: Record<string, unknown>; ms: number }>;
  /**
   * Resolves once its inbox processor group has committed everything on its inbox (offsets on the
   * broker, which move in the transaction of the events), so whatever was answered 2xx is out.
   */
  drained(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
  kill(): Promise<void>;
  restart(): Promise<void>;
}

/** Runs services/webhook-ingester/main.ts as its own process, the way `make up` does. */
export async function startIngester(env: Record<string, string>): Promise<RunningIngester> {
  const port = Number(env.INGESTER_PORT ?? (await freePort()));
  const opsPort = Number(env.INGESTER_OPS_PORT ?? (await freePort()));
  // An inbox of its own (so its processor's group is its own too), unless the test shares one between ingesters.
  const fullEnv = { ...process.env, INGESTER_INSTANCE_ID: uid('i'), IONFLUX_STATE_DIR: testStateDir(), IONFLUX_INBOX_TOPIC: `ionflux.inbox.${uid('t')}`, LOG_LEVEL: 'info', ...env, INGESTER_PORT: String(port), INGESTER_OPS_PORT: String(opsPort) };
  const service = await spawnService({ name: 'webhook-ingester', env: fullEnv, readyUrl: `http://127.0.0.1:${opsPort}/readyz`, keepOutputOnRestart: true });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    opsUrl: `http://127.0.0.1:${opsPort}`,
    pid: service.pid,
    output: service.output,
    async post(path, body, headers) {
      const started = performance.now();
      const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', body: typeof body === 'string' ? body : new Uint8Array(body), headers });
      const text = await res.text();
      let parsed: Record<string, unknown> = {};
      try {
        parsed = JSON.parse(text) as Record<string, unknown>;
      } catch {
        parsed = { text };
      }
      return { status: res.status, body: parsed, ms: performance.now() - started };
    },
    async drained(timeoutMs = 15_000) {
      // Not the process's own counters: after a restart it may commit again what an earlier
      // process appended, and "committed >= appended" then held before its latest delivery was out.
      const inbox = fullEnv.IONFLUX_INBOX_TOPIC;
      const { brokers, auth } = infraEnv();
      const admin = createKafka({ brokers, auth, clientId: uid('drained'), logger: createLogger({ service: 'test-drained', level: 'silent' }) }).admin();
      await admin.connect();
      try {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const [ends, [committed]] = await Promise.all([admin.fetchTopicOffsets(inbox), admin.fetchOffsets({ groupId: processorGroup(inbox), topics: [inbox] })]);
          const at = new Map(committed!.partitions.map((p) => [p.partition, BigInt(p.offset)]));
          if (ends.every((e) => BigInt(e.high) === 0n || (at.get(e.partition) ?? -1n) >= BigInt(e.high))) return;
          if (Date.now() > deadline) throw new Error('the ingester did not process its inbox in time');
          await new Promise((r) => setTimeout(r, 50));
        }
      } finally {
        await admin.disconnect();
      }
    },
    stop: service.stop,
    kill: service.kill,
    restart: service.start,
  };
}
