import { describe, expect, it } from 'vitest';
import { parseTikTokSignature, tiktok, TIKTOK_TOLERANCE_SECONDS, tiktokEventMap } from './tiktok.ts';
import { loadFixture, signTikTok, tiktokHeaders, toRawDelivery } from '../../../tests/helpers/sign.ts';

const SECRET = 'tiktok_client_secret_for_tests';
const NOW = new Date('2026-03-01T12:00:00Z');
const T = Math.floor(NOW.getTime() / 1000);
const SEGMENT = /^[a-z0-9][a-z0-9_-]{0,62}$/;

const delivery = (body: string | Buffer, o: { secret?: string; t?: number; header?: string } = {}) =>
  toRawDelivery(body, o.header !== undefined
    ? { 'TikTok-Signature': o.header }
    : tiktokHeaders({ body, secret: o.secret ?? SECRET, timestamp: o.t ?? T }), { receivedAt: NOW });

describe('tiktok.verify', () => {
  const raw = loadFixture('tiktok', 'authorization-removed');

  it('accepts a correctly signed delivery', () => {
    expect(tiktok.verify(delivery(raw), [SECRET], NOW)).toEqual({ valid: true });
  });

  it('signs "<t>.<raw body>" as TikTok documents', () => {
    const hex = signTikTok(raw, SECRET, T);
    expect(parseTikTokSignature(`t=${T},s=${hex}`)).toEqual({ t: String(T), s: [Buffer.from(hex, 'hex')] });
  });

  it('rejects a tampered body and a wrong secret', () => {
    const d = delivery(raw);
    expect(tiktok.verify({ ...d, rawBody: Buffer.from(raw.toString().replace('1 }', '5 }')) }, [SECRET], NOW).valid).toBe(false);
    expect(tiktok.verify(delivery(raw, { secret: 'nope' }), [SECRET], NOW)).toEqual({ valid: false, reason: 'signature_mismatch' });
  });

  it('reports a missing header', () => {
    expect(tiktok.verify(toRawDelivery(raw, {}), [SECRET], NOW)).toEqual({ valid: false, reason: 'missing_headers', missingHeaders: ['tiktok-signature'] });
  });

  it.each(['garbage', `t=${T}`, `s=${'a'.repeat(64)}`, `t=abc,s=${'a'.repeat(64)}`, `t=${T},s=xyz`, `t=${T},s=${'a'.repeat(63)}`,
    `t=${T},t=${T},s=${'a'.repeat(64)}`, `t=-1,s=${'a'.repeat(64)}`, `t=${T};s=${'a'.repeat(64)}`])(
    'rejects malformed header %j without throwing', (header) => {
      expect(tiktok.verify(delivery(raw, { header }), [SECRET], NOW)).toEqual({ valid: false, reason: 'malformed_signature' });
    });

  it('enforces the timestamp tolerance both ways', () => {
    const tol = TIKTOK_TOLERANCE_SECONDS;
    expect(tiktok.verify(delivery(raw, { t: T - tol }), [SECRET], NOW).valid).toBe(true);
    expect(tiktok.verify(delivery(raw, { t: T + tol }), [SECRET], NOW).valid).toBe(true);
    expect(tiktok.verify(delivery(raw, { t: T - tol - 1 }), [SECRET], NOW)).toEqual({ valid: false, reason: 'timestamp_too_old' });
    expect(tiktok.verify(delivery(raw, { t: T + tol + 1 }), [SECRET], NOW)).toEqual({ valid: false, reason: 'timestamp_too_new' });
  });

  it('does not verify a re-serialized body', () => {
    const d = delivery(raw);
    const re = Buffer.from(JSON.stringify(JSON.parse(raw.toString())));
    expect(re.equals(raw)).toBe(false);
    expect(tiktok.verify({ ...d, rawBody: re }, [SECRET], NOW).valid).toBe(false);
  });

  it('accepts either secret during rotation', () => {
    expect(tiktok.verify(delivery(raw, { secret: 'old' }), ['old', 'new'], NOW).valid).toBe(true);
    expect(tiktok.verify(delivery(raw, { secret: 'new' }), ['old', 'new'], NOW).valid).toBe(true);
    expect(tiktok.verify(delivery(raw, { secret: 'old' }), ['new'], NOW).valid).toBe(false);
    expect(tiktok.verify(delivery(raw, { secret: '' }), [''], NOW)).toEqual({ valid: false, reason: 'no_secret_configured' });
  });
});

describe('tiktok.map', () => {
  it.each([
    ['authorization-removed', 'authorization', 'removed', 'act.example12345Example12345Example', 'act.example12345Example12345Example'],
    ['video-upload-failed', 'video', 'upload_failed', 'act.example12345Example12345Example', 'video.6974245311675353080.VDCxrcMJ'],
    ['video-publish-completed', 'video', 'publish_completed', 'act.example12345Example12345Example', 'video.6974245311675353080.VDCxrcMJ'],
    ['portability-download-ready', 'portability', 'download_ready', 'developer_client_key', '123123123123123'],
  ])('%s -> %s.%s', (fixture, entity, action, account, orderingKey) => {
    const raw = loadFixture('tiktok', fixture);
    const r = tiktok.map(delivery(raw));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.events).toHaveLength(1);
    expect(r.events[0]).toMatchObject({
      account, entity, action, orderingKey, eventType: `tiktok.${entity}.${action}`,
    });
    expect(r.events[0]!.deliveryId).toMatch(/^tiktok_[0-9a-f]{40}$/);
    const original = JSON.parse(raw.toString());
    expect(r.events[0]!.payload).toEqual({ ...original, content: JSON.parse(original.content) });
  });

  it('derives a delivery id that survives re-spacing but differs per event', () => {
    const id = (b: string | Buffer) => { const r = tiktok.map(delivery(b)); return r.ok ? r.events[0]!.deliveryId : null; };
    const raw = loadFixture('tiktok', 'video-upload-failed');
    expect(id(JSON.stringify(JSON.parse(raw.toString())))).toBe(id(raw));
    expect(id(loadFixture('tiktok', 'video-publish-completed'))).not.toBe(id(raw));
  });

  it('documents a valid segment pair for every known event', () => {
    for (const { entity, action } of Object.values(tiktokEventMap)) {
      expect(entity).toMatch(SEGMENT);
      expect(action).toMatch(SEGMENT);
    }
  });

  it('fails a correctly signed body that does not fit the schema', () => {
    for (const body of [
      '{"client_key":"k","event":"authorization.removed","create_time":1615338610,"user_openid":"u","content":5}',
      '{"client_key":"k","event":"authorization.removed","create_time":"soon","user_openid":"u","content":"{}"}',
      '{"client_key":"k","event":"authorization.removed","create_time":1615338610,"user_openid":"u","content":"not json"}',
      '{"client_key":"k","event":"video.upload.failed","create_time":1615338610,"content":"{\\"share_id\\":7}"}',
    ]) {
      const d = delivery(body);
      expect(tiktok.verify(d, [SECRET], NOW).valid).toBe(true);
      expect(tiktok.map(d)).toEqual({ ok: false, reason: expect.any(String) });
    }
  });

  it.each(['video..upload', 'authorization.removed.x', '__proto__', 'constructor', 'toString', 'VIDEO.UPLOAD.FAILED', 'vidéo.upload.failed'])(
    'fails unknown or crafted event %j', (event) => {
      const body = JSON.stringify({ client_key: 'k', event, create_time: 1615338610, user_openid: 'u', content: '{}' });
      expect(tiktok.map(delivery(body))).toEqual({ ok: false, reason: expect.stringContaining('unknown TikTok event') });
    });

  it('never throws on garbage', () => {
    for (const body of [Buffer.from([0xc3, 0x28]), '', '[]', 'null', '"x"']) {
      expect(tiktok.map(delivery(body)).ok).toBe(false);
    }
  });
});

describe('tiktok.internal', () => {
  it('copies to ionflux.internal.tiktok only what tiktok-sync acts on, each a mapped event', () => {
    const mapped = new Set(Object.values(tiktokEventMap).map((p) => `${p.entity}.${p.action}`));
    expect([...tiktok.internal!].every((e) => mapped.has(e))).toBe(true);
    expect(tiktok.internal).toEqual(new Set(['authorization.removed', 'post.publish_completed', 'post.publish_failed', 'post.publicly_available', 'post.inbox_delivered']));
  });
});
