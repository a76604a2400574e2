import type { Bus } from '../../../shared/bus/types.ts';
import type { KafkaTable } from '../../../shared/bus/table/table.ts';
import { auditRecord } from '../../../shared/commands/audit.ts';
import { wsConnectorKey, type WorkspaceConnector } from '../../../shared/commands/state.ts';
import { HubError } from '../../../shared/errors.ts';
import type { EventCodec } from '../../../shared/events/codec.ts';
import { linkKey, type Link, type LinkTable } from '../../../shared/links.ts';
import type { SecretStore } from '../../../shared/secrets/index.ts';
import type { HeldClaim } from '../../../shared/security/oauth-claim.ts';
import type { TokenSet } from '../api/oauth.ts';
import { SOURCE, tiktokEvent } from '../events.ts';
import { CONNECTIONS_TOPIC, type Connection } from '../state/connections.ts';
import { fenceMarks, type MarkProducer } from '../tokens/reauth.ts';
import { writeTokens } from '../tokens/vault.ts';

export interface ConnectDeps {
  bus: Bus;
  codec: EventCodec;
  store: SecretStore;
  links: LinkTable;
  connections: KafkaTable<Connection>;
  workspaceConnectors: KafkaTable<WorkspaceConnector>;
  /** The workspace's marking producer (tokens/reauth.ts): fenced once the new tokens are stored. */
  markProducer: (ws: string) => MarkProducer;
}

/**
 * What a successful callback does, holding the account's claim (taken once the exchange named
 * the account): an account linked to another workspace is refused (the links read to their end,
 * so a connection finished a moment ago on another instance is seen); else the tokens go to the
 * secret store (fencing any needs_reauthorization marking of the old ones still in flight), then
 * in one transaction with the claim's release the link (open_id -> workspace, for webhooks), the
 * connection record (which starts refresh and polling by its owner), the command core's
 * `connected` state, an audit record and an `authorization.granted` event.
 */
export async function completeConnect(d: ConnectDeps, ws: string, tokens: TokenSet, actor: string, held: HeldClaim): Promise<Connection> {
  await d.links.fresh();
  const linked = d.links.get(linkKey('tiktok', tokens.open_id));
  if (linked && linked.workspaceId !== ws) throw new HubError('account_linked_elsewhere', `this TikTok account is connected to another workspace (${linked.workspaceId}); disconnect it there first`);
  const now = Date.now();
  held.assertLive();
  await writeTokens(d.store, ws, { ...tokens, issued_at: now });
  // A refusal of the tokens these replace, about to mark the workspace needs_reauth, can no longer commit.
  await fenceMarks(d.markProducer, ws);
  const previous = d.connections.get(ws);
  const connection: Connection = { workspace_id: ws, open_id: tokens.open_id, scope: tokens.scope, status: 'active', issued_at: now, access_expires_at: tokens.access_expires_at, refresh_expires_at: tokens.refresh_expires_at, updated_at: now };
  const link: Link = { workspaceId: ws, linkedAt: new Date(now).toISOString() };
  const wsKey = wsConnectorKey(ws, 'tiktok');
  const { connection_detail: _, ...prev } = d.workspaceConnectors.get(wsKey) ?? { settings: {} };
  const wsState: WorkspaceConnector = { ...prev, connection: 'connected', updated_at: new Date(now).toISOString() };
  const event = await tiktokEvent(d.codec, { workspaceId: ws, type: 'authorization.granted', payload: { open_id: tokens.open_id, scope: tokens.scope, connected_at: new Date(now).toISOString() }, idempotencyKey: `granted:${tokens.open_id}:${now}` });
  const audit = await auditRecord(d.codec, SOURCE, { kind: 'connect', workspace_id: ws, connector: 'tiktok', actor, outcome: 'connected', detail: `open_id ${tokens.open_id}; scopes ${tokens.scope.join(',')}` }, `connect:${tokens.open_id}:${now}`);
  // Reconnecting the workspace with another account stops webhooks of the old one reaching it.
  const unlink = previous && previous.open_id !== tokens.open_id ? [d.links.record(linkKey('tiktok', previous.open_id), undefined)] : [];
  await held.finish([
    d.links.record(linkKey('tiktok', tokens.open_id), link),
    ...unlink,
    { topic: CONNECTIONS_TOPIC, key: ws, value: Buffer.from(JSON.stringify(connection)) },
    d.workspaceConnectors.record(wsKey, wsState),
    event.record,
    audit,
  ]);
  d.links.applyLocal(linkKey('tiktok', tokens.open_id), link);
  if (unlink.length) d.links.applyLocal(linkKey('tiktok', previous!.open_id), undefined);
  d.connections.applyLocal(ws, connection);
  d.workspaceConnectors.applyLocal(wsKey, wsState);
  return connection;
}
