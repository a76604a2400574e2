import { z } from 'zod';
import type { MapResult, RawDelivery, VendorModule, VerifyResult } from './types.ts';
import {
  anyHmacMatches, checkRequired, guardMap, guardVerify, isIdText, makeEvent,
  parseJson, usableSecrets, zodReason,
} from './util.ts';

/**
 * Shopify webhooks: HMAC-SHA256 of the raw body keyed with the app's client secret, base64, in
 * X-Shopify-Hmac-Sha256. Shopify signs no timestamp and retries for hours, so there is no age
 * check here; replays are absorbed by dedupe on X-Shopify-Webhook-Id. Note the headers (topic,
 * shop domain, webhook id) are NOT covered by the HMAC: map() therefore validates the domain,
 * checks the body against the topic's schema, and cross-checks the domain inside compliance bodies.
 */
export const SHOPIFY_REQUIRED_HEADERS = [
  'x-shopify-hmac-sha256', 'x-shopify-topic', 'x-shopify-shop-domain', 'x-shopify-webhook-id',
] as const;

/** Past tense for topic verbs; words already in the past (paid, uninstalled, ...) stay as they are. */
export function pastTense(verb: string): string {
  if (verb === 'paid' || verb.endsWith('ed')) return verb;
  return verb.endsWith('e') ? `${verb}d` : `${verb}ed`;
}

const TOPICS = [
  'orders/create', 'orders/updated', 'orders/delete', 'orders/paid', 'orders/cancelled',
  'orders/fulfilled', 'orders/partially_fulfilled', 'orders/edited',
  // A customer asked for a new order status link (the old one expired): the whole order, as orders/updated.
  'orders/link_requested',
  'products/create', 'products/update', 'products/delete',
  'themes/publish', 'themes/create', 'themes/update', 'themes/delete',
  'app/uninstalled', 'app/scopes_update', 'shop/update',
  'checkouts/create', 'checkouts/update', 'checkouts/delete',
  'draft_orders/create', 'draft_orders/update', 'draft_orders/delete',
  'customers/create', 'customers/update', 'customers/delete', 'customers/enable', 'customers/disable',
  'customers/data_request', 'customers/redact', 'shop/redact',
  'inventory_levels/update', 'inventory_levels/connect', 'inventory_levels/disconnect',
  'inventory_items/create', 'inventory_items/update', 'inventory_items/delete',
  'fulfillments/create', 'fulfillments/update', 'refunds/create',
  'collections/create', 'collections/update', 'collections/delete',
  'bulk_operations/finish',
] as const;

/** Shopify topic -> topic parts, e.g. orders/create -> orders.created, themes/publish -> themes.published. */
export const shopifyTopicMap: Readonly<Record<string, { entity: string; action: string }>> = Object.freeze(
  Object.fromEntries(
    TOPICS.map((t) => {
      const [entity, verb] = t.split('/') as [string, string];
      return [t, Object.freeze({ entity, action: pastTense(verb) })];
    }),
  ),
);

/** Shop label is one DNS label (max 63) under myshopify.com; lowercase only, no dots of its own. */
const SHOP_DOMAIN = /^[a-z0-9][a-z0-9-]{0,62}\.myshopify\.com$/;
export function isShopDomain(v: unknown): v is string {
  return typeof v === 'string' && SHOP_DOMAIN.test(v);
}

// Schemas hold what the hub relies on, and check only that: the body published (and mapped
// further) is the parsed JSON itself, with every other field Shopify sends. (Loose objects copied
// every field of an order through zod: about 7 us of the 12 its mapping took on a 2 KB order.)
// Not .int(): zod 4 caps that at 2^53, and Shopify ids (its own examples included) go beyond it.
const id = z.number().nonnegative().refine(Number.isInteger, 'expected an integer id');
const gid = z.string().max(200).optional();
const withId = z.object({ id, admin_graphql_api_id: gid });
const lineItem = z.object({ id: id.optional(), quantity: z.number().int(), product_id: id.nullable().optional() });
const order = withId.extend({ name: z.string(), line_items: z.array(lineItem), updated_at: z.string().nullable().optional() });
const product = withId.extend({ title: z.string(), variants: z.array(z.object({ id })).optional() });
// Shopify's own checkouts/create and checkouts/update examples (API 2026-04) carry no `id`, only the
// checkout `token`: the id is optional here (the delivery then keys by the token, see orderingKeyFor).
const checkout = z.object({
  id: id.optional(), admin_graphql_api_id: gid, token: z.string(),
  line_items: z.array(z.object({ quantity: z.number().int() })),
});
const draftOrder = withId.extend({ status: z.string(), line_items: z.array(z.object({ quantity: z.number().int() })) });
const theme = withId.extend({ name: z.string(), role: z.string() });
// orders/edited is not an order: Shopify sends `{ order_edit: { id, order_id, line_items: { additions,
// removals }, ... } }` (every published API version's example), so the order schema rejected it.
const orderEdit = z.object({ order_edit: z.object({ id, order_id: id }) });
const shop = withId.extend({ name: z.string() });
const inventoryLevel = z.object({ inventory_item_id: id, location_id: id });
const childOfOrder = withId.extend({ order_id: id });
const complianceBase = z.object({ shop_id: id, shop_domain: z.string().max(255) });
const customerRef = z.object({ id: id.nullable().optional(), email: z.string().nullable().optional() });
const dataRequest = complianceBase.extend({
  customer: customerRef, orders_requested: z.array(id), data_request: z.object({ id }),
});
const redact = complianceBase.extend({ customer: customerRef, orders_to_redact: z.array(id) });

/** Delete topics carry little more than the id, so they all use the bare id schema. */
function schemaFor(topic: string, entity: string): z.ZodType {
  if (topic.endsWith('/delete')) return withId;
  switch (topic) {
    case 'customers/data_request': return dataRequest;
    case 'customers/redact': return redact;
    case 'shop/redact': return complianceBase;
    case 'orders/edited': return orderEdit;
    case 'app/uninstalled': case 'shop/update': case 'app/scopes_update': return z.object({});
    // {admin_graphql_api_id: gid://shopify/BulkOperation/<n>, status, error_code, completed_at, ...}: no numeric id.
    case 'bulk_operations/finish': return z.object({ admin_graphql_api_id: z.string().max(200), status: z.string().optional() });
  }
  switch (entity) {
    case 'orders': return order;
    case 'products': return product;
    case 'checkouts': return checkout;
    case 'draft_orders': return draftOrder;
    case 'themes': return theme;
    case 'inventory_levels': return inventoryLevel;
    case 'fulfillments': case 'refunds': return childOfOrder;
    default: return withId;
  }
}

/**
 * Exact entity id. JSON.parse rounds integers above 2^53 (Shopify's own examples have such ids),
 * so the digits of admin_graphql_api_id win; without one, the id's digits from the raw text.
 */
function entityKey(body: Record<string, unknown>): string | undefined {
  const g = body.admin_graphql_api_id;
  const m = typeof g === 'string' ? /^gid:\/\/shopify\/[A-Za-z]+\/(\d{1,30})$/.exec(g) : null;
  return m?.[1];
}

/**
 * The exact digits of an integer field: JSON.parse rounds those past 2^53 (orders/delete and
 * refunds carry no gid to read them from), so they are read from the raw text, where an
 * occurrence of the field with that rounded value is the same number.
 */
function exactInt(raw: Buffer, field: string, v: unknown): string | undefined {
  if (typeof v !== 'number') return undefined;
  if (Number.isSafeInteger(v)) return String(v);
  // The text only now: ids past 2^53 are rare, and decoding 2 KB per delivery is not free.
  for (const m of raw.toString('utf8').matchAll(new RegExp(`"${field}"\\s*:\\s*(\\d{16,30})`, 'g'))) if (Number(m[1]) === v) return m[1];
  return String(v);
}

function orderingKeyFor(topic: string, entity: string, body: Record<string, unknown>, account: string, raw: Buffer): string {
  // Shop-level topics (shop/update, shop/redact, app/*) are about the account itself.
  if (topic.startsWith('shop/') || topic.startsWith('app/')) return account;
  if (topic === 'customers/data_request' || topic === 'customers/redact') {
    return exactInt(raw, 'id', (body.customer as { id?: unknown } | undefined)?.id) ?? account;
  }
  // A fulfillment or refund belongs with its order: key by the order so they stay in its order.
  if (entity === 'fulfillments' || entity === 'refunds') return exactInt(raw, 'order_id', body.order_id) ?? account;
  // An order edit is about its order.
  if (topic === 'orders/edited') return exactInt(raw, 'order_id', (body.order_edit as { order_id?: unknown } | undefined)?.order_id) ?? account;
  if (entity === 'inventory_levels') return `${exactInt(raw, 'inventory_item_id', body.inventory_item_id)}:${exactInt(raw, 'location_id', body.location_id)}`;
  // Checkouts of API 2026-04 carry their token and no id.
  const token = entity === 'checkouts' && typeof body.token === 'string' && body.token ? `token:${body.token}` : undefined;
  return entityKey(body) ?? exactInt(raw, 'id', body.id) ?? token ?? account;
}

function verify(d: RawDelivery, secrets: string[], _now: Date): VerifyResult {
  return guardVerify(() => {
    const missing = checkRequired(d, SHOPIFY_REQUIRED_HEADERS);
    if (missing) return missing;
    const header = d.headers['x-shopify-hmac-sha256']!.trim();
    // 32-byte digest in base64 is exactly 44 chars ending in '='.
    if (!/^[A-Za-z0-9+/]{43}=$/.test(header)) return { valid: false, reason: 'malformed_signature' };
    const keys = usableSecrets(secrets);
    if (!keys.length) return { valid: false, reason: 'no_secret_configured' };
    const ok = anyHmacMatches([Buffer.from(header, 'base64')], keys, d.rawBody);
    return ok ? { valid: true } : { valid: false, reason: 'signature_mismatch' };
  });
}

function map(d: RawDelivery): MapResult {
  return guardMap(() => {
    const topic = d.headers['x-shopify-topic'] ?? '';
    const parts = shopifyTopicMap[topic];
    if (!Object.hasOwn(shopifyTopicMap, topic) || !parts) {
      return { ok: false, reason: `unknown Shopify topic ${JSON.stringify(topic.slice(0, 80))}` };
    }
    const domain = d.headers['x-shopify-shop-domain'];
    if (!isShopDomain(domain)) return { ok: false, reason: 'X-Shopify-Shop-Domain is not a <shop>.myshopify.com domain' };
    const webhookId = d.headers['x-shopify-webhook-id'];
    if (!isIdText(webhookId, 255)) return { ok: false, reason: 'X-Shopify-Webhook-Id is not a printable id' };

    const json = parseJson(d.rawBody);
    if (!json.ok) return json;
    const parsed = schemaFor(topic, parts.entity).safeParse(json.value);
    if (!parsed.success) return { ok: false, reason: zodReason(`Shopify ${topic}`, parsed.error) };
    const body = json.value as Record<string, unknown>;

    // Compliance bodies name the shop; a valid-looking domain that differs from the header means
    // the header was swapped on a replayed body (headers are unsigned).
    if (typeof body.shop_domain === 'string' && isShopDomain(body.shop_domain) && body.shop_domain !== domain) {
      return { ok: false, reason: 'shop_domain in body does not match X-Shopify-Shop-Domain' };
    }

    return {
      ok: true,
      events: [makeEvent('shopify', {
        deliveryId: webhookId,
        account: domain,
        entity: parts.entity,
        action: parts.action,
        orderingKey: orderingKeyFor(topic, parts.entity, body, domain, d.rawBody),
        // A fulfillment's updated_at is its own, not its order's.
        versionKey: parts.entity === 'fulfillments' ? (entityKey(body) ?? exactInt(d.rawBody, 'id', body.id)) : undefined,
        payload: body,
      })],
    };
  });
}

export const shopify: VendorModule = {
  source: 'shopify',
  route: { path: 'shopify', param: 'none' },
  secret: { env: 'SHOPIFY_API_SECRET', platformPath: 'platform/shopify' },
  verbatim: true,
  // The shopify-sync worker acts on these in every workspace (uninstall, GDPR compliance, bulk syncs).
  internal: new Set(['app.uninstalled', 'app.scopes_updated', 'customers.redacted', 'shop.redacted', 'customers.data_requested', 'bulk_operations.finished']),
  mapHeaders: ['x-shopify-topic', 'x-shopify-shop-domain', 'x-shopify-webhook-id', 'x-shopify-triggered-at', 'x-shopify-event-id', 'x-shopify-api-version'],
  requiredHeaders: [...SHOPIFY_REQUIRED_HEADERS],
  verify,
  map,
};
