import { describe, expect, it } from 'vitest';
import type { OutgoingRecord } from '../../../shared/bus/types.ts';
import { fromInboxRecord } from '../../../shared/ingest/inbox.ts';
import { createLogger } from '../../../shared/logger.ts';
import { parseAllowlist } from '../../../shared/net/allowlist.ts';
import { configureOutbound } from '../../../shared/net/outbound.ts';
import { startShopifySimulator, type SimOptions } from '../../../tests/simulators/shopify/index.ts';
import { iso } from '../../../tests/simulators/shopify/state.ts';
import { createAdminApi } from '../api/admin.ts';
import { createShopify, installSdkFetch } from '../api/sdk.ts';
import { CostThrottle } from '../api/throttle.ts';
import type { SyncState, RunCheckpoint } from '../state/sync-state.ts';
import { entitySpecs, type EntityName } from './entities.ts';
import { keys } from '../state/sync-state.ts';
import { runBulkSync } from './bulk.ts';
import { pollDelivery, versionTag } from './inbox.ts';
import { advance, coversWatermark, finishRun, pageFirst, runPagedSync, type SyncDeps } from './run.ts';

const c = (over: Partial<RunCheckpoint> = {}): RunCheckpoint => ({ kind: 'run', entity: 'orders', mode: 'pages', cursor: null, count: 0, pages: 0, started_at: 0, updated_at: 0, ...over });
const p = (id: string, at: string | null) => ({ topic: 'orders/updated', entity: 'orders', orderingKey: id, updatedAt: at, body: {} });

describe('advance', () => {
  it('keeps the newest version and the entity versions seen at exactly it', () => {
    const tag = (id: string) => versionTag(p(id, null));
    expect(advance(c(), [p('1', '2026-01-01T00:00:01Z'), p('2', '2026-01-01T00:00:02Z'), p('3', '2026-01-01T00:00:02Z')])).toEqual({ max_updated_at: '2026-01-01T00:00:02Z', newest_ids: [tag('2'), tag('3')] });
    expect(advance(c({ max_updated_at: '2026-01-01T00:00:02Z', newest_ids: [tag('2')] }), [p('4', '2026-01-01T00:00:02Z')])).toEqual({ max_updated_at: '2026-01-01T00:00:02Z', newest_ids: [tag('2'), tag('4')] });
    expect(advance(c({ max_updated_at: '2026-01-01T00:00:02Z', newest_ids: [tag('2')] }), [p('5', '2026-01-01T00:00:03Z')])).toEqual({ max_updated_at: '2026-01-01T00:00:03Z', newest_ids: [tag('5')] });
    expect(advance(c(), [p('6', null)])).toEqual({});
  });

  it('tells two versions of an entity within one second apart by their bodies', () => {
    const at = '2026-01-01T00:00:02Z';
    const first = { ...p('7', at), body: { id: 7, note: 'first' } };
    const second = { ...p('7', at), body: { id: 7, note: 'second' } };
    expect(versionTag(first)).not.toBe(versionTag(second));
    expect(versionTag(first)).toBe(versionTag({ ...first, body: { id: 7, note: 'first' } }));
    expect(advance(c(), [first, second]).newest_ids).toEqual([versionTag(first), versionTag(second)]);
    const id = (x: typeof first) => pollDelivery('s.myshopify.com', x, new Date()).headers['x-shopify-webhook-id'];
    expect(id(first)).toMatch(/^poll:orders:7:2026-01-01T00:00:02Z:[0-9a-f]{16}$/);
    expect(id(first)).not.toBe(id(second));
  });
});

describe('finishRun and the poll watermark', () => {
  const W0 = '2026-01-01T10:00:00Z';
  /** finishRun over a state table holding `mark` as orders' watermark (none if undefined); returns the watermark after. */
  async function finish(mark: string | undefined, run: Partial<RunCheckpoint>): Promise<string | undefined> {
    const state = new Map<string, SyncState>(mark ? [['poll:ws1:orders', { kind: 'poll', watermark: mark, ids: ['1'], at: 0 }]] : []);
    const d = {
      state: { get: (k: string) => state.get(k), applyLocal: (k: string, v: SyncState | undefined) => void (v ? state.set(k, v) : state.delete(k)) },
      bus: { publishAtomic: async () => {} },
    } as unknown as SyncDeps;
    await finishRun(d, 'ws1', 'cmd-1', 'orders', c({ max_updated_at: '2026-01-01T12:00:00Z', newest_ids: ['9'], ...run }), true);
    const after = state.get('poll:ws1:orders');
    return after?.kind === 'poll' ? after.watermark : undefined;
  }

  it('moves after a run without since, or since at or before the watermark', async () => {
    expect(await finish(W0, {})).toBe('2026-01-01T12:00:00Z');
    expect(await finish(W0, { since: '2026-01-01T09:00:00.000Z' })).toBe('2026-01-01T12:00:00Z');
    expect(await finish(W0, { since: '2026-01-01T10:00:00.000Z' })).toBe('2026-01-01T12:00:00Z');
    expect(await finish(undefined, {})).toBe('2026-01-01T12:00:00Z');
  });

  it('stays after a run since a time past the watermark, or when there is none', async () => {
    expect(await finish(W0, { since: '2026-01-01T11:00:00.000Z' })).toBe(W0);
    // Half a second past the watermark: compared as times, not as strings ('.' sorts before 'Z').
    expect(await finish(W0, { since: '2026-01-01T10:00:00.500Z' })).toBe(W0);
    expect(await finish(undefined, { since: '2026-01-01T09:00:00.000Z' })).toBeUndefined();
  });

  it('coversWatermark compares times; with no watermark only a run without since covers it', () => {
    expect(coversWatermark(undefined, undefined)).toBe(true);
    expect(coversWatermark(undefined, W0)).toBe(true);
    expect(coversWatermark(W0, W0)).toBe(true);
    expect(coversWatermark('2026-01-01T10:00:01.000Z', W0)).toBe(false);
    expect(coversWatermark(W0, undefined)).toBe(false);
    expect(coversWatermark(W0, '')).toBe(false);
  });
});

describe('runPagedSync against the Shopify simulator', () => {
  /** A simulator whose bucket refills at once (no pacing waits), the SDK pointed at it, and a paged sync of one of its shops. */
  async function simulated(o: SimOptions = {}) {
    const sim = await startShopifySimulator({ restoreRate: 1e6, ...o });
    configureOutbound(parseAllowlist('127.0.0.1'));
    installSdkFetch(sim.url);
    const shopify = createShopify({ apiKey: sim.apiKey, apiSecret: sim.apiSecret, scopes: ['read_products'], apiVersion: '2026-07', publicBaseUrl: 'http://127.0.0.1:1' }, createLogger({ service: 'test', level: 'silent' }));
    const api = createAdminApi({ shopify: () => shopify, throttle: new CostThrottle(), sleep: async () => {} });
    /** Deps of a sync of one of the simulator's shops: the inbox records it appended, its state. */
    function deps(shop: string, pageSize = 50) {
      const state = new Map<string, SyncState>();
      const inbox: OutgoingRecord[] = [];
      const token = sim.accessToken(shop);
      const d = {
        api, pageSize, inboxTopic: 'inbox', logger: createLogger({ service: 'test', level: 'silent' }),
        tokens: { withToken: (_ws: string, fn: (shop: string, token: string) => Promise<unknown>) => fn(shop, token) },
        bus: { publishAtomic: async (records: OutgoingRecord[]) => void inbox.push(...records.filter((r) => r.topic === 'inbox')) },
        state: { get: (k: string) => state.get(k), applyLocal: (k: string, v: SyncState | undefined) => void (v ? state.set(k, v) : state.delete(k)) },
      } as unknown as SyncDeps;
      return { d, state, inbox };
    }
    /** A sync of `entity` from its first page; the inbox keys it appended. */
    async function sync(shop: string, entity: EntityName, pageSize: number) {
      const { d, inbox } = deps(shop, pageSize);
      return { summary: await runPagedSync(d, { ws: 'ws1', runId: `cmd-${entity}`, entity }, new AbortController().signal), appended: inbox.map((r) => String(r.key)) };
    }
    return { sim, sync, deps };
  }

  it('asks each entity for as many per page as fit Shopify\'s single-query limit (at most the page size), and reads every one once', async () => {
    const { sim, sync } = await simulated();
    try {
      const shop = sim.addShop(undefined, { products: 45, orders: 7, customers: 3, inventory: 31 });
      const runs = { products: [45, 45, 2], orders: [7, 7, 3], customers: [3, 3, 1], inventory: [31, 62, 2] } as const;
      for (const [entity, [count, appended, pages]] of Object.entries(runs) as [EntityName, readonly number[]][]) {
        const r = await sync(shop.domain, entity, 50);
        expect(r.summary, entity).toMatchObject({ count, pages });
        expect(new Set(r.appended).size, entity).toBe(appended);
      }
      const asked = sim.requests.filter((x) => x.shop === shop.domain && x.root !== null);
      expect(asked.map((x) => [x.root, x.variables?.first, x.cost?.requested])).toEqual([
        ...Array(2).fill(['products', 43, 2 + 43 * entitySpecs.products.nodeCost]),
        ...Array(3).fill(['orders', 3, 2 + 3 * entitySpecs.orders.nodeCost]),
        ['customers', 50, 52],
        ...Array(2).fill(['inventoryItems', 30, 2 + 30 * entitySpecs.inventory.nodeCost]),
      ]);
      expect(Math.max(...asked.map((x) => x.cost!.requested))).toBeLessThanOrEqual(1000);
      expect(pageFirst(entitySpecs.orders, 2)).toBe(2);
    } finally {
      await sim.close();
    }
  });

  it('a page Shopify refuses as too costly is read again from the same cursor, half as large, and the run goes on at that size', async () => {
    // A shop whose prices run higher than the defaults the hub reckons with: 3 orders (770 points) are refused.
    const { sim, sync } = await simulated({ singleQueryMaxCost: 600 });
    try {
      const shop = sim.addShop(undefined, { orders: 4 });
      const r = await sync(shop.domain, 'orders', 50);
      expect(r.summary).toMatchObject({ count: 4, pages: 4 });
      expect(r.appended.sort()).toEqual(shop.orders.map((o) => `shopify:${shop.domain}:orders:${o.id}`).sort());
      const asked = sim.requests.filter((x) => x.shop === shop.domain && x.root === 'orders');
      expect(asked.map((x) => x.variables?.first)).toEqual([3, 1, 1, 1, 1]);
      expect(asked[0]!.variables?.after).toBeNull();
      expect(asked[1]!.variables?.after).toBeNull();
      expect(new Set(asked.slice(1).map((x) => x.variables?.after)).size).toBe(4);
    } finally {
      await sim.close();
    }
  });

  it('a second change within the watermark\'s second is polled in; the version already appended is not', async () => {
    const { sim, deps } = await simulated();
    try {
      const shop = sim.addShop(undefined, { orders: 2 });
      const { d, state, inbox } = deps(shop.domain);
      const order = shop.orders[1]!;
      const poll = async () => {
        const mark = state.get(keys.poll('ws1', 'orders'));
        inbox.length = 0;
        await runPagedSync(d, { ws: 'ws1', runId: 'poll-orders', entity: 'orders', ...(mark?.kind === 'poll' ? { since: mark.watermark, seenAtSince: mark.ids ?? [] } : {}) }, new AbortController().signal);
        return inbox.map((x) => ({ id: fromInboxRecord(x as never)!.headers['x-shopify-webhook-id']!, note: (JSON.parse(String(x.value)) as { note: string | null }).note }));
      };
      expect(await poll()).toHaveLength(2);
      // Changed again in the second its last version has (Shopify's updated_at has whole seconds).
      order.note = 'second change, same second';
      const again = await poll();
      expect(again.map((x) => x.note)).toEqual(['second change, same second']);
      expect(again[0]!.id.startsWith(`poll:orders:${order.id}:${order.updatedAt}:`)).toBe(true);
      // A quiet shop: nothing new, nothing appended.
      expect(await poll()).toEqual([]);
    } finally {
      await sim.close();
    }
  });

  it('a bulk sync puts every child under its parent although Shopify (API 2026-01 and later) lists them apart', async () => {
    const { sim, deps } = await simulated();
    try {
      const shop = sim.addShop(undefined, { products: 4 });
      const { d, inbox } = deps(shop.domain);
      const r = await runBulkSync(d, { pollMs: 20, timeoutMs: 10_000 }, { ws: 'ws1', runId: 'bulk-1', entity: 'products' }, new AbortController().signal);
      expect(r.count).toBe(4);
      const variants = inbox.map((x) => (JSON.parse(String(x.value)) as { variants?: unknown[] }).variants?.length);
      expect(variants).toEqual(shop.products.map((p) => p.variants.length));
    } finally {
      await sim.close();
    }
  });

  it('a bulk run moves the watermark no further than its operation\'s createdAt: a change made while it ran, missing from its file, is polled next', async () => {
    const { sim, deps } = await simulated({ bulkDelayMs: 60_000 });
    try {
      const shop = sim.addShop(undefined, { products: 3 });
      const { d, state, inbox } = deps(shop.domain);
      const run = runBulkSync(d, { pollMs: 20, timeoutMs: 10_000 }, { ws: 'ws1', runId: 'full-products', entity: 'products' }, new AbortController().signal);
      await expect.poll(() => shop.bulk[0]?.status).toBe('RUNNING');
      // An operation that began 10 s ago: it read the first product, which changed 5 s ago (after
      // it was read: the file keeps the old version); the last changed just now, before it was read.
      const op = shop.bulk[0]!;
      op.createdAt = iso(Date.now() - 10_000);
      const [first, , last] = shop.products.map((p) => p);
      op.read!(1);
      first!.title = 'changed while the operation ran';
      first!.updatedAt = iso(Date.now() - 5000);
      last!.updatedAt = iso();
      op.finish!();
      await expect(run).resolves.toMatchObject({ count: 3 });
      const mark = state.get(keys.poll('ws1', 'products'));
      expect(mark).toMatchObject({ kind: 'poll', watermark: op.createdAt });
      expect(inbox.map((x) => (JSON.parse(String(x.value)) as { title: string }).title)).not.toContain('changed while the operation ran');

      // The next poll from that watermark reads the change the file missed.
      inbox.length = 0;
      if (mark?.kind !== 'poll') throw new Error('no watermark');
      await runPagedSync(d, { ws: 'ws1', runId: 'poll-products', entity: 'products', since: mark.watermark, seenAtSince: mark.ids ?? [] }, new AbortController().signal);
      expect(inbox.map((x) => (JSON.parse(String(x.value)) as { title: string }).title)).toContain('changed while the operation ran');
    } finally {
      await sim.close();
    }
  });

  it('a bulk run handed over stops after the batch it recorded; the next owner appends the rest from the same operation', async () => {
    const { sim, deps } = await simulated();
    try {
      const shop = sim.addShop(undefined, { products: 5 });
      const { d, state, inbox } = deps(shop.domain);
      const handover = new AbortController();
      // The partition goes to another worker while the first batch is being recorded.
      d.onProgress = () => handover.abort(new Error('handed over'));
      const run = { ws: 'ws1', runId: 'cmd-bulk', entity: 'products' as const };
      await expect(runBulkSync(d, { pollMs: 20, timeoutMs: 10_000, batch: 2 }, run, new AbortController().signal, handover.signal)).rejects.toThrow('handed over');
      expect(inbox).toHaveLength(2);
      expect(state.get(keys.run('ws1', 'cmd-bulk'))).toMatchObject({ count: 2, bulk_id: expect.any(String) });

      // The next owner (the command redelivered) goes on from the checkpoint: no second operation.
      d.onProgress = undefined;
      await expect(runBulkSync(d, { pollMs: 20, timeoutMs: 10_000, batch: 2 }, run, new AbortController().signal, new AbortController().signal)).resolves.toMatchObject({ count: 5, resumed: true });
      expect(new Set(inbox.map((x) => String(x.key))).size).toBe(5);
      expect(inbox).toHaveLength(5);
      expect(sim.count('bulkOperationRunQuery')).toBe(1);
    } finally {
      await sim.close();
    }
  });

  it('a bulk run handed over while its operation runs stops waiting; the next owner waits for the same operation', async () => {
    const { sim, deps } = await simulated({ bulkDelayMs: 60_000 });
    try {
      const shop = sim.addShop(undefined, { products: 2 });
      const { d, state, inbox } = deps(shop.domain);
      const handover = new AbortController();
      const run = { ws: 'ws1', runId: 'cmd-bulk', entity: 'products' as const };
      const first = runBulkSync(d, { pollMs: 60_000, timeoutMs: 600_000 }, run, new AbortController().signal, handover.signal);
      await expect.poll(() => state.get(keys.run('ws1', 'cmd-bulk'))).toMatchObject({ bulk_id: expect.any(String) });
      handover.abort(new Error('handed over'));
      await expect(first).rejects.toThrow('handed over');
      shop.bulk[0]!.finish!();
      await expect(runBulkSync(d, { pollMs: 20, timeoutMs: 10_000 }, run, new AbortController().signal)).resolves.toMatchObject({ count: 2, resumed: true });
      expect(inbox).toHaveLength(2);
      expect(sim.count('bulkOperationRunQuery')).toBe(1);
    } finally {
      await sim.close();
    }
  });

  it('a bulk result is read as it arrives: customers (no children) are appended batch by batch before the file has all come', async () => {
    const { sim, deps } = await simulated();
    try {
      const shop = sim.addShop(undefined, { customers: 5 });
      const { d, inbox } = deps(shop.domain);
      const download = sim.holdBulkResult(3);
      const run = runBulkSync(d, { pollMs: 20, timeoutMs: 10_000, batch: 2 }, { ws: 'ws1', runId: 'cmd-customers', entity: 'customers' }, new AbortController().signal);
      // The first batch is appended while the rest of the file is still on its way.
      await expect.poll(() => inbox.length).toBe(2);
      download.release();
      await expect(run).resolves.toMatchObject({ count: 5 });
      expect(new Set(inbox.map((x) => String(x.key))).size).toBe(5);
    } finally {
      await sim.close();
    }
  });

  it('gives up a bulk operation Shopify ended without a result, with its checkpoint: the next run starts another', async () => {
    const { sim, deps } = await simulated({ bulkDelayMs: 60_000 });
    try {
      const shop = sim.addShop(undefined, { products: 2 });
      const { d, state } = deps(shop.domain);
      const run = () => runBulkSync(d, { pollMs: 20, timeoutMs: 10_000 }, { ws: 'ws1', runId: 'full-products', entity: 'products' }, new AbortController().signal);
      const first = run();
      await expect.poll(() => shop.bulk.length).toBe(1);
      shop.bulk[0]!.status = 'FAILED';
      await expect(first).rejects.toMatchObject({ code: 'bulk_operation_failed' });
      expect(state.get(keys.run('ws1', 'full-products'))).toBeUndefined();
      const second = run();
      await expect.poll(() => shop.bulk.length).toBe(2);
      Object.assign(shop.bulk[1]!, { status: 'COMPLETED', objectCount: 0, url: null });
      await expect(second).resolves.toMatchObject({ count: 0 });
    } finally {
      await sim.close();
    }
  });
});
