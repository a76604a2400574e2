import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { MapResult, MappedEvent, RawDelivery, VendorModule, VerifyResult } from './types.ts';
import {
  anyHmacMatches, checkRequired, guardMap, guardVerify, HEX64, isIdText, makeEvent, parseJson,
  safeEqual, usableSecrets, zodReason,
} from './util.ts';

/**
 * Meta WhatsApp Cloud API webhooks: `X-Hub-Signature-256: sha256=<hex>` = HMAC-SHA256 of the raw
 * body keyed with the app secret. Meta signs no timestamp; dedupe on message/status ids absorbs
 * retries and replays.
 */
export const WHATSAPP_REQUIRED_HEADERS = ['x-hub-signature-256'] as const;

function verify(d: RawDelivery, secrets: string[], _now: Date): VerifyResult {
  return guardVerify(() => {
    const missing = checkRequired(d, WHATSAPP_REQUIRED_HEADERS);
    if (missing) return missing;
    const header = d.headers['x-hub-signature-256']!.trim();
    const hex = header.startsWith('sha256=') ? header.slice(7) : '';
    if (!HEX64.test(hex)) return { valid: false, reason: 'malformed_signature' };
    const keys = usableSecrets(secrets);
    if (!keys.length) return { valid: false, reason: 'no_secret_configured' };
    const ok = anyHmacMatches([Buffer.from(hex, 'hex')], keys, d.rawBody);
    return ok ? { valid: true } : { valid: false, reason: 'signature_mismatch' };
  });
}

/**
 * GET subscription handshake. Returns the challenge to echo when mode is subscribe and the token
 * matches (constant time), else null (the route answers 403). The challenge is echoed only if it
 * is a plain token, so the endpoint cannot be used to reflect arbitrary content.
 * Accepts both flat (`hub.mode`) and nested (`hub: { mode }`) query shapes.
 */
export function verifyChallenge(query: Record<string, unknown>, verifyToken: string): string | null {
  const hub = (query.hub && typeof query.hub === 'object' ? query.hub : {}) as Record<string, unknown>;
  const mode = query['hub.mode'] ?? hub.mode;
  const token = query['hub.verify_token'] ?? hub.verify_token;
  const challenge = query['hub.challenge'] ?? hub.challenge;
  if (mode !== 'subscribe' || typeof token !== 'string' || typeof challenge !== 'string') return null;
  if (!verifyToken || !safeEqual(Buffer.from(token), Buffer.from(verifyToken))) return null;
  return /^[A-Za-z0-9_-]{1,256}$/.test(challenge) ? challenge : null;
}

const message = z.looseObject({
  id: z.string().min(1).max(512),
  from: z.string().max(64).optional(),
  timestamp: z.string().max(16).optional(),
  type: z.string().max(64),
});
const status = z.looseObject({
  id: z.string().min(1).max(512),
  status: z.string().min(1).max(32),
  timestamp: z.string().max(16).optional(),
  recipient_id: z.string().max(128).optional(),
});
const value = z.looseObject({
  messaging_product: z.literal('whatsapp'),
  metadata: z.looseObject({ phone_number_id: z.string().regex(/^\d{1,32}$/), display_phone_number: z.string().max(32).optional() }),
  contacts: z.array(z.looseObject({ wa_id: z.string().max(64).optional() })).optional(),
  messages: z.array(message).max(1000).optional(),
  statuses: z.array(status).max(1000).optional(),
  /** A system-, app- or account-level problem with no message to hang it on (Meta's errors webhook). */
  errors: z.array(z.looseObject({ code: z.number().optional(), title: z.string().max(512).optional() })).max(100).optional(),
});
const notification = z.looseObject({
  object: z.literal('whatsapp_business_account'),
  entry: z.array(z.looseObject({
    id: z.string().max(64),
    changes: z.array(z.looseObject({ field: z.string().max(64), value: z.unknown() })),
  })).min(1),
});

/**
 * Every messages[] item is `messages.received` (deliveryId = wamid); every statuses[] item is
 * `messages.status` (deliveryId = wamid + ':' + status, since one message gets sent, delivered,
 * read); every errors[] item (a problem of the number or the app, with no message) is
 * `messages.error`. Received messages are keyed by phone number + sender so a conversation stays
 * in order; statuses by the message id so one message's statuses stay in order; errors by the number.
 */
function map(d: RawDelivery): MapResult {
  return guardMap(() => {
    const json = parseJson(d.rawBody);
    if (!json.ok) return json;
    const parsed = notification.safeParse(json.value);
    if (!parsed.success) return { ok: false, reason: zodReason('WhatsApp notification', parsed.error) };
    const events: MappedEvent[] = [];
    for (const entry of parsed.data.entry) {
      for (const change of entry.changes) {
        // Other subscribed fields (template status, quality, ...) have no topic yet: fail loudly so
        // the bytes are dead-lettered instead of acknowledged and dropped.
        if (change.field !== 'messages') return { ok: false, reason: `unsupported WhatsApp webhook field ${JSON.stringify(change.field)}` };
        const v = value.safeParse(change.value);
        if (!v.success) return { ok: false, reason: zodReason('WhatsApp messages value', v.error) };
        const { metadata, contacts, messages = [], statuses = [], errors = [] } = v.data;
        const account = metadata.phone_number_id;
        for (const m of messages) {
          if (!isIdText(m.id)) return { ok: false, reason: 'message id is not a printable id' };
          events.push(makeEvent('whatsapp', {
            deliveryId: m.id,
            account,
            entity: 'messages',
            action: 'received',
            orderingKey: m.from ? `${account}:${m.from}` : m.id,
            payload: { waba_id: entry.id, metadata, contacts: contacts?.filter((c) => c.wa_id === m.from), message: m },
          }));
        }
        for (const s of statuses) {
          const deliveryId = `${s.id}:${s.status}`;
          if (!isIdText(deliveryId)) return { ok: false, reason: 'status id is not a printable id' };
          events.push(makeEvent('whatsapp', {
            deliveryId,
            account,
            entity: 'messages',
            action: 'status',
            orderingKey: s.id,
            payload: { waba_id: entry.id, metadata, status: s },
          }));
        }
        for (const e of errors) {
          // Meta gives these no id: the error's own content names it, so a retry of the delivery is
          // one event (the same error repeated within the dedupe window is one too).
          events.push(makeEvent('whatsapp', {
            deliveryId: `error:${createHash('sha256').update(`${entry.id}:${account}:${JSON.stringify(e)}`).digest('hex').slice(0, 32)}`,
            account,
            entity: 'messages',
            action: 'error',
            orderingKey: account,
            payload: { waba_id: entry.id, metadata, error: e },
          }));
        }
      }
    }
    if (!events.length) return { ok: false, reason: 'WhatsApp notification carries no messages, statuses or errors' };
    return { ok: true, events };
  });
}

export const whatsapp: VendorModule = {
  source: 'whatsapp',
  route: { path: 'whatsapp', param: 'none' },
  secret: { env: 'WHATSAPP_APP_SECRET', platformPath: 'platform/whatsapp' },
  verbatim: false,
  mapHeaders: [],
  requiredHeaders: [...WHATSAPP_REQUIRED_HEADERS],
  verify,
  map,
};
