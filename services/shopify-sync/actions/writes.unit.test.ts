import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ActionContext, ActionHandler } from '../../../shared/connectors/types.ts';
import { HubError } from '../../../shared/errors.ts';
import { createLogger } from '../../../shared/logger.ts';
import { parseAllowlist } from '../../../shared/net/allowlist.ts';
import { configureOutbound } from '../../../shared/net/outbound.ts';
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
/** The request was read whole and never answered. */
const hang: Answer = () => {};
const cost = (available: number) => ({ requestedQueryCost: 10, actualQueryCost: null, throttleStatus: { maximumAvailable: 1000, currentlyAvailable: available, restoreRate: 50 } });
const throttled = json({ errors: [{ message: 'Throttled', extensions: { code: 'THROTTLED' } }], extensions: { cost: cost(0) } });
const adjusted = json({ data: { inventoryAdjustQuantities: { inventoryAdjustmentGroup: { reason: 'correction', changes: [{ name: 'available', delta: 5 }] }, userErrors: [] } }, extensions: { cost: cost(990) } });
const tagged = json({ data: { tagsAdd: { node: { id: 'gid://shopify/Order/1' }, userErrors: [] } }, extensions: { cost: cost(990) } });

/** A handler run as the command core runs it (shared/commands/execute.ts): again while its error is retryable, 3 attempts at most. */
async function asCore(h: ActionHandler, params: Record<string, unknown>, signal = new AbortController().signal): Promise<{ result?: unknown; error?: HubError; attempts: number }> {
  const ctx = { params, workspaceId: 'ws1', agentId: 'agent', idempotencyKey: 'cmd-1', credentials: {}, settings: {}, logger: createLogger({ service: 'test', level: 'silent' }), signal, resumed: false, emit() {}, stage() {} } satisfies ActionContext;
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
  let d: ActionDeps;
  const adjust = { inventory_item_id: '11', location_id: '22', delta: 5, reason: 'correction' };

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (b: Buffer) => (body += b));
      req.on('end', () => {
        sent.push((JSON.parse(body) as { query: string }).query.match(/^mutation (\w+)/)?.[1] ?? '?');
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
  });
  afterAll(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));

  it('inventory.adjust answered 502 fails outcome_unknown, not retryable, after one request', async () => {
    answers = [status(502), adjusted];
    const r = await asCore(inventoryAdjust(d), adjust);
    expect(r.error).toMatchObject({ code: 'outcome_unknown', retryable: false });
    expect(r.error!.message).toMatch(/HTTP 502.*result is unknown/);
    expect(r.attempts).toBe(1);
    expect(sent).toEqual(['InventoryAdjust']);
  });

  it('inventory.adjust whose connection drops after sending fails outcome_unknown after one request', async () => {
    answers = [reset, adjusted];
    const r = await asCore(inventoryAdjust(d), adjust);
    expect(r.error).toMatchObject({ code: 'outcome_unknown', retryable: false });
    expect(sent).toEqual(['InventoryAdjust']);
  });

  it('inventory.adjust unanswered by its deadline fails outcome_unknown after one request', async () => {
    answers = [hang, adjusted];
    const r = await asCore(inventoryAdjust(d), adjust, AbortSignal.timeout(200));
    expect(r.error).toMatchObject({ code: 'outcome_unknown', retryable: false });
    expect(sent).toEqual(['InventoryAdjust']);
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
});
