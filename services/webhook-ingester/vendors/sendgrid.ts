import { createPublicKey, verify as ecdsaVerify, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { PLATFORM_EMAIL_ACCOUNT_ITSELF, platformEmailAccount } from '../../../shared/links.ts';
import type { MapResult, MappedEvent, RawDelivery, VendorModule, VerifyResult } from './types.ts';
import { checkRequired, guardMap, guardVerify, isIdText, makeEvent, parseJson, usableSecrets, zodReason } from './util.ts';

/**
 * SendGrid Signed Event Webhook: ECDSA P-256 / SHA-256 over `<timestamp><raw body>`, DER signature
 * in base64. The "secrets" are the public verification keys as the SendGrid console shows them
 * (base64 DER SPKI; PEM also accepted). Two keys = rotation overlap.
 *
 * Timestamps older than SENDGRID_MAX_AGE_SECONDS (24 h) are refused (`timestamp_too_old`), so a
 * captured batch cannot be replayed once the dedupe window (WEBHOOK_DEDUPE_HOURS, 72 h) has
 * forgotten its sg_event_ids: anything younger is still answered `duplicate`. 24 h because
 * SendGrid retries a failed post for up to 24 h and documents nothing about re-signing retries:
 * a shorter limit could refuse genuine retries after an outage. Future timestamps beyond
 * SENDGRID_FUTURE_SKEW_SECONDS are refused (clock abuse, not a retry).
 *
 * Which workspace a batch reaches is bound by the key (secrets.ts): /webhooks/email/sendgrid/<account>
 * verifies only with that SendGrid account's own key, so a batch signed by one account fails on
 * another account's route; the platform key verifies only the route without an account.
 */
/** Where the verification key of one SendGrid account lives (`ionflux link email <account> <ws> --verification-key K`). */
export const sendgridAccountKeyPath = (account: string) => `webhooks/sendgrid/${account}`;

export const SENDGRID_MAX_AGE_SECONDS = 24 * 3600;
export const SENDGRID_FUTURE_SKEW_SECONDS = 5 * 60;
export const SENDGRID_SIGNATURE_HEADER = 'x-twilio-email-event-webhook-signature';
export const SENDGRID_TIMESTAMP_HEADER = 'x-twilio-email-event-webhook-timestamp';
/** Custom arg the email dispatcher stamps on every message it sends for a workspace. */
export const SENDGRID_WORKSPACE_ARG = 'ionflux_workspace';

/** SendGrid `event` -> action; all are entity 'delivery' except the account status change. */
export const sendgridEventMap: Readonly<Record<string, { entity: string; action: string }>> = Object.freeze({
  processed: { entity: 'delivery', action: 'processed' },
  delivered: { entity: 'delivery', action: 'delivered' },
  deferred: { entity: 'delivery', action: 'deferred' },
  bounce: { entity: 'delivery', action: 'bounced' }, // type 'bounce' (hard) and 'blocked' (soft) alike; payload keeps `type`
  dropped: { entity: 'delivery', action: 'dropped' },
  open: { entity: 'delivery', action: 'opened' },
  click: { entity: 'delivery', action: 'clicked' },
  spamreport: { entity: 'delivery', action: 'spam_reported' },
  spam_report: { entity: 'delivery', action: 'spam_reported' },
  unsubscribe: { entity: 'delivery', action: 'unsubscribed' },
  group_unsubscribe: { entity: 'delivery', action: 'group_unsubscribed' },
  group_resubscribe: { entity: 'delivery', action: 'group_resubscribed' },
  account_status_change: { entity: 'account', action: 'status_changed' },
});

const keyCache = new Map<string, KeyObject | null>();
function publicKey(secret: string): KeyObject | null {
  if (keyCache.has(secret)) return keyCache.get(secret)!;
  let key: KeyObject | null = null;
  try {
    key = secret.includes('BEGIN PUBLIC KEY')
      ? createPublicKey(secret)
      : createPublicKey({ key: Buffer.from(secret.trim(), 'base64'), format: 'der', type: 'spki' });
    if (key.asymmetricKeyType !== 'ec') key = null;
  } catch {
    key = null;
  }
  if (keyCache.size > 256) keyCache.clear();
  keyCache.set(secret, key);
  return key;
}

function verify(d: RawDelivery, secrets: string[], now: Date): VerifyResult {
  return guardVerify(() => {
    const missing = checkRequired(d, [SENDGRID_SIGNATURE_HEADER, SENDGRID_TIMESTAMP_HEADER]);
    if (missing) return missing;
    const ts = d.headers[SENDGRID_TIMESTAMP_HEADER]!.trim();
    const sig = d.headers[SENDGRID_SIGNATURE_HEADER]!.trim();
    if (!/^\d{1,12}$/.test(ts)) return { valid: false, reason: 'malformed_timestamp' };
    // DER ECDSA P-256 signatures are 70-72 bytes; base64 of that is < 100 chars.
    if (!/^[A-Za-z0-9+/]{80,120}={0,2}$/.test(sig)) return { valid: false, reason: 'malformed_signature' };
    const age = Math.floor(now.getTime() / 1000) - Number(ts);
    if (age < -SENDGRID_FUTURE_SKEW_SECONDS) return { valid: false, reason: 'timestamp_too_new' };
    if (age > SENDGRID_MAX_AGE_SECONDS) return { valid: false, reason: 'timestamp_too_old' };
    const keys = usableSecrets(secrets).map(publicKey).filter((k): k is KeyObject => k !== null);
    if (!keys.length) return { valid: false, reason: 'no_secret_configured' };
    const signed = Buffer.concat([Buffer.from(ts, 'utf8'), d.rawBody]);
    const der = Buffer.from(sig, 'base64');
    let ok = false;
    for (const key of keys) {
      try {
        ok = ecdsaVerify('sha256', signed, { key, dsaEncoding: 'der' }, der) || ok;
      } catch {
        // a garbled DER blob throws in some OpenSSL versions: treat as no match
      }
    }
    return ok ? { valid: true } : { valid: false, reason: 'signature_mismatch' };
  });
}

const item = z.looseObject({
  event: z.string().min(1).max(64),
  sg_event_id: z.string().min(1).max(512),
  email: z.string().max(512).optional(),
  timestamp: z.union([z.number(), z.string().regex(/^\d{1,13}$/)]),
  sg_message_id: z.string().max(512).optional(),
});
const batch = z.array(item).min(1).max(10_000);

function workspaceHint(e: Record<string, unknown>): string | undefined {
  const nested = (o: unknown) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[SENDGRID_WORKSPACE_ARG] : undefined);
  const v = e[SENDGRID_WORKSPACE_ARG] ?? nested(e.custom_args) ?? nested(e.unique_args);
  return typeof v === 'string' && v.length > 0 && v.length <= 255 ? v : undefined;
}

/**
 * Account per event. An endpoint with its own account (/webhooks/email/sendgrid/<account>, verified
 * with that account's key only) always wins: a workspace sending through its own SendGrid account sets
 * its own custom args, and must not be able to steer events into another workspace by writing
 * ionflux_workspace. On the shared platform endpoint the platform's dispatcher set the custom arg
 * itself, so there the hint is trusted, as the account `platform:<ws>` (platformEmailAccount).
 */
function accountFor(e: Record<string, unknown>, pathParam: string | undefined): string | undefined {
  if (pathParam) return pathParam;
  const ws = workspaceHint(e);
  if (ws) return platformEmailAccount(ws);
  return e.event === 'account_status_change' ? PLATFORM_EMAIL_ACCOUNT_ITSELF : undefined;
}

function map(d: RawDelivery): MapResult {
  return guardMap(() => {
    const json = parseJson(d.rawBody);
    if (!json.ok) return json;
    const parsed = batch.safeParse(json.value);
    if (!parsed.success) return { ok: false, reason: zodReason('SendGrid event batch', parsed.error) };
    if (d.pathParam !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(d.pathParam)) {
      return { ok: false, reason: 'SendGrid endpoint account is not a valid id' };
    }
    // One bad item fails the whole batch: the original bytes go to the dead-letter topic together,
    // rather than publishing part of a batch SendGrid will never resend.
    const events: MappedEvent[] = [];
    for (const [i, e] of parsed.data.entries()) {
      const parts = Object.hasOwn(sendgridEventMap, e.event) ? sendgridEventMap[e.event] : undefined;
      if (!parts) return { ok: false, reason: `item ${i}: unknown SendGrid event ${JSON.stringify(e.event)}` };
      if (!isIdText(e.sg_event_id)) return { ok: false, reason: `item ${i}: sg_event_id is not a printable id` };
      const account = accountFor(e, d.pathParam);
      if (!account) return { ok: false, reason: `item ${i}: no ${SENDGRID_WORKSPACE_ARG} custom arg and no endpoint account` };
      const messageId = e.sg_message_id?.trim();
      events.push(makeEvent('email', {
        deliveryId: e.sg_event_id,
        account,
        entity: parts.entity,
        action: parts.action,
        orderingKey: messageId || e.email || account,
        payload: e,
      }));
    }
    return { ok: true, events };
  });
}

export const sendgrid: VendorModule = {
  source: 'email',
  route: { path: 'email/sendgrid', param: 'optional', paramLink: 'email' },
  secret: { env: 'SENDGRID_WEBHOOK_PUBLIC_KEY', platformPath: 'platform/sendgrid', accountPath: sendgridAccountKeyPath },
  verbatim: false,
  mapHeaders: [],
  requiredHeaders: [SENDGRID_SIGNATURE_HEADER, SENDGRID_TIMESTAMP_HEADER],
  verify,
  map,
  // The email dispatcher learns suppressions from these (ionflux.internal.email), in every workspace.
  internal: new Set(['delivery.bounced', 'delivery.dropped', 'delivery.spam_reported', 'delivery.unsubscribed', 'delivery.group_unsubscribed', 'delivery.group_resubscribed']),
};
