import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KafkaTable } from '../../../shared/bus/table/table.ts';
import type { Bus, OutgoingRecord } from '../../../shared/bus/types.ts';
import type { WorkspaceConnector } from '../../../shared/commands/state.ts';
import { createLogger } from '../../../shared/logger.ts';
import { parseAllowlist } from '../../../shared/net/allowlist.ts';
import { configureOutbound } from '../../../shared/net/outbound.ts';
import type { SecretRecord, SecretStore } from '../../../shared/secrets/index.ts';
import { startShopifySimulator, type ShopifySimulator } from '../../../tests/simulators/shopify/index.ts';
import { TokenRefused } from '../api/admin.ts';
import { createShopify, installSdkFetch } from '../api/sdk.ts';
import type { Connection } from '../state/connections.ts';
import { createTokenAccess } from './access.ts';
import { readToken, writeToken } from './vault.ts';

describe('token refresh against the Shopify simulator', () => {
  let sim: ShopifySimulator;
  beforeAll(async () => {
    sim = await startShopifySimulator();
    configureOutbound(parseAllowlist('127.0.0.1'));
    installSdkFetch(sim.url);
  });
  afterAll(() => sim.close());

  /** A workspace installed on a new shop, its token due for a refresh; what the refreshes published and slept. */
  async function installed() {
    const shop = sim.addShop();
    const access = sim.accessToken(shop.domain);
    const grant = sim.grants.find((g) => g.accessToken === access)!;
    const secrets = new Map<string, SecretRecord>();
    const store = {
      kind: 'file',
      get: async (path: string) => secrets.get(path) ?? null,
      put: async (path: string, value: Record<string, string>) => void secrets.set(path, { value, metadata: { createdAt: '', updatedAt: '' } }),
    } as unknown as SecretStore;
    // Due: it expires within the refresh margin.
    await writeToken(store, 'ws1', { access_token: access, refresh_token: grant.refreshToken, shop: shop.domain, scope: [], issued_at: 1, access_expires_at: Date.now() + 1000, refresh_expires_at: grant.refreshExpiresAt });
    const connection: Connection = { workspace_id: 'ws1', shop: shop.domain, scope: [], status: 'active', issued_at: 1, access_expires_at: Date.now() + 1000, installed_at: 1, updated_at: 1 };
    const held = new Map([['ws1', connection]]);
    const wsRows = new Map<string, WorkspaceConnector>([['ws1:shopify', { settings: {}, connection: 'connected', updated_at: new Date(1).toISOString() }]]);
    const published: Connection[] = [];
    const slept: number[] = [];
    // The workspace's marking producer: the next `fenced` transactions are fenced by a later holder (`onFence` runs first).
    const marking = { fenced: 0, onFence: undefined as (() => Promise<void>) | undefined };
    const markProducer = () => ({
      connect: async () => undefined,
      publishAtomic: async (records: OutgoingRecord[]) => {
        if (marking.fenced > 0) {
          marking.fenced--;
          await marking.onFence?.();
          throw new Error('Producer fenced (INVALID_PRODUCER_EPOCH)');
        }
        for (const r of records) published.push(JSON.parse(String(r.value)) as Connection);
      },
      close: async () => undefined,
    });
    const tokens = createTokenAccess({
      shopify: () => createShopify({ apiKey: sim.apiKey, apiSecret: sim.apiSecret, scopes: [], apiVersion: '2026-07', publicBaseUrl: 'http://127.0.0.1:1' }, createLogger({ service: 'test', level: 'silent' })),
      store,
      bus: { publish: async (r: OutgoingRecord) => void published.push(JSON.parse(String(r.value)) as Connection) } as unknown as Bus,
      connections: { get: (k: string) => held.get(k), applyLocal: (k: string, v: Connection) => void held.set(k, v) } as unknown as KafkaTable<Connection>,
      markProducer,
      workspaceConnectors: { get: (k: string) => wsRows.get(k), record: (k: string, v: unknown) => ({ topic: 'ws', key: k, value: Buffer.from(JSON.stringify(v)) }), applyLocal: (k: string, v: WorkspaceConnector) => void wsRows.set(k, v) } as unknown as KafkaTable<WorkspaceConnector>,
      installUrl: async () => 'https://hub.example/shopify/install',
      marginMs: 5 * 60_000,
      sleep: async (ms) => void slept.push(ms),
    });
    return { shop, store, tokens, held, published, slept, marking, wsRows };
  }

  it('a refresh Shopify rate-limits (429) waits its Retry-After and tries again; the connection stays active', async () => {
    const { shop, store, tokens, held, published, slept } = await installed();
    sim.rateLimitRefresh(shop.domain, { times: 2, retryAfterS: 2 });
    const refreshed = await tokens.refreshIfDue('ws1');
    expect(slept).toEqual([2000, 2000]);
    expect(sim.tokenIsLive(shop.domain, refreshed!.access_token)).toBe(true);
    expect((await readToken(store, 'ws1'))!.access_token).toBe(refreshed!.access_token);
    expect(held.get('ws1')!.status).toBe('active');
    expect(published.map((c) => c.status)).toEqual(['active']);
  });

  it('still rate-limited after its attempts: a retryable failure, and no reauthorization asked for', async () => {
    const { shop, tokens, held, published } = await installed();
    sim.rateLimitRefresh(shop.domain, { times: 10, retryAfterS: 1 });
    await expect(tokens.refreshIfDue('ws1')).rejects.toMatchObject({ code: 'vendor_rate_limited', retryable: true });
    expect(held.get('ws1')!.status).toBe('active');
    expect(published).toEqual([]);
    sim.rateLimitRefresh(shop.domain, { times: 0 });
    // The grant was never refused: the next try refreshes.
    expect(await tokens.refreshIfDue('ws1')).toMatchObject({ shop: shop.domain });
  });

  it('a refresh token Shopify refuses (400 invalid_grant) marks the connection needs_reauthorization', async () => {
    const { shop, tokens, held, published } = await installed();
    for (const g of sim.grants) if (g.shop === shop.domain) g.revoked = true;
    await expect(tokens.refreshIfDue('ws1')).rejects.toMatchObject({ code: 'needs_reauthorization' });
    expect(held.get('ws1')).toMatchObject({ status: 'needs_reauthorization', reason: 'Shopify refused the refresh (HTTP 400)' });
    expect(published.map((c) => c.status)).toEqual(['needs_reauthorization']);
  });

  it('a refused refresh racing a reinstall that stored its token after the last check: the reinstall stands, nothing is marked', async () => {
    const { shop, store, tokens, held, published, marking } = await installed();
    for (const g of sim.grants) if (g.shop === shop.domain) g.revoked = true;
    const reinstalled = { access_token: 'shpat_reinstalled', refresh_token: 'shprt_reinstalled', shop: shop.domain, scope: [], issued_at: Date.now(), access_expires_at: Date.now() + 3600_000, refresh_expires_at: Date.now() + 86_400_000 };
    // The reinstall stores its token and fences the marking between the refusal's read and its commit.
    marking.fenced = 1;
    marking.onFence = () => writeToken(store, 'ws1', reinstalled);
    expect(await tokens.refreshIfDue('ws1')).toMatchObject({ access_token: 'shpat_reinstalled' });
    expect(published).toEqual([]);
    expect(held.get('ws1')!.status).toBe('active');
  });

  it("a command's token refused even once refreshed: the command core's mark sets the connection record and its state needs_reauth", async () => {
    const { tokens, held, wsRows } = await installed();
    await expect(tokens.withToken('ws1', async (shop) => Promise.reject(new TokenRefused(shop)))).rejects.toBeInstanceOf(TokenRefused);
    await tokens.markRefused('ws1', 'Shopify refused the access token', new Date(1).toISOString());
    expect(held.get('ws1')).toMatchObject({ status: 'needs_reauthorization', reason: 'Shopify refused the access token' });
    expect(wsRows.get('ws1:shopify')).toMatchObject({ connection: 'needs_reauth', connection_detail: 'Shopify refused the access token' });
  });

  it("a command's refusal racing a reinstall that stored its token after the mark's check: the reinstall stands, nothing is marked", async () => {
    const { shop, store, tokens, held, published, marking, wsRows } = await installed();
    await expect(tokens.withToken('ws1', async (s) => Promise.reject(new TokenRefused(s)))).rejects.toBeInstanceOf(TokenRefused);
    published.length = 0;
    const reinstalled = { access_token: 'shpat_reinstalled', refresh_token: 'shprt_reinstalled', shop: shop.domain, scope: [], issued_at: Date.now() + 1, access_expires_at: Date.now() + 3600_000, refresh_expires_at: Date.now() + 86_400_000 };
    marking.fenced = 1;
    marking.onFence = () => writeToken(store, 'ws1', reinstalled);
    await tokens.markRefused('ws1', 'Shopify refused the access token', new Date(1).toISOString());
    expect(published).toEqual([]);
    expect(held.get('ws1')!.status).toBe('active');
    expect(wsRows.get('ws1:shopify')!.connection).toBe('connected');
  });

  it('a refresh whose answer was lost is tried again with the refresh token still stored, and goes through (Shopify keeps it until its replacement is used)', async () => {
    const { shop, store, tokens, held, published } = await installed();
    const before = (await readToken(store, 'ws1'))!;
    // A stand-in in front of Shopify that passes the first refresh on and drops its answer.
    let dropped = 0;
    const proxy = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c)).on('end', () => {
        void (async () => {
          const up = await fetch(`${sim.url}${req.url}`, { method: req.method, headers: { 'content-type': req.headers['content-type'] ?? 'application/json' }, body: Buffer.concat(chunks) });
          const body = Buffer.from(await up.arrayBuffer());
          if (dropped++ === 0) return void res.socket?.destroy();
          res.writeHead(up.status, { 'content-type': up.headers.get('content-type') ?? 'application/json' }).end(body);
        })();
      });
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
    installSdkFetch(`http://127.0.0.1:${(proxy.address() as AddressInfo).port}`);
    try {
      await expect(tokens.refreshIfDue('ws1')).rejects.toMatchObject({ code: 'vendor_unreachable', retryable: true });
      expect((await readToken(store, 'ws1'))!.refresh_token).toBe(before.refresh_token);
      // The owner's timer tries again with what is stored: Shopify answers the pair it issued.
      const refreshed = (await tokens.refreshIfDue('ws1'))!;
      expect(refreshed.refresh_token).not.toBe(before.refresh_token);
      expect(sim.tokenIsLive(shop.domain, refreshed.access_token)).toBe(true);
      expect((await readToken(store, 'ws1'))!.access_token).toBe(refreshed.access_token);
      expect(held.get('ws1')!.status).toBe('active');
      expect(published.map((c) => c.status)).toEqual(['active']);
      // Using the replacement retires the refresh token it replaced.
      await writeToken(store, 'ws1', { ...refreshed, access_expires_at: Date.now() + 1000 });
      expect(await tokens.refreshIfDue('ws1')).toMatchObject({ shop: shop.domain });
      const retired = await fetch(`${sim.url}/${shop.domain}/admin/oauth/access_token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_id: sim.apiKey, client_secret: sim.apiSecret, grant_type: 'refresh_token', refresh_token: before.refresh_token }) });
      expect(retired.status).toBe(400);
    } finally {
      installSdkFetch(sim.url);
      await new Promise<void>((r) => proxy.close(() => r()));
    }
  });
});
