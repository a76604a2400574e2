import { z } from 'zod';
import type { MapResult, RawDelivery, VendorModule, VerifyResult } from './types.ts';
import {
  checkRequired, guardMap, guardVerify, hmacSha256, isIdText, makeEvent,
  parseJson, safeEqual, toSegment, UNIX_SECONDS, usableSecrets, zodReason,
} from './util.ts';

/**
 * Standard Webhooks (https://www.standardwebhooks.com, spec/standard-webhooks.md) for Zapier, n8n
 * and any per-endpoint-secret sender: headers webhook-id, webhook-timestamp, webhook-signature
 * (space-separated `v1,<base64>` entries), signed content `<id>.<timestamp>.<raw body>`, secrets
 * `whsec_<base64>`. Only symmetric v1 is verified; v1a (ed25519) and unknown versions are skipped,
 * as the reference libraries do.
 */
/** Where a generic endpoint's signing secret lives (`ionflux endpoints create`). */
export const endpointSecretPath = (endpointId: string) => `webhooks/endpoints/${endpointId.replace(/_/g, '-')}`;

export const STANDARD_WEBHOOKS_TOLERANCE_SECONDS = 5 * 60;
export const GENERIC_REQUIRED_HEADERS = ['webhook-id', 'webhook-timestamp', 'webhook-signature'] as const;
const MAX_SIGNATURES = 20;

/** `whsec_<base64>` (prefix optional, as in the reference libraries) -> key bytes; null if unusable. */
export function decodeStandardSecret(secret: string): Buffer | null {
  const b64 = secret.startsWith('whsec_') ? secret.slice(6) : secret;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return null;
  const key = Buffer.from(b64, 'base64');
  return key.length ? key : null;
}

function verify(d: RawDelivery, secrets: string[], now: Date): VerifyResult {
  return guardVerify(() => {
    const missing = checkRequired(d, GENERIC_REQUIRED_HEADERS);
    if (missing) return missing;
    const id = d.headers['webhook-id']!;
    const ts = d.headers['webhook-timestamp']!.trim();
    // The spec warns ids must not contain '.', or `<id>.<ts>.` becomes ambiguous.
    if (!isIdText(id, 256) || id.includes('.')) return { valid: false, reason: 'malformed_webhook_id' };
    if (!UNIX_SECONDS.test(ts)) return { valid: false, reason: 'malformed_timestamp' };
    const age = Math.floor(now.getTime() / 1000) - Number(ts);
    if (age > STANDARD_WEBHOOKS_TOLERANCE_SECONDS) return { valid: false, reason: 'timestamp_too_old' };
    if (age < -STANDARD_WEBHOOKS_TOLERANCE_SECONDS) return { valid: false, reason: 'timestamp_too_new' };

    const entries = d.headers['webhook-signature']!.trim().split(/ +/);
    if (entries.length > MAX_SIGNATURES) return { valid: false, reason: 'malformed_signature' };
    const given: Buffer[] = [];
    for (const entry of entries) {
      const comma = entry.indexOf(',');
      if (comma < 1) return { valid: false, reason: 'malformed_signature' };
      if (entry.slice(0, comma) !== 'v1') continue;
      const sig = entry.slice(comma + 1);
      if (/^[A-Za-z0-9+/]{43}=$/.test(sig)) given.push(Buffer.from(sig, 'base64'));
    }
    if (!given.length) return { valid: false, reason: 'no_v1_signature' };

    const keys = usableSecrets(secrets).map(decodeStandardSecret).filter((k): k is Buffer => k !== null);
    if (!keys.length) return { valid: false, reason: 'no_secret_configured' };
    let ok = false;
    for (const key of keys) {
      const mac = hmacSha256(key, `${id}.${ts}.`, d.rawBody);
      for (const g of given) ok = safeEqual(mac, g) || ok;
    }
    return ok ? { valid: true } : { valid: false, reason: 'signature_mismatch' };
  });
}

/**
 * `type` -> topic parts: first dotted part is the entity, the rest joined with '_' the action
 * ('invoice.paid' -> invoice/paid, 'user.profile.updated' -> user/profile_updated, 'ping' ->
 * ping/received). Each part is folded to [a-z0-9_-]; no type at all -> webhook/received.
 */
export function typeToParts(type: unknown): { entity: string; action: string } | null {
  if (type === undefined || type === null) return { entity: 'webhook', action: 'received' };
  if (typeof type !== 'string') return null;
  const parts = type.slice(0, 512).split('.').map(toSegment).filter((p): p is string => p !== null);
  const [entity, ...rest] = parts;
  if (!entity) return null;
  const action = rest.length ? toSegment(rest.join('_')) : 'received';
  return action ? { entity, action } : null;
}

const body = z.looseObject({
  type: z.unknown().optional(),
  timestamp: z.unknown().optional(),
  data: z.unknown().optional(),
});

function map(d: RawDelivery): MapResult {
  return guardMap(() => {
    const endpoint = d.pathParam;
    if (!endpoint || !/^[A-Za-z0-9_-]{1,64}$/.test(endpoint)) return { ok: false, reason: 'generic endpoint id missing or invalid' };
    const deliveryId = d.headers['webhook-id'];
    if (!isIdText(deliveryId, 256)) return { ok: false, reason: 'webhook-id is not a printable id' };
    const json = parseJson(d.rawBody);
    if (!json.ok) return json;
    if (!json.value || typeof json.value !== 'object' || Array.isArray(json.value)) {
      return { ok: false, reason: 'generic webhook body must be a JSON object' };
    }
    const parsed = body.safeParse(json.value);
    if (!parsed.success) return { ok: false, reason: zodReason('generic webhook', parsed.error) };
    const parts = typeToParts(parsed.data.type);
    if (!parts) return { ok: false, reason: '`type` must be a string with at least one [a-z0-9] character' };
    const data = parsed.data.data as { id?: unknown } | undefined;
    const entityId = data && typeof data === 'object' && (typeof data.id === 'string' || typeof data.id === 'number')
      ? String(data.id) : undefined;
    return {
      ok: true,
      events: [makeEvent('generic', {
        deliveryId,
        account: endpoint,
        entity: parts.entity,
        action: parts.action,
        orderingKey: entityId ?? endpoint,
        payload: parsed.data,
      })],
    };
  });
}

export const generic: VendorModule = {
  source: 'generic',
  route: { path: 'generic', param: 'required', paramLink: 'generic' },
  secret: { accountPath: endpointSecretPath },
  verbatim: true,
  mapHeaders: ['webhook-id', 'webhook-timestamp'],
  requiredHeaders: [...GENERIC_REQUIRED_HEADERS],
  verify,
  map,
};
