import type { KafkaTable } from '../../shared/bus/table/table.ts';
import { topics } from '../../shared/bus/topics.ts';
import type { IncomingRecord, OutgoingRecord, Subscription } from '../../shared/bus/types.ts';
import { auditRecord } from '../../shared/commands/audit.ts';
import { wsConnectorKey, type WorkspaceConnector } from '../../shared/commands/state.ts';
import type { PlatformEvent } from '../../shared/events/platform-event.ts';
import { linkKey, type LinkTable } from '../../shared/links.ts';
import type { Runtime } from '../../shared/runtime.ts';
import type { SecretStore } from '../../shared/secrets/index.ts';
import { SOURCE, shopifyEvent } from './events.ts';
import { CONNECTIONS_TOPIC, type Connection } from './state/connections.ts';
import { keys, keysOfWorkspace, SYNC_STATE_TOPIC, type SyncState } from './state/sync-state.ts';
import { tokenPath } from './tokens/vault.ts';

export interface LifecycleDeps {
  rt: Runtime;
  store: SecretStore;
  links: LinkTable;
  connections: KafkaTable<Connection>;
  syncState: KafkaTable<SyncState>;
  workspaceConnectors: KafkaTable<WorkspaceConnector>;
  groupId: string;
  /** A bulk operation Shopify reports finished (bulk_operations/finish): wakes the run waiting for it. */
  onBulkFinished?: (operationId: string) => void;
}

/** The event types (of the ingester's Shopify mapping) this worker acts on, copied to ionflux.internal.shopify. */
export const LIFECYCLE_EVENTS = ['app.uninstalled', 'customers.redacted', 'shop.redacted', 'customers.data_requested', 'bulk_operations.finished'] as const;

export const RETENTION = 'Entity events and webhooks stay on their topics (ionflux.shopify.ws_<ws>.*) and in the ingest inbox until topic retention deletes them (7 days by default, KAFKA retention.ms of each topic); compacted state topics drop a tombstoned key at their next compaction (delete.retention.ms, 1 day by default). The hub keeps no other copy.';

type Body = Record<string, unknown> & { customer?: { id?: number | null; email?: string | null }; data_request?: { id?: number }; shop_domain?: string; myshopify_domain?: string; domain?: string };

const tombstone = (topic: string, key: string): OutgoingRecord => ({ topic, key, value: null });
/** The exact digits of a customer id (the body's number would round above 2^53). */
const customerIdOf = (raw: string): string | null => /"customer"\s*:\s*\{[^{}]*?"id"\s*:\s*(\d{1,30})/.exec(raw)?.[1] ?? null;

/**
 * Shopify's lifecycle and compliance webhooks, which the ingester copies to
 * `ionflux.internal.shopify` (a fixed topic: a regex subscription over workspace topics would miss
 * workspaces created later). Each step is idempotent, so a redelivered record does no harm.
 * - app/uninstalled: the token is forgotten (Shopify has revoked it already), the shop unlinked,
 *   the connection tombstoned (its owner stops polling), the workspace marked disconnected, the
 *   sync state of the workspace tombstoned, audited. A removal older than the install is ignored.
 * - customers/redact: the customer's sync marker is tombstoned, audited.
 * - shop/redact: everything the hub holds for the shop (token, link, connection, sync state).
 * - customers/data_request: a `customers.data_report` event lists what the hub holds about the customer.
 * - bulk_operations/finish: wakes the bulk run waiting for that operation.
 */
export function startLifecycle(d: LifecycleDeps): Promise<Subscription> {
  return d.rt.bus.subscribe({
    service: 'shopify-sync',
    groupId: d.groupId,
    // A restarted instance takes over within seconds of a crashed one (the runner heartbeats while handlers run).
    sessionTimeoutMs: 10_000,
    subscriptions: [topics.internal('shopify')],
    fromBeginning: true,
    handler: async (record: IncomingRecord) => {
      if (!record.value) return;
      const event = await d.rt.codec.decode(record.value);
      const body = JSON.parse(event.payload_json) as Body;
      switch (event.event_type) {
        case 'shopify.app.uninstalled': return forget(d, event, body, 'uninstalled');
        case 'shopify.shop.redacted': return forget(d, event, body, 'redacted');
        case 'shopify.customers.redacted': return redactCustomer(d, event, event.payload_json);
        case 'shopify.customers.data_requested': return dataRequest(d, event, body, event.payload_json);
        case 'shopify.bulk_operations.finished': return void (typeof body.admin_graphql_api_id === 'string' && d.onBulkFinished?.(body.admin_graphql_api_id));
      }
    },
  });
}

async function forget(d: LifecycleDeps, event: PlatformEvent, body: Body, why: 'uninstalled' | 'redacted'): Promise<void> {
  const ws = event.workspace_id;
  const c = d.connections.get(ws);
  const shop = body.myshopify_domain ?? body.shop_domain ?? c?.shop;
  if (!shop) return;
  // A reinstall after this uninstall must not be undone by it (a replay, or a late delivery).
  if (why === 'uninstalled' && c && c.shop === shop && c.installed_at > event.timestamp) {
    d.rt.logger.info({ workspace: ws, shop }, 'app/uninstalled older than the current install; ignored');
    return;
  }
  if (c && c.shop !== shop) {
    d.rt.logger.info({ workspace: ws, shop }, `shop ${why} for a shop this workspace no longer uses; ignored`);
    return;
  }
  const stateKeys = keysOfWorkspace(d.syncState, ws);
  const linked = d.links.get(linkKey('shopify', shop))?.workspaceId === ws;
  const held = await d.store.get(tokenPath(ws));
  if (!c && !linked && !held && !stateKeys.length) return; // already forgotten
  await d.store.delete(tokenPath(ws));
  const wsKey = wsConnectorKey(ws, 'shopify');
  const prev = d.workspaceConnectors.get(wsKey) ?? { settings: {} };
  const wsState: WorkspaceConnector = { ...prev, connection: 'disconnected', connection_detail: why === 'uninstalled' ? `the app was uninstalled from ${shop}` : `Shopify asked to redact ${shop}`, updated_at: new Date().toISOString() };
  const audit = await auditRecord(d.rt.codec, SOURCE, { kind: 'disconnect', workspace_id: ws, connector: 'shopify', actor: `shopify:${why === 'uninstalled' ? 'app/uninstalled' : 'shop/redact'}`, outcome: why, detail: `${shop}: token deleted, shop unlinked, ${stateKeys.length} sync state records tombstoned` }, `${why}:${event.event_id}`);
  await d.rt.bus.publishAtomic([
    ...(linked ? [d.links.record(linkKey('shopify', shop), undefined)] : []),
    tombstone(CONNECTIONS_TOPIC, ws),
    ...stateKeys.map((k) => tombstone(SYNC_STATE_TOPIC, k)),
    d.workspaceConnectors.record(wsKey, wsState),
    audit,
  ]);
  if (linked) d.links.applyLocal(linkKey('shopify', shop), undefined);
  d.connections.applyLocal(ws, undefined);
  for (const k of stateKeys) d.syncState.applyLocal(k, undefined);
  d.workspaceConnectors.applyLocal(wsKey, wsState);
  d.rt.logger.info({ workspace: ws, shop, why }, `shopify shop ${why}: token forgotten, shop unlinked, polling stopped`);
}

async function redactCustomer(d: LifecycleDeps, event: PlatformEvent, raw: string): Promise<void> {
  const ws = event.workspace_id;
  const id = customerIdOf(raw);
  if (!id) return;
  const key = keys.customer(ws, id);
  const held = d.syncState.get(key) !== undefined;
  const audit = await auditRecord(d.rt.codec, SOURCE, { kind: 'action_used', workspace_id: ws, connector: 'shopify', action: 'customers.redact', actor: 'shopify:customers/redact', outcome: 'redacted', detail: `customer ${id}: ${held ? 'sync marker tombstoned' : 'nothing held'}` }, `redact:${event.event_id}`);
  await d.rt.bus.publishAtomic([...(held ? [tombstone(SYNC_STATE_TOPIC, key)] : []), audit]);
  if (held) d.syncState.applyLocal(key, undefined);
  d.rt.logger.info({ workspace: ws, held }, 'shopify customers/redact done');
}

async function dataRequest(d: LifecycleDeps, event: PlatformEvent, body: Body, raw: string): Promise<void> {
  const ws = event.workspace_id;
  const id = customerIdOf(raw);
  const marker = id ? d.syncState.get(keys.customer(ws, id)) : undefined;
  const shop = body.shop_domain ?? d.connections.get(ws)?.shop ?? '';
  const requestId = /"data_request"\s*:\s*\{[^{}]*?"id"\s*:\s*(\d{1,30})/.exec(raw)?.[1] ?? null;
  const report = await shopifyEvent(d.rt.codec, {
    workspaceId: ws, type: 'customers.data_report', idempotencyKey: `data_report:${event.event_id}`, correlationId: event.event_id,
    payload: { shop, customer_id: id, data_request_id: requestId, held: marker && id ? [{ where: SYNC_STATE_TOPIC, key: keys.customer(ws, id), value: marker }] : [], retention: RETENTION },
  });
  const audit = await auditRecord(d.rt.codec, SOURCE, { kind: 'action_used', workspace_id: ws, connector: 'shopify', action: 'customers.data_request', actor: 'shopify:customers/data_request', outcome: 'reported', detail: `customer ${id ?? '(none)'}: ${marker ? 1 : 0} state records` }, `data_request:${event.event_id}`);
  await d.rt.bus.publishAtomic([report, audit]);
}
