import { inventoryAdjustInput, ordersTagInput, productsUpdateInput, scriptTagsDeleteInput, themesRollbackInput } from '../../../shared/connectors/catalog/shopify.ts';
import { handler } from '../../../shared/connectors/types.ts';
import { HubError } from '../../../shared/errors.ts';
import { deterministicEventId } from '../../../shared/events/platform-event.ts';
import { checkUserErrors } from '../api/admin.ts';
import { call, gid, type ActionDeps } from './deps.ts';
import { THEMES, themeOut, type ThemeNode } from './reads.ts';

type UserErrors = { userErrors: { field?: string[] | null; message: string; code?: string | null }[] };

// Sent again after a failure (the command core retries retryable ones), tagsAdd/tagsRemove,
// productUpdate, themePublish and scriptTagDelete leave the shop as sent once. So does
// inventoryAdjustQuantities, which moves stock by its delta, through the idempotency key it carries.

const TAGS_ADD = `mutation TagsAdd($id: ID!, $tags: [String!]!) { tagsAdd(id: $id, tags: $tags) { node { id } userErrors { field message } } }`;
const TAGS_REMOVE = `mutation TagsRemove($id: ID!, $tags: [String!]!) { tagsRemove(id: $id, tags: $tags) { node { id } userErrors { field message } } }`;

/** `orders.tag`: tagsAdd (or tagsRemove) on the order. */
export const ordersTag = (d: ActionDeps) =>
  handler(ordersTagInput, async (ctx) => {
    const p = ctx.params;
    const op = p.remove ? 'tagsRemove' : 'tagsAdd';
    const data = await call<Record<string, UserErrors>>(d, ctx, `orders.${op}`, p.remove ? TAGS_REMOVE : TAGS_ADD, { id: gid('Order', p.order_id), tags: p.tags });
    checkUserErrors(data[op]);
    return { order_id: p.order_id, added: p.remove ? [] : p.tags, removed: p.remove ? p.tags : [] };
  });

const PRODUCT_UPDATE = `mutation ProductUpdate($product: ProductUpdateInput!) {
  productUpdate(product: $product) { product { id title status vendor productType tags updatedAt } userErrors { field message } }
}`;

/** `products.update`: productUpdate with the fields given. */
export const productsUpdate = (d: ActionDeps) =>
  handler(productsUpdateInput, async (ctx) => {
    const p = ctx.params;
    const product: Record<string, unknown> = { id: gid('Product', p.product_id) };
    if (p.title !== undefined) product.title = p.title;
    if (p.description_html !== undefined) product.descriptionHtml = p.description_html;
    if (p.vendor !== undefined) product.vendor = p.vendor;
    if (p.product_type !== undefined) product.productType = p.product_type;
    if (p.status !== undefined) product.status = p.status;
    if (p.tags !== undefined) product.tags = p.tags;
    const data = await call<{ productUpdate: UserErrors & { product: { id: string; title: string; status: string; vendor?: string; productType?: string; tags?: string[]; updatedAt: string } | null } }>(d, ctx, 'products.update', PRODUCT_UPDATE, { product });
    checkUserErrors(data.productUpdate);
    const out = data.productUpdate.product!;
    return { product: { id: out.id, title: out.title, status: out.status, vendor: out.vendor ?? null, product_type: out.productType ?? null, tags: out.tags ?? [], updated_at: out.updatedAt } };
  });

const INVENTORY_ADJUST = `mutation InventoryAdjust($input: InventoryAdjustQuantitiesInput!, $key: String!) {
  inventoryAdjustQuantities(input: $input) @idempotent(key: $key) { inventoryAdjustmentGroup { reason changes { name delta } } userErrors { field message code } }
}`;

/**
 * `inventory.adjust`: inventoryAdjustQuantities on `available`, the command id as its reference
 * document. Stock moves by the delta each time Shopify applies it, so the mutation carries an
 * idempotency key (`@idempotent`, required from API version 2026-04): a UUID named by the
 * workspace and the command id, the same on every attempt of the command. Shopify answers a key it
 * has seen with the first result and moves nothing again, so the command is retried like the other
 * writes after a 5xx, INTERNAL_SERVER_ERROR or a lost connection. `changeFromQuantity` (required
 * from 2026-04 too) is null: the command moves stock by a delta and expects no quantity, so
 * Shopify's compare-and-swap check is skipped.
 */
export const inventoryAdjust = (d: ActionDeps) =>
  handler(inventoryAdjustInput, async (ctx) => {
    const p = ctx.params;
    const input = { reason: p.reason, name: 'available', referenceDocumentUri: `gid://ionflux/Command/${ctx.idempotencyKey}`, changes: [{ delta: p.delta, changeFromQuantity: null, inventoryItemId: gid('InventoryItem', p.inventory_item_id), locationId: gid('Location', p.location_id) }] };
    const key = deterministicEventId(`shopify.inventory.adjust:${ctx.workspaceId}:${ctx.idempotencyKey}`);
    const data = await call<{ inventoryAdjustQuantities: UserErrors & { inventoryAdjustmentGroup: { changes: { name: string; delta: number }[] } | null } }>(d, ctx, 'inventory.adjust', INVENTORY_ADJUST, { input, key });
    checkUserErrors(data.inventoryAdjustQuantities);
    return { changes: data.inventoryAdjustQuantities.inventoryAdjustmentGroup?.changes ?? [] };
  });

const THEME_PUBLISH = `mutation ThemePublish($id: ID!) { themePublish(id: $id) { theme { id name role updatedAt } userErrors { field message code } } }`;

/** `themes.rollback`: publishes the chosen earlier theme (themePublish); the one it replaces is reported. */
export const themesRollback = (d: ActionDeps) =>
  handler(themesRollbackInput, async (ctx) => {
    const id = gid('OnlineStoreTheme', ctx.params.theme_id);
    const listed = await call<{ themes: { edges: { node: ThemeNode }[] } }>(d, ctx, 'themes.list', THEMES, {});
    const main = listed.themes.edges.map((e) => e.node).find((t) => t.role === 'MAIN') ?? null;
    const data = await call<{ themePublish: UserErrors & { theme: ThemeNode | null } }>(d, ctx, 'themes.publish', THEME_PUBLISH, { id });
    checkUserErrors(data.themePublish);
    if (!data.themePublish.theme) throw new HubError('shopify_graphql_error', 'Shopify published no theme');
    return { published: themeOut(data.themePublish.theme), previous_main: main && main.id !== id ? themeOut(main) : null };
  });

const SCRIPT_TAG_DELETE = `mutation ScriptTagDelete($id: ID!) { scriptTagDelete(id: $id) { deletedScriptTagId userErrors { field message } } }`;

/** `script_tags.delete`: scriptTagDelete. */
export const scriptTagsDelete = (d: ActionDeps) =>
  handler(scriptTagsDeleteInput, async (ctx) => {
    const data = await call<{ scriptTagDelete: UserErrors & { deletedScriptTagId: string | null } }>(d, ctx, 'script_tags.delete', SCRIPT_TAG_DELETE, { id: gid('ScriptTag', ctx.params.script_tag_id) });
    checkUserErrors(data.scriptTagDelete);
    return { deleted_script_tag_id: data.scriptTagDelete.deletedScriptTagId ?? gid('ScriptTag', ctx.params.script_tag_id) };
  });
