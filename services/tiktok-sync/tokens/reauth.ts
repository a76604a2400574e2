import type { KafkaTable } from '../../../shared/bus/table/table.ts';
import type { OutgoingRecord } from '../../../shared/bus/types.ts';
import { auditRecord } from '../../../shared/commands/audit.ts';
import { wsConnectorKey, type WorkspaceConnector } from '../../../shared/commands/state.ts';
import type { EventCodec } from '../../../shared/events/codec.ts';
import { SOURCE, tiktokEvent } from '../events.ts';
import { CONNECTIONS_TOPIC, type Connection } from '../state/connections.ts';
import type { StoredTokens } from './vault.ts';
import { fencedMark, fenceMarks as fence, type FencedMark, type MarkProducer } from '../../../shared/connectors/fenced-mark.ts';

export interface ReauthDeps {
  codec: EventCodec;
  workspaceConnectors: KafkaTable<WorkspaceConnector>;
  connectUrl: (ws: string) => Promise<string>;
}

/**
 * The records that mark a connection `needs_reauthorization`, never silently: the connection
 * record, the command core's `needs_reauth` state (so commands fail `needs_reauthorization` with
 * the connect URL), an `authorization.needs_reauthorization` event and an audit record. The caller
 * publishes them in one transaction.
 */
export async function needsReauthRecords(d: ReauthDeps, c: Connection, reason: string, actor: string): Promise<{ records: OutgoingRecord[]; next: Connection; apply: () => void }> {
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
    next,
    apply: () => d.workspaceConnectors.applyLocal(wsKey, wsState),
  };
}

export type { MarkProducer };

export interface MarkDeps extends ReauthDeps {
  /** A producer with the transactional id `<TIKTOK_SYNC_GROUP>-reauth-<workspace>`, the same in every instance. */
  markProducer: (ws: string) => MarkProducer;
  /** Tests only (TIKTOK_TEST_REAUTH_GATE_URL): awaited right before the marking is published. */
  beforeMark?: (ws: string) => Promise<void>;
}

export type MarkResult = FencedMark<Connection, StoredTokens>;

/**
 * Marks `c` needs_reauthorization for a refusal of the tokens of generation `refused` (their
 * `issued_at`), only while those are still the workspace's: a compare-and-set against a reconnect
 * (fencedMark). A refusal of old tokens therefore never overwrites a newer connection's `connected` state.
 */
export function markNeedsReauth(d: MarkDeps, read: () => Promise<StoredTokens | null>, c: Connection, refused: number, reason: string, actor: string): Promise<MarkResult> {
  const ws = c.workspace_id;
  return fencedMark({
    producer: d.markProducer(ws),
    read,
    refused,
    ...(d.beforeMark ? { beforeMark: () => d.beforeMark!(ws) } : {}),
    mark: async () => {
      const r = await needsReauthRecords(d, c, reason, actor);
      return { records: r.records, result: r.next, apply: r.apply };
    },
  });
}

/**
 * Called by whoever stores new tokens for `ws` (a connect), after storing them and before
 * announcing them: any marking of `ws` in flight that read the old tokens cannot commit.
 */
export const fenceMarks = (markProducer: MarkDeps['markProducer'], ws: string): Promise<void> => fence(markProducer(ws));
