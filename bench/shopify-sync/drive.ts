/**
 * bench/shopify-sync: products per second synced by shopify-sync from the Shopify simulator into
 * the ingest inbox (one Kafka transaction per page with its checkpoint), measured three ways:
 *
 *   throttled: `products.sync` in cursor pages against the standard throttle (1,000 points,
 *              50 restored per second). Each page (BENCH_PAGE_SIZE, capped so its requested cost
 *              stays under Shopify's single-query limit: 43 products of 23 points with variants
 *              first 10, 991 points) is priced by the simulator as Shopify documents (actual: the
 *              objects returned); the budget then allows 50 / (actual cost per product) products
 *              per second. Reported: the steady rate (pages after the first
 *              30 s, when the initial full bucket is spent) and its fraction of that allowance.
 *   unthrottled: the same sync with the simulator's restore rate lifted: what the hub itself does.
 *   bulk:      `products.sync` through Bulk Operations (one bulkOperationRunQuery, the JSONL read
 *              and appended in batches of 250): products/s over the command's duration, and over
 *              the time after the operation completed (the hub's own share).
 *
 * The bench runs shopify-sync under its own service name, groups and inbox topic, with polling
 * off, and removes its topics, groups, connection records and tokens at the end.
 * Env: BENCH_PAGED_PRODUCTS (1000), BENCH_UNTHROTTLED_PRODUCTS (10000), BENCH_BULK_PRODUCTS (20000), BENCH_PAGE_SIZE (50).
 * Writes reports/bench-shopify.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createKafkaBus } from '../../shared/bus/kafka/bus.ts';
import { createKafka } from '../../shared/bus/kafka/client.ts';
import { createHubClient } from '../../shared/commands/client.ts';
import { baseEnv, kafkaAuth, parseEnv } from '../../shared/config.ts';
import { createLogger } from '../../shared/logger.ts';
import { secretPaths } from '../../shared/secrets/store.ts';
import { createVaultSecretStore } from '../../shared/secrets/vault-store.ts';
import { CONNECTIONS_TOPIC } from '../../services/shopify-sync/state/connections.ts';
import { entitySpecs } from '../../services/shopify-sync/sync/entities.ts';
import { pageFirst } from '../../services/shopify-sync/sync/run.ts';
import { browseInstall, simEnv, startShopifySync, type RunningShopifySync } from '../../tests/helpers/shopify.ts';
import { startShopifySimulator, type ShopifySimulator } from '../../tests/simulators/shopify/index.ts';

const PAGED = Number(process.env.BENCH_PAGED_PRODUCTS ?? 1000);
const BULK = Number(process.env.BENCH_BULK_PRODUCTS ?? 20000);
const UNTHROTTLED = Number(process.env.BENCH_UNTHROTTLED_PRODUCTS ?? 10000);
const PAGE = Number(process.env.BENCH_PAGE_SIZE ?? 50);
/** Products a page holds: the setting, or fewer where that many would cost over Shopify's single-query limit. */
const PER_PAGE = pageFirst(entitySpecs.products, PAGE);
const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const registryUrl = process.env.SCHEMA_REGISTRY_URL;
const vault = createVaultSecretStore({ addr: process.env.VAULT_ADDR ?? 'http://127.0.0.1:8200', token: process.env.VAULT_TOKEN ?? 'ionflux-dev-root', mount: 'secret' });
const RUN = `b${Date.now().toString(36)}`;
const SERVICE = `shopifybench${RUN}`;
const GROUP = `ionflux-shopifybench-${RUN}`;
const INBOX = `ionflux.inbox.shopifybench${RUN}`;
const log = (m: string) => process.stderr.write(`[bench-shopify] ${m}\n`);
const quiet = createLogger({ service: 'bench-shopify', level: 'silent' });
const auth = kafkaAuth(parseEnv(baseEnv));
const bus = createKafkaBus({ brokers, auth, clientId: 'bench-shopify', logger: quiet });
const kafka = createKafka({ brokers, auth, clientId: 'bench-shopify-admin', logger: quiet });
const workspaces: string[] = [];
const running: RunningShopifySync[] = [];
process.on('exit', () => running.forEach((r) => void r.kill().catch(() => undefined)));
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => void cleanup().finally(() => process.exit(130)));

const round = (n: number, d = 1) => Math.round(n * 10 ** d) / 10 ** d;

async function hub(sim: ShopifySimulator): Promise<RunningShopifySync> {
  const sync = await startShopifySync({
    ...simEnv(sim), SHOPIFY_SERVICE: SERVICE, SHOPIFY_SYNC_GROUP: GROUP, COMMAND_GROUP_PREFIX: GROUP, IONFLUX_INBOX_TOPIC: INBOX,
    SHOPIFY_POLL_INTERVAL_MS: '0', SHOPIFY_FULL_SYNC_INTERVAL_MS: '0', SHOPIFY_PAGE_SIZE: String(PAGE), SHOPIFY_BULK_POLL_MS: '250',
    SHOPIFY_WEBHOOK_URL: 'https://hub.example.com/webhooks/shopify', LOG_LEVEL: 'info', SHOPIFY_ACTION_TIMEOUT_MS: String(3600_000),
  });
  running.push(sync);
  return sync;
}

async function installShop(sim: ShopifySimulator, sync: RunningShopifySync, products: number, phase: string): Promise<{ ws: string; shop: string }> {
  const ws = `shbench${RUN}${phase}`;
  workspaces.push(ws);
  const shop = sim.addShop(`bench-${RUN}-${phase}.myshopify.com`, { products, orders: 0, customers: 0, inventory: 0 });
  const r = await browseInstall(`${sync.url}/shopify/install?shop=${shop.domain}&workspace=${ws}`);
  if (r.status !== 200) throw new Error(`install failed: ${r.status} ${r.body}`);
  return { ws, shop: shop.domain };
}

async function syncProducts(ws: string, mode: 'pages' | 'bulk'): Promise<{ count: number; duration_ms: number }> {
  const client = await createHubClient({ brokers, registryUrl });
  try {
    const out = await client.send({ workspace_id: ws, agent_id: 'bench', service: SERVICE, action: 'products.sync', params: { mode } }, { timeoutMs: 3600_000 });
    if (out.status !== 'succeeded') throw new Error(`products.sync ${mode}: ${JSON.stringify(out.error)}`);
    return out.result as { count: number; duration_ms: number };
  } finally {
    await client.close();
  }
}

async function cleanup(): Promise<void> {
  for (const r of running.splice(0)) await r.stop().catch(() => undefined);
  const admin = kafka.admin();
  await admin.connect();
  try {
    const benchWs = (await vault.list('workspaces/')).map((w) => w.replace(/\/$/, '')).filter((w) => w.startsWith('shbench'));
    const all = [...new Set([...workspaces, ...benchWs])];
    if (all.length) await bus.publishBatch(all.map((ws) => ({ topic: CONNECTIONS_TOPIC, key: ws, value: null })));
    for (const ws of all) await vault.delete(secretPaths.workspace(ws, 'shopify')).catch(() => undefined);
    const mine = (await admin.listTopics()).filter((t) => t.includes('.ws_shbench') || t.includes('shopifybench'));
    if (mine.length) await admin.deleteTopics({ topics: mine });
    const groups = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith('ionflux-shopifybench-') || g.startsWith('bench-shopify'));
    if (groups.length) await admin.deleteGroups(groups).catch(() => undefined);
    if (all.length || mine.length || groups.length) log(`removed ${all.length} bench installations, ${mine.length} topics, ${groups.length} groups`);
  } finally {
    await admin.disconnect();
  }
}

async function paged(restoreRate: number, phase: string, products: number): Promise<Record<string, number>> {
  const sim = await startShopifySimulator({ maximumAvailable: 1000, restoreRate });
  const sync = await hub(sim);
  const { ws, shop } = await installShop(sim, sync, products, phase);
  const t0 = Date.now();
  const r = await syncProducts(ws, 'pages');
  const pages = sim.requests.filter((x) => x.shop === shop && x.root === 'products' && x.at >= t0 && !x.throttled);
  const throttled = sim.requests.filter((x) => x.shop === shop && x.throttled).length;
  const actualPerPage = pages.reduce((n, p) => n + (p.cost?.actual ?? 0), 0) / pages.length;
  const requestedPerPage = pages[0]?.cost?.requested ?? 0;
  const costPerProduct = actualPerPage / PER_PAGE;
  const allowed = restoreRate / costPerProduct;
  // Steady state: pages answered after the first 30 s (the initial 1,000-point bucket is spent by then).
  const steady = pages.filter((p) => p.at >= pages[0]!.at + 30_000);
  const steadyRate = steady.length > 1 ? ((steady.length - 1) * PER_PAGE) / ((steady.at(-1)!.at - steady[0]!.at) / 1000) : NaN;
  const out = {
    products: r.count, pages: pages.length, duration_s: round(r.duration_ms / 1000), products_per_s: round(r.count / (r.duration_ms / 1000)),
    requested_cost_per_page: requestedPerPage, actual_cost_per_page: round(actualPerPage), restore_rate: restoreRate, allowed_products_per_s: round(allowed),
    steady_products_per_s: round(steadyRate), steady_fraction_of_allowed: round(steadyRate / allowed, 3), answered_throttled: throttled,
  };
  await sync.stop();
  running.length = 0;
  await sim.close();
  return out;
}

async function bulk(): Promise<Record<string, number>> {
  const sim = await startShopifySimulator({ bulkDelayMs: 1000 });
  const sync = await hub(sim);
  const { ws, shop } = await installShop(sim, sync, BULK, 'k');
  const t0 = Date.now();
  const r = await syncProducts(ws, 'bulk');
  const done = Date.now();
  const s = sim.shops.get(shop)!;
  const op = s.bulk.at(-1)!;
  const completedAt = Date.parse(op.completedAt!);
  const fileRead = sim.requests.filter((x) => x.shop === shop && x.root === 'node' && x.at >= t0).at(-1)!.at;
  const out = {
    products: r.count, jsonl_lines: op.lines.length, duration_s: round(r.duration_ms / 1000), products_per_s: round(r.count / (r.duration_ms / 1000)),
    simulator_operation_s: round((completedAt - Date.parse(op.createdAt)) / 1000, 1),
    after_completed_s: round((done - fileRead) / 1000), products_per_s_after_completed: round(r.count / ((done - fileRead) / 1000)),
  };
  await sync.stop();
  running.length = 0;
  await sim.close();
  return out;
}

async function main(): Promise<void> {
  await cleanup(); // what an interrupted run left
  const report: Record<string, unknown> = { page_size: PER_PAGE, bucket: 1000 };
  log(`throttled: ${PAGED} products in pages of ${PER_PAGE} under 1,000 points / 50 per s`);
  report.throttled = await paged(50, 't', PAGED);
  log(`  ${JSON.stringify(report.throttled)}`);
  log(`unthrottled: ${UNTHROTTLED} products, restore rate lifted`);
  report.unthrottled = await paged(1e9, 'u', UNTHROTTLED);
  log(`  ${JSON.stringify(report.unthrottled)}`);
  log(`bulk: ${BULK} products through Bulk Operations`);
  report.bulk = await bulk();
  log(`  ${JSON.stringify(report.bulk)}`);
  mkdirSync('reports', { recursive: true });
  writeFileSync('reports/bench-shopify.json', `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

try {
  await main();
} finally {
  await cleanup();
  await bus.close();
}
