import { parseOperation, type Field, type Operation } from './cost.ts';
import { iso, nextId, type SimBulk, type SimCustomer, type SimInventoryItem, type SimOrder, type SimProduct, type SimShop } from './state.ts';

/**
 * The GraphQL Admin API subset the simulator answers, in Shopify's shapes: connections with
 * edges/cursor/pageInfo (keyset cursors, opaque base64), `query:` search filters on updated_at,
 * userErrors on mutations, Bulk Operations with a JSONL result. The operation comes parsed
 * (cost.ts, which also prices it); the simulator answers its root field, with every field it
 * knows for a node whatever was selected (a superset, which clients ignore).
 */
export type Json = Record<string, unknown>;
export interface GqlResult { data?: Json; errors?: Json[] }

const gid = (type: string, id: number | string) => `gid://shopify/${type}/${id}`;
const idFrom = (g: unknown) => Number(/\/(\d+)(\?.*)?$/.exec(String(g ?? ''))?.[1] ?? NaN);

/** `updated_at:>='2026-01-01T00:00:00Z'` (also `>`, `<`, `<=`); anything else matches all. */
function matches(filter: unknown, updatedAt: string): boolean {
  if (typeof filter !== 'string' || !filter) return true;
  const m = /updated_at:(>=|<=|>|<)'?([^' ]+)'?/.exec(filter);
  if (!m) return true;
  const [a, b] = [Date.parse(updatedAt), Date.parse(m[2]!)];
  return m[1] === '>=' ? a >= b : m[1] === '>' ? a > b : m[1] === '<=' ? a <= b : a < b;
}

const encodeCursor = (u: string, id: number) => Buffer.from(JSON.stringify({ last_id: id, last_value: u })).toString('base64');
const decodeCursor = (c: unknown): { last_id: number; last_value: string } | null => {
  if (typeof c !== 'string' || !c) return null;
  try { return JSON.parse(Buffer.from(c, 'base64').toString()) as { last_id: number; last_value: string }; } catch { return null; }
};

const edges = <T>(items: T[], node: (t: T) => Json) => ({ edges: items.map((i) => ({ node: node(i) })) });

export const productNode = (p: SimProduct) => ({
  id: gid('Product', p.id), title: p.title, handle: p.handle, descriptionHtml: p.descriptionHtml, vendor: p.vendor, productType: p.productType, status: p.status, tags: p.tags, createdAt: p.createdAt, updatedAt: p.updatedAt, publishedAt: p.createdAt,
  variants: edges(p.variants, (v) => ({ id: gid('ProductVariant', v.id), title: v.title, sku: v.sku, price: v.price, inventoryQuantity: v.inventoryQuantity, inventoryItem: { id: gid('InventoryItem', v.inventoryItemId) } })),
});
export const orderNode = (o: SimOrder) => ({
  id: gid('Order', o.id), name: o.name, email: o.email, createdAt: o.createdAt, updatedAt: o.updatedAt, cancelledAt: null, closedAt: null, displayFinancialStatus: o.financial, displayFulfillmentStatus: o.fulfillment, tags: o.tags, note: o.note,
  currencyCode: o.currency, totalPriceSet: { shopMoney: { amount: o.total, currencyCode: o.currency } }, customer: o.customerId ? { id: gid('Customer', o.customerId) } : null,
  lineItems: edges(o.lineItems, (li) => ({ id: gid('LineItem', li.id), title: li.title, quantity: li.quantity, sku: li.sku, originalUnitPriceSet: { shopMoney: { amount: li.price } }, product: li.productId ? { id: gid('Product', li.productId) } : null, variant: li.variantId ? { id: gid('ProductVariant', li.variantId) } : null })),
});
export const customerNode = (c: SimCustomer) => ({ id: gid('Customer', c.id), firstName: c.firstName, lastName: c.lastName, email: c.email, phone: c.phone, state: c.state, tags: c.tags, numberOfOrders: String(c.numberOfOrders), createdAt: c.createdAt, updatedAt: c.updatedAt });
export const inventoryNode = (i: SimInventoryItem) => ({
  id: gid('InventoryItem', i.id), sku: i.sku, updatedAt: i.updatedAt,
  inventoryLevels: edges(i.levels, (l) => ({ id: `${gid('InventoryLevel', l.id)}?inventory_item_id=${i.id}`, updatedAt: l.updatedAt, location: { id: gid('Location', l.locationId) }, quantities: [{ name: 'available', quantity: l.available }] })),
});

type Listed = { items: { id: number; updatedAt: string }[]; node: (x: never) => Json; nested?: string };
function collection(shop: SimShop, root: string): Listed | null {
  switch (root) {
    case 'products': return { items: shop.products, node: productNode as never, nested: 'variants' };
    case 'orders': return { items: shop.orders, node: orderNode as never, nested: 'lineItems' };
    case 'customers': return { items: shop.customers, node: customerNode as never };
    case 'inventoryItems': return { items: shop.inventoryItems, node: inventoryNode as never, nested: 'inventoryLevels' };
    default: return null;
  }
}

const sorted = <T extends { id: number; updatedAt: string }>(items: T[]) => [...items].sort((a, b) => a.updatedAt.localeCompare(b.updatedAt) || a.id - b.id);

function page(shop: SimShop, f: Field): GqlResult {
  const c = collection(shop, f.name)!;
  const first = Math.min(250, Number(f.args.first ?? 50));
  const after = decodeCursor(f.args.after);
  const all = sorted(c.items).filter((i) => matches(f.args.query, i.updatedAt)).filter((i) => !after || i.updatedAt > after.last_value || (i.updatedAt === after.last_value && i.id > after.last_id));
  const items = all.slice(0, first);
  const nodes = items.map((i) => ({ cursor: encodeCursor(i.updatedAt, i.id), node: c.node(i as never) }));
  const last = items.at(-1);
  return { data: { [f.key]: { edges: nodes, pageInfo: { hasNextPage: all.length > first, hasPreviousPage: Boolean(after), startCursor: nodes[0]?.cursor ?? null, endCursor: last ? encodeCursor(last.updatedAt, last.id) : null } } } };
}

/** The root field of a bulk query, or undefined when it does not parse. */
function bulkRoot(inner: string): Field | undefined {
  try {
    return parseOperation(inner, {}).selection.fields[0];
  } catch {
    return undefined;
  }
}

/**
 * The JSONL of a bulk query, written as the operation reads the shop: each node on its line, its
 * nested connection's nodes on lines of their own with __parentId. The nodes that match are fixed
 * when the operation starts, but each is read (and written as it is then) only when the operation
 * gets to it (`read`), so a change made while it runs is in the file or not depending on whether
 * the node was read before it: Shopify's result is not a snapshot of one moment, and
 * `objectCount` is "the running total of processed objects" (BulkOperation). Grouped
 * (`groupObjects: true`, the default before API 2026-01), each node's children come right after
 * it; otherwise Shopify guarantees no order ("Bulk operations group objects default changed to
 * false", changelog, 2026-01), and the children come after all the nodes, last first.
 */
function bulkReader(shop: SimShop, inner: string, grouped: boolean): { read(b: SimBulk, n?: number): void; finish(b: SimBulk): void } | null {
  const root = bulkRoot(inner);
  const c = root ? collection(shop, root.name) : null;
  if (!c) return null;
  const unread = sorted(c.items).filter((i) => matches(root!.args.query, i.updatedAt)).map((i) => i.id);
  const apart: string[] = [];
  return {
    read(b, n = unread.length) {
      for (const id of unread.splice(0, n)) {
        const item = c.items.find((i) => i.id === id);
        if (!item) continue; // deleted before the operation got to it
        const node = c.node(item as never);
        const children = c.nested ? (node[c.nested] as { edges: { node: Json }[] }).edges.map((e) => e.node) : [];
        if (c.nested) delete node[c.nested];
        b.lines.push(JSON.stringify(node));
        b.objectCount++;
        for (const ch of children) {
          (grouped ? b.lines : apart).push(JSON.stringify({ ...ch, __parentId: node.id }));
          b.objectCount++;
        }
      }
    },
    finish(b) {
      this.read(b);
      b.lines.push(...apart.reverse());
      apart.length = 0;
    },
  };
}

const bulkNode = (b: SimBulk) => ({ id: gid('BulkOperation', b.id), status: b.status, errorCode: null, createdAt: b.createdAt, completedAt: b.completedAt, objectCount: String(b.objectCount), fileSize: b.lines.join('\n').length, url: b.url, partialDataUrl: null, query: b.query });

export interface GqlContext {
  shop: SimShop;
  /** The API version of the request's path (`2026-07`, `unstable`). */
  version: string;
  baseUrl: string;
  bulkDelayMs: number;
  counters: Record<string, number>;
}

const userErrors = (errors: { field: string[]; message: string; code?: string }[]) => errors;
const WEBHOOK_TOPICS = new Set(['ORDERS_CREATE', 'ORDERS_UPDATED', 'ORDERS_DELETE', 'ORDERS_PAID', 'ORDERS_CANCELLED', 'ORDERS_FULFILLED', 'PRODUCTS_CREATE', 'PRODUCTS_UPDATE', 'PRODUCTS_DELETE', 'CUSTOMERS_CREATE', 'CUSTOMERS_UPDATE', 'CUSTOMERS_DELETE', 'INVENTORY_LEVELS_UPDATE', 'THEMES_PUBLISH', 'APP_UNINSTALLED', 'SHOP_UPDATE', 'CHECKOUTS_CREATE', 'CHECKOUTS_UPDATE', 'DRAFT_ORDERS_CREATE', 'DRAFT_ORDERS_UPDATE', 'BULK_OPERATIONS_FINISH']);

/** Executes one operation against a shop (its root field; `v` its variables). */
export function execute(ctx: GqlContext, op: Operation, v: Json): GqlResult {
  const { shop } = ctx;
  const f = op.selection.fields[0];
  const root = f?.name;
  ctx.counters[root ?? '?'] = (ctx.counters[root ?? '?'] ?? 0) + 1;
  const done = (data: Json): GqlResult => ({ data });
  const now = iso();
  switch (root) {
    case 'shop':
      return done({ shop: { id: gid('Shop', shop.id), name: shop.name, email: `owner@${shop.domain}`, myshopifyDomain: shop.domain, currencyCode: 'USD', ianaTimezone: 'UTC', plan: { displayName: 'Basic' }, primaryDomain: { host: shop.domain } } });
    case 'products': case 'orders': case 'customers': case 'inventoryItems':
      return page(shop, f!);
    case 'themes':
      return done({ themes: edges(shop.themes, (t) => ({ id: gid('OnlineStoreTheme', t.id), name: t.name, role: t.role, updatedAt: t.updatedAt })) });
    case 'node': case 'currentBulkOperation': {
      const b = root === 'node' ? shop.bulk.find((x) => gid('BulkOperation', x.id) === v.id) : shop.bulk.at(-1);
      return done({ [root]: b ? bulkNode(b) : null });
    }
    case 'bulkOperationRunQuery': {
      const running = shop.bulk.find((b) => b.status === 'CREATED' || b.status === 'RUNNING');
      if (running) return done({ bulkOperationRunQuery: { bulkOperation: null, userErrors: userErrors([{ field: ['query'], message: `A bulk query operation for this app and shop is already in progress: ${gid('BulkOperation', running.id)}.`, code: 'OPERATION_IN_PROGRESS' }]) } });
      const inner = String(v.query ?? '');
      const grouped = v.groupObjects === true || (v.groupObjects === undefined && ctx.version !== 'unstable' && ctx.version < '2026-01');
      const reader = bulkReader(shop, inner, grouped);
      if (!reader) return done({ bulkOperationRunQuery: { bulkOperation: null, userErrors: userErrors([{ field: ['query'], message: 'Invalid bulk query: the query must contain at least one connection.', code: 'INVALID' }]) } });
      const b: SimBulk = { id: nextId(), status: 'CREATED', query: inner, createdAt: now, completedAt: null, objectCount: 0, url: null, lines: [] };
      b.read = (n) => void ((b.status === 'CREATED' || b.status === 'RUNNING') && reader.read(b, n));
      b.finish = () => {
        if (b.status !== 'CREATED' && b.status !== 'RUNNING') return;
        reader.finish(b);
        Object.assign(b, { status: 'COMPLETED', completedAt: iso(), url: b.objectCount ? `${ctx.baseUrl}/bulk-results/${shop.domain}/${b.id}.jsonl` : null });
      };
      shop.bulk.push(b);
      setTimeout(() => b.status === 'CREATED' && (b.status = 'RUNNING'), 0).unref();
      setTimeout(() => b.finish!(), ctx.bulkDelayMs).unref();
      return done({ bulkOperationRunQuery: { bulkOperation: { id: gid('BulkOperation', b.id), status: b.status }, userErrors: [] } });
    }
    case 'webhookSubscriptionCreate': {
      const topic = String(v.topic ?? '');
      if (!WEBHOOK_TOPICS.has(topic)) return { errors: [{ message: `Variable $topic of type WebhookSubscriptionTopic! was provided invalid value`, extensions: { code: 'INVALID_VARIABLE' } }] };
      const input = (v.webhookSubscription ?? {}) as { uri?: string; callbackUrl?: string; format?: string };
      const uri = input.uri ?? input.callbackUrl ?? '';
      if (!/^https?:\/\//.test(uri)) return done({ webhookSubscriptionCreate: { webhookSubscription: null, userErrors: userErrors([{ field: ['webhookSubscription', 'callbackUrl'], message: 'Address is invalid' }]) } });
      if (shop.webhooks.some((w) => w.topic === topic && w.uri === uri)) return done({ webhookSubscriptionCreate: { webhookSubscription: null, userErrors: userErrors([{ field: ['webhookSubscription', 'callbackUrl'], message: 'Address for this topic has already been taken' }]) } });
      const w = { id: nextId(), topic, uri, format: input.format ?? 'JSON' };
      shop.webhooks.push(w);
      return done({ webhookSubscriptionCreate: { webhookSubscription: { id: gid('WebhookSubscription', w.id), topic, uri, format: w.format }, userErrors: [] } });
    }
    case 'tagsAdd': case 'tagsRemove': {
      const id = idFrom(v.id);
      const target: { tags: string[]; updatedAt: string } | undefined = String(v.id).includes('/Order/') ? shop.orders.find((o) => o.id === id) : shop.products.find((p) => p.id === id);
      if (!target) return done({ [root]: { node: null, userErrors: userErrors([{ field: ['id'], message: `${String(v.id).includes('/Order/') ? 'Order' : 'Product'} does not exist` }]) } });
      const tags = (v.tags as string[]) ?? [];
      target.tags = root === 'tagsAdd' ? [...new Set([...target.tags, ...tags])] : target.tags.filter((t) => !tags.includes(t));
      target.updatedAt = now;
      return done({ [root]: { node: { id: v.id }, userErrors: [] } });
    }
    case 'productUpdate': {
      const input = (v.product ?? v.input ?? {}) as Partial<SimProduct> & { id?: string };
      const p = shop.products.find((x) => x.id === idFrom(input.id));
      if (!p) return done({ productUpdate: { product: null, userErrors: userErrors([{ field: ['id'], message: 'Product does not exist' }]) } });
      if (input.title !== undefined && !input.title.trim()) return done({ productUpdate: { product: null, userErrors: userErrors([{ field: ['title'], message: "Title can't be blank" }]) } });
      for (const k of ['title', 'descriptionHtml', 'vendor', 'productType', 'status', 'tags'] as const) if (input[k] !== undefined) (p as never as Json)[k] = input[k];
      p.updatedAt = now;
      return done({ productUpdate: { product: { id: gid('Product', p.id), title: p.title, status: p.status, vendor: p.vendor, productType: p.productType, tags: p.tags, updatedAt: p.updatedAt }, userErrors: [] } });
    }
    case 'inventoryAdjustQuantities':
      return inventoryAdjust(ctx, f!);
    case 'themePublish': {
      const t = shop.themes.find((x) => x.id === idFrom(v.id));
      if (!t) return done({ themePublish: { theme: null, userErrors: userErrors([{ field: ['id'], message: 'Theme does not exist', code: 'NOT_FOUND' }]) } });
      for (const other of shop.themes) if (other.role === 'MAIN') other.role = 'UNPUBLISHED';
      t.role = 'MAIN';
      t.updatedAt = now;
      return done({ themePublish: { theme: { id: gid('OnlineStoreTheme', t.id), name: t.name, role: t.role, updatedAt: t.updatedAt }, userErrors: [] } });
    }
    case 'scriptTagDelete': {
      const i = shop.scriptTags.findIndex((s) => s.id === idFrom(v.id));
      if (i < 0) return done({ scriptTagDelete: { deletedScriptTagId: null, userErrors: userErrors([{ field: ['id'], message: 'Script tag does not exist' }]) } });
      shop.scriptTags.splice(i, 1);
      return done({ scriptTagDelete: { deletedScriptTagId: v.id, userErrors: [] } });
    }
    default:
      return { errors: [{ message: `Field '${root}' doesn't exist on type '${op.mutation ? 'Mutation' : 'QueryRoot'}'`, extensions: { code: 'undefinedField' } }] };
  }
}

/** An error on the root field itself, its data null, as Shopify answers a mutation it refuses to run. */
const fieldError = (f: Field, message: string, code: string): GqlResult => ({ data: { [f.key]: null }, errors: [{ message, extensions: { code }, path: [f.key] }] });

/**
 * From 2026-04 Shopify runs inventoryAdjustQuantities only with `changeFromQuantity` on every
 * change (null opts out of the compare-and-swap check) and an `@idempotent(key:)` directive
 * (SOURCES.md); both are checked at run time, in that order. A key seen before answers what it
 * answered first, and nothing moves again.
 */
function inventoryAdjust(ctx: GqlContext, f: Field): GqlResult {
  const input = (f.args.input ?? {}) as AdjustInput;
  const strict = ctx.version === 'unstable' || ctx.version >= '2026-04';
  if (strict && input.changes?.some((c) => !('changeFromQuantity' in c))) return fieldError(f, 'InventoryChangeInput must include the following argument: changeFromQuantity.', 'INVALID_FIELD_ARGUMENTS');
  const key = f.directives.idempotent?.key;
  if (strict && key === undefined) return fieldError(f, 'The @idempotent directive is required for this mutation but was not provided.', 'BAD_REQUEST');
  const seen = key === undefined ? undefined : `${f.name}:${String(key)}`;
  const first = seen ? ctx.shop.idempotency.get(seen) : undefined;
  if (first) return { data: first };
  const data = { [f.key]: adjust(ctx.shop, input) };
  if (seen) ctx.shop.idempotency.set(seen, data);
  return { data };
}

type AdjustInput = { name?: string; reason?: string; changes?: { delta: number; inventoryItemId: string; locationId: string; changeFromQuantity?: number | null }[] };

function adjust(shop: SimShop, input: AdjustInput): Json {
  if (input.name !== 'available' && input.name !== 'on_hand') return { inventoryAdjustmentGroup: null, userErrors: userErrors([{ field: ['input', 'name'], message: 'The quantity name must be either available or on_hand.', code: 'INVALID_QUANTITY_NAME' }]) };
  const now = iso();
  const changes: { name: string; delta: number }[] = [];
  for (const ch of input.changes ?? []) {
    const item = shop.inventoryItems.find((i) => i.id === idFrom(ch.inventoryItemId));
    const level = item?.levels.find((l) => l.locationId === idFrom(ch.locationId));
    if (!item || !level) return { inventoryAdjustmentGroup: null, userErrors: userErrors([{ field: ['input', 'changes', '0', 'locationId'], message: 'The specified inventory item is not stocked at the location.', code: 'ITEM_NOT_STOCKED_AT_LOCATION' }]) };
    level.available += ch.delta;
    level.updatedAt = now;
    item.updatedAt = now;
    changes.push({ name: 'available', delta: ch.delta }, { name: 'on_hand', delta: ch.delta });
  }
  return { inventoryAdjustmentGroup: { reason: input.reason, changes }, userErrors: [] };
}

/** A touched entity for webhook/poll tests: its updatedAt moves to now. */
export function touch(shop: SimShop, kind: 'orders' | 'products' | 'customers', id: number, change: (x: never) => void = () => undefined): string {
  const list = shop[kind] as { id: number; updatedAt: string }[];
  const x = list.find((e) => e.id === id)!;
  change(x as never);
  x.updatedAt = iso();
  return x.updatedAt;
}
