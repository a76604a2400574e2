import { describe, expect, it } from 'vitest';
import { vendors } from './index.ts';
import { sendgridEventMap } from './sendgrid.ts';
import { shopifyTopicMap } from './shopify.ts';
import { tiktokEventMap } from './tiktok.ts';
import { loadFixture, toRawDelivery } from '../../../tests/helpers/sign.ts';

const SEGMENT = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Small deterministic PRNG so a failing case can be replayed. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

describe('vendor registry', () => {
  it('registers one module per route vendor with its topic source', () => {
    expect(Object.fromEntries(Object.entries(vendors).map(([k, v]) => [k, v.source]))).toEqual({
      shopify: 'shopify', tiktok: 'tiktok', sendgrid: 'email', whatsapp: 'whatsapp', generic: 'generic',
    });
    for (const v of Object.values(vendors)) {
      expect(v.requiredHeaders.length).toBeGreaterThan(0);
      for (const h of v.requiredHeaders) expect(h).toBe(h.toLowerCase());
    }
  });

  it('never throws and never emits a bad segment on mutated deliveries', () => {
    const r = rng(20260301);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
    const seeds = [
      loadFixture('shopify', 'orders-create'), loadFixture('tiktok', 'video-upload-failed'), loadFixture('sendgrid', 'signed-multi'),
      loadFixture('whatsapp', 'text-message'), loadFixture('generic', 'example-event'),
    ];
    const junk = ['', '.', '..', 'a.b', '\u0000', '💥', 'ws_x.orders.created', 'x'.repeat(300), 'sha256=', 't=1,s=', 'v1,', '{}', '[]'];
    const headerNames = [...new Set(Object.values(vendors).flatMap((v) => v.requiredHeaders)), 'x-shopify-triggered-at'];
    for (let i = 0; i < 3000; i++) {
      const base = Buffer.from(pick(seeds));
      // flip, drop or splice bytes
      for (let k = Math.floor(r() * 4); k > 0; k--) {
        const at = Math.floor(r() * base.length);
        base[at] = pick([0x22, 0x2e, 0x5c, 0x7b, 0x7d, 0x00, 0xff, 0x30 + Math.floor(r() * 10)]);
      }
      const headers: Record<string, string | undefined> = {};
      for (const h of headerNames) if (r() < 0.8) headers[h] = r() < 0.5 ? pick(junk) : String(Math.floor(r() * 2e9));
      if (r() < 0.5) headers['x-shopify-topic'] = pick(['orders/create', 'shop/redact', '__proto__', 'orders/../x']);
      if (r() < 0.5) headers['x-shopify-shop-domain'] = pick(['acme.myshopify.com', 'a.b.myshopify.com', '..', 'ACME.myshopify.com']);
      const d = toRawDelivery(base, headers, { pathParam: pick(['ep_1', 'a.b', '..', '', 'acme']) });
      for (const v of Object.values(vendors)) {
        expect(() => v.verify(d, [pick(['s', '', 'whsec_AAAA', 'MFkw'])], new Date())).not.toThrow();
        const m = v.map(d);
        if (m.ok) {
          for (const e of m.events) {
            expect(e.entity).toMatch(SEGMENT);
            expect(e.action).toMatch(SEGMENT);
            expect(e.eventType).toBe(`${v.source}.${e.entity}.${e.action}`);
          }
        } else {
          expect(typeof m.reason).toBe('string');
        }
      }
    }
  });

  it("no vendor table maps two events to topic names Kafka would take for the same ('.' and '_' alike)", () => {
    const whatsapp = [{ entity: 'messages', action: 'received' }, { entity: 'messages', action: 'status' }];
    for (const table of [Object.values(shopifyTopicMap), Object.values(sendgridEventMap), Object.values(tiktokEventMap), whatsapp]) {
      const byKey = new Map<string, string>();
      for (const { entity, action } of table) {
        const name = `${entity}.${action}`;
        const other = byKey.get(`${entity}_${action}`);
        expect(other === undefined || other === name, `${name} vs ${other}`).toBe(true);
        byKey.set(`${entity}_${action}`, name);
      }
    }
  });
});
