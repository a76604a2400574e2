import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VendorError } from '../../../shared/connectors/types.ts';
import { createLogger } from '../../../shared/logger.ts';
import { configureOutbound } from '../../../shared/net/outbound.ts';
import { parseAllowlist } from '../../../shared/net/allowlist.ts';
import { startShopifySimulator, type ShopifySimulator } from '../../../tests/simulators/shopify/index.ts';
import { entitySpecs } from '../sync/entities.ts';
import { createAdminApi } from './admin.ts';
import { createShopify, installSdkFetch, rewriteShopUrl } from './sdk.ts';
import { CostThrottle } from './throttle.ts';

describe('the SDK pointed at the simulator through SHOPIFY_ADMIN_BASE_URL', () => {
  let sim: ShopifySimulator;
  beforeAll(async () => {
    // Shopify's bucket size; a faster restore than the standard 50/s keeps the waits short here.
    sim = await startShopifySimulator({ maximumAvailable: 1000, restoreRate: 500 });
    configureOutbound(parseAllowlist('127.0.0.1'));
    installSdkFetch(sim.url);
  });
  afterAll(() => sim.close());

  it('rewrites only https://<shop>.myshopify.com URLs', () => {
    expect(rewriteShopUrl('https://acme.myshopify.com/admin/api/2026-07/graphql.json', 'http://127.0.0.1:9300/')).toBe('http://127.0.0.1:9300/acme.myshopify.com/admin/api/2026-07/graphql.json');
    expect(rewriteShopUrl('https://storage.googleapis.com/x.jsonl', 'http://127.0.0.1:9300')).toBe('https://storage.googleapis.com/x.jsonl');
    expect(rewriteShopUrl('https://acme.myshopify.com/admin', undefined)).toBe('https://acme.myshopify.com/admin');
  });

  it('refreshes a token and pages with cost pacing, waiting out THROTTLED instead of hammering', async () => {
    const shop = sim.addShop(undefined, { products: 150 });
    const shopify = createShopify({ apiKey: sim.apiKey, apiSecret: sim.apiSecret, scopes: ['read_products'], apiVersion: '2026-07', publicBaseUrl: 'http://127.0.0.1:1' }, createLogger({ service: 'test', level: 'silent' }));
    const slept: number[] = [];
    const api = createAdminApi({ shopify: () => shopify, throttle: new CostThrottle(), sleep: async (ms) => { slept.push(ms); await new Promise((r) => setTimeout(r, ms)); } });
    // No token yet: the simulator answers 401 and the client says so.
    await expect(api.graphql(shop.domain, 'shpat_nope', 'shop.get', 'query Shop { shop { name } }')).rejects.toMatchObject({ code: 'vendor_unauthorized' });
    const authorized = await fetch(`${sim.url}/${shop.domain}/admin/oauth/authorize?client_id=${sim.apiKey}&scope=read_products&redirect_uri=http://127.0.0.1:1/cb&state=s`, { redirect: 'manual' });
    const code = new URL(authorized.headers.get('location')!).searchParams.get('code')!;
    const tokenRes = await fetch(`${sim.url}/${shop.domain}/admin/oauth/access_token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_id: sim.apiKey, client_secret: sim.apiSecret, code, expiring: '1' }) });
    const granted = (await tokenRes.json()) as { access_token: string; refresh_token: string; expires_in: number };
    expect(granted.expires_in).toBeGreaterThan(3000);
    const { session } = await shopify.auth.refreshToken({ shop: shop.domain, refreshToken: granted.refresh_token });
    expect(session.accessToken).not.toBe(granted.access_token);
    expect(session.refreshToken).toBeTruthy();
    expect(sim.tokenIsLive(shop.domain, session.accessToken!)).toBe(true);

    // 652-point pages (50 products x 10 variants) from a 1000-point bucket: the hub waits before the second.
    const query = 'query P($first: Int!, $after: String) { products(first: $first, after: $after) { edges { node { id variants(first: 10) { edges { node { id } } } } } pageInfo { hasNextPage endCursor } } }';
    let after: string | null = null;
    let seen = 0;
    for (let i = 0; i < 3; i++) {
      const { data, cost }: { data: { products: { edges: unknown[]; pageInfo: { endCursor: string } } }; cost?: { requestedQueryCost: number } } = await api.graphql<{ products: { edges: unknown[]; pageInfo: { endCursor: string } } }>(shop.domain, session.accessToken!, 'products.page', query, { first: 50, after });
      seen += data.products.edges.length;
      after = data.products.pageInfo.endCursor;
      expect(cost?.requestedQueryCost).toBe(2 + 50 * 13);
    }
    expect(seen).toBe(150);
    expect(slept.length).toBeGreaterThan(0);
    expect(sim.requests.filter((r) => r.throttled)).toHaveLength(0);

    // Another client of the app emptied the bucket: one THROTTLED answer, a wait of (652 - 0) / 500 s, then the answer.
    slept.length = 0;
    shop.bucket = { available: 0, at: Date.now() };
    await new Promise((r) => setTimeout(r, 1400)); // the hub's estimate is full again; Shopify's is not
    shop.bucket = { available: 0, at: Date.now() };
    await api.graphql(shop.domain, session.accessToken!, 'products.page', query, { first: 50, after: null });
    expect(sim.requests.filter((r) => r.throttled)).toHaveLength(1);
    // The wait the hub chose, in total: the answer's own throttle status may leave it a millisecond
    // short of the cost, which the pacing before the retry then waits out too.
    const waited = slept.reduce((a, b) => a + b, 0);
    expect(waited).toBeGreaterThanOrEqual(1200);
    expect(waited).toBeLessThanOrEqual(1400);
  });

  it("a command's wait of a second or more for the bucket goes to the command core (a retryable 429 with that Retry-After); a shorter one is slept", async () => {
    const shop = sim.addShop(undefined, { products: 50 });
    const token = sim.accessToken(shop.domain);
    const shopify = createShopify({ apiKey: sim.apiKey, apiSecret: sim.apiSecret, scopes: ['read_products'], apiVersion: '2026-07', publicBaseUrl: 'http://127.0.0.1:1' }, createLogger({ service: 'test', level: 'silent' }));
    const slept: number[] = [];
    const api = createAdminApi({ shopify: () => shopify, throttle: new CostThrottle(), sleep: async (ms) => { slept.push(ms); await new Promise((r) => setTimeout(r, ms)); } });
    const query = 'query P($first: Int!) { products(first: $first) { edges { node { id variants(first: 10) { edges { node { id } } } } } } }';
    // Another client emptied the bucket: 652 points at 500/s is 1.3 s to wait.
    shop.bucket = { available: 0, at: Date.now() };
    const e = await api.graphql(shop.domain, token, 'products.page', query, { first: 50 }, undefined, { deferLongWaits: true }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(VendorError);
    expect(e).toMatchObject({ status: 429, retryable: true });
    expect((e as VendorError).retryAfterMs).toBeGreaterThanOrEqual(1000);
    expect(slept).toEqual([]);
    expect(sim.requests.filter((r) => r.shop === shop.domain && r.throttled)).toHaveLength(1);
    // Another query (the hub guesses 100 points before Shopify priced it): 0.2 s at most, slept in place.
    shop.bucket = { available: 0, at: Date.now() };
    await api.graphql(shop.domain, token, 'products.one', query, { first: 1 }, undefined, { deferLongWaits: true });
    expect(slept.length).toBeGreaterThan(0);
    expect(Math.max(...slept)).toBeLessThan(1000);
  });

  const client = (apiVersion: string) => {
    const shopify = createShopify({ apiKey: sim.apiKey, apiSecret: sim.apiSecret, scopes: ['read_orders', 'write_inventory'], apiVersion, publicBaseUrl: 'http://127.0.0.1:1' }, createLogger({ service: 'test', level: 'silent' }));
    return createAdminApi({ shopify: () => shopify, throttle: new CostThrottle(), sleep: async () => {} });
  };

  it('prices every object a query selects and each connection by its first; one over 1000 points is refused before it runs (MAX_COST_EXCEEDED)', async () => {
    const shop = sim.addShop(undefined, { orders: 4 });
    const token = sim.accessToken(shop.domain);
    const api = client('2026-07');
    // An order of the sync's page query, its 50 line items with their price, product and variant: 256 points.
    const { cost } = await api.graphql(shop.domain, token, 'orders.page', entitySpecs.orders.pageQuery, { first: 3 });
    expect(cost).toMatchObject({ requestedQueryCost: 2 + 3 * 256, actualQueryCost: 2 + 3 * (1 + 2 + 1 + 2 + 1 * 5) });
    const available = shop.bucket.available;
    await expect(api.graphql(shop.domain, token, 'orders.page', entitySpecs.orders.pageQuery, { first: 4 })).rejects.toMatchObject({ code: 'shopify_query_too_costly', message: expect.stringContaining('Query cost is 1026, which exceeds the single query max cost limit (1000)') });
    expect(shop.bucket.available).toBeGreaterThanOrEqual(available);
    // Bulk operations are not priced by their inner query: the operation is a mutation.
    const { cost: bulk } = await api.graphql(shop.domain, token, 'bulk.run', 'mutation BulkRun($query: String!) { bulkOperationRunQuery(query: $query) { bulkOperation { id status } userErrors { field message code } } }', { query: entitySpecs.orders.bulkQuery(null) });
    expect(bulk?.requestedQueryCost).toBe(10);
  });

  it('inventoryAdjustQuantities from 2026-04 needs changeFromQuantity and @idempotent; a key seen before answers the first result and moves nothing', async () => {
    const shop = sim.addShop(undefined, { inventory: 1 });
    const token = sim.accessToken(shop.domain);
    const level = shop.inventoryItems[0]!.levels[0]!;
    const change = (extra: Record<string, unknown>) => ({ input: { name: 'available', reason: 'correction', changes: [{ delta: 2, inventoryItemId: `gid://shopify/InventoryItem/${shop.inventoryItems[0]!.id}`, locationId: `gid://shopify/Location/${level.locationId}`, ...extra }] } });
    const plain = 'mutation A($input: InventoryAdjustQuantitiesInput!) { inventoryAdjustQuantities(input: $input) { inventoryAdjustmentGroup { changes { name delta } } userErrors { field message } } }';
    const keyed = 'mutation A($input: InventoryAdjustQuantitiesInput!, $key: String!) { inventoryAdjustQuantities(input: $input) @idempotent(key: $key) { inventoryAdjustmentGroup { changes { name delta } } userErrors { field message } } }';
    const before = level.available;
    const api = client('2026-07');
    await expect(api.graphql(shop.domain, token, 'a', keyed, { ...change({}), key: 'k0' })).rejects.toMatchObject({ code: 'shopify_graphql_error', message: expect.stringContaining('InventoryChangeInput must include the following argument: changeFromQuantity.') });
    await expect(api.graphql(shop.domain, token, 'a', plain, change({ changeFromQuantity: null }))).rejects.toMatchObject({ code: 'shopify_graphql_error', message: expect.stringContaining('The @idempotent directive is required for this mutation but was not provided.') });
    expect(level.available).toBe(before);
    const first = await api.graphql(shop.domain, token, 'a', keyed, { ...change({ changeFromQuantity: null }), key: 'k1' });
    const again = await api.graphql(shop.domain, token, 'a', keyed, { ...change({ changeFromQuantity: null }), key: 'k1' });
    expect(again.data).toEqual(first.data);
    expect(level.available).toBe(before + 2);
    await api.graphql(shop.domain, token, 'a', keyed, { ...change({ changeFromQuantity: null }), key: 'k2' });
    expect(level.available).toBe(before + 4);
    // Before 2026-04 both are optional.
    await client('2026-01').graphql(shop.domain, token, 'a', plain, change({}));
    expect(level.available).toBe(before + 6);
  });
});
