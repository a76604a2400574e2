/**
 * The edge's mapping of a delivery alone: Shopify's `map` (parse, schema, ordering key, event) of
 * the bench's 2 KB orders/create body with every header Shopify sends, in a loop; prints the CPU
 * per call (process.cpuUsage) of `BENCH_ROUNDS` rounds of `BENCH_MAPS` calls. For an A/B, run it in
 * a worktree of each version in turn (see inproc.ts).
 *
 *   node --import tsx bench/ingest/map.ts     # BENCH_MAPS=50000 BENCH_ROUNDS=5
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { vendors } from '../../services/webhook-ingester/vendors/index.ts';
import type { RawDelivery } from '../../services/webhook-ingester/vendors/types.ts';

const num = (name: string, fallback: number) => Number(process.env[name] ?? fallback) || fallback;
const MAPS = num('BENCH_MAPS', 50_000);
const ROUNDS = num('BENCH_ROUNDS', 5);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const payloadFile = join(tmpdir(), 'ionflux-inproc-payload.json');
if (!existsSync(payloadFile)) execFileSync(process.execPath, ['--import', 'tsx', join(root, 'bench/ingest/load.ts'), 'payload', join(root, 'tests/helpers/fixtures/shopify/orders-create.json'), payloadFile], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
const body = readFileSync(payloadFile);
const d: RawDelivery = {
  rawBody: body,
  receivedAt: new Date(),
  headers: {
    'content-type': 'application/json',
    'x-shopify-topic': 'orders/create',
    'x-shopify-shop-domain': 'bench-shop.myshopify.com',
    'x-shopify-webhook-id': 'bench-w1',
    'x-shopify-event-id': 'bench-e1',
    'x-shopify-triggered-at': new Date().toISOString(),
    'x-shopify-api-version': '2025-10',
  },
};
const shopify = vendors.shopify!;
const out: number[] = [];
for (let round = -1; round < ROUNDS; round++) {
  const before = process.cpuUsage();
  for (let i = 0; i < MAPS; i++) if (!shopify.map(d).ok) throw new Error('the body did not map');
  const cpu = process.cpuUsage(before);
  if (round >= 0) out.push(Math.round(((cpu.user + cpu.system) / MAPS) * 100) / 100); // round -1 warms up
}
process.stdout.write(`${JSON.stringify({ maps: MAPS, us_per_map: out, best: Math.min(...out) })}\n`);
