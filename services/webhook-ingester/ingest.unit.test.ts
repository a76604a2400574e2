import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DLQ_HEADERS } from '../../shared/bus/dead-letter.ts';
import { MemoryBus } from '../../shared/bus/memory.ts';
import { topics } from '../../shared/bus/topics.ts';
import { INBOX_TOPIC } from '../../shared/ingest/inbox.ts';
import type { EventCodec } from '../../shared/events/codec.ts';
import type { PlatformEvent } from '../../shared/events/platform-event.ts';
import { linkKey, openLinks, type LinkTable } from '../../shared/links.ts';
import { createLogger } from '../../shared/logger.ts';
import { loadFixture, shopifyHeaders, toRawDelivery } from '../../tests/helpers/sign.ts';
import { DELIVERIES_TOPIC, openDeliveryLog, openEntityVersions } from './deliveries.ts';
import { accept, RecentAnswers, type EdgeDeps } from './edge.ts';
import { createIngesterMetrics } from './metrics.ts';
import { startProcessor, VERSION_HEADER } from './processor.ts';
import { appendToInbox, inboxKey } from '../../shared/ingest/inbox.ts';
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

describe('edge and inbox processor on the in-memory bus', () => {
  let bus: MemoryBus;
  let stateDir: string;
  let deps: EdgeDeps;
  let links: LinkTable;
  const closers: (() => Promise<void>)[] = [];

  /** An edge (with a fresh memory of answers, as after a restart) and the processor, with state on disk. */
  async function open(): Promise<EdgeDeps> {
    const host = { bus, logger, stateDir };
    const [deliveries, versions] = await Promise.all([openDeliveryLog(host, 3600_000), openEntityVersions(host)]);
    const metrics = createIngesterMetrics(new Registry());
    const processor = await startProcessor({ bus, codec, logger, links, deliveries, versions, metrics, dedupeWindowMs: 3600_000 });
    closers.push(() => deliveries.close(), () => versions.close(), () => processor.stop());
    return { bus, logger, links, secretsFor: async () => ({ secret: SECRET }), metrics, publishTimeoutMs: 1000, recent: new RecentAnswers() };
  }
  const post = async (body: Buffer, o: { webhookId?: string; topic?: string } = {}) => {
    const answer = await accept(deps, shopify, toRawDelivery(body, shopifyHeaders({ topic: o.topic ?? 'orders/create', shop: SHOP, secret: SECRET, body, webhookId: o.webhookId })));
    await bus.transformed();
    return answer;
  };

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

  it('publishes a verified delivery as one event on its workspace topic, with the id the edge answered and its delivery marker', async () => {
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

  it('remembers deliveries across a restart, from the store on disk: the retry is appended again and dropped by the processor', async () => {
    const webhookId = randomUUID();
    expect((await post(ORDER, { webhookId })).body.status).toBe('accepted');
    for (const close of closers.splice(1).reverse()) await close(); // the processor, the delivery log and versions
    deps = await open();
    // A new edge does not remember the answer; the processor knows the delivery from its marker.
    const again = await post(ORDER, { webhookId });
    expect(again).toMatchObject({ status: 200, body: { status: 'accepted' } });
    expect(bus.records(INBOX_TOPIC)).toHaveLength(2);
    expect(bus.records(ordersTopic)).toHaveLength(1);
  });

  it('gives one event for a poll and a webhook that saw the same version of an entity, in either order', async () => {
    const order = JSON.parse(ORDER.toString()) as Record<string, unknown>;
    const version = (id: number, at: string) => Buffer.from(JSON.stringify({ ...order, id, admin_graphql_api_id: `gid://shopify/Order/${id}`, updated_at: at }));
    const at = new Date(Date.now() - 60_000).toISOString();
    const poll = (id: number, updatedAt: string) =>
      appendToInbox(bus, [{ route: 'shopify', origin: 'poll', receivedAt: new Date(), body: version(id, updatedAt), key: inboxKey('shopify', SHOP, 'orders', String(id)), headers: { 'x-shopify-topic': 'orders/updated', 'x-shopify-shop-domain': SHOP, 'x-shopify-webhook-id': `poll:orders:${id}:${updatedAt}` } }]).then(() => bus.transformed());
    const updated = topics.event('shopify', WS, 'orders', 'updated');
    await poll(901, at);
    await post(version(901, at), { topic: 'orders/updated' });
    await post(version(902, at), { topic: 'orders/updated' });
    await poll(902, at);
    // The webhook in the shop's own offset, the poll (GraphQL) in UTC: the same time.
    const d = new Date(Date.now() - 120_000);
    d.setMilliseconds(0);
    const local = new Date(d.getTime() - 5 * 3600_000).toISOString().replace(/\.\d{3}Z$/, '-05:00');
    await post(version(903, local), { topic: 'orders/updated' });
    await poll(903, d.toISOString());
    const events = await Promise.all(bus.records(updated).map(async (r) => (JSON.parse((await codec.decode(r.value!)).payload_json) as { id: number }).id));
    expect(events.sort()).toEqual([901, 902, 903]);
    // A later version from either side is an event again.
    await poll(901, new Date().toISOString());
    expect(bus.records(updated)).toHaveLength(4);
  });

  it('tells two versions polled within one second apart by their bodies, after a poll or a webhook of the first', async () => {
    const order = JSON.parse(ORDER.toString()) as Record<string, unknown>;
    const version = (id: number, at: string, note: string) => Buffer.from(JSON.stringify({ ...order, id, admin_graphql_api_id: `gid://shopify/Order/${id}`, updated_at: at, note }));
    // A poll's delivery id names its body's digest (shopify-sync's pollDelivery): here the note stands in for it.
    const poll = (id: number, at: string, note: string) =>
      appendToInbox(bus, [{ route: 'shopify', origin: 'poll', receivedAt: new Date(), body: version(id, at, note), key: inboxKey('shopify', SHOP, 'orders', String(id)), headers: { 'x-shopify-topic': 'orders/updated', 'x-shopify-shop-domain': SHOP, 'x-shopify-webhook-id': `poll:orders:${id}:${at}:${note}` } }]).then(() => bus.transformed());
    const updated = topics.event('shopify', WS, 'orders', 'updated');
    const notes = async () => Promise.all(bus.records(updated).map(async (r) => (JSON.parse((await codec.decode(r.value!)).payload_json) as { id: number; note: string }).note));
    const at = new Date(Date.now() - 60_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    await poll(911, at, 'first');
    await poll(911, at, 'second'); // changed again within that second
    await poll(911, at, 'second');
    // The webhook of the first version, then polls of it and of a second change in its second.
    await post(version(912, at, 'first'), { topic: 'orders/updated' });
    await poll(912, at, 'first');
    await poll(912, at, 'second');
    expect(await notes()).toEqual(['first', 'second', 'first', 'second']);
  });

  it("publishes a webhook delivery from the edge's reading without mapping its body again, the same event as mapping it gives", async () => {
    const map = vi.spyOn(shopify, 'map');
    try {
      const order = JSON.parse(ORDER.toString()) as Record<string, unknown>;
      const body = (id: number) => Buffer.from(JSON.stringify({ ...order, id, admin_graphql_api_id: `gid://shopify/Order/${id}` }));
      const headers = (id: number) => ({ 'x-shopify-topic': 'orders/create', 'x-shopify-shop-domain': SHOP, 'x-shopify-webhook-id': `unit-${id}` });
      const append = (id: number, o: { mapped?: string; origin?: 'webhook' | 'poll' } = {}) =>
        appendToInbox(bus, [{ route: 'shopify', origin: o.origin ?? 'webhook', receivedAt: new Date(), body: body(id), key: inboxKey('shopify', SHOP, 'orders', String(id)), headers: headers(id), ...(o.mapped ? { mapped: o.mapped } : {}) }]).then(() => bus.transformed());
      await post(body(801), { webhookId: 'unit-801' });
      expect(map).toHaveBeenCalledTimes(1); // the edge's; the processor used its reading
      expect(bus.records(INBOX_TOPIC)[0]!.headers['ionflux.inbox.mapped']).toBeDefined();
      await append(802); // no reading: the processor maps the body
      await append(803, { mapped: '{"deliveryId": 803' }); // unreadable: mapped
      await append(805, { mapped: JSON.stringify({ deliveryId: 'unit-805', account: SHOP, entity: 'orders.x', action: 'created', orderingKey: '805' }) }); // not a topic segment: mapped
      await append(804, { mapped: bus.records(INBOX_TOPIC)[0]!.headers['ionflux.inbox.mapped'], origin: 'poll' }); // a poll's body is always mapped
      expect(map).toHaveBeenCalledTimes(5);
      const events = await Promise.all(bus.records(ordersTopic).map(async (r) => ({ event: await codec.decode(r.value!), key: r.key?.toString(), headers: r.headers })));
      const byId = new Map(events.map((e) => [(JSON.parse(e.event.payload_json) as { id: number }).id, e]));
      expect([...byId.keys()].sort()).toEqual([801, 802, 803, 804, 805]);
      const [read, mapped] = [byId.get(801), byId.get(802)];
      expect(read!.event.payload_json).toBe(body(801).toString());
      expect({ ...read!.event, event_id: 0, correlation_id: 0, timestamp: 0, payload_json: 0 }).toEqual({ ...mapped!.event, event_id: 0, correlation_id: 0, timestamp: 0, payload_json: 0 });
      expect([read!.key, mapped!.key]).toEqual(['801', '802']);
      expect(read!.event.correlation_id).toBe('unit-801');
    } finally {
      map.mockRestore();
    }
  });

  it('answers 401 to a bad signature and publishes nothing', async () => {
    const res = await accept(deps, shopify, toRawDelivery(ORDER, shopifyHeaders({ topic: 'orders/create', shop: SHOP, secret: 'wrong', body: ORDER })));
    expect(res.status).toBe(401);
    await bus.transformed();
    expect(bus.records(INBOX_TOPIC)).toEqual([]);
    expect(await bus.listTopics()).not.toContain(ordersTopic);
  });

  it('dead-letters a delivery for an unlinked account with the reason and answers 202', async () => {
    const body = ORDER;
    const res = await accept(deps, shopify, toRawDelivery(body, shopifyHeaders({ topic: 'orders/create', shop: 'stranger.myshopify.com', secret: SECRET, body })));
    expect(res).toMatchObject({ status: 202, body: { status: 'dead_lettered', reason: 'unlinked' } });
    await bus.transformed();
    const [dead] = bus.records(topics.deadLetter('webhook-ingester'));
    expect(dead!.headers[DLQ_HEADERS.errorClass]).toBe('unlinked');
    expect(dead!.value).toEqual(body);
  });

  it('dead-letters a delivery that fails its schema with the original bytes, once however often it comes', async () => {
    const body = Buffer.from('{"id": "not-a-number"}');
    const webhookId = randomUUID();
    for (let i = 0; i < 2; i++) expect(await post(body, { webhookId })).toMatchObject({ status: 202, body: { status: 'dead_lettered', reason: 'schema_failed' } });
    const dead = bus.records(topics.deadLetter('webhook-ingester'));
    expect(dead).toHaveLength(1);
    expect(dead[0]!.headers[DLQ_HEADERS.errorClass]).toBe('schema_failed');
    expect(dead[0]!.value).toEqual(body);
  });

  it('dead-letters an inbox record no vendor route reads and goes on', async () => {
    await bus.publish({ topic: INBOX_TOPIC, key: 'x', value: 'not a delivery' });
    await post(ORDER);
    expect(bus.records(topics.deadLetter('webhook-ingester'))[0]!.headers[DLQ_HEADERS.errorClass]).toBe('unreadable_inbox_record');
    expect(bus.records(ordersTopic)).toHaveLength(1);
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

  it('never publishes an update older than the one already published after it (item 16), and keeps the newer version', async () => {
    const order = JSON.parse(ORDER.toString()) as Record<string, unknown>;
    const body = (note: string, updatedAt: string) => Buffer.from(JSON.stringify({ ...order, id: 777, admin_graphql_api_id: 'gid://shopify/Order/777', note, updated_at: updatedAt }));
    // Within the versions' 30-day window: older versions are forgotten by design.
    const hoursAgo = (h: number) => new Date(Date.now() - h * 3600_000).toISOString();
    for (const [note, at] of [['newer', hoursAgo(2)], ['older', hoursAgo(3)], ['newest', hoursAgo(1)]] as const) {
      expect((await post(body(note, at), { topic: 'orders/updated' })).status).toBe(200);
    }
    const records = bus.records(topics.event('shopify', WS, 'orders', 'updated'));
    const seen = await Promise.all(records.map(async (r) => ({ note: (JSON.parse((await codec.decode(r.value!)).payload_json) as { note: string }).note, version: r.headers[VERSION_HEADER] })));
    expect(seen.map((e) => e.note)).toEqual(['newer', 'newest']);
    expect(Date.parse(seen[1]!.version!)).toBeGreaterThan(Date.parse(seen[0]!.version!));
    // The older delivery is remembered as stale: its retry publishes nothing either.
    expect(bus.records(DELIVERIES_TOPIC).map((r) => JSON.parse(r.value!.toString()).outcome)).toContain('stale');
  });

  it('versions each event topic apart: a late orders/paid or orders/create is published after a newer orders/updated, and each fulfillment of an order on its own', async () => {
    const order = JSON.parse(ORDER.toString()) as Record<string, unknown>;
    const hoursAgo = (h: number) => new Date(Date.now() - h * 3600_000).toISOString();
    const body = (updatedAt: string) => Buffer.from(JSON.stringify({ ...order, id: 888, admin_graphql_api_id: 'gid://shopify/Order/888', updated_at: updatedAt }));
    // Shopify retries with the payload of when each topic fired: the update came through first.
    for (const [topic, at] of [['orders/updated', hoursAgo(1)], ['orders/paid', hoursAgo(2)], ['orders/create', hoursAgo(3)]] as const) {
      expect((await post(body(at), { topic })).status).toBe(200);
    }
    for (const action of ['updated', 'paid', 'created']) expect(bus.records(topics.event('shopify', WS, 'orders', action)), action).toHaveLength(1);

    const fulfillment = JSON.parse(readFileSync('tests/fixtures/vendor-samples/shopify/fulfillments/update.json', 'utf8')) as Record<string, unknown>;
    const of = (id: number, updatedAt: string) => Buffer.from(JSON.stringify({ ...fulfillment, id, admin_graphql_api_id: `gid://shopify/Fulfillment/${id}`, order_id: 888, updated_at: updatedAt }));
    expect((await post(of(111, hoursAgo(1)), { topic: 'fulfillments/update' })).status).toBe(200);
    expect((await post(of(222, hoursAgo(2)), { topic: 'fulfillments/update' })).status).toBe(200);
    const fulfillments = bus.records(topics.event('shopify', WS, 'fulfillments', 'updated'));
    expect(fulfillments.map((r) => r.key?.toString())).toEqual(['888', '888']);
  });
});

describe('RecentAnswers', () => {
  const answer = (n: number) => ({ status: 200, body: { status: 'accepted', event_ids: [`evt_${n}`] } });

  it('keeps at least the latest max/2 answers and never more than max, forgetting the oldest first', () => {
    const recent = new RecentAnswers(10);
    for (let n = 0; n < 37; n++) recent.set(`k${n}`, answer(n));
    const kept = Array.from({ length: 37 }, (_, n) => n).filter((n) => recent.get(`k${n}`) !== undefined);
    expect(kept.length).toBeGreaterThanOrEqual(5);
    expect(kept.length).toBeLessThanOrEqual(10);
    // The kept ones are the latest, in one run up to the last answer set.
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => 37 - kept.length + i));
    expect(recent.get('k36')).toEqual(answer(36));
  });

  it('answers a key set again with its latest answer', () => {
    const recent = new RecentAnswers(4);
    recent.set('a', answer(1));
    recent.set('b', answer(2));
    recent.set('a', answer(3));
    expect(recent.get('a')).toEqual(answer(3));
  });
});
