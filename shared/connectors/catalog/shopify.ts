import { z } from 'zod';
import type { Manifest } from '../manifest.ts';
import type { ConnectorSpec } from '../types.ts';

/**
 * The Shopify connector's contract: what `services/shopify-sync` serves on `ionflux.cmd.shopify`,
 * what the CLI lists and what the schema registry shows. Reads go through the GraphQL Admin API;
 * synced entities do not come back in the outcome but as events on the same topics as webhooks
 * (`ionflux.shopify.ws_<ws>.orders.updated`, ...), through the ingest inbox (docs/shopify-sync.md).
 */
export const SYNC_ENTITIES = ['products', 'orders', 'customers', 'inventory'] as const;

const numericId = z.string().regex(/^\d{1,30}$/, 'a numeric Shopify id (the digits of its gid)');

export const shopGetInput = z.object({});
export const shopGetOutput = z.object({ shop: z.looseObject({ id: z.string(), name: z.string(), myshopify_domain: z.string() }) });

export const syncInput = z.object({
  /** Only entities updated at or after this time (ISO 8601); omit for a full sync. */
  since: z.iso.datetime({ offset: true }).optional(),
  /** `auto`: Bulk Operations for a full sync, cursor pages for an incremental one. */
  mode: z.enum(['auto', 'pages', 'bulk']).default('auto'),
});
export const syncOutput = z.object({
  entity: z.enum(SYNC_ENTITIES),
  mode: z.enum(['pages', 'bulk']),
  count: z.number(),
  pages: z.number(),
  resumed: z.boolean(),
  since: z.string().nullable(),
  started_at: z.string(),
  duration_ms: z.number(),
});

export const ordersTagInput = z.object({ order_id: numericId, tags: z.array(z.string().min(1).max(255)).min(1).max(250), remove: z.boolean().default(false) });
export const ordersTagOutput = z.object({ order_id: z.string(), added: z.array(z.string()), removed: z.array(z.string()) });

export const productsUpdateInput = z
  .object({
    product_id: numericId,
    title: z.string().min(1).max(255).optional(),
    description_html: z.string().max(512 * 1024).optional(),
    vendor: z.string().max(255).optional(),
    product_type: z.string().max(255).optional(),
    status: z.enum(['ACTIVE', 'ARCHIVED', 'DRAFT']).optional(),
    tags: z.array(z.string().min(1).max(255)).max(250).optional(),
  })
  .refine((p) => Object.keys(p).length > 1, 'at least one field to change');
export const productsUpdateOutput = z.object({ product: z.looseObject({ id: z.string(), title: z.string(), status: z.string(), updated_at: z.string() }) });

export const inventoryAdjustInput = z.object({
  inventory_item_id: numericId,
  location_id: numericId,
  /** Units to add (negative: remove) to the `available` quantity. */
  delta: z.number().int().refine((n) => n !== 0, 'delta must not be 0'),
  reason: z.enum(['correction', 'cycle_count_available', 'damaged', 'movement_created', 'movement_updated', 'movement_received', 'movement_canceled', 'other', 'promotion', 'quality_control', 'received', 'reservation_created', 'reservation_deleted', 'reservation_updated', 'restock', 'safety_stock', 'shrinkage']).default('correction'),
});
export const inventoryAdjustOutput = z.object({ changes: z.array(z.looseObject({ name: z.string(), delta: z.number() })) });

const theme = z.object({ id: z.string(), name: z.string(), role: z.string(), updated_at: z.string().nullable() });
export const themesListInput = z.object({});
export const themesListOutput = z.object({ themes: z.array(theme) });
export const themesRollbackInput = z.object({ theme_id: numericId });
export const themesRollbackOutput = z.object({ published: theme, previous_main: theme.nullable() });

export const scriptTagsDeleteInput = z.object({ script_tag_id: numericId });
export const scriptTagsDeleteOutput = z.object({ deleted_script_tag_id: z.string() });

/** Events shopify-sync publishes itself (entities go through the inbox and come out as the ingester's events). */
export const events = {
  'sync.progress': z.object({ shop: z.string(), run_id: z.string(), entity: z.enum(SYNC_ENTITIES), mode: z.enum(['pages', 'bulk']), count: z.number(), pages: z.number() }),
  'sync.completed': z.object({ shop: z.string(), run_id: z.string(), trigger: z.enum(['command', 'schedule', 'nightly']), entity: z.enum(SYNC_ENTITIES), mode: z.enum(['pages', 'bulk']), count: z.number(), pages: z.number(), resumed: z.boolean(), since: z.string().nullable(), started_at: z.string(), duration_ms: z.number() }),
  'app.installed': z.object({ shop: z.string(), scope: z.array(z.string()), installed_at: z.string(), webhooks: z.array(z.string()) }),
  /** The answer to customers/data_request: what the hub holds about that customer. */
  'customers.data_report': z.object({ shop: z.string(), customer_id: z.string().nullable(), data_request_id: z.string().nullable(), held: z.array(z.object({ where: z.string(), key: z.string(), value: z.unknown() })), retention: z.string() }),
} as const satisfies Record<string, z.ZodType>;

const read = (description: string, input: z.ZodType, output: z.ZodType) => ({ description, input, output, approvalGate: 'read_only', permission: 'read', auditRequired: false }) as const;
const write = (description: string, input: z.ZodType, output: z.ZodType) => ({ description, input, output, approvalGate: 'external_write', permission: 'external_write', auditRequired: true }) as const;
const sync = (what: string) => read(`Syncs the shop's ${what} into the hub (full, or since a time): each becomes an event on the same topic as its webhook; a sync.completed event gives counts and duration.`, syncInput, syncOutput);

export const manifest: Manifest = {
  id: 'shopify',
  name: 'Shopify',
  category: 'commerce',
  version: '1.0.0',
  authType: 'oauth',
  permissionsRequested: ['read', 'external_write'],
  riskLevel: 'high',
  authHelp: 'Install the app on a shop with `ionflux connect shopify --workspace <workspace> --shop <shop>.myshopify.com` (or open <PUBLIC_BASE_URL>/shopify/install?shop=<shop>.myshopify.com&workspace=<workspace>). See docs/shopify-sync.md.',
  credentialFields: ['access_token'],
  healthcheck: { description: 'Reads the shop with the GraphQL Admin API.' },
  disconnectPolicy: 'revoke_and_delete',
  dataRetentionPolicy: 'The offline token stays in the secret store until app/uninstalled or shop/redact. Synced entities become events (topic retention, 7 days by default); ionflux.state.shopify-sync keeps checkpoints, poll watermarks and per-customer sync markers (no entity content) until customers/redact, shop/redact or uninstall tombstones them.',
  actions: {
    'shop.get': read('The shop: name, domain, plan, currency.', shopGetInput, shopGetOutput),
    'products.sync': sync('products (with variants)'),
    'orders.sync': sync('orders (with line items)'),
    'customers.sync': sync('customers'),
    'inventory.sync': sync('inventory levels (per item and location)'),
    'themes.list': read("The shop's themes and their roles (MAIN is the published one).", themesListInput, themesListOutput),
    'orders.tag': write('Adds (or removes) tags on an order.', ordersTagInput, ordersTagOutput),
    'products.update': write('Changes a product: title, description, vendor, type, status, tags.', productsUpdateInput, productsUpdateOutput),
    'inventory.adjust': write('Adjusts the available quantity of an item at a location by a delta.', inventoryAdjustInput, inventoryAdjustOutput),
    'themes.rollback': write('Publishes the chosen earlier theme as the live one (themePublish).', themesRollbackInput, themesRollbackOutput),
    'script_tags.delete': write('Deletes a script tag from the storefront.', scriptTagsDeleteInput, scriptTagsDeleteOutput),
  },
};

/** shopify-sync's contract (its implementation is services/shopify-sync/). */
export const spec: ConnectorSpec = { manifest, events };
