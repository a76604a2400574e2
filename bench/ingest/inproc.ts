/**
 * The ingester's own CPU per delivery, without Kafka or HTTP: the edge's `accept` (verify, map,
 * answer, append to the inbox) and the inbox processor (with its delivery-marker and entity-version
 * tables on disk, as in production) on the in-memory bus, in one process. Signed Shopify
 * orders/create deliveries of the bench's 2 KB body (bench/ingest/load.ts payload), another order
 * and webhook id each, `INPROC_CONCURRENCY` at a time. Prints the process's CPU (all threads,
 * process.cpuUsage: LMDB's write thread included) per delivery of the measured part, after a warm-up.
 *
 *   node --import tsx bench/ingest/inproc.ts            # one run, JSON on stdout
 *   INPROC_DELIVERIES=6000 INPROC_WARMUP=1500 INPROC_CONCURRENCY=32
 *
 * An A/B of two versions of the code: a worktree of the other commit (`git worktree add --detach
 * /tmp/old <commit>`, node_modules linked in), this file copied into its bench/ingest/, and the two
 * run in turn several times (bench/ingest/inproc-ab.sh). The in-memory bus is not Kafka (it hands the
 * processor and the tables smaller batches): what it shows is the hub's own logic, not kafkajs.
 */
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { MemoryBus } from '../../shared/bus/memory.ts';
import { topics } from '../../shared/bus/topics.ts';
import type { EventCodec } from '../../shared/events/codec.ts';
import type { PlatformEvent } from '../../shared/events/platform-event.ts';
import { linkKey, openLinks } from '../../shared/links.ts';
import { createLogger } from '../../shared/logger.ts';
import { openDeliveryLog, openEntityVersions } from '../../services/webhook-ingester/deliveries.ts';
import { accept, RecentAnswers, type EdgeDeps } from '../../services/webhook-ingester/edge.ts';
import { createIngesterMetrics } from '../../services/webhook-ingester/metrics.ts';
import { startProcessor } from '../../services/webhook-ingester/processor.ts';
import { vendors } from '../../services/webhook-ingester/vendors/index.ts';
import type { RawDelivery } from '../../services/webhook-ingester/vendors/types.ts';

const num = (name: string, fallback: number) => Number(process.env[name] ?? fallback) || fallback;
const DELIVERIES = num('INPROC_DELIVERIES', 6000);
const WARMUP = num('INPROC_WARMUP', 1500);
const CONCURRENCY = num('INPROC_CONCURRENCY', 32);
const SECRET = 'bench-inproc-secret';
const SHOP = 'bench-shop.myshopify.com';
const WS = 'ws-bench';
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

// The bench's body (bench/ingest/load.ts `payload`): made once, kept in the temp dir.
const payloadFile = join(tmpdir(), 'ionflux-inproc-payload.json');
if (!existsSync(payloadFile)) execFileSync(process.execPath, ['--import', 'tsx', join(root, 'bench/ingest/load.ts'), 'payload', join(root, 'tests/helpers/fixtures/shopify/orders-create.json'), payloadFile], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
const body = readFileSync(payloadFile);
const text = body.toString('latin1');
const idAt = [/"id":(\d{18})[,}]/.exec(text), /"admin_graphql_api_id":"gid:\/\/shopify\/Order\/(\d{18})"/.exec(text)].map((m) => m!.index + m![0].indexOf(m![1]!));

let seq = 0;
const prefix = `inproc-${Date.now().toString(36)}`;
/** The next delivery as node's http hands it over (lower-cased header names): its own order and webhook id. */
function nextDelivery(): RawDelivery {
  const n = seq++;
  const b = Buffer.from(body);
  for (const at of idAt) b.write(String(800_000_000_000_000_000n + BigInt(n)), at, 'latin1');
  return {
    rawBody: b,
    receivedAt: new Date(),
    headers: {
      'content-type': 'application/json',
      'x-shopify-hmac-sha256': createHmac('sha256', SECRET).update(b).digest('base64'),
      'x-shopify-topic': 'orders/create',
      'x-shopify-shop-domain': SHOP,
      'x-shopify-webhook-id': `${prefix}-w${n.toString(36)}`,
      'x-shopify-event-id': `${prefix}-e${n.toString(36)}`,
      'x-shopify-triggered-at': new Date().toISOString(),
      'x-shopify-api-version': '2025-10',
    },
  };
}

// The registry's wire format is not what this measures: JSON stands in for Avro.
const codec: EventCodec = { schemaId: 1, encode: async (e) => Buffer.from(JSON.stringify(e)), decode: async (b) => JSON.parse(b.toString()) as PlatformEvent };
const logger = createLogger({ service: 'bench-inproc', level: 'warn' });
const bus = new MemoryBus(6);
const stateDir = mkdtempSync(join(tmpdir(), 'ionflux-inproc-'));
await bus.publish({ topic: topics.state('links'), key: linkKey('shopify', SHOP), value: JSON.stringify({ workspaceId: WS, linkedAt: new Date().toISOString() }) });
const links = await openLinks({ bus, logger });
const host = { bus, logger, stateDir };
const [deliveries, versions] = await Promise.all([openDeliveryLog(host, 3600_000), openEntityVersions(host)]);
const metrics = createIngesterMetrics(new Registry());
const processor = await startProcessor({ bus, codec, logger, links, deliveries, versions, metrics, dedupeWindowMs: 3600_000 });
const deps: EdgeDeps = { bus, logger, links, secretsFor: async () => ({ secret: SECRET }), metrics, publishTimeoutMs: 4000, recent: new RecentAnswers() };
const shopify = vendors.shopify!;

/** `n` deliveries, CONCURRENCY at a time, then until the processor and the tables' disk writes are done. */
async function drive(n: number): Promise<number> {
  let left = n;
  let ok = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (left-- > 0) if ((await accept(deps, shopify, nextDelivery())).status === 200) ok++;
    }),
  );
  await bus.transformed();
  // The tables hand what they read to LMDB after at most 200 ms (table.ts FLUSH_MS); a sweep's settle waits for the commit.
  await new Promise((r) => setTimeout(r, 300));
  await Promise.all([deliveries.sweep(), versions.sweep()]);
  return ok;
}

await drive(WARMUP);
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
const ok = await drive(DELIVERIES);
const cpu = process.cpuUsage(cpu0);
const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
const published = bus.records(topics.event('shopify', WS, 'orders', 'created')).length;
if (ok !== DELIVERIES || published !== WARMUP + DELIVERIES) throw new Error(`expected ${DELIVERIES} accepted and ${WARMUP + DELIVERIES} events, got ${ok} and ${published}`);
process.stdout.write(`${JSON.stringify({ deliveries: DELIVERIES, cpu_us_per_delivery: Math.round((cpu.user + cpu.system) / DELIVERIES), user_us: Math.round(cpu.user / DELIVERIES), system_us: Math.round(cpu.system / DELIVERIES), wall_ms: Math.round(wallMs) })}\n`);

await processor.stop();
await Promise.all([deliveries.close(), versions.close(), links.close()]);
rmSync(stateDir, { recursive: true, force: true });
