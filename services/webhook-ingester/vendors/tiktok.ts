import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { MapResult, RawDelivery, VendorModule, VerifyResult } from './types.ts';
import {
  anyHmacMatches, checkRequired, guardMap, guardVerify, HEX64, makeEvent, parseJson,
  UNIX_SECONDS, usableSecrets, zodReason,
} from './util.ts';

/**
 * TikTok for Developers webhooks (Login Kit, Content Posting, Data Portability):
 * `TikTok-Signature: t=<unix>,s=<hex>` where s = HMAC-SHA256(client_secret, "<t>.<raw body>").
 * TikTok recommends rejecting old timestamps; we also reject ones too far in the future.
 */
export const TIKTOK_TOLERANCE_SECONDS = 5 * 60;
export const TIKTOK_REQUIRED_HEADERS = ['tiktok-signature'] as const;

/**
 * Documented event names -> topic parts. post.publish.* are the Content Posting API events
 * (TikTok spells one "publicaly"; both spellings map to the same action).
 *
 * | event                                       | entity        | action                       |
 * | ------------------------------------------- | ------------- | ---------------------------- |
 * | authorization.removed                       | authorization | removed                      |
 * | video.upload.failed                         | video         | upload_failed                |
 * | video.publish.completed                     | video         | publish_completed            |
 * | portability.download.ready                  | portability   | download_ready               |
 * | post.publish.failed                         | post          | publish_failed               |
 * | post.publish.complete                       | post          | publish_completed            |
 * | post.publish.inbox_delivered                | post          | inbox_delivered              |
 * | post.publish.publicly_available             | post          | publicly_available           |
 * | post.publish.no_longer_publicaly_available  | post          | no_longer_publicly_available |
 */
export const tiktokEventMap: Readonly<Record<string, { entity: string; action: string }>> = Object.freeze({
  'authorization.removed': { entity: 'authorization', action: 'removed' },
  'video.upload.failed': { entity: 'video', action: 'upload_failed' },
  'video.publish.completed': { entity: 'video', action: 'publish_completed' },
  'portability.download.ready': { entity: 'portability', action: 'download_ready' },
  'post.publish.failed': { entity: 'post', action: 'publish_failed' },
  'post.publish.complete': { entity: 'post', action: 'publish_completed' },
  'post.publish.inbox_delivered': { entity: 'post', action: 'inbox_delivered' },
  'post.publish.publicly_available': { entity: 'post', action: 'publicly_available' },
  'post.publish.no_longer_publicaly_available': { entity: 'post', action: 'no_longer_publicly_available' },
  'post.publish.no_longer_publicly_available': { entity: 'post', action: 'no_longer_publicly_available' },
});

/** Splits `t=...,s=...[,s=...]`; null when malformed. */
export function parseTikTokSignature(header: string): { t: string; s: Buffer[] } | null {
  let t: string | undefined;
  const s: Buffer[] = [];
  const items = header.split(',');
  if (items.length > 10) return null;
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq < 0) return null;
    const k = item.slice(0, eq).trim();
    const v = item.slice(eq + 1).trim();
    if (k === 't') {
      if (t !== undefined || !UNIX_SECONDS.test(v)) return null;
      t = v;
    } else if (k === 's') {
      if (!HEX64.test(v)) return null;
      s.push(Buffer.from(v, 'hex'));
    }
  }
  return t !== undefined && s.length ? { t, s } : null;
}

function verify(d: RawDelivery, secrets: string[], now: Date): VerifyResult {
  return guardVerify(() => {
    const missing = checkRequired(d, TIKTOK_REQUIRED_HEADERS);
    if (missing) return missing;
    const sig = parseTikTokSignature(d.headers['tiktok-signature']!);
    if (!sig) return { valid: false, reason: 'malformed_signature' };
    const age = Math.floor(now.getTime() / 1000) - Number(sig.t);
    if (age > TIKTOK_TOLERANCE_SECONDS) return { valid: false, reason: 'timestamp_too_old' };
    if (age < -TIKTOK_TOLERANCE_SECONDS) return { valid: false, reason: 'timestamp_too_new' };
    const keys = usableSecrets(secrets);
    if (!keys.length) return { valid: false, reason: 'no_secret_configured' };
    // The header's own `t` text is what TikTok signed; never a re-formatted number.
    const ok = anyHmacMatches(sig.s, keys, `${sig.t}.`, d.rawBody);
    return ok ? { valid: true } : { valid: false, reason: 'signature_mismatch' };
  });
}

const body = z.looseObject({
  client_key: z.string().min(1).max(128),
  event: z.string().min(1).max(128),
  create_time: z.number().int().positive(),
  // portability.download.ready is published without user_openid
  user_openid: z.string().min(1).max(255).optional(),
  content: z.string().max(64 * 1024),
});
const content = z.looseObject({
  share_id: z.string().max(255).optional(),
  publish_id: z.string().max(255).optional(),
  request_id: z.union([z.number(), z.string().max(255)]).optional(),
});

function map(d: RawDelivery): MapResult {
  return guardMap(() => {
    const json = parseJson(d.rawBody);
    if (!json.ok) return json;
    const parsed = body.safeParse(json.value);
    if (!parsed.success) return { ok: false, reason: zodReason('TikTok webhook', parsed.error) };
    const b = parsed.data;
    const parts = Object.hasOwn(tiktokEventMap, b.event) ? tiktokEventMap[b.event] : undefined;
    if (!parts) return { ok: false, reason: `unknown TikTok event ${JSON.stringify(b.event.slice(0, 80))}` };

    let inner: unknown;
    try {
      inner = JSON.parse(b.content);
    } catch {
      return { ok: false, reason: 'TikTok content is not a JSON string' };
    }
    const c = content.safeParse(inner);
    if (!c.success) return { ok: false, reason: zodReason(`TikTok ${b.event} content`, c.error) };

    // No per-user open id on app-level events (portability): the client key is the account then.
    const account = b.user_openid ?? b.client_key;
    // TikTok sends no delivery id. Retries resend the same event, so a digest of the signed fields
    // (not of the bytes, whose spacing could differ) is stable across retries and unique per event.
    const deliveryId = createHash('sha256')
      .update(JSON.stringify([b.client_key, b.event, b.create_time, b.user_openid ?? null, b.content]))
      .digest('hex')
      .slice(0, 40);
    const entityId = c.data.publish_id ?? c.data.share_id ?? (c.data.request_id !== undefined ? String(c.data.request_id) : undefined);
    return {
      ok: true,
      events: [makeEvent('tiktok', {
        deliveryId: `tiktok_${deliveryId}`,
        account,
        entity: parts.entity,
        action: parts.action,
        orderingKey: entityId ?? account,
        // content decoded once here so consumers need no second parse
        payload: { ...b, content: c.data },
      })],
    };
  });
}

export const tiktok: VendorModule = {
  source: 'tiktok',
  route: { path: 'tiktok', param: 'none' },
  secret: { env: 'TIKTOK_CLIENT_SECRET', platformPath: 'platform/tiktok' },
  verbatim: true,
  mapHeaders: [],
  requiredHeaders: [...TIKTOK_REQUIRED_HEADERS],
  verify,
  map,
  // tiktok-sync forgets tokens on authorization.removed and ends a videos.publish command on the
  // final post.publish.* status (services/tiktok-sync/lifecycle.ts).
  internal: new Set(['authorization.removed', 'post.publish_completed', 'post.publish_failed', 'post.publicly_available', 'post.inbox_delivered']),
};
