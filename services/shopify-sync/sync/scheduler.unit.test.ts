import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { OwnedPartition } from '../../../shared/bus/types.ts';
import { HubError } from '../../../shared/errors.ts';
import { createLogger } from '../../../shared/logger.ts';
import { parseAllowlist } from '../../../shared/net/allowlist.ts';
import { configureOutbound } from '../../../shared/net/outbound.ts';
import { startShopifySimulator, type ShopifySimulator } from '../../../tests/simulators/shopify/index.ts';
import type { SimShop } from '../../../tests/simulators/shopify/state.ts';
import { createAdminApi } from '../api/admin.ts';
import { createShopify, installSdkFetch } from '../api/sdk.ts';
import { CostThrottle } from '../api/throttle.ts';
import type { Connection } from '../state/connections.ts';
import type { SyncState } from '../state/sync-state.ts';
import type { TokenAccess } from '../tokens/access.ts';
import type { SyncDeps } from './run.ts';
import { createScheduler } from './scheduler.ts';

describe('the scheduler against the Shopify simulator', () => {
  let sim: ShopifySimulator;
  let shop: SimShop;
  let scheduler: ReturnType<typeof createScheduler>;
  /** While set, every call with the workspace's token fails as Shopify's refused refresh does. */
  let refused = false;
  /** What the scheduler logged at info (its polls pausing, stopping). */
  let logged: string[] = [];

  beforeEach(async () => {
    sim = await startShopifySimulator({ restoreRate: 1e6 });
    configureOutbound(parseAllowlist('127.0.0.1'));
    installSdkFetch(sim.url);
    shop = sim.addShop(undefined, { orders: 2 });
    const token = sim.accessToken(shop.domain);
    const shopify = createShopify({ apiKey: sim.apiKey, apiSecret: sim.apiSecret, scopes: [], apiVersion: '2026-07', publicBaseUrl: 'http://127.0.0.1:1' }, createLogger({ service: 'test', level: 'silent' }));
    const state = new Map<string, SyncState>();
    logged = [];
    const logger = createLogger({ service: 'test', level: 'info', destination: new Writable({ write: (chunk, _enc, done) => (logged.push((JSON.parse(String(chunk)) as { msg: string }).msg), done()) }) });
    const tokens = {
      async withToken(_ws: string, fn: (shop: string, token: string) => Promise<unknown>) {
        if (refused) throw new HubError('needs_reauthorization', 'Shopify refused to refresh the token');
        return fn(shop.domain, token);
      },
      refreshIfDue: async () => null,
    } as unknown as TokenAccess;
    const sync = {
      api: createAdminApi({ shopify: () => shopify, throttle: new CostThrottle(), sleep: async () => {} }), tokens, pageSize: 50, inboxTopic: 'inbox', logger: createLogger({ service: 'test', level: 'silent' }),
      bus: { publishAtomic: async () => {} },
      state: { get: (k: string) => state.get(k), applyLocal: (k: string, v: SyncState | undefined) => void (v ? state.set(k, v) : state.delete(k)) },
    } as unknown as SyncDeps;
    // One poll now, the next an hour away: every poll the test sees was started by the scheduler's own decisions.
    scheduler = createScheduler({
      sync, bulk: { pollMs: 20, timeoutMs: 10_000 }, tokens, state: sync.state, logger,
      pollIntervalMs: 3_600_000, fullIntervalMs: 0, refreshMarginMs: 60_000, onCompleted: async () => {},
    });
    refused = false;
  });
  afterEach(async () => {
    scheduler.stopAll();
    await sim.close();
  });

  const connection = (status: Connection['status']): Connection => ({ workspace_id: 'ws1', shop: shop.domain, scope: [], status, issued_at: 1, access_expires_at: 0, installed_at: 1, updated_at: Date.now() });
  const owned = (c: Connection) => ({ partition: 0, records: new Map([['ws1', c]]) }) as unknown as OwnedPartition<Connection>;
  /** Polls of the shop's orders (the last entity a poll reads is inventory: a finished poll has read it). */
  const polls = () => sim.requests.filter((r) => r.root === 'inventoryItems' && r.status === 200).length;

  it('a connection re-authorized after a refused refresh is polled again, without a restart', async () => {
    refused = true;
    scheduler.onAcquired(owned(connection('active')));
    // The poll stops at its first entity: the grant is refused (the token access marks the connection).
    await expect.poll(() => logged.some((m) => m.startsWith('shopify polling paused'))).toBe(true);
    expect(sim.requests).toHaveLength(0);
    scheduler.onChange(0, 'ws1', connection('needs_reauthorization'));
    refused = false;
    scheduler.onChange(0, 'ws1', connection('active'));
    await expect.poll(polls, { timeout: 5000 }).toBe(1);
  });

  it('a connection owned while it needs reauthorization is polled once it is active again', async () => {
    scheduler.onAcquired(owned(connection('needs_reauthorization')));
    // The first poll is due at once (a 0 ms timer, armed before this one): it finds nothing to poll.
    await new Promise((r) => setTimeout(r, 10));
    expect(sim.requests).toHaveLength(0);
    scheduler.onChange(0, 'ws1', connection('active'));
    await expect.poll(polls, { timeout: 5000 }).toBe(1);
  });
});
