import type { KafkaTable } from '../../../shared/bus/table/table.ts';
import type { OutgoingRecord } from '../../../shared/bus/types.ts';
import { auditRecord } from '../../../shared/commands/audit.ts';
import { wsConnectorKey, type WorkspaceConnector } from '../../../shared/commands/state.ts';
import type { EventCodec } from '../../../shared/events/codec.ts';
import { SOURCE, tiktokEvent } from '../events.ts';
import { CONNECTIONS_TOPIC, type Connection } from '../state/connections.ts';

/**
 * The records that mark a connection `needs_reauthorization`, never silently: the connection
 * record, the command core's `needs_reauth` state (so commands fail `needs_reauthorization` with
 * the connect URL), an `authorization.needs_reauthorization` event and an audit record. The caller
 * publishes them in one transaction.
 */
export async function needsReauthRecords(d: { codec: EventCodec; workspaceConnectors: KafkaTable<WorkspaceConnector>; connectUrl: (ws: string) => Promise<string> }, c: Connection, reason: string, actor: string): Promise<{ records: OutgoingRecord[]; apply: () => void }> {
  const now = Date.now();
  const next: Connection = { ...c, status: 'needs_reauthorization', reason, refreshing: undefined, refresh_requested: undefined, updated_at: now };
  const wsKey = wsConnectorKey(c.workspace_id, 'tiktok');
  const prev = d.workspaceConnectors.get(wsKey) ?? { settings: {} };
  const wsState: WorkspaceConnector = { ...prev, connection: 'needs_reauth', connection_detail: reason, updated_at: new Date(now).toISOString() };
  const connectUrl = await d.connectUrl(c.workspace_id);
  const event = await tiktokEvent(d.codec, { workspaceId: c.workspace_id, type: 'authorization.needs_reauthorization', payload: { open_id: c.open_id, reason, connect_url: connectUrl }, idempotencyKey: `needs_reauth:${c.open_id}:${c.issued_at}` });
  const audit = await auditRecord(d.codec, SOURCE, { kind: 'action_failed', workspace_id: c.workspace_id, connector: 'tiktok', action: 'token.refresh', actor, outcome: 'needs_reauthorization', detail: `${reason}; re-authorize at ${connectUrl}` }, `needs_reauth:${c.open_id}:${c.issued_at}`);
  return {
    records: [{ topic: CONNECTIONS_TOPIC, key: c.workspace_id, value: Buffer.from(JSON.stringify(next)) }, d.workspaceConnectors.record(wsKey, wsState), event.record, audit],
    apply: () => d.workspaceConnectors.applyLocal(wsKey, wsState),
  };
}
