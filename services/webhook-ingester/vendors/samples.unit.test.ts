/**
 * Every payload a vendor publishes for a topic must map: a schema stricter than the vendor's own
 * examples dead-letters real deliveries. The samples live verbatim in
 * tests/fixtures/vendor-samples/<vendor>/ (sources in SOURCES.md there); each one goes through the
 * vendor module's map() with the headers that vendor sends.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { generic, typeToParts } from './generic.ts';
import { sendgrid, sendgridEventMap } from './sendgrid.ts';
import { shopify, shopifyTopicMap } from './shopify.ts';
import { tiktok, tiktokEventMap } from './tiktok.ts';
import { whatsapp } from './whatsapp.ts';
import type { MapResult } from './types.ts';
import {
  sendgridHeaders, sendgridKeyPair, shopifyHeaders, standardWebhookHeaders, tiktokHeaders, toRawDelivery, whatsappHeaders,
} from '../../../tests/helpers/sign.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../../tests/fixtures/vendor-samples');

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

/** `<vendor>/<rest>.json` relative names, '/'-separated. */
const samples = (vendor: string): string[] =>
  filesUnder(join(ROOT, vendor)).filter((p) => p.endsWith('.json')).map((p) => relative(join(ROOT, vendor), p).split(sep).join('/')).sort();
const raw = (vendor: string, name: string): Buffer => readFileSync(join(ROOT, vendor, name));

function ok(r: MapResult): Extract<MapResult, { ok: true }> {
  if (!r.ok) throw new Error(`map() refused a published sample: ${r.reason}`);
  return r;
}

const NOW = new Date();

describe('every sample has a source', () => {
  const sources = readFileSync(join(ROOT, 'SOURCES.md'), 'utf8');
  for (const vendor of ['shopify', 'sendgrid', 'tiktok', 'whatsapp', 'generic']) {
    it.each(samples(vendor))(`${vendor}/%s is listed in SOURCES.md`, (name) => {
      expect(sources).toContain(`${vendor}/${name}`);
    });
  }
});

describe('Shopify published examples', () => {
  const SHOP = 'ionflux-samples.myshopify.com';
  /**
   * Published examples that carry nothing to map. Since API 2024-07 Shopify's reference shows `{}`
   * for inventory_levels/update and inventory_levels/connect; without inventory_item_id and
   * location_id there is no ordering key, so these stay dead-lettered (real deliveries carry both:
   * the 2024-04 examples, kept beside them, map).
   */
  const UNMAPPABLE = new Set(['inventory_levels/update.json', 'inventory_levels/connect.json']);
  // <entity>/<verb>[.<api version>].json -> topic <entity>/<verb>
  const topicOf = (name: string) => name.replace(/(\.\d{4}-\d{2})?\.json$/, '');
  const deliver = (name: string, webhookId: string) => {
    const body = raw('shopify', name);
    return shopify.map(toRawDelivery(body, shopifyHeaders({
      topic: topicOf(name), shop: SHOP, secret: 'unused', body, webhookId, apiVersion: '2026-04',
    }), { receivedAt: NOW }));
  };

  it('covers every topic the ingester knows', () => {
    const covered = new Set(samples('shopify').map(topicOf));
    expect(Object.keys(shopifyTopicMap).filter((t) => !covered.has(t))).toEqual([]);
  });

  it.each(samples('shopify').filter((n) => !UNMAPPABLE.has(n)))('%s maps', (name) => {
    const topic = topicOf(name);
    const r = ok(deliver(name, `wh-${topic.replace('/', '-')}`));
    expect(r.events).toHaveLength(1);
    const ev = r.events[0]!;
    expect(ev).toMatchObject({ ...shopifyTopicMap[topic], account: SHOP, deliveryId: `wh-${topic.replace('/', '-')}` });
    expect(ev.orderingKey.length).toBeGreaterThan(0);
    expect(ev.payload).toEqual(JSON.parse(raw('shopify', name).toString()));
  });

  it.each([...UNMAPPABLE])('%s (published as {}) is refused with a reason, not thrown', (name) => {
    expect(JSON.parse(raw('shopify', name).toString())).toEqual({});
    const r = deliver(name, 'wh-empty');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/inventory_item_id/);
  });

  it('keys a product and its entity by the exact gid digits, not the rounded JSON number', () => {
    const ev = ok(deliver('products/update.json', 'wh-p')).events[0]!;
    expect(ev.orderingKey).toBe('788032119674292922');
  });
});

describe('SendGrid published examples', () => {
  const { privateKey } = sendgridKeyPair();
  const ACCOUNT = 'acct_samples';
  const deliver = (name: string, pathParam?: string) => {
    const body = raw('sendgrid', name);
    return sendgrid.map(toRawDelivery(body, sendgridHeaders({ body, privateKey }), { receivedAt: NOW, ...(pathParam ? { pathParam } : {}) }));
  };

  it.each(samples('sendgrid'))('%s maps on an account endpoint', (name) => {
    const items = JSON.parse(raw('sendgrid', name).toString()) as Array<{ event: string; sg_event_id: string }>;
    const r = ok(deliver(name, ACCOUNT));
    expect(r.events).toHaveLength(items.length);
    r.events.forEach((ev, i) => {
      expect(ev).toMatchObject({ ...sendgridEventMap[items[i]!.event], account: ACCOUNT, deliveryId: items[i]!.sg_event_id });
    });
  });

  // SendGrid's examples carry no ionflux_workspace custom arg (only the email dispatcher sets it), so
  // on the shared platform endpoint they have no account: refused there, by design.
  it('refuses the examples on the platform endpoint, where the account comes from the custom arg', () => {
    const r = deliver('delivered.json');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/ionflux_workspace/);
  });
});

describe('TikTok published examples', () => {
  it.each(samples('tiktok'))('%s maps', (name) => {
    const body = raw('tiktok', name);
    const b = JSON.parse(body.toString()) as { event: string; user_openid?: string; client_key: string };
    const r = ok(tiktok.map(toRawDelivery(body, tiktokHeaders({ body, secret: 'unused' }), { receivedAt: NOW })));
    expect(r.events).toHaveLength(1);
    expect(r.events[0]).toMatchObject({ ...tiktokEventMap[b.event], account: b.user_openid ?? b.client_key });
  });
});

describe('WhatsApp published examples', () => {
  it.each(samples('whatsapp'))('%s maps', (name) => {
    const body = raw('whatsapp', name);
    const n = JSON.parse(body.toString()) as {
      entry: Array<{ changes: Array<{ value: { metadata: { phone_number_id: string }; messages?: Array<{ id: string }>; statuses?: Array<{ id: string; status: string }>; errors?: unknown[] } }> }>;
    };
    const expected = n.entry.flatMap((e) => e.changes.flatMap((c) => [
      ...(c.value.messages ?? []).map((m) => ({ account: c.value.metadata.phone_number_id, entity: 'messages', action: 'received', deliveryId: m.id })),
      ...(c.value.statuses ?? []).map((s) => ({ account: c.value.metadata.phone_number_id, entity: 'messages', action: 'status', deliveryId: `${s.id}:${s.status}` })),
      ...(c.value.errors ?? []).map(() => ({ account: c.value.metadata.phone_number_id, entity: 'messages', action: 'error', deliveryId: expect.stringMatching(/^error:[0-9a-f]{32}$/) })),
    ]));
    expect(expected.length).toBeGreaterThan(0);
    const r = ok(whatsapp.map(toRawDelivery(body, whatsappHeaders({ body, appSecret: 'unused' }), { receivedAt: NOW })));
    expect(r.events).toHaveLength(expected.length);
    r.events.forEach((ev, i) => expect(ev).toMatchObject(expected[i]!));
  });
});

describe('Standard Webhooks (generic) published examples', () => {
  const ENDPOINT = 'ep_samples';
  it.each(samples('generic'))('%s maps', (name) => {
    const body = raw('generic', name);
    // The spec's own signing example uses this message id.
    const id = 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W';
    const headers = standardWebhookHeaders({ id, body, secrets: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'] });
    const r = ok(generic.map(toRawDelivery(body, headers, { receivedAt: NOW, pathParam: ENDPOINT })));
    const b = JSON.parse(body.toString()) as { type: string; data: { id?: string } };
    expect(r.events).toHaveLength(1);
    expect(r.events[0]).toMatchObject({ ...typeToParts(b.type), account: ENDPOINT, deliveryId: id, orderingKey: b.data.id ?? ENDPOINT });
  });
});
