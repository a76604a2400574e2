import { randomBytes } from 'node:crypto';

/** A shop's data as the simulator keeps it (GraphQL field names; ids are numbers, gids are built from them). */
export interface SimVariant { id: number; title: string; sku: string; price: string; inventoryQuantity: number; inventoryItemId: number }
export interface SimProduct { id: number; title: string; handle: string; status: 'ACTIVE' | 'ARCHIVED' | 'DRAFT'; vendor: string; productType: string; tags: string[]; descriptionHtml: string; createdAt: string; updatedAt: string; variants: SimVariant[] }
export interface SimLineItem { id: number; title: string; quantity: number; sku: string; price: string; productId: number | null; variantId: number | null }
export interface SimOrder { id: number; name: string; email: string; tags: string[]; note: string | null; createdAt: string; updatedAt: string; financial: string; fulfillment: string; total: string; currency: string; customerId: number | null; lineItems: SimLineItem[] }
export interface SimCustomer { id: number; firstName: string; lastName: string; email: string; phone: string | null; state: string; tags: string[]; numberOfOrders: number; createdAt: string; updatedAt: string }
export interface SimLevel { id: number; locationId: number; available: number; updatedAt: string }
export interface SimInventoryItem { id: number; sku: string; updatedAt: string; levels: SimLevel[] }
export interface SimTheme { id: number; name: string; role: 'MAIN' | 'UNPUBLISHED' | 'DEVELOPMENT'; updatedAt: string }
export interface SimScriptTag { id: number; src: string }
export interface SimWebhook { id: number; topic: string; uri: string; format: string }
export interface SimBulk {
  id: number; status: 'CREATED' | 'RUNNING' | 'COMPLETED' | 'FAILED'; query: string; createdAt: string; completedAt: string | null; objectCount: number; url: string | null; lines: string[];
  /** A running operation reads its next `n` nodes (all when omitted) as they are now. */
  read?: (n?: number) => void;
  /** Reads what is left and completes (what its timer does after bulkDelayMs). */
  finish?: () => void;
}

export interface SimShop {
  domain: string;
  id: number;
  name: string;
  products: SimProduct[];
  orders: SimOrder[];
  customers: SimCustomer[];
  inventoryItems: SimInventoryItem[];
  locations: number[];
  themes: SimTheme[];
  scriptTags: SimScriptTag[];
  webhooks: SimWebhook[];
  bulk: SimBulk[];
  /** The cost bucket of this app on this shop. */
  bucket: { available: number; at: number };
  /** What a mutation answered first under each idempotency key (`<mutation>:<key>`), answered again for the key. */
  idempotency: Map<string, Record<string, unknown>>;
}

/**
 * One access/refresh token pair. `revoked`: the whole pair is gone (uninstall, a test refusing it).
 * `accessRetired`: its access token was refreshed away. Its refresh token stays usable after its
 * first use (`firstUsedAt`, answered again with the same `replacement`) until the replacement's
 * refresh token is used (`refreshRetired`), for at most 30 days from that first use (Shopify's
 * changelog of 2026-08-28, "More resilient refreshes for expiring offline access tokens").
 */
export interface SimGrant { shop: string; scope: string; accessToken: string; refreshToken: string; accessExpiresAt: number; refreshExpiresAt: number; revoked: boolean; accessRetired?: boolean; refreshRetired?: boolean; firstUsedAt?: number; replacement?: SimGrant; replaces?: SimGrant }

let seq = 1_000_000;
/** Ids grow from a large base, like Shopify's. */
export const nextId = () => ++seq;
export const iso = (ms = Date.now()) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
export const token = (prefix: string) => `${prefix}_${randomBytes(16).toString('hex')}`;

/** A shop with `n` of each entity, updated at increasing times in the past (oldest first). */
export function seedShop(domain: string, counts: { products?: number; orders?: number; customers?: number; inventory?: number; themes?: number } = {}): SimShop {
  const base = Date.now() - 86400_000;
  const at = (i: number) => iso(base + i * 1000);
  const locations = [nextId(), nextId()];
  const shop: SimShop = { domain, id: nextId(), name: domain.split('.')[0]!, products: [], orders: [], customers: [], inventoryItems: [], locations, themes: [], scriptTags: [], webhooks: [], bulk: [], bucket: { available: 1000, at: Date.now() }, idempotency: new Map() };
  for (let i = 0; i < (counts.products ?? 5); i++) {
    const id = nextId();
    const variants = [0, 1].map((v) => ({ id: nextId(), title: `Size ${v}`, sku: `SKU-${id}-${v}`, price: `${10 + v}.00`, inventoryQuantity: 5 + v, inventoryItemId: nextId() }));
    shop.products.push({ id, title: `Product ${i}`, handle: `product-${i}`, status: 'ACTIVE', vendor: 'Acme', productType: 'Hat', tags: ['sim'], descriptionHtml: '<p>sim</p>', createdAt: at(i), updatedAt: at(i), variants });
  }
  for (let i = 0; i < (counts.customers ?? 5); i++) {
    shop.customers.push({ id: nextId(), firstName: `First${i}`, lastName: `Last${i}`, email: `c${i}@example.com`, phone: null, state: 'ENABLED', tags: [], numberOfOrders: 1, createdAt: at(i), updatedAt: at(i) });
  }
  for (let i = 0; i < (counts.orders ?? 5); i++) {
    const p = shop.products[i % Math.max(1, shop.products.length)];
    const c = shop.customers[i % Math.max(1, shop.customers.length)];
    shop.orders.push({ id: nextId(), name: `#${1001 + i}`, email: c?.email ?? 'x@example.com', tags: [], note: null, createdAt: at(i), updatedAt: at(i), financial: 'PAID', fulfillment: 'UNFULFILLED', total: '21.00', currency: 'USD', customerId: c?.id ?? null,
      lineItems: [{ id: nextId(), title: p?.title ?? 'Item', quantity: 1 + (i % 3), sku: p?.variants[0]?.sku ?? 'SKU', price: '10.00', productId: p?.id ?? null, variantId: p?.variants[0]?.id ?? null }] });
  }
  for (let i = 0; i < (counts.inventory ?? 5); i++) {
    shop.inventoryItems.push({ id: nextId(), sku: `INV-${i}`, updatedAt: at(i), levels: locations.map((l) => ({ id: nextId(), locationId: l, available: 10 + i, updatedAt: at(i) })) });
  }
  const themes = counts.themes ?? 3;
  for (let i = 0; i < themes; i++) shop.themes.push({ id: nextId(), name: i === 0 ? 'Dawn' : `Backup ${i}`, role: i === 0 ? 'MAIN' : 'UNPUBLISHED', updatedAt: at(i) });
  shop.scriptTags.push({ id: nextId(), src: 'https://tracker.example.com/t.js' });
  return shop;
}

/** An order as Shopify's orders/updated webhook carries it (REST payload shape, abridged). */
export function orderWebhookBody(o: SimOrder): Record<string, unknown> {
  return {
    id: o.id, admin_graphql_api_id: `gid://shopify/Order/${o.id}`, name: o.name, email: o.email, created_at: o.createdAt, updated_at: o.updatedAt,
    financial_status: o.financial.toLowerCase(), fulfillment_status: null, currency: o.currency, total_price: o.total, tags: o.tags.join(', '), note: o.note,
    customer: o.customerId ? { id: o.customerId, admin_graphql_api_id: `gid://shopify/Customer/${o.customerId}` } : null,
    line_items: o.lineItems.map((li) => ({ id: li.id, admin_graphql_api_id: `gid://shopify/LineItem/${li.id}`, title: li.title, quantity: li.quantity, sku: li.sku, price: li.price, product_id: li.productId, variant_id: li.variantId })),
  };
}
