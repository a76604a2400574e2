import { describe, expect, it } from 'vitest';
import { decodeStandardSecret, generic, STANDARD_WEBHOOKS_TOLERANCE_SECONDS, typeToParts } from './generic.ts';
import { loadFixture, newStandardWebhookSecret, signStandardWebhook, standardWebhookHeaders, toRawDelivery } from '../../../tests/helpers/sign.ts';

const SEGMENT = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const vectors = JSON.parse(loadFixture('generic', 'standard-webhooks-vectors').toString()) as {
  sign: { secret: string; msgId: string; timestamp: number; payload: string; expected: string };
  invalidSignatures: string[];
};
const V = vectors.sign;
const VNOW = new Date(V.timestamp * 1000);
const vectorDelivery = (signature: string, o: { body?: string; id?: string; ts?: string } = {}) =>
  toRawDelivery(o.body ?? V.payload, { 'webhook-id': o.id ?? V.msgId, 'webhook-timestamp': o.ts ?? String(V.timestamp), 'webhook-signature': signature }, { pathParam: 'ep_1' });

describe('generic.verify against the official Standard Webhooks vectors', () => {
  it('signs exactly like the reference libraries', () => {
    expect(signStandardWebhook({ id: V.msgId, timestamp: V.timestamp, body: V.payload, secret: V.secret })).toBe(V.expected);
  });

  it('accepts the vector, with or without the whsec_ prefix', () => {
    expect(generic.verify(vectorDelivery(V.expected), [V.secret], VNOW)).toEqual({ valid: true });
    expect(generic.verify(vectorDelivery(V.expected), [V.secret.slice('whsec_'.length)], VNOW)).toEqual({ valid: true });
  });

  it.each(vectors.invalidSignatures)('rejects the invalid signature %j', (sig) => {
    expect(generic.verify(vectorDelivery(sig), [V.secret], VNOW).valid).toBe(false);
  });

  it('rejects a partial signature and accepts the valid one among several', () => {
    expect(generic.verify(vectorDelivery(V.expected.slice(0, 8)), [V.secret], VNOW).valid).toBe(false);
    const multi = [vectors.invalidSignatures[0], vectors.invalidSignatures[1], V.expected, vectors.invalidSignatures[0]].join(' ');
    expect(generic.verify(vectorDelivery(multi), [V.secret], VNOW)).toEqual({ valid: true });
  });

  it('rejects timestamps outside the tolerance in both directions', () => {
    const tol = STANDARD_WEBHOOKS_TOLERANCE_SECONDS;
    const at = (s: number) => new Date((V.timestamp + s) * 1000);
    expect(generic.verify(vectorDelivery(V.expected), [V.secret], at(tol)).valid).toBe(true);
    expect(generic.verify(vectorDelivery(V.expected), [V.secret], at(-tol)).valid).toBe(true);
    expect(generic.verify(vectorDelivery(V.expected), [V.secret], at(tol + 1))).toEqual({ valid: false, reason: 'timestamp_too_old' });
    expect(generic.verify(vectorDelivery(V.expected), [V.secret], at(-tol - 1))).toEqual({ valid: false, reason: 'timestamp_too_new' });
  });

  it.each([
    [{ ts: 'hello' }, 'malformed_timestamp'], [{ ts: '-1' }, 'malformed_timestamp'], [{ ts: '1614265330.5' }, 'malformed_timestamp'],
    [{ id: 'msg.with.dots' }, 'malformed_webhook_id'], [{ id: 'msg id' }, 'malformed_webhook_id'],
  ])('rejects malformed headers %j', (o, reason) => {
    expect(generic.verify(vectorDelivery(V.expected, o), [V.secret], VNOW)).toEqual({ valid: false, reason });
  });

  it.each(['webhook-id', 'webhook-timestamp', 'webhook-signature'])('reports a missing %s', (h) => {
    const d = vectorDelivery(V.expected);
    delete d.headers[h];
    expect(generic.verify(d, [V.secret], VNOW)).toEqual({ valid: false, reason: 'missing_headers', missingHeaders: [h] });
  });

  it('rejects a tampered or re-serialized body', () => {
    expect(generic.verify(vectorDelivery(V.expected, { body: '{"test": 2432232315}' }), [V.secret], VNOW).valid).toBe(false);
    expect(generic.verify(vectorDelivery(V.expected, { body: JSON.stringify(JSON.parse(V.payload)) }), [V.secret], VNOW).valid).toBe(false);
  });

  it('rejects unusable secrets', () => {
    expect(decodeStandardSecret('whsec_')).toBeNull();
    expect(decodeStandardSecret('whsec_not base64!')).toBeNull();
    expect(generic.verify(vectorDelivery(V.expected), ['whsec_', ''], VNOW)).toEqual({ valid: false, reason: 'no_secret_configured' });
  });
});

describe('generic.verify with rotation', () => {
  const oldS = newStandardWebhookSecret(), newS = newStandardWebhookSecret(), retired = newStandardWebhookSecret();
  const body = loadFixture('generic', 'contact-created-thin.min');
  const now = new Date();
  const d = (secrets: string[]) => toRawDelivery(body, standardWebhookHeaders({ body, secrets }), { pathParam: 'ep_1' });

  it('accepts a delivery signed with either secret, by either side during the overlap', () => {
    expect(generic.verify(d([oldS, newS]), [newS], now).valid).toBe(true);
    expect(generic.verify(d([newS]), [oldS, newS], now).valid).toBe(true);
    expect(generic.verify(d([oldS]), [oldS, newS], now).valid).toBe(true);
  });

  it('rejects a delivery signed only with a retired secret', () => {
    expect(generic.verify(d([retired]), [oldS, newS], now)).toEqual({ valid: false, reason: 'signature_mismatch' });
  });
});

describe('generic.map', () => {
  // pathParam null = no endpoint segment in the route at all
  const map = (body: string | Buffer, pathParam: string | null = 'ep_1', id = 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W') =>
    generic.map(toRawDelivery(body, { 'webhook-id': id }, pathParam === null ? {} : { pathParam }));

  it.each([
    ['example-event', 'example', 'event', 'ep_1'],
    ['contact-created-full', 'contact', 'created', '1f81eb52-5198-4599-803e-771906343485'],
    ['contact-created-thin.min', 'contact', 'created', '1f81eb52-5198-4599-803e-771906343485'],
  ])('%s -> %s.%s', (fixture, entity, action, orderingKey) => {
    const raw = loadFixture('generic', fixture);
    const r = map(raw);
    expect(r.ok && r.events).toEqual([{
      deliveryId: 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W', account: 'ep_1', entity, action, eventType: `generic.${entity}.${action}`,
      orderingKey, payload: JSON.parse(raw.toString()),
    }]);
  });

  it.each([
    [undefined, 'webhook', 'received'], ['invoice.paid', 'invoice', 'paid'], ['user.profile.updated', 'user', 'profile_updated'],
    ['ping', 'ping', 'received'], ['Invoice.Paid', 'invoice', 'paid'], ['café.payé', 'cafe', 'paye'], ['invoice..paid', 'invoice', 'paid'],
    ['../../ws_other.orders.created', 'ws_other', 'orders_created'], ['a b.c/d', 'a_b', 'c_d'],
  ])('type %j -> %s.%s', (type, entity, action) => {
    expect(typeToParts(type)).toEqual({ entity, action });
  });

  it('never produces a bad segment from crafted types', () => {
    const crafted = ['.', '..', '...', '.x', 'x.', '-.-', '_._', '💥.💥', 'ı̇.İ', '\u0000.\u202e', 'x'.repeat(5000), `${'a.'.repeat(3000)}b`,
      'ws_acme.orders.created\nionflux.shopify', 'ＡＢＣ.ｄｅｆ', '%2e%2e.%2f', '__proto__.constructor', ' ', '0.0'];
    for (const type of crafted) {
      const r = map(JSON.stringify({ type }));
      if (r.ok) for (const e of r.events) {
        expect(e.entity).toMatch(SEGMENT);
        expect(e.action).toMatch(SEGMENT);
      } else expect(r.reason).toEqual(expect.any(String));
    }
    expect(map(JSON.stringify({ type: '...' })).ok).toBe(false);
    expect(map(JSON.stringify({ type: 42 })).ok).toBe(false);
  });

  it('needs a JSON object body, a valid endpoint id and a printable webhook-id', () => {
    expect(map('[{"type":"a.b"}]').ok).toBe(false);
    expect(map('"text"').ok).toBe(false);
    expect(map(Buffer.from([0xff])).ok).toBe(false);
    expect(map('{"type":"a.b"}', null).ok).toBe(false);
    for (const ep of ['ep.1', '../ep', 'ép', 'x'.repeat(65), '']) expect(map('{"type":"a.b"}', ep).ok).toBe(false);
    expect(map('{"type":"a.b"}', 'ep_1', 'bad id').ok).toBe(false);
  });
});
