import type { KafkaTable } from '../../../shared/bus/table/table.ts';
import type { Bus } from '../../../shared/bus/types.ts';
import { auditRecord } from '../../../shared/commands/audit.ts';
import { wsConnectorKey, type WorkspaceConnector } from '../../../shared/commands/state.ts';
import { describeError, HubError } from '../../../shared/errors.ts';
import type { EventCodec } from '../../../shared/events/codec.ts';
import { linkKey, type Link, type LinkTable } from '../../../shared/links.ts';
import type { Logger } from '../../../shared/logger.ts';
import type { SecretStore } from '../../../shared/secrets/index.ts';
import type { HeldClaim } from '../../../shared/security/oauth-claim.ts';
import { checkUserErrors, type AdminApi } from '../api/admin.ts';
import { SOURCE, shopifyEvent } from '../events.ts';
import { connectionRecord, type Connection } from '../state/connections.ts';
import { writeToken, type StoredToken } from '../tokens/vault.ts';
import { fenceMarks, type MarkProducers } from '../tokens/reauth.ts';

export interface InstallDeps {
  bus: Bus;
  codec: EventCodec;
  store: SecretStore;
  api: AdminApi;
  logger: Logger;
  links: LinkTable;
  connections: KafkaTable<Connection>;
  workspaceConnectors: KafkaTable<WorkspaceConnector>;
  /** Where the webhook subscriptions point (the ingester's /webhooks/shopify). */
  webhookUrl: string;
  /** The workspace's marking producer (tokens/reauth.ts): fenced once the new token is stored. */
  markProducer: MarkProducers;
}

/**
 * The webhook subscriptions registered on install: SPEC.md's topics (orders, products, themes,
 * app/uninstalled, shop/update, checkouts, draft orders) and those sync relies on (customers,
 * inventory levels, bulk_operations/finish). The compliance topics are not subscribed through the API: Shopify takes
 * them from the app's configuration (docs/shopify-sync.md).
 */
export const WEBHOOK_TOPICS = [
  'ORDERS_CREATE', 'ORDERS_UPDATED', 'ORDERS_DELETE', 'ORDERS_PAID', 'ORDERS_CANCELLED', 'ORDERS_FULFILLED',
  'PRODUCTS_CREATE', 'PRODUCTS_UPDATE', 'PRODUCTS_DELETE',
  'CUSTOMERS_CREATE', 'CUSTOMERS_UPDATE', 'INVENTORY_LEVELS_UPDATE',
  'THEMES_PUBLISH', 'APP_UNINSTALLED', 'SHOP_UPDATE',
  'CHECKOUTS_CREATE', 'CHECKOUTS_UPDATE', 'DRAFT_ORDERS_CREATE', 'DRAFT_ORDERS_UPDATE',
  'BULK_OPERATIONS_FINISH',
] as const;

const SUBSCRIBE = `mutation WebhookSubscriptionCreate($topic: WebhookSubscriptionTopic!, $webhookSubscription: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $webhookSubscription) { webhookSubscription { id topic } userErrors { field message } }
}`;

/** Registers every topic (already registered ones are reported by Shopify as a user error and counted as done). */
export async function registerWebhooks(d: Pick<InstallDeps, 'api' | 'logger' | 'webhookUrl'>, shop: string, token: string): Promise<{ registered: string[]; failed: string[] }> {
  const registered: string[] = [];
  const failed: string[] = [];
  for (const topic of WEBHOOK_TOPICS) {
    try {
      const { data } = await d.api.graphql<{ webhookSubscriptionCreate: { userErrors: { field?: string[]; message: string }[] } }>(shop, token, 'webhooks.subscribe', SUBSCRIBE, { topic, webhookSubscription: { uri: d.webhookUrl, format: 'JSON' } });
      const taken = data.webhookSubscriptionCreate.userErrors.some((e) => /already (been )?taken|already exists/i.test(e.message));
      if (!taken) checkUserErrors(data.webhookSubscriptionCreate);
      registered.push(topic);
    } catch (e) {
      failed.push(topic);
      d.logger.warn({ shop, topic, error: describeError(e) }, 'webhook subscription not registered; polling covers it');
    }
  }
  return { registered, failed };
}

/**
 * Refuses a shop linked to another workspace. Called with the shop's claim held, after reading
 * the links to their end: an install that finished a moment ago on another instance is seen.
 */
export async function checkShopFree(d: Pick<InstallDeps, 'links'>, ws: string, shop: string): Promise<void> {
  await d.links.fresh();
  const linked = d.links.get(linkKey('shopify', shop));
  if (linked && linked.workspaceId !== ws) throw new HubError('shop_linked_elsewhere', `${shop} is connected to another workspace (${linked.workspaceId}); uninstall it there first`);
}

/**
 * What a verified callback does once the token is in hand, holding the shop's claim (the
 * callback took it before the code exchange): the token goes to the secret store, the shop's
 * webhooks are registered, then in one transaction with the claim's release the link (shop ->
 * workspace, for webhooks), the connection record (which starts polling by its owner), the
 * command core's `connected` state, an `app.installed` event and the audit record.
 */
export async function completeInstall(d: InstallDeps, ws: string, token: StoredToken, actor: string, held: HeldClaim): Promise<{ connection: Connection; webhooks: { registered: string[]; failed: string[] } }> {
  const now = token.issued_at;
  held.assertLive();
  await writeToken(d.store, ws, token);
  // A refusal of the token this replaces, about to mark the workspace needs_reauthorization, can no longer commit.
  await fenceMarks(d.markProducer, ws);
  const webhooks = await registerWebhooks(d, token.shop, token.access_token);
  const previous = d.connections.get(ws);
  const connection: Connection = { workspace_id: ws, shop: token.shop, scope: token.scope, status: 'active', issued_at: now, access_expires_at: token.access_expires_at, installed_at: now, updated_at: now };
  const link: Link = { workspaceId: ws, linkedAt: new Date(now).toISOString() };
  const wsKey = wsConnectorKey(ws, 'shopify');
  const { connection_detail: _, ...prev } = d.workspaceConnectors.get(wsKey) ?? { settings: {} };
  const wsState: WorkspaceConnector = { ...prev, connection: 'connected', updated_at: new Date(now).toISOString() };
  const event = await shopifyEvent(d.codec, { workspaceId: ws, type: 'app.installed', payload: { shop: token.shop, scope: token.scope, installed_at: new Date(now).toISOString(), webhooks: webhooks.registered }, idempotencyKey: `installed:${token.shop}:${now}` });
  const detail = `${token.shop}; scopes ${token.scope.join(',')}; ${webhooks.registered.length} webhook subscriptions${webhooks.failed.length ? ` (not registered: ${webhooks.failed.join(', ')})` : ''}`;
  const audit = await auditRecord(d.codec, SOURCE, { kind: 'install', workspace_id: ws, connector: 'shopify', actor, outcome: 'installed', detail }, `install:${token.shop}:${now}`);
  // Installing another shop on the workspace stops the old one's webhooks reaching it.
  const unlink = previous && previous.shop !== token.shop ? [d.links.record(linkKey('shopify', previous.shop), undefined)] : [];
  await held.finish([d.links.record(linkKey('shopify', token.shop), link), ...unlink, connectionRecord(connection), d.workspaceConnectors.record(wsKey, wsState), event, audit]);
  d.links.applyLocal(linkKey('shopify', token.shop), link);
  if (unlink.length) d.links.applyLocal(linkKey('shopify', previous!.shop), undefined);
  d.connections.applyLocal(ws, connection);
  d.workspaceConnectors.applyLocal(wsKey, wsState);
  return { connection, webhooks };
}
