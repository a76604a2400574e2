import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DLQ_HEADERS } from '../../shared/bus/dead-letter.ts';
import { MemoryBus } from '../../shared/bus/memory.ts';
import { topics } from '../../shared/bus/topics.ts';
import type { EventCodec } from '../../shared/events/codec.ts';
import type { PlatformEvent } from '../../shared/events/platform-event.ts';
import { linkKey, openLinks, type LinkTable } from '../../shared/links.ts';
import { createLogger } from '../../shared/logger.ts';
import { loadFixture, shopifyHeaders, toRawDelivery } from '../../tests/helpers/sign.ts';
import { DELIVERIES_TOPIC, openDeliveryLog, openEntityVersions } from './deliveries.ts';
import { ingest, STALE_HEADER, type IngestDeps } from './ingest.ts';
import { createIngesterMetrics } from './metrics.ts';
import { vendors } from './vendors/index.ts';

const SECRET = 'shpss_unit-test-secret';
const SHOP = 'unit-shop.myshopify.com';
const WS = 'ws-unit';
const ORDER = loadFixture('shopify', 'orders-create');
const shopify = vendors.shopify!;
// The registry's wire format is not what these tests are about: JSON stands in for Avro.
const codec: EventCodec = { schemaId: 1, encode: async (e) => Buffer.from(JSON.stringify(e)), decode: async (b) => JSON.parse(b.toString()) as PlatformEvent };
const logger = createLogger({ service: 'ingest-unit', level: 'silent' });
const ordersTopic = topics.event('shopify', WS, 'orders', 'created');

describe('ingest on the in-memory bus', () => {
  let bus: MemoryBus;
  let stateDir: string;
  let deps: IngestDeps;
  let links: LinkTable;
  const closers: (() => Promise<void>)[] = [];

  async function open(): Promise<IngestDeps> {
    const host = { bus, logger, stateDir };
    const [deliveries, versions] = await Promise.all([openDeliveryLog(host, 3600_000), openEntityVersions(host)]);
    closers.push(() => deliveries.close(), () => versions.close());
    return { bus, codec, logger, links, deliveries, versions, secretsFor: async () => ({ secret: SECRET }), metrics: createIngesterMetrics(new Registry()), publishTimeoutMs: 1000, dedupeWindowMs: 3600_000 };
  }
  const post = (body: Buffer, o: { webhookId?: string; topic?: string } = {}) =>
    ingest(deps, shopify, toRawDelivery(body, shopifyHeaders({ topic: o.topic ?? 'orders/create', shop: SHOP, secret: SECRET, body, webhookId: o.webhookId })));

  beforeEach(async () => {
    bus = new MemoryBus();
    stateDir = mkdtempSync(join(tmpdir(), 'ionflux-ingest-unit-'));
    await bus.publish({ topic: topics.state('links'), key: linkKey('shopify', SHOP), value: JSON.stringify({ workspaceId: WS, linkedAt: new Date().toISOString() }) });
    links = await openLinks({ bus, logger });
    closers.push(() => links.close());
    deps = await open();
  });
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('publishes a verified delivery as one event on its workspace topic, with its delivery marker in the same unit', async () => {
    const res = await post(ORDER);
    expect(res).toMatchObject({ status: 200, body: { status: 'accepted' } });
    const [record, ...more] = bus.records(ordersTopic);
    expect(more).toEqual([]);
    const event = await codec.decode(record!.value!);
    expect(event).toMatchObject({ event_type: 'shopify.orders.created', workspace_id: WS });
    expect((res.body.event_ids as string[])[0]).toBe(event.event_id);
    expect(bus.records(DELIVERIES_TOPIC)).toHaveLength(1);
  });

  it('answers a repeated delivery as a duplicate, concurrent copies included, and publishes it once', async () => {
    const webhookId = randomUUID();
    const answers = await Promise.all(Array.from({ length: 5 }, () => post(ORDER, { webhookId })));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);
    expect(answers.filter((a) => a.body.status === 'accepted')).toHaveLength(1);
    expect(new Set(answers.map((a) => (a.body.event_ids as string[])[0])).size).toBe(1);
    expect(bus.records(ordersTopic)).toHaveLength(1);
  });

  it('remembers deliveries across a restart, from the store on disk', async () => {
    const webhookId = randomUUID();
    expect((await post(ORDER, { webhookId })).body.status).toBe('accepted');
    for (const close of closers.splice(1).reverse()) await close(); // the delivery log and versions
    deps = await open();
    expect((await post(ORDER, { webhookId })).body.status).toBe('duplicate');
    expect(bus.records(ordersTopic)).toHaveLength(1);
  });

  it('answers 401 to a bad signature and publishes nothing', async () => {
    const res = await ingest(deps, shopify, toRawDelivery(ORDER, shopifyHeaders({ topic: 'orders/create', shop: SHOP, secret: 'wrong', body: ORDER })));
    expect(res.status).toBe(401);
    expect(await bus.listTopics()).not.toContain(ordersTopic);
  });

  it('dead-letters a delivery for an unlinked account with the reason and answers 202', async () => {
    const body = ORDER;
    const res = await ingest(deps, shopify, toRawDelivery(body, shopifyHeaders({ topic: 'orders/create', shop: 'stranger.myshopify.com', secret: SECRET, body })));
    expect(res).toMatchObject({ status: 202, body: { status: 'dead_lettered', reason: 'unlinked' } });
    const [dead] = bus.records(topics.deadLetter('webhook-ingester'));
    expect(dead!.headers[DLQ_HEADERS.errorClass]).toBe('unlinked');
  });

  it('answers 503 while the bus fails, and the vendor retry is then published exactly once', async () => {
    const webhookId = randomUUID();
    bus.failPublishes();
    expect((await post(ORDER, { webhookId })).status).toBe(503);
    bus.heal();
    expect((await post(ORDER, { webhookId })).body.status).toBe('accepted');
    expect((await post(ORDER, { webhookId })).body.status).toBe('duplicate');
    expect(bus.records(ordersTopic)).toHaveLength(1);
  });

  it('flags an update older than the one already published as stale and keeps the newer version', async () => {
    const order = JSON.parse(ORDER.toString()) as Record<string, unknown>;
    const body = (note: string, updatedAt: string) => Buffer.from(JSON.stringify({ ...order, id: 777, admin_graphql_api_id: 'gid://shopify/Order/777', note, updated_at: updatedAt }));
    // Within the versions' 30-day window: older versions are forgotten by design.
    const hoursAgo = (h: number) => new Date(Date.now() - h * 3600_000).toISOString();
    for (const [note, at] of [['newer', hoursAgo(2)], ['older', hoursAgo(3)], ['newest', hoursAgo(1)]] as const) {
      expect((await post(body(note, at), { topic: 'orders/updated' })).status).toBe(200);
    }
    const records = bus.records(topics.event('shopify', WS, 'orders', 'updated'));
    const seen = await Promise.all(records.map(async (r) => ({ note: (JSON.parse((await codec.decode(r.value!)).payload_json) as { note: string }).note, stale: r.headers[STALE_HEADER] })));
    expect(seen).toEqual([{ note: 'newer', stale: undefined }, { note: 'older', stale: 'true' }, { note: 'newest', stale: undefined }]);
  });
});
