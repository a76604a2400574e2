/**
 * Builders for correctly (or deliberately wrongly) signed vendor requests, shared by unit and
 * integration tests. Header names are cased the way the vendors send them; `toRawDelivery`
 * lower-cases them the way the ingester sees them.
 */
import { createHmac, generateKeyPairSync, randomBytes, randomUUID, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RawDelivery } from '../../services/webhook-ingester/vendors/types.ts';

type Body = string | Buffer;
const bytes = (b: Body): Buffer => (typeof b === 'string' ? Buffer.from(b, 'utf8') : b);
const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');

/** Raw fixture bytes (never re-serialized). `name` with or without `.json`. */
export function loadFixture(vendor: string, name: string): Buffer {
  if (!/^[a-z0-9_-]+$/.test(vendor) || !/^[A-Za-z0-9_.-]+$/.test(name) || name.includes('..')) {
    throw new Error(`bad fixture path ${vendor}/${name}`);
  }
  return readFileSync(join(FIXTURES, vendor, name.endsWith('.json') ? name : `${name}.json`));
}

/** Headers as the ingester's route hands them over: lower-case names. */
export function toRawDelivery(
  body: Body,
  headers: Record<string, string | undefined>,
  opts: { pathParam?: string; receivedAt?: Date } = {},
): RawDelivery {
  const lower: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(headers)) lower[k.toLowerCase()] = v;
  const d: RawDelivery = { rawBody: bytes(body), headers: lower, receivedAt: opts.receivedAt ?? new Date() };
  if (opts.pathParam !== undefined) d.pathParam = opts.pathParam;
  return d;
}

// ---- Shopify -------------------------------------------------------------------------------

export function signShopify(body: Body, secret: string): string {
  return createHmac('sha256', secret).update(bytes(body)).digest('base64');
}

/** Every header Shopify sends with a webhook (names per Shopify/shopify-app-js header-names.ts). */
export function shopifyHeaders(o: {
  topic: string; shop: string; secret: string; body: Body;
  webhookId?: string; eventId?: string; triggeredAt?: string; apiVersion?: string; hmac?: string;
}): Record<string, string> {
  return {
    'Content-Type': 'application/json',
    'X-Shopify-Hmac-Sha256': o.hmac ?? signShopify(o.body, o.secret),
    'X-Shopify-Topic': o.topic,
    'X-Shopify-Shop-Domain': o.shop,
    'X-Shopify-Webhook-Id': o.webhookId ?? randomUUID(),
    'X-Shopify-Event-Id': o.eventId ?? randomUUID(),
    'X-Shopify-Triggered-At': o.triggeredAt ?? new Date().toISOString(),
    'X-Shopify-API-Version': o.apiVersion ?? '2025-10',
  };
}

// ---- TikTok --------------------------------------------------------------------------------

export function signTikTok(body: Body, secret: string, timestamp: number | string): string {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(bytes(body)).digest('hex');
}

/** `TikTok-Signature: t=<unix>,s=<hex hmac of "<t>.<body>">` */
export function tiktokHeaders(o: { body: Body; secret: string; timestamp?: number }): Record<string, string> {
  const t = o.timestamp ?? Math.floor(Date.now() / 1000);
  return { 'Content-Type': 'application/json', 'TikTok-Signature': `t=${t},s=${signTikTok(o.body, o.secret, t)}` };
}

// ---- SendGrid ------------------------------------------------------------------------------

/** A P-256 key pair; `publicKey` is base64 DER SPKI, the form SendGrid's console shows. */
export function sendgridKeyPair(): { publicKey: string; privateKey: KeyObject } {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { publicKey: publicKey.export({ type: 'spki', format: 'der' }).toString('base64'), privateKey };
}

export function sendgridHeaders(o: { body: Body; privateKey: KeyObject; timestamp?: number | string }): Record<string, string> {
  const ts = String(o.timestamp ?? Math.floor(Date.now() / 1000));
  const sig = sign('sha256', Buffer.concat([Buffer.from(ts), bytes(o.body)]), { key: o.privateKey, dsaEncoding: 'der' });
  return {
    'Content-Type': 'application/json',
    'X-Twilio-Email-Event-Webhook-Signature': sig.toString('base64'),
    'X-Twilio-Email-Event-Webhook-Timestamp': ts,
  };
}

// ---- WhatsApp ------------------------------------------------------------------------------

export function whatsappHeaders(o: { body: Body; appSecret: string }): Record<string, string> {
  const hex = createHmac('sha256', o.appSecret).update(bytes(o.body)).digest('hex');
  return { 'Content-Type': 'application/json', 'X-Hub-Signature-256': `sha256=${hex}` };
}

// ---- Standard Webhooks (generic) -----------------------------------------------------------

export function newStandardWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

export function signStandardWebhook(o: { id: string; timestamp: number | string; body: Body; secret: string }): string {
  const key = Buffer.from(o.secret.replace(/^whsec_/, ''), 'base64');
  const mac = createHmac('sha256', key).update(`${o.id}.${o.timestamp}.`).update(bytes(o.body)).digest('base64');
  return `v1,${mac}`;
}

/** One `v1,` entry per secret, space separated, as senders do during rotation. */
export function standardWebhookHeaders(o: {
  id?: string; timestamp?: number; body: Body; secrets: string[];
}): Record<string, string> {
  const id = o.id ?? `msg_${randomBytes(12).toString('hex')}`;
  const timestamp = o.timestamp ?? Math.floor(Date.now() / 1000);
  return {
    'Content-Type': 'application/json',
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': o.secrets.map((secret) => signStandardWebhook({ id, timestamp, body: o.body, secret })).join(' '),
  };
}
