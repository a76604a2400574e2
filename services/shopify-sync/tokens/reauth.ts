import type { KafkaTable } from '../../../shared/bus/table/table.ts';
import type { OutgoingRecord } from '../../../shared/bus/types.ts';
import { connectionRecord, type Connection } from '../state/connections.ts';
import type { StoredToken } from './vault.ts';
import { fencedMark, fenceMarks as fence, type FencedMark, type MarkProducer } from '../../../shared/connectors/fenced-mark.ts';

export type { MarkProducer };

/** A producer with the transactional id `<SHOPIFY_SYNC_GROUP>-reauth-<workspace>`, the same in every instance. */
export type MarkProducers = (ws: string) => MarkProducer;

export type MarkResult = FencedMark<Connection | null, StoredToken>;

export interface MarkDeps {
  markProducer: MarkProducers;
  connections: KafkaTable<Connection>;
  /** Tests only (SHOPIFY_TEST_REAUTH_GATE_URL): awaited right before the mark is published. */
  beforeMark?: (ws: string) => Promise<void>;
}

/** Records the mark publishes beside the connection record's, in its transaction, and applies once it committed. */
export interface AlsoMarked {
  records: OutgoingRecord[];
  apply: () => void;
}

/**
 * Marks the workspace's connection needs_reauthorization for Shopify's refusal of the token of
 * generation `refused` (its `issued_at`), only while that is still the workspace's token: a
 * compare-and-set against a reinstall or another instance's refresh (fencedMark). A refusal of an
 * old token never marks a newer install.
 */
export function markNeedsReauth(d: MarkDeps, read: () => Promise<StoredToken | null>, ws: string, refused: number, reason: string, also?: () => AlsoMarked): Promise<MarkResult> {
  return fencedMark({
    producer: d.markProducer(ws),
    read,
    refused,
    ...(d.beforeMark ? { beforeMark: () => d.beforeMark!(ws) } : {}),
    mark: async () => {
      const c = d.connections.get(ws);
      const extra = also?.();
      const next: Connection | null = c ? { ...c, status: 'needs_reauthorization', reason, updated_at: Date.now() } : null;
      const records = [...(next ? [connectionRecord(next)] : []), ...(extra?.records ?? [])];
      return { records, result: next, apply: () => (next && d.connections.applyLocal(ws, next), extra?.apply()) };
    },
  });
}

/**
 * Called by whoever stores a new token for `ws` (an install, a refresh), after storing it and
 * before announcing it: a marking of `ws` in flight that read the old token cannot commit.
 */
export const fenceMarks = (markProducer: MarkProducers, ws: string): Promise<void> => fence(markProducer(ws));
