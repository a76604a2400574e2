import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ActionContext, ActionHandler } from '../../../shared/connectors/types.ts';
import { HubError } from '../../../shared/errors.ts';
import { createLogger } from '../../../shared/logger.ts';
import { parseAllowlist } from '../../../shared/net/allowlist.ts';
import { configureOutbound } from '../../../shared/net/outbound.ts';
import { startShopifySimulator, type ShopifySimulator } from '../../../tests/simulators/shopify/index.ts';
import { createAdminApi } from '../api/admin.ts';
import { createShopify, installSdkFetch } from '../api/sdk.ts';
import { CostThrottle } from '../api/throttle.ts';
import type { ActionDeps } from './deps.ts';
import { inventoryAdjust, ordersTag } from './writes.ts';

type Answer = (res: ServerResponse, req: IncomingMessage) => void;

const json = (body: unknown): Answer => (res) => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
const status = (code: number): Answer => (res) => void res.writeHead(code, { 'content-type': 'text/plain' }).end('upstream trouble');
/** The request was read whole, then the connection dropped without an answer. */
const reset: Answer = (_res, req) => void req.socket.destroy();
const cost = (available: number) => ({ requestedQueryCost: 10, actualQueryCost: null, throttleStatus: { maximumAvailable: 1000, currentlyAvailable: available, restoreRate: 50 } });
const throttled = json({ errors: [{ message: 'Throttled', extensions: { code: 'THROTTLED' } }], extensions: { cost: cost(0) } });
const adjusted = json({ data: { inventoryAdjustQuantities: { inventoryAdjustmentGroup: { reason: 'correction', changes: [{ name: 'available', delta: 5 }] }, userErrors: [] } }, extensions: { cost: cost(990) } });
const tagged = json({ data: { tagsAdd: { node: { id: 'gid://shopify/Order/1' }, userErrors: [] } }, extensions: { cost: cost(990) } });
/** Shopify's INTERNAL_SERVER_ERROR: HTTP 200, in place of a 500. */
const internal = json({ errors: [{ message: 'Internal error. Looks like something went wrong on our end.\nRequest ID: 1b355a21-7117-44c5-8d8b-8948082f40a8 (include this in support requests).', extensions: { code: 'INTERNAL_SERVER_ERROR', requestId: '1b355a21-7117-44c5-8d8b-8948082f40a8' } }] });

/** A handler run as the command core runs it (shared/commands/execute.ts): again while its error is retryable, 3 attempts at most. */
async function asCore(h: ActionHandler, params: Record<string, unknown>, command = 'cmd-1'): Promise<{ result?: unknown; error?: HubError; attempts: number }> {
  const ctx = { params, workspaceId: 'ws1', agentId: 'agent', idempotencyKey: command, credentials: {}, settings: {}, logger: createLogger({ service: 'test', level: 'silent' }), signal: new AbortController().signal, resumed: false, emit() {}, stage() {} } satisfies ActionContext;
  for (let attempts = 1; ; attempts++) {
    try {
      return { result: await h(ctx), attempts };
    } catch (e) {
      if (!(e instanceof HubError)) throw e;
      if (!e.retryable || attempts >= 3) return { error: e, attempts };
    }
  }
}

describe('Shopify writes against a stand-in GraphQL endpoint', () => {
  let server: Server;
  let base: string;
  let answers: Answer[];
  let sent: string[];
  let bodies: { query: string; variables: { key?: string; input?: { changes: Record<string, unknown>[] } } }[];
  let d: ActionDeps;
  const adjust = { inventory_item_id: '11', location_id: '22', delta: 5, reason: 'correction' };

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (b: Buffer) => (body += b));
      req.on('end', () => {
        bodies.push(JSON.parse(body) as (typeof bodies)[number]);
        sent.push(bodies.at(-1)!.query.match(/^mutation (\w+)/)?.[1] ?? '?');
        (answers.shift() ?? status(500))(res, req);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    configureOutbound(parseAllowlist('127.0.0.1'));
    const shopify = createShopify({ apiKey: 'key', apiSecret: 'secret', scopes: ['write_inventory', 'write_orders'], apiVersion: '2026-07', publicBaseUrl: 'http://127.0.0.1:1' }, createLogger({ service: 'test', level: 'silent' }));
    const api = createAdminApi({ shopify: () => shopify, throttle: new CostThrottle(), sleep: async () => {} });
    d = { api, tokens: { withToken: (_ws: string, fn: (shop: string, token: string) => Promise<unknown>) => fn('acme.myshopify.com', 'shpat_test') } } as unknown as ActionDeps;
  });
  beforeEach(() => {
    installSdkFetch(base);
    answers = [];
    sent = [];
    bodies = [];
  });
  afterAll(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));

  it('inventory.adjust carries an idempotency key named by the command, the same on every attempt: a 502 and a dropped connection are sent again', async () => {
    answers = [status(502), reset, adjusted];
    const r = await asCore(inventoryAdjust(d), adjust);
    expect(r.result).toEqual({ changes: [{ name: 'available', delta: 5 }] });
    expect(r.attempts).toBe(3);
    expect(bodies.map((b) => b.query)).toEqual(Array(3).fill(expect.stringContaining('inventoryAdjustQuantities(input: $input) @idempotent(key: $key)')));
    const keys = bodies.map((b) => b.variables.key);
    expect(new Set(keys).size).toBe(1);
    expect(keys[0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    // Required from 2026-04: null opts out of the compare-and-swap check.
    expect(bodies[0]!.variables.input!.changes[0]).toMatchObject({ delta: 5, changeFromQuantity: null });

    answers = [adjusted, adjusted];
    await asCore(inventoryAdjust(d), adjust, 'cmd-2');
    await asCore(inventoryAdjust(d), adjust, 'cmd-1');
    expect(bodies.slice(3).map((b) => b.variables.key)).toEqual([expect.not.stringMatching(keys[0]!), keys[0]]);
  });

  it('inventory.adjust answered INTERNAL_SERVER_ERROR is sent again with the same key', async () => {
    answers = [internal, adjusted];
    const r = await asCore(inventoryAdjust(d), adjust);
    expect(r.result).toEqual({ changes: [{ name: 'available', delta: 5 }] });
    expect(bodies.map((b) => b.variables.key)).toEqual([bodies[0]!.variables.key, bodies[0]!.variables.key]);
  });

  it('inventory.adjust answered THROTTLED is sent again and succeeds', async () => {
    answers = [throttled, adjusted];
    const r = await asCore(inventoryAdjust(d), adjust);
    expect(r.result).toEqual({ changes: [{ name: 'available', delta: 5 }] });
    expect(sent).toEqual(['InventoryAdjust', 'InventoryAdjust']);
  });

  it('inventory.adjust answered 429 stays retryable and is sent again', async () => {
    answers = [status(429), adjusted];
    const r = await asCore(inventoryAdjust(d), adjust);
    expect(r.result).toEqual({ changes: [{ name: 'available', delta: 5 }] });
    expect(r.attempts).toBe(2);
    expect(sent).toHaveLength(2);
  });

  it('inventory.adjust whose connection is refused stays retryable (vendor_unreachable)', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    installSdkFetch(`http://127.0.0.1:${port}`);
    const r = await asCore(inventoryAdjust(d), adjust);
    expect(r.error).toMatchObject({ code: 'vendor_unreachable', retryable: true });
    expect(r.attempts).toBe(3);
  });

  it('orders.tag (idempotent) answered 502 or dropped keeps its retries', async () => {
    answers = [status(502), reset, tagged];
    const r = await asCore(ordersTag(d), { order_id: '1', tags: ['vip'], remove: false });
    expect(r.result).toEqual({ order_id: '1', added: ['vip'], removed: [] });
    expect(sent).toEqual(['TagsAdd', 'TagsAdd', 'TagsAdd']);
  });

  it('an INTERNAL_SERVER_ERROR answer (HTTP 200) is retryable, like the 500 it stands for', async () => {
    answers = [internal, tagged];
    const r = await asCore(ordersTag(d), { order_id: '1', tags: ['vip'], remove: false });
    expect(r.result).toEqual({ order_id: '1', added: ['vip'], removed: [] });
    expect(sent).toEqual(['TagsAdd', 'TagsAdd']);
    answers = [internal, internal, internal];
    expect((await asCore(ordersTag(d), { order_id: '1', tags: ['vip'], remove: false })).error).toMatchObject({ code: 'shopify_internal_error', retryable: true });
  });
});

describe('inventory.adjust against the Shopify simulator (API version 2026-07)', () => {
  let sim: ShopifySimulator;
  let d: ActionDeps;
  beforeAll(async () => {
    sim = await startShopifySimulator();
    configureOutbound(parseAllowlist('127.0.0.1'));
    installSdkFetch(sim.url);
    const shopify = createShopify({ apiKey: sim.apiKey, apiSecret: sim.apiSecret, scopes: ['write_inventory'], apiVersion: '2026-07', publicBaseUrl: 'http://127.0.0.1:1' }, createLogger({ service: 'test', level: 'silent' }));
    const shop = sim.addShop(undefined, { inventory: 1 });
    const token = sim.accessToken(shop.domain);
    d = { api: createAdminApi({ shopify: () => shopify, throttle: new CostThrottle(), sleep: async () => {} }), tokens: { withToken: (_ws: string, fn: (shop: string, token: string) => Promise<unknown>) => fn(shop.domain, token) } } as unknown as ActionDeps;
  });
  afterAll(() => sim.close());

  it('Shopify applied it and the answer was lost: the retry, under the same key, gets the first result and stock moves once', async () => {
    const shop = [...sim.shops.values()][0]!;
    const item = shop.inventoryItems[0]!;
    const level = item.levels[0]!;
    const before = level.available;
    sim.internalError('inventoryAdjustQuantities', { applied: true });
    const r = await asCore(inventoryAdjust(d), { inventory_item_id: String(item.id), location_id: String(level.locationId), delta: 5, reason: 'correction' });
    expect(r).toMatchObject({ attempts: 2, result: { changes: [{ name: 'available', delta: 5 }, { name: 'on_hand', delta: 5 }] } });
    expect(level.available).toBe(before + 5);
  });
});
