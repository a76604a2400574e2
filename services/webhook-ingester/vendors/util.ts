import { createHmac, timingSafeEqual } from 'node:crypto';
import type { z } from 'zod';
import { assertSegment } from '../../../shared/ids.ts';
import { describeError } from '../../../shared/errors.ts';
import type { MapResult, MappedEvent, RawDelivery, VendorSource, VerifyResult } from './types.ts';

/** Missing or empty required headers, reported before any crypto work. */
export function checkRequired(d: RawDelivery, required: readonly string[]): VerifyResult | null {
  const missing = required.filter((h) => !d.headers[h]);
  return missing.length ? { valid: false, reason: 'missing_headers', missingHeaders: missing } : null;
}

/**
 * Secrets as configured. Empty strings are dropped: an HMAC keyed with '' is computable by
 * anyone, so a blank secret in config must never make a forged delivery valid.
 */
export function usableSecrets(secrets: readonly string[]): string[] {
  return secrets.filter((s) => typeof s === 'string' && s.length > 0);
}

/** Length-safe constant-time comparison (timingSafeEqual throws on unequal lengths). */
export function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export function hmacSha256(key: string | Buffer, ...parts: (string | Buffer)[]): Buffer {
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

/**
 * Compares `expected` against HMACs under every secret without stopping at the first match, so the
 * time taken does not tell which (old or new) secret matched.
 */
export function anyHmacMatches(expected: Buffer[], secrets: (string | Buffer)[], ...parts: (string | Buffer)[]): boolean {
  let ok = false;
  for (const s of secrets) {
    const mac = hmacSha256(s, ...parts);
    for (const e of expected) ok = safeEqual(mac, e) || ok;
  }
  return ok;
}

export const HEX64 = /^[0-9a-fA-F]{64}$/;
/** Unix seconds: digits only, bounded so Number() stays exact. */
export const UNIX_SECONDS = /^\d{1,12}$/;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Strict UTF-8 + JSON parse; a reason instead of an exception. */
export function parseJson(raw: Buffer): { ok: true; value: unknown } | { ok: false; reason: string } {
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    return { ok: false, reason: 'body is not valid UTF-8' };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, reason: 'body is not valid JSON' };
  }
}

/** zod issues as one short line (paths + messages, never values, which may hold PII). */
export function zodReason(what: string, err: z.ZodError): string {
  const parts = err.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
  return `${what} failed schema: ${parts.join('; ')}`;
}

/** Printable ASCII, bounded: ids end up in Kafka keys, headers and logs. */
const ID_TEXT = /^[\x21-\x7e]{1,512}$/;
export function isIdText(v: unknown, max = 512): v is string {
  return typeof v === 'string' && v.length <= max && ID_TEXT.test(v);
}

/**
 * Free text (a generic `type` part) folded to a topic segment: accents stripped, anything outside
 * [a-z0-9_-] becomes '_', leading separators dropped, cut to 63. Null when nothing usable is left.
 */
export function toSegment(raw: string): string | null {
  const s = raw
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '_')
    .replace(/_+/g, '_')
    .replace(/^[_-]+/, '')
    .slice(0, 63);
  return s.length ? s : null;
}

export interface EventParts {
  deliveryId: string;
  account: string;
  entity: string;
  action: string;
  orderingKey: string;
  versionKey?: string | undefined;
  payload: unknown;
}

/**
 * The only place events are assembled: entity/action go through shared/ids' segment rule, so no
 * vendor value can put a dot (or anything else) into a topic name. Throws HubError otherwise.
 */
export function makeEvent(source: VendorSource, p: EventParts): MappedEvent {
  const entity = assertSegment('entity', p.entity);
  const action = assertSegment('action', p.action);
  if (!isIdText(p.deliveryId)) throw new Error('delivery id must be 1-512 printable ASCII characters');
  if (typeof p.account !== 'string' || p.account.length === 0 || p.account.length > 255) {
    throw new Error('account must be 1-255 characters');
  }
  const ev: MappedEvent = {
    deliveryId: p.deliveryId,
    account: p.account,
    entity,
    action,
    eventType: `${source}.${entity}.${action}`,
    orderingKey: p.orderingKey.slice(0, 512) || p.account,
    payload: p.payload,
  };
  if (p.versionKey) ev.versionKey = p.versionKey.slice(0, 512);
  return ev;
}

/** map() must never throw: anything unexpected becomes a reason. */
export function guardMap(fn: () => MapResult): MapResult {
  try {
    return fn();
  } catch (e) {
    return { ok: false, reason: describeError(e).message };
  }
}

/** verify() must never throw either (a malformed key or header must be a 401, not a 500). */
export function guardVerify(fn: () => VerifyResult): VerifyResult {
  try {
    return fn();
  } catch (e) {
    return { valid: false, reason: `verification_error: ${describeError(e).code}` };
  }
}
