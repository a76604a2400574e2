import { createPublicKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { accountProblem, PLATFORM_EMAIL_ACCOUNT_ITSELF } from '../../../shared/links.ts';
import { sendgrid, sendgridEventMap, SENDGRID_FUTURE_SKEW_SECONDS, SENDGRID_MAX_AGE_SECONDS } from './sendgrid.ts';
import { loadFixture, sendgridHeaders, sendgridKeyPair, toRawDelivery } from '../../../tests/helpers/sign.ts';

const SEGMENT = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const vectors = JSON.parse(loadFixture('sendgrid', 'signed-vectors').toString()) as Record<string, { fixture?: string; payload?: string; publicKey: string; signature: string; timestamp: string }> & { otherKey: string };
const SIG = 'X-Twilio-Email-Event-Webhook-Signature';
const TS = 'X-Twilio-Email-Event-Webhook-Timestamp';

function vectorDelivery(name: 'single' | 'multiple' | 'legacy', o: { body?: string | Buffer; signature?: string; timestamp?: string; pathParam?: string } = {}) {
  const v = vectors[name]!;
  const body = o.body ?? (v.fixture ? loadFixture('sendgrid', v.fixture) : v.payload!);
  return toRawDelivery(body, { [SIG]: o.signature ?? v.signature, [TS]: o.timestamp ?? v.timestamp }, { pathParam: o.pathParam ?? 'acme' });
}
const at = (ts: string) => new Date(Number(ts) * 1000);

describe('sendgrid.verify with SendGrid\'s own signed vectors', () => {
  it.each(['single', 'multiple', 'legacy'] as const)('accepts the %s vector', (name) => {
    const v = vectors[name]!;
    expect(sendgrid.verify(vectorDelivery(name), [v.publicKey], at(v.timestamp))).toEqual({ valid: true });
  });

  it('rejects another key, a bad payload, a bad signature, a bad timestamp', () => {
    const v = vectors.single!;
    const now = at(v.timestamp);
    expect(sendgrid.verify(vectorDelivery('single'), [vectors.otherKey], now)).toEqual({ valid: false, reason: 'signature_mismatch' });
    expect(sendgrid.verify(vectorDelivery('single', { body: 'payload' }), [v.publicKey], now).valid).toBe(false);
    const badSig = 'MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH3j/0=';
    expect(sendgrid.verify(vectorDelivery('single', { signature: badSig }), [v.publicKey], now).valid).toBe(false);
    expect(sendgrid.verify(vectorDelivery('single', { timestamp: 'timestamp' }), [v.publicKey], now)).toEqual({ valid: false, reason: 'malformed_timestamp' });
    expect(sendgrid.verify(vectorDelivery('single', { timestamp: String(Number(v.timestamp) + 1) }), [v.publicKey], now).valid).toBe(false);
  });

  it('verifies the raw bytes: dropping SendGrid\'s trailing CRLF or re-serializing breaks it', () => {
    const v = vectors.multiple!;
    const raw = loadFixture('sendgrid', 'signed-multi');
    expect(raw.toString().endsWith('}]\r\n')).toBe(true);
    const now = at(v.timestamp);
    expect(sendgrid.verify(vectorDelivery('multiple', { body: raw.toString().trimEnd() }), [v.publicKey], now).valid).toBe(false);
    expect(sendgrid.verify(vectorDelivery('multiple', { body: JSON.stringify(JSON.parse(raw.toString())) }), [v.publicKey], now).valid).toBe(false);
  });

  it('accepts either key during rotation, in PEM form too', () => {
    const v = vectors.single!;
    const pem = createPublicKey({ key: Buffer.from(v.publicKey, 'base64'), format: 'der', type: 'spki' }).export({ type: 'spki', format: 'pem' }).toString();
    expect(sendgrid.verify(vectorDelivery('single'), [vectors.otherKey, v.publicKey], at(v.timestamp)).valid).toBe(true);
    expect(sendgrid.verify(vectorDelivery('single'), [pem], at(v.timestamp)).valid).toBe(true);
  });
});

describe('sendgrid.verify with generated keys', () => {
  const { publicKey, privateKey } = sendgridKeyPair();
  const body = loadFixture('sendgrid', 'bounce');
  const NOW = new Date('2026-03-01T12:00:00Z');
  const T = Math.floor(NOW.getTime() / 1000);
  const d = (b: string | Buffer = body, ts: number = T) => toRawDelivery(b, sendgridHeaders({ body: b, privateKey, timestamp: ts }), { pathParam: 'acme' });

  it('accepts a valid delivery and rejects a tampered one', () => {
    expect(sendgrid.verify(d(), [publicKey], NOW)).toEqual({ valid: true });
    expect(sendgrid.verify({ ...d(), rawBody: Buffer.from(body.toString().replace('bounce"', 'delivered"')) }, [publicKey], NOW).valid).toBe(false);
  });

  it.each([SIG.toLowerCase(), TS.toLowerCase()])('reports missing %s', (h) => {
    const x = d();
    delete x.headers[h];
    expect(sendgrid.verify(x, [publicKey], NOW)).toEqual({ valid: false, reason: 'missing_headers', missingHeaders: [h] });
  });

  it.each(['', '!!!', 'abc', 'A'.repeat(500), `${'A'.repeat(90)} =`])('rejects malformed signature %j without throwing', (sig) => {
    const x = d();
    x.headers[SIG.toLowerCase()] = sig;
    expect(sendgrid.verify(x, [publicKey], NOW).valid).toBe(false);
  });

  it('rejects garbage or non-EC keys as unusable, never throws', () => {
    expect(sendgrid.verify(d(), ['not a key', 'AAAA'], NOW)).toEqual({ valid: false, reason: 'no_secret_configured' });
    expect(sendgrid.verify(d(), [], NOW)).toEqual({ valid: false, reason: 'no_secret_configured' });
  });

  it('accepts retries up to SENDGRID_MAX_AGE_SECONDS old (24 h, inside the 72 h dedupe window), refuses older and far-future ones', () => {
    expect(SENDGRID_MAX_AGE_SECONDS).toBeLessThan(72 * 3600);
    expect(sendgrid.verify(d(body, T - 3600), [publicKey], NOW).valid).toBe(true);
    expect(sendgrid.verify(d(body, T - SENDGRID_MAX_AGE_SECONDS), [publicKey], NOW).valid).toBe(true);
    expect(sendgrid.verify(d(body, T - SENDGRID_MAX_AGE_SECONDS - 1), [publicKey], NOW)).toEqual({ valid: false, reason: 'timestamp_too_old' });
    expect(sendgrid.verify(d(body, T - 3 * 86400), [publicKey], NOW)).toEqual({ valid: false, reason: 'timestamp_too_old' });
    expect(sendgrid.verify(d(body, T + SENDGRID_FUTURE_SKEW_SECONDS + 1), [publicKey], NOW)).toEqual({ valid: false, reason: 'timestamp_too_new' });
  });
});

describe('sendgrid.map', () => {
  const map = (fixture: string, pathParam?: string) =>
    sendgrid.map(toRawDelivery(loadFixture('sendgrid', fixture), {}, pathParam === undefined ? {} : { pathParam }));

  it.each([
    ['processed', 'delivery', 'processed', 'rbtnWrG1DVDGGGFHFyun0A=='],
    ['delivered', 'delivery', 'delivered', 'rWVYmVk90MjZJ9iohOBa3w=='],
    ['deferred', 'delivery', 'deferred', 't7LEShmowp86DTdUW8M-GQ=='],
    ['bounce', 'delivery', 'bounced', '6g4ZI7SA-xmRDv57GoPIPw=='],
    ['blocked', 'delivery', 'bounced', '6g4ZI7SA-xmRDv57GoPIPw=='],
    ['dropped', 'delivery', 'dropped', 'zmzJhfJgAfUSOW80yEbPyw=='],
    ['open', 'delivery', 'opened', 'FOTFFO0ecsBE-zxFXfs6WA=='],
    ['click', 'delivery', 'clicked', 'sendgrid_internal_event_id'],
    ['spamreport', 'delivery', 'spam_reported', '37nvH5QBz858KGVYCM4uOA=='],
    ['unsubscribe', 'delivery', 'unsubscribed', 'zz_BjPgU_5pS-J8vlfB1sg=='],
    ['group_unsubscribe', 'delivery', 'group_unsubscribed', 'ahSCB7xYcXFb-hEaawsPRw=='],
    ['group_resubscribe', 'delivery', 'group_resubscribed', 'w_u0vJhLT-OFfprar5N93g=='],
    ['account_status_change', 'account', 'status_changed', 'MjEzNTg5OTcyOC10ZXJtaW5hdGUtMTcwNzg1MTUzMQ'],
  ])('%s -> %s.%s', (fixture, entity, action, deliveryId) => {
    const r = map(fixture, 'acme');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.events).toHaveLength(1);
    expect(r.events[0]).toMatchObject({ deliveryId, account: 'acme', entity, action, eventType: `email.${entity}.${action}` });
    expect(r.events[0]!.payload).toEqual(JSON.parse(loadFixture('sendgrid', fixture).toString())[0]);
  });

  it('keys by the trimmed sg_message_id and keeps the vendor timestamp in the payload', () => {
    const r = map('deferred', 'acme');
    expect(r.ok && r.events[0]).toMatchObject({ orderingKey: '14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0', payload: { timestamp: 1513299569 } });
  });

  it('turns a signed batch into one event per item', () => {
    const r = map('signed-multi', 'acme');
    expect(r.ok && r.events.map((e) => [e.action, e.deliveryId])).toEqual([
      ['processed', 'cHJvY2Vzc2VkLTE5OTQyMTEyLXFOd0JMZ1BRUWpXNkRKdktRd1NBYnctMA'],
      ['bounced', 'Ym91bmNlLTAtMTk5NDIxMTItcU53QkxnUFFRalc2REp2S1F3U0Fidy0w'],
    ]);
  });

  it('takes the account from the endpoint first, then the ionflux_workspace custom arg', () => {
    const items = [
      { email: 'a@x.io', event: 'delivered', sg_event_id: 'e1', timestamp: 1700000000, ionflux_workspace: 'ws-one' },
      { email: 'b@x.io', event: 'open', sg_event_id: 'e2', timestamp: 1700000000, custom_args: { ionflux_workspace: 'ws-two' } },
    ];
    const body = JSON.stringify(items);
    const shared = sendgrid.map(toRawDelivery(body, {}));
    expect(shared.ok && shared.events.map((e) => e.account)).toEqual(['platform:ws-one', 'platform:ws-two']);
    // No account an admin links (`ionflux link email <account>`) can be named like a platform one.
    expect(accountProblem('email', 'platform:ws-one')).not.toBeNull();
    expect(accountProblem('email', 'ws-one')).toBeNull();
    const own = sendgrid.map(toRawDelivery(body, {}, { pathParam: 'acme' }));
    expect(own.ok && own.events.map((e) => e.account)).toEqual(['acme', 'acme']);
    expect(map('delivered')).toEqual({ ok: false, reason: expect.stringContaining('ionflux_workspace') });
  });

  it("maps SendGrid's account_status_change on the platform route, which names no workspace, to the platform's own account instead of failing its batch", () => {
    const status = JSON.parse(loadFixture('sendgrid', 'account_status_change').toString()) as Record<string, unknown>[];
    const body = JSON.stringify([{ email: 'a@x.io', event: 'bounce', sg_event_id: 'b1', timestamp: 1700000000, ionflux_workspace: 'ws-one' }, ...status]);
    const r = sendgrid.map(toRawDelivery(body, {}));
    expect(r.ok && r.events.map((e) => [e.account, e.eventType])).toEqual([['platform:ws-one', 'email.delivery.bounced'], [PLATFORM_EMAIL_ACCOUNT_ITSELF, expect.stringMatching(/^email\./)]]);
    // Never an account an admin could link.
    expect(accountProblem('email', PLATFORM_EMAIL_ACCOUNT_ITSELF)).not.toBeNull();
  });

  it('fails the whole batch on an unknown event or a schema failure', () => {
    const bad = (items: unknown) => sendgrid.map(toRawDelivery(JSON.stringify(items), {}, { pathParam: 'acme' }));
    expect(bad([{ event: 'delivered', sg_event_id: 'a', timestamp: 1 }, { event: 'exploded', sg_event_id: 'b', timestamp: 1 }]))
      .toEqual({ ok: false, reason: expect.stringContaining('unknown SendGrid event') });
    expect(bad([{ event: 'delivered', timestamp: 1 }])).toEqual({ ok: false, reason: expect.stringContaining('failed schema') });
    expect(bad({ event: 'delivered', sg_event_id: 'a', timestamp: 1 }).ok).toBe(false);
    expect(bad([]).ok).toBe(false);
    expect(bad([{ event: '__proto__', sg_event_id: 'a', timestamp: 1 }]).ok).toBe(false);
  });

  it.each(['a.b', '..', 'ws/acme', 'é', 'x'.repeat(65)])('rejects crafted endpoint account %j', (pathParam) => {
    expect(map('delivered', pathParam).ok).toBe(false);
  });

  it('only ever emits valid segments', () => {
    for (const { entity, action } of Object.values(sendgridEventMap)) {
      expect(entity).toMatch(SEGMENT);
      expect(action).toMatch(SEGMENT);
    }
  });
});
