import { HubError } from '../../../shared/errors.ts';
import { ExactInt, gidNumber, idOf } from './json.ts';

/**
 * The entities shopify-sync reads, each declared once: its GraphQL Admin page query, its bulk
 * query, and how one node becomes the body of the webhook Shopify would send for it (REST
 * payload shape: numeric `id` from the gid, `admin_graphql_api_id`, snake_case, `updated_at`),
 * so the ingester's inbox processor maps a polled entity exactly as it maps that webhook.
 */
export const ENTITIES = ['products', 'orders', 'customers', 'inventory'] as const;
export type EntityName = (typeof ENTITIES)[number];

type Node = Record<string, unknown>;

export interface Payload {
  /** The webhook topic this body is the shape of (x-shopify-topic). */
  topic: string;
  /** Event entity (the inbox key's entity). */
  entity: string;
  /** What the ingester's orderingKeyFor gives for this body. */
  orderingKey: string;
  updatedAt: string | null;
  body: Record<string, unknown>;
}

export interface EntitySpec {
  /** The connection's root field. */
  root: string;
  /** Page query: variables $first, $after, $query. */
  pageQuery: string;
  /**
   * What one node of pageQuery costs by Shopify's documented defaults (an object 1 plus what it
   * selects, a connection 2 + first x one of its nodes, a scalar or an enum 0): a page of n nodes
   * costs 2 + n x nodeCost.
   */
  nodeCost: number;
  /** Bulk Operations query for `query` (a search filter, or none). */
  bulkQuery(query: string | null): string;
  /** Child lines of a bulk JSONL (by gid type) -> the list field of the parent they belong to. */
  bulkChildren: Record<string, string>;
  payloads(node: Node): Payload[];
}

/** A nested connection as a list, whether it came as {edges: [{node}]}, {nodes: []} or (bulk) an array. */
export function list(v: unknown): Node[] {
  if (Array.isArray(v)) return v as Node[];
  const c = v as { edges?: { node: Node }[]; nodes?: Node[] } | null | undefined;
  return c?.nodes ?? c?.edges?.map((e) => e.node) ?? [];
}

const lower = (v: unknown) => (typeof v === 'string' ? v.toLowerCase() : v ?? null);
const tags = (v: unknown) => (Array.isArray(v) ? v.join(', ') : typeof v === 'string' ? v : '');
const money = (v: unknown) => ((v as { shopMoney?: { amount?: string } } | null)?.shopMoney?.amount ?? null);

const PAGE = (root: string, fields: string) => `query ${root[0]!.toUpperCase()}${root.slice(1)}Page($first: Int!, $after: String, $query: String) {
  ${root}(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    edges { cursor node { ${fields} } }
    pageInfo { hasNextPage endCursor }
  }
}`;
const BULK = (root: string, fields: string) => (query: string | null) => `{ ${root}${query ? `(query: ${JSON.stringify(query)})` : ''} { edges { node { ${fields} } } } }`;

const PRODUCT_FIELDS = (variants: string) => `id title handle descriptionHtml vendor productType status tags createdAt updatedAt publishedAt
      ${variants} { edges { node { id title sku price inventoryQuantity inventoryItem { id } } } }`;
const ORDER_FIELDS = (lineItems: string) => `id name email createdAt updatedAt cancelledAt closedAt displayFinancialStatus displayFulfillmentStatus tags note
      currencyCode totalPriceSet { shopMoney { amount currencyCode } } customer { id }
      ${lineItems} { edges { node { id title quantity sku originalUnitPriceSet { shopMoney { amount } } product { id } variant { id } } } }`;
const CUSTOMER_FIELDS = 'id firstName lastName email phone state tags numberOfOrders createdAt updatedAt';
const INVENTORY_FIELDS = (levels: string) => `id sku updatedAt
      ${levels} { edges { node { id updatedAt location { id } quantities(names: ["available"]) { name quantity } } } }`;

const product: EntitySpec = {
  root: 'products',
  pageQuery: PAGE('products', PRODUCT_FIELDS('variants(first: 10)')),
  // product 1 + variants (2 + 10 x (variant 1 + inventoryItem 1))
  nodeCost: 23,
  bulkQuery: BULK('products', PRODUCT_FIELDS('variants')),
  bulkChildren: { ProductVariant: 'variants' },
  payloads(n) {
    const id = idOf(n.id)!;
    const body = {
      id, admin_graphql_api_id: n.id, title: n.title, handle: n.handle ?? null, body_html: n.descriptionHtml ?? null, vendor: n.vendor ?? null,
      product_type: n.productType ?? null, status: lower(n.status), tags: tags(n.tags), created_at: n.createdAt ?? null, updated_at: n.updatedAt ?? null, published_at: n.publishedAt ?? null,
      variants: list(n.variants).map((v) => ({ id: idOf(v.id), admin_graphql_api_id: v.id, product_id: id, title: v.title ?? null, sku: v.sku ?? null, price: v.price ?? null, inventory_quantity: v.inventoryQuantity ?? null, inventory_item_id: idOf((v.inventoryItem as Node | null)?.id) })),
    };
    return [{ topic: 'products/update', entity: 'products', orderingKey: id.digits, updatedAt: (n.updatedAt as string) ?? null, body }];
  },
};

const order: EntitySpec = {
  root: 'orders',
  pageQuery: PAGE('orders', ORDER_FIELDS('lineItems(first: 50)')),
  // order 1 + totalPriceSet 2 + customer 1 + lineItems (2 + 50 x (line item 1 + originalUnitPriceSet 2 + product 1 + variant 1))
  nodeCost: 256,
  bulkQuery: BULK('orders', ORDER_FIELDS('lineItems')),
  bulkChildren: { LineItem: 'lineItems' },
  payloads(n) {
    const id = idOf(n.id)!;
    const customer = n.customer as Node | null;
    const body = {
      id, admin_graphql_api_id: n.id, name: n.name, email: n.email ?? null, created_at: n.createdAt ?? null, updated_at: n.updatedAt ?? null,
      cancelled_at: n.cancelledAt ?? null, closed_at: n.closedAt ?? null, financial_status: lower(n.displayFinancialStatus), fulfillment_status: lower(n.displayFulfillmentStatus),
      currency: n.currencyCode ?? null, total_price: money(n.totalPriceSet), tags: tags(n.tags), note: n.note ?? null,
      customer: customer?.id ? { id: idOf(customer.id), admin_graphql_api_id: customer.id } : null,
      line_items: list(n.lineItems).map((li) => ({
        id: idOf(li.id), admin_graphql_api_id: li.id, title: li.title ?? null, quantity: li.quantity, sku: li.sku ?? null, price: money(li.originalUnitPriceSet),
        product_id: idOf((li.product as Node | null)?.id), variant_id: idOf((li.variant as Node | null)?.id),
      })),
    };
    return [{ topic: 'orders/updated', entity: 'orders', orderingKey: id.digits, updatedAt: (n.updatedAt as string) ?? null, body }];
  },
};

const customer: EntitySpec = {
  root: 'customers',
  pageQuery: PAGE('customers', CUSTOMER_FIELDS),
  nodeCost: 1,
  bulkQuery: BULK('customers', CUSTOMER_FIELDS),
  bulkChildren: {},
  payloads(n) {
    const id = idOf(n.id)!;
    const body = {
      id, admin_graphql_api_id: n.id, email: n.email ?? null, first_name: n.firstName ?? null, last_name: n.lastName ?? null, phone: n.phone ?? null,
      state: lower(n.state), tags: tags(n.tags), orders_count: n.numberOfOrders === undefined ? null : Number(n.numberOfOrders), created_at: n.createdAt ?? null, updated_at: n.updatedAt ?? null,
    };
    return [{ topic: 'customers/update', entity: 'customers', orderingKey: id.digits, updatedAt: (n.updatedAt as string) ?? null, body }];
  },
};

/** Inventory is read by item; each of its levels (item x location) is one inventory_levels/update body. */
const inventory: EntitySpec = {
  root: 'inventoryItems',
  pageQuery: PAGE('inventoryItems', INVENTORY_FIELDS('inventoryLevels(first: 10)')),
  // item 1 + inventoryLevels (2 + 10 x (level 1 + location 1 + quantities 1))
  nodeCost: 33,
  bulkQuery: BULK('inventoryItems', INVENTORY_FIELDS('inventoryLevels')),
  bulkChildren: { InventoryLevel: 'inventoryLevels' },
  payloads(n) {
    const item = gidNumber(n.id)!;
    return list(n.inventoryLevels).flatMap((l) => {
      const location = gidNumber((l.location as Node | null)?.id);
      if (!location) return [];
      const available = (l.quantities as { name: string; quantity: number }[] | undefined)?.find((q) => q.name === 'available')?.quantity ?? null;
      const updatedAt = (l.updatedAt as string) ?? (n.updatedAt as string) ?? null;
      const body = { inventory_item_id: new ExactInt(item), location_id: new ExactInt(location), available, updated_at: updatedAt, admin_graphql_api_id: l.id ?? null };
      return [{ topic: 'inventory_levels/update', entity: 'inventory_levels', orderingKey: `${item}:${location}`, updatedAt, body }];
    });
  },
};

export const entitySpecs: Record<EntityName, EntitySpec> = { products: product, orders: order, customers: customer, inventory };

/** Shopify's search syntax for "changed since": `updated_at:>='<iso>'`. */
export const sinceFilter = (since: string | undefined | null) => (since ? `updated_at:>='${since}'` : null);

type Line = Node & { __parentId?: string };

/** The gid type of a child line (`ProductVariant`), '' when it has none. */
const gidType = (id: unknown) => /^gid:\/\/shopify\/([A-Za-z]+)\//.exec(String(id ?? ''))?.[1] ?? '';

/**
 * Bulk Operations JSONL -> whole nodes, in the file's order, as an async stream: a line with
 * `__parentId` is a child of another line and goes in its parent's list field (by the child's gid
 * type). A child whose parent is not in the file, or of a type the entity does not take, is an
 * error, raised before any node is given out.
 *
 * What is held: an entity without children (customers) streams, each node given out as its line
 * arrives. Since API 2026-01 Shopify no longer groups children under their parents unless asked
 * (`groupObjects`, which it says slows operations), so a child may come anywhere in the file and
 * no node is complete before the last line: for entities with children the file is held to its
 * end, but as its text (each line kept as it came, parsed once to read its ids), not as parsed
 * objects, and nodes are parsed again one at a time when given out.
 */
export async function* assembleBulk(spec: EntitySpec, lines: AsyncIterable<string> | Iterable<string>): AsyncGenerator<Node> {
  const parents: string[] = [];
  const ids = new Set<unknown>();
  const children = new Map<string, string[]>();
  const streams = Object.keys(spec.bulkChildren).length === 0;
  for await (const line of lines) {
    if (!line.trim()) continue;
    const o = JSON.parse(line) as Line;
    if (o.__parentId) {
      if (streams || !spec.bulkChildren[gidType(o.id)]) throw childError(o, 'no field to go in');
      const held = children.get(o.__parentId);
      if (held) held.push(line);
      else children.set(o.__parentId, [line]);
    } else if (streams) yield o;
    else {
      parents.push(line);
      ids.add(o.id);
    }
  }
  for (const [parentId, lines] of children) if (!ids.has(parentId)) throw childError(JSON.parse(lines[0]!) as Line, 'no parent in the file');
  for (let i = 0; i < parents.length; i++) {
    const node = JSON.parse(parents[i]!) as Node;
    parents[i] = ''; // given out: its text is no longer held
    for (const raw of children.get(node.id as string) ?? []) {
      const { __parentId: _, ...child } = JSON.parse(raw) as Line;
      ((node[spec.bulkChildren[gidType(child.id)]!] ??= []) as Node[]).push(child);
    }
    children.delete(node.id as string);
    yield node;
  }
}

function childError(child: Line, why: 'no field to go in' | 'no parent in the file'): HubError {
  return new HubError('invalid_vendor_response', `bulk result: a ${gidType(child.id) || 'child'} line of ${child.__parentId} has ${why}`);
}
