import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { KafkaBus, readerGroupPrefix } from '../../shared/bus/kafka/bus.ts';
import { createKafka } from '../../shared/bus/kafka/client.ts';
import type { Bus, IncomingRecord } from '../../shared/bus/types.ts';
import { createEventCodec, type EventCodec } from '../../shared/events/codec.ts';
import { createRegistry } from '../../shared/events/registry.ts';
import { createLogger, type Logger } from '../../shared/logger.ts';
import { createVaultSecretStore } from '../../shared/secrets/vault-store.ts';
import { connectGrants } from '../../shared/security/connect-grant.ts';
import { infraEnv } from '../global-setup.ts';

export { infraEnv };

/** A short unique id for topics, groups and workspaces of one test. */
export const uid = (prefix = 't') => `${prefix}${randomUUID().replace(/-/g, '').slice(0, 12)}`;

const stateDirs: string[] = [];
// A process that exits normally (a bench using these helpers) removes its directories. Vitest ends
// its test workers without an 'exit' event, so under vitest they go into the test run's folder
// (IONFLUX_TEST_TMP, created by tests/global-setup.ts), which is removed when the run ends.
process.once('exit', () => stateDirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/**
 * A state directory (IONFLUX_STATE_DIR) for one service process a test starts: kept across that
 * process's restarts, removed when the test run ends, never under the clone's `.ionflux/`.
 */
export function testStateDir(): string {
  const dir = testTmpDir('ionflux-test-state-');
  stateDirs.push(dir);
  return dir;
}

/** A new folder in the test run's folder (IONFLUX_TEST_TMP, removed when the run ends), else in the OS temp folder. */
export function testTmpDir(prefix: string): string {
  return mkdtempSync(join(process.env.IONFLUX_TEST_TMP ?? tmpdir(), prefix));
}

/** A logger whose lines are kept in memory, so tests can grep them for secrets. */
export function capturingLogger(service = 'test'): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  return { logger: createLogger({ service, level: 'debug', destination }), lines };
}

/** Real Kafka, registry and codec for one test file; `close` releases everything it opened. */
export async function realInfra(service = 'test'): Promise<{
  bus: KafkaBus;
  codec: EventCodec;
  logger: Logger;
  lines: string[];
  registryUrl: string;
  close: () => Promise<void>;
}> {
  const env = infraEnv();
  const { logger, lines } = capturingLogger(service);
  const bus = new KafkaBus({ kafka: createKafka({ brokers: env.brokers, auth: env.auth, clientId: `test-${service}`, logger }), logger, readerGroupPrefix: readerGroupPrefix(env.auth) });
  const codec = await createEventCodec(createRegistry(env.registryUrl));
  return { bus, codec, logger, lines, registryUrl: env.registryUrl, close: () => bus.close() };
}

/**
 * Everything in `topic` right now (up to its high watermarks), waiting first until it holds at
 * least `atLeast` records or `timeoutMs` passed. Exact: tests can assert "exactly one". Without
 * `atLeast` it does not wait: to show that nothing more came, first wait until the writer is done
 * (an ingester's `drained()`, a command's outcome).
 */
export async function readAll(bus: Bus, topic: string, opts: { atLeast: number; timeoutMs?: number } | { atLeast?: undefined; timeoutMs?: never } = {}): Promise<IncomingRecord[]> {
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  const atLeast = opts.atLeast ?? 0;
  for (;;) {
    // Offsets count transaction markers too: cheap to poll, and never fewer than the records.
    const held = (await bus.offsets(topic)).reduce((n, e) => n + Number(e.high) - Number(e.low), 0);
    if (held >= atLeast || Date.now() > deadline) {
      const records = await bus.readToEnd(topic);
      if (records.length >= atLeast || Date.now() > deadline) return records;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A connect link's `grant` as the hub issues it (what `ionflux connect shopify|tiktok` prints), signed with the admin's view of the approval key. */
export async function connectGrant(connector: 'shopify' | 'tiktok', workspace: string): Promise<string> {
  const env = infraEnv();
  return connectGrants(createVaultSecretStore({ addr: env.vaultAddr, token: env.vaultToken, mount: 'secret' }), connector).issue(workspace);
}

/** The cookies a response set, as the Cookie header a browser sends back with its next request. */
export function cookiesOf(res: Response): Record<string, string> {
  const cookies = res.headers.getSetCookie().map((c) => c.split(';')[0]!).filter((c) => !c.endsWith('='));
  return cookies.length ? { cookie: cookies.join('; ') } : {};
}
