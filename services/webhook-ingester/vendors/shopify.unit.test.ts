import { describe, expect, it } from 'vitest';
import { isShopDomain, pastTense, shopify, shopifyTopicMap } from './shopify.ts';
import { loadFixture, shopifyHeaders, signShopify, toRawDelivery } from '../../../tests/helpers/sign.ts';

const SECRET = 'shpss_unit_test_secret';
const SHOP = 'acme.myshopify.com';
const SEGMENT = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const NOW = new Date('2026-03-01T12:00:00Z');

function delivery(topic: string, body: string | Buffer, o: { secret?: string; shop?: string; webhookId?: string; drop?: string; hmac?: string } = {}) {
  const h: Record<string, string | undefined> = shopifyHeaders({
    topic, shop: o.shop ?? SHOP, secret: o.secret ?? SECRET, body, webhookId: o.webhookId ?? 'b54557e4-bdd9-4b37-8a5f-bf7d70bcd043',
    triggeredAt: '2026-03-01T11:59:58.000Z', ...(o.hmac ? { hmac: o.hmac } : {}),
  });
  if (o.drop) for (const k of Object.keys(h)) if (k.toLowerCase() === o.drop) delete h[k];
  return toRawDelivery(body, h, { receivedAt: NOW });
}

describe('shopify.verify', () => {
  const raw = loadFixture('shopify', 'orders-create');

  it('accepts a correctly signed delivery', () => {
    expect(shopify.verify(delivery('orders/create', raw), [SECRET], NOW)).toEqual({ valid: true });
  });

  it('rejects a tampered body', () => {
    const d = delivery('orders/create', raw);
    d.rawBody = Buffer.from(raw.toString().replace('"359.97"', '"0.01"'));
    expect(shopify.verify(d, [SECRET], NOW)).toEqual({ valid: false, reason: 'signature_mismatch' });
  });

  it('rejects the wrong secret', () => {
    expect(shopify.verify(delivery('orders/create', raw, { secret: 'other' }), [SECRET], NOW).valid).toBe(false);
  });

  it.each(shopify.requiredHeaders)('reports a missing %s before any crypto', (h) => {
    const r = shopify.verify(delivery('orders/create', raw, { drop: h }), [SECRET], NOW);
    expect(r).toEqual({ valid: false, reason: 'missing_headers', missingHeaders: [h] });
  });

  it.each(['not base64!', 'abc', Buffer.alloc(31).toString('base64'), Buffer.alloc(33).toString('base64'), `${signShopify(raw, SECRET)} x`])(
    'rejects malformed signature header %j without throwing',
    (hmac) => {
      expect(shopify.verify(delivery('orders/create', raw, { hmac }), [SECRET], NOW)).toMatchObject({ valid: false });
    },
  );

  it('verifies the raw bytes: a re-serialized body does not verify', () => {
    const d = delivery('orders/create', raw);
    const reserialized = Buffer.from(JSON.stringify(JSON.parse(raw.toString())));
    expect(reserialized.equals(raw)).toBe(false);
    expect(shopify.verify({ ...d, rawBody: reserialized }, [SECRET], NOW).valid).toBe(false);

    const escaped = Buffer.from('{"id":1,"name":"#1","line_items":[],"note":"caf\\u00e9"}');
    const e = delivery('orders/create', escaped);
    expect(shopify.verify(e, [SECRET], NOW).valid).toBe(true);
    const unescaped = Buffer.from(JSON.stringify(JSON.parse(escaped.toString())));
    expect(unescaped.toString()).toContain('café');
    expect(shopify.verify({ ...e, rawBody: unescaped }, [SECRET], NOW).valid).toBe(false);
  });

  it('accepts old and new secret during rotation, and only those', () => {
    const old = 'shpss_old', next = 'shpss_new';
    expect(shopify.verify(delivery('orders/create', raw, { secret: old }), [old, next], NOW).valid).toBe(true);
    expect(shopify.verify(delivery('orders/create', raw, { secret: next }), [old, next], NOW).valid).toBe(true);
    expect(shopify.verify(delivery('orders/create', raw, { secret: old }), [next], NOW).valid).toBe(false);
    expect(shopify.verify(delivery('orders/create', raw, { secret: 'third' }), [old, next], NOW).valid).toBe(false);
  });

  it('never treats an empty secret as a key', () => {
    const forged = delivery('orders/create', raw, { secret: '' });
    expect(shopify.verify(forged, [''], NOW)).toEqual({ valid: false, reason: 'no_secret_configured' });
    expect(shopify.verify(forged, [], NOW)).toEqual({ valid: false, reason: 'no_secret_configured' });
  });

  it('accepts an hours-old retry (Shopify signs no timestamp)', () => {
    const sixHoursLater = new Date(NOW.getTime() + 6 * 3600_000);
    expect(shopify.verify(delivery('orders/create', raw), [SECRET], sixHoursLater).valid).toBe(true);
  });
});

describe('shopifyTopicMap', () => {
  it.each([
    ['orders/create', 'orders', 'created'], ['orders/updated', 'orders', 'updated'], ['orders/delete', 'orders', 'deleted'],
    ['orders/paid', 'orders', 'paid'], ['orders/cancelled', 'orders', 'cancelled'], ['orders/fulfilled', 'orders', 'fulfilled'],
    ['orders/partially_fulfilled', 'orders', 'partially_fulfilled'], ['products/update', 'products', 'updated'],
    ['themes/publish', 'themes', 'published'], ['app/uninstalled', 'app', 'uninstalled'], ['shop/update', 'shop', 'updated'],
    ['checkouts/delete', 'checkouts', 'deleted'], ['draft_orders/create', 'draft_orders', 'created'],
    ['customers/data_request', 'customers', 'data_requested'], ['customers/redact', 'customers', 'redacted'],
    ['shop/redact', 'shop', 'redacted'], ['inventory_levels/update', 'inventory_levels', 'updated'],
    ['fulfillments/create', 'fulfillments', 'created'], ['refunds/create', 'refunds', 'created'],
  ])('%s -> %s.%s', (topic, entity, action) => {
    expect(shopifyTopicMap[topic]).toEqual({ entity, action });
  });

  it('has only valid segments and follows the past-tense rule', () => {
    for (const { entity, action } of Object.values(shopifyTopicMap)) {
      expect(entity).toMatch(SEGMENT);
      expect(action).toMatch(SEGMENT);
    }
    expect(['create', 'update', 'delete', 'publish', 'paid', 'cancelled'].map(pastTense))
      .toEqual(['created', 'updated', 'deleted', 'published', 'paid', 'cancelled']);
  });
});

describe('shopify.map', () => {
  const WID = 'b54557e4-bdd9-4b37-8a5f-bf7d70bcd043';
  it.each([
    ['orders/create', 'orders-create', 'orders', 'created', '820982911946154508'],
    ['products/update', 'products-update', 'products', 'updated', '788032119674292922'],
    ['app/uninstalled', 'app-uninstalled', 'app', 'uninstalled', SHOP],
    ['shop/update', 'shop-update', 'shop', 'updated', SHOP],
    ['customers/data_request', 'customers-data_request', 'customers', 'data_requested', '191167'],
    ['customers/redact', 'customers-redact', 'customers', 'redacted', '191167'],
    ['shop/redact', 'shop-redact', 'shop', 'redacted', SHOP],
    ['themes/publish', 'themes-publish', 'themes', 'published', '512162865275216980'],
    ['checkouts/create', 'checkouts-create', 'checkouts', 'created', String(981820079255243500)],
    ['draft_orders/create', 'draft_orders-create', 'draft_orders', 'created', '890612572568261625'],
  ])('%s (%s) -> %s.%s keyed %s', (topic, fixture, entity, action, key) => {
    const raw = loadFixture('shopify', fixture);
    const d = delivery(topic, raw);
    expect(shopify.verify(d, [SECRET], NOW).valid).toBe(true);
    const r = shopify.map(d);
    expect(r).toMatchObject({ ok: true });
    if (!r.ok) return;
    expect(r.events).toHaveLength(1);
    expect(r.events[0]).toMatchObject({
      deliveryId: WID, account: SHOP, entity, action, eventType: `shopify.${entity}.${action}`,
      orderingKey: key,
    });
    expect(r.events[0]!.payload).toEqual(JSON.parse(raw.toString()));
  });

  it('keys an order by its exact id even above 2^53', () => {
    const exact = loadFixture('shopify', 'orders-create').toString().replace('"id": 820982911946154500', '"id": 820982911946154508');
    const r = shopify.map(delivery('orders/create', exact));
    expect(r.ok && r.events[0]!.orderingKey).toBe('820982911946154508');
  });

  it('fails an unknown topic with a reason', () => {
    const r = shopify.map(delivery('orders/exploded', loadFixture('shopify', 'orders-create')));
    expect(r).toEqual({ ok: false, reason: expect.stringContaining('unknown Shopify topic') });
    expect(shopify.map(delivery('__proto__', '{}')).ok).toBe(false);
    expect(shopify.map(delivery('constructor', '{}')).ok).toBe(false);
  });

  it('fails a correctly signed body that does not fit the topic schema', () => {
    const d = delivery('orders/create', '{"id":"not-a-number","line_items":"nope"}');
    expect(shopify.verify(d, [SECRET], NOW).valid).toBe(true);
    const r = shopify.map(d);
    expect(r).toEqual({ ok: false, reason: expect.stringContaining('failed schema') });
    // a product body sent under an order topic (unsigned header swapped) does not pass either
    expect(shopify.map(delivery('orders/create', loadFixture('shopify', 'products-update'))).ok).toBe(false);
  });

  it('rejects a compliance body whose shop_domain contradicts the header', () => {
    const body = loadFixture('shopify', 'shop-redact').toString().replace('{shop}.myshopify.com', 'victim.myshopify.com');
    expect(shopify.map(delivery('shop/redact', body)).ok).toBe(false);
    expect(shopify.map(delivery('shop/redact', body, { shop: 'victim.myshopify.com' })).ok).toBe(true);
  });

  it.each([
    'acme.myshopify.com.evil.com', 'evil.com', '../acme.myshopify.com', 'ACME.myshopify.com', 'acme..myshopify.com',
    'a.b.myshopify.com', 'ａcme.myshopify.com', 'acme.myshopify.com\n', `${'a'.repeat(64)}.myshopify.com`, '.myshopify.com',
    'ws_acme.myshopify.com', '-acme.myshopify.com', 'acme.myshopify.com/..', 'acme%2emyshopify.com', 'acme.myshopify.co',
  ])('rejects crafted shop domain %j', (shop) => {
    expect(isShopDomain(shop)).toBe(false);
    expect(shopify.map(delivery('orders/create', loadFixture('shopify', 'orders-create'), { shop })).ok).toBe(false);
  });

  it('never throws on garbage bodies or headers', () => {
    for (const body of [Buffer.from([0xff, 0xfe, 0x00]), '', 'null', '[]', '{"id":1e400}', '{'.repeat(10_000)]) {
      expect(() => shopify.map(delivery('orders/create', body))).not.toThrow();
      expect(shopify.map(delivery('orders/create', body)).ok).toBe(false);
    }
    expect(shopify.map(delivery('orders/create', '{}', { webhookId: 'bad id\u0000' })).ok).toBe(false);
  });
});

describe('shopify ordering keys past 2^53', () => {
  it('keys orders/delete and refunds/create of an order by the same exact digits as its orders/create', () => {
    const key = (topic: string, body: string) => {
      const r = shopify.map(toRawDelivery(body, shopifyHeaders({ topic, shop: 'big-ids.myshopify.com', secret: 's', body })));
      if (!r.ok) throw new Error(r.reason);
      return r.events[0]!.orderingKey;
    };
    const created = key('orders/create', '{"id":820982911946154508,"admin_graphql_api_id":"gid://shopify/Order/820982911946154508","name":"#1","line_items":[]}');
    expect(created).toBe('820982911946154508');
    expect(key('orders/delete', '{"id":820982911946154508}')).toBe(created);
    expect(key('refunds/create', '{"id":929361464,"order_id":820982911946154508,"transactions":[{"order_id":820982911946154508}]}')).toBe(created);
    expect(key('orders/edited', '{"order_edit":{"id":78912328,"order_id":820982911946154508}}')).toBe(created);
  });

  it('keys a checkout without an id (API 2026-04) by its token, not by the shop', () => {
    const mapped = (body: string) => {
      const r = shopify.map(toRawDelivery(body, shopifyHeaders({ topic: 'checkouts/update', shop: 'tokens.myshopify.com', secret: 's', body })));
      if (!r.ok) throw new Error(r.reason);
      return r.events[0]!;
    };
    expect(mapped('{"token":"tokA","line_items":[]}').orderingKey).toBe('token:tokA');
    expect(mapped('{"token":"tokB","line_items":[]}').orderingKey).toBe('token:tokB');
    // A fulfillment is ordered with its order but versioned on its own.
    const r = shopify.map(toRawDelivery('{"id":111,"admin_graphql_api_id":"gid://shopify/Fulfillment/111","order_id":5}', shopifyHeaders({ topic: 'fulfillments/update', shop: 'tokens.myshopify.com', secret: 's', body: '{}' })));
    expect(r.ok && { key: r.events[0]!.orderingKey, version: r.events[0]!.versionKey }).toEqual({ key: '5', version: '111' });
  });
});
