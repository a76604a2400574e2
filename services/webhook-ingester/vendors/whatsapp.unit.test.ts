import { describe, expect, it } from 'vitest';
import { verifyChallenge, whatsapp } from './whatsapp.ts';
import { loadFixture, toRawDelivery, whatsappHeaders } from '../../../tests/helpers/sign.ts';

const SECRET = 'meta_app_secret_for_tests';
const NOW = new Date('2026-03-01T12:00:00Z');
const delivery = (body: string | Buffer, appSecret = SECRET) => toRawDelivery(body, whatsappHeaders({ body, appSecret }), { receivedAt: NOW });

describe('whatsapp.verify', () => {
  const raw = loadFixture('whatsapp', 'text-message');

  it('accepts a correctly signed delivery', () => {
    expect(whatsapp.verify(delivery(raw), [SECRET], NOW)).toEqual({ valid: true });
  });

  it('rejects a tampered body and the wrong secret', () => {
    const tampered = Buffer.from(raw.toString().replace('another color', 'a refund'));
    expect(whatsapp.verify({ ...delivery(raw), rawBody: tampered }, [SECRET], NOW)).toEqual({ valid: false, reason: 'signature_mismatch' });
    expect(whatsapp.verify(delivery(raw, 'other'), [SECRET], NOW).valid).toBe(false);
  });

  it('reports a missing header', () => {
    expect(whatsapp.verify(toRawDelivery(raw, {}), [SECRET], NOW)).toEqual({ valid: false, reason: 'missing_headers', missingHeaders: ['x-hub-signature-256'] });
  });

  it.each(['sha1=abc', `sha256=${'z'.repeat(64)}`, 'a'.repeat(64), `sha256=${'a'.repeat(63)}`, 'sha256=', `SHA256=${'a'.repeat(64)}`])(
    'rejects malformed header %j without throwing', (h) => {
      expect(whatsapp.verify(toRawDelivery(raw, { 'X-Hub-Signature-256': h }), [SECRET], NOW)).toEqual({ valid: false, reason: 'malformed_signature' });
    });

  it('does not verify a re-serialized body', () => {
    const re = Buffer.from(JSON.stringify(JSON.parse(raw.toString())));
    expect(re.equals(raw)).toBe(false);
    expect(whatsapp.verify({ ...delivery(raw), rawBody: re }, [SECRET], NOW).valid).toBe(false);
  });

  it('accepts either app secret during rotation', () => {
    expect(whatsapp.verify(delivery(raw, 'old'), ['old', 'new'], NOW).valid).toBe(true);
    expect(whatsapp.verify(delivery(raw, 'new'), ['old', 'new'], NOW).valid).toBe(true);
    expect(whatsapp.verify(delivery(raw, 'old'), ['new'], NOW).valid).toBe(false);
  });
});

describe('whatsapp.map', () => {
  it('maps an incoming text message to messages.received', () => {
    const r = whatsapp.map(delivery(loadFixture('whatsapp', 'text-message')));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.events).toHaveLength(1);
    expect(r.events[0]).toMatchObject({
      deliveryId: 'wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=',
      account: '106540352242922', entity: 'messages', action: 'received', eventType: 'whatsapp.messages.received',
      orderingKey: '106540352242922:16505551234',
    });
    expect(r.events[0]!.payload).toMatchObject({
      waba_id: '102290129340398', contacts: [{ wa_id: '16505551234' }], message: { text: { body: 'Does it come in another color?' } },
    });
  });

  it.each([
    ['status-sent', 'wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=', 'sent'],
    ['status-failed', 'wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA', 'failed'],
  ])('maps %s to messages.status keyed by the message id', (fixture, id, status) => {
    const r = whatsapp.map(delivery(loadFixture('whatsapp', fixture)));
    expect(r.ok && r.events).toEqual([expect.objectContaining({
      deliveryId: `${id}:${status}`, account: '106540352242922', entity: 'messages', action: 'status', orderingKey: id,
    })]);
  });

  it('fails correctly signed bodies that do not fit the schema', () => {
    const text = JSON.parse(loadFixture('whatsapp', 'text-message').toString());
    const variants = [
      { ...text, object: 'page' },
      { ...text, entry: [] },
      JSON.parse(JSON.stringify(text).replace('"106540352242922"', '"1.2"')),
      JSON.parse(JSON.stringify(text).replace('"106540352242922"', '"../ws_other"')),
      JSON.parse(JSON.stringify(text).replace('"field":"messages"', '"field":"message_template_status_update"')),
      JSON.parse(JSON.stringify(text).replace('"messages":[', '"nothing":[')),
    ];
    for (const v of variants) {
      const d = delivery(JSON.stringify(v));
      expect(whatsapp.verify(d, [SECRET], NOW).valid).toBe(true);
      expect(whatsapp.map(d)).toEqual({ ok: false, reason: expect.any(String) });
    }
  });

  it('never throws on garbage', () => {
    for (const body of [Buffer.from([0xe2, 0x82]), '', '[]', 'null', '{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":null}]}]}']) {
      expect(whatsapp.map(delivery(body)).ok).toBe(false);
    }
  });
});

describe('verifyChallenge', () => {
  const q = (o: Record<string, unknown>) => ({ 'hub.mode': 'subscribe', 'hub.verify_token': 'tok', 'hub.challenge': '1158201444', ...o });

  it('echoes the challenge for subscribe with the right token (flat and nested query)', () => {
    expect(verifyChallenge(q({}), 'tok')).toBe('1158201444');
    expect(verifyChallenge({ hub: { mode: 'subscribe', verify_token: 'tok', challenge: 'abc' } }, 'tok')).toBe('abc');
  });

  it.each([
    [q({ 'hub.verify_token': 'wrong' }), 'tok'],
    [q({ 'hub.mode': 'unsubscribe' }), 'tok'],
    [q({ 'hub.challenge': undefined }), 'tok'],
    [q({ 'hub.verify_token': ['tok'] }), 'tok'],
    [q({ 'hub.challenge': '<script>alert(1)</script>' }), 'tok'],
    [q({ 'hub.verify_token': '' }), ''],
  ])('returns null for %j', (query, token) => {
    expect(verifyChallenge(query, token)).toBeNull();
  });
});
