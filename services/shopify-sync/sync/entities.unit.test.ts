import { describe, expect, it } from 'vitest';
import { shopify as ingesterShopify } from '../../webhook-ingester/vendors/shopify.ts';
import { assembleBulk, entitySpecs } from './entities.ts';
import { pollDelivery } from './inbox.ts';

const shop = 'acme.myshopify.com';
const big = '9007199254740993123'; // beyond 2^53, as Shopify's own examples are

/** What the ingester's Shopify module makes of a polled body: the same mapping a webhook gets. */
function mapped(entity: keyof typeof entitySpecs, node: Record<string, unknown>) {
  const [p] = entitySpecs[entity].payloads(node);
  const d = pollDelivery(shop, p!, new Date());
  const r = ingesterShopify.map({ rawBody: d.body, headers: d.headers, receivedAt: new Date() });
  return { p: p!, d, r };
}

/** Every node a stream gives out. */
async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of items) out.push(x);
  return out;
}

describe('polled entities in the webhook payload shape', () => {
  it('an order maps like orders/updated, its big id exact and its ordering key the id', () => {
    const { d, r } = mapped('orders', {
      id: `gid://shopify/Order/${big}`, name: '#1001', updatedAt: '2026-11-01T10:00:00Z', displayFinancialStatus: 'PAID', tags: ['vip', 'gift'],
      totalPriceSet: { shopMoney: { amount: '10.00' } }, customer: { id: 'gid://shopify/Customer/7' },
      lineItems: { edges: [{ node: { id: 'gid://shopify/LineItem/5', quantity: 2, product: { id: 'gid://shopify/Product/9' }, variant: null } }] },
    });
    expect(d.body.toString()).toContain(`"id":${big},`);
    expect(d.key).toBe(`shopify:${shop}:orders:${big}`);
    expect(d.headers['x-shopify-webhook-id']).toMatch(new RegExp(`^poll:orders:${big}:2026-11-01T10:00:00Z:[0-9a-f]{16}$`));
    expect(r).toMatchObject({ ok: true, events: [{ entity: 'orders', action: 'updated', orderingKey: big, account: shop }] });
    const payload = (r as { events: { payload: Record<string, unknown> }[] }).events[0]!.payload;
    expect(payload).toMatchObject({ name: '#1001', financial_status: 'paid', tags: 'vip, gift', total_price: '10.00', line_items: [{ quantity: 2, product_id: 9, variant_id: null }] });
  });

  it('products, customers and inventory levels pass the ingester schema of their topic', () => {
    expect(mapped('products', { id: 'gid://shopify/Product/3', title: 'Hat', status: 'ACTIVE', updatedAt: '2026-11-01T00:00:00Z', variants: { edges: [{ node: { id: 'gid://shopify/ProductVariant/4', price: '5.00', inventoryItem: { id: 'gid://shopify/InventoryItem/8' } } }] } }).r)
      .toMatchObject({ ok: true, events: [{ entity: 'products', action: 'updated', orderingKey: '3' }] });
    expect(mapped('customers', { id: 'gid://shopify/Customer/7', email: 'a@example.com', updatedAt: '2026-11-01T00:00:00Z' }).r)
      .toMatchObject({ ok: true, events: [{ entity: 'customers', action: 'updated', orderingKey: '7' }] });
    const inv = mapped('inventory', { id: 'gid://shopify/InventoryItem/8', inventoryLevels: { edges: [{ node: { id: 'gid://shopify/InventoryLevel/1?inventory_item_id=8', updatedAt: '2026-11-01T00:00:00Z', location: { id: 'gid://shopify/Location/2' }, quantities: [{ name: 'available', quantity: 4 }] } }] } });
    expect(inv.d.key).toBe(`shopify:${shop}:inventory_levels:8:2`);
    expect(inv.r).toMatchObject({ ok: true, events: [{ entity: 'inventory_levels', action: 'updated', orderingKey: '8:2', payload: { available: 4 } }] });
  });

  it('assembles bulk JSONL children under their parents', async () => {
    const lines = [
      JSON.stringify({ id: 'gid://shopify/Product/1', title: 'A' }),
      JSON.stringify({ id: 'gid://shopify/ProductVariant/11', price: '1.00', __parentId: 'gid://shopify/Product/1' }),
      JSON.stringify({ id: 'gid://shopify/ProductVariant/12', price: '2.00', __parentId: 'gid://shopify/Product/1' }),
      JSON.stringify({ id: 'gid://shopify/Product/2', title: 'B' }),
    ];
    const nodes = await collect(assembleBulk(entitySpecs.products, lines));
    expect(nodes.map((n) => [n.id, (n.variants as unknown[] | undefined)?.length ?? 0])).toEqual([['gid://shopify/Product/1', 2], ['gid://shopify/Product/2', 0]]);
    expect(entitySpecs.products.payloads(nodes[0]!)[0]!.body.variants).toHaveLength(2);
  });

  it('assembles children that come anywhere in the file (API 2026-01 and later group nothing unless asked), and refuses one without a parent', async () => {
    const lines = [
      JSON.stringify({ id: 'gid://shopify/Product/1', title: 'A' }),
      JSON.stringify({ id: 'gid://shopify/Product/2', title: 'B' }),
      JSON.stringify({ id: 'gid://shopify/ProductVariant/21', price: '3.00', __parentId: 'gid://shopify/Product/2' }),
      JSON.stringify({ id: 'gid://shopify/ProductVariant/12', price: '2.00', __parentId: 'gid://shopify/Product/1' }),
      JSON.stringify({ id: 'gid://shopify/ProductVariant/11', price: '1.00', __parentId: 'gid://shopify/Product/1' }),
    ];
    const nodes = await collect(assembleBulk(entitySpecs.products, lines));
    expect(nodes.map((n) => [n.id, (n.variants as { id: string }[]).map((v) => v.id)])).toEqual([
      ['gid://shopify/Product/1', ['gid://shopify/ProductVariant/12', 'gid://shopify/ProductVariant/11']],
      ['gid://shopify/Product/2', ['gid://shopify/ProductVariant/21']],
    ]);
    const orphan = JSON.stringify({ id: 'gid://shopify/ProductVariant/31', __parentId: 'gid://shopify/Product/3' });
    await expect(collect(assembleBulk(entitySpecs.products, [...lines, orphan]))).rejects.toThrow(/no parent/);
  });
});
