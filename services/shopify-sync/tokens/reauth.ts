import type { KafkaTable } from '../../../shared/bus/table/table.ts';
import type { OutgoingRecord } from '../../../shared/bus/types.ts';
import { connectionRecord, type Connection } from '../state/connections.ts';
import type { StoredToken } from './vault.ts';

/** A producer whose transactional id is the workspace's marking id: connecting it fences every earlier holder. */
export interface MarkProducer {
  connect(): Promise<void>;
  publishAtomic(records: OutgoingRecord[]): Promise<unknown>;
  close(): Promise<void>;
}

/** A producer with the transactional id `<SHOPIFY_SYNC_GROUP>-reauth-<workspace>`, the same in every instance. */
export type MarkProducers = (ws: string) => MarkProducer;

export type MarkResult = { marked: Connection | null } | { superseded: StoredToken } | { gone: true };

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
 * compare-and-set against a reinstall (or another instance's refresh). The mark goes through the
 * workspace's marking producer, connected (fencing any earlier one) before the stored token is
 * read; whoever stores a new token fences that id after storing it and before announcing it
 * (`fenceMarks`). So either the read sees the new token (`superseded`: nothing is marked), or the
 * new token was stored after it and its fence makes this transaction fail, after which the read
 * is made again. A refusal of an old token never marks a newer install.
 */
export async function markNeedsReauth(d: MarkDeps, read: () => Promise<StoredToken | null>, ws: string, refused: number, reason: string, also?: () => AlsoMarked): Promise<MarkResult> {
  const producer = d.markProducer(ws);
  try {
    await producer.connect();
    const judge = (t: StoredToken | null): MarkResult | null => (!t ? { gone: true } : t.issued_at > refused ? { superseded: t } : null);
    const before = judge(await read());
    if (before) return before;
    const c = d.connections.get(ws);
    const extra = also?.();
    if (!c && !extra) return { marked: null };
    const next: Connection | null = c ? { ...c, status: 'needs_reauthorization', reason, updated_at: Date.now() } : null;
    await d.beforeMark?.(ws);
    try {
      await producer.publishAtomic([...(next ? [connectionRecord(next)] : []), ...(extra?.records ?? [])]);
    } catch (e) {
      // Fenced by a token stored since (or Kafka failing): the store says which.
      const after = judge(await read());
      if (after) return after;
      throw e;
    }
    if (next) d.connections.applyLocal(ws, next);
    extra?.apply();
    return { marked: next };
  } finally {
    await producer.close().catch(() => undefined);
  }
}

/**
 * Called by whoever stores a new token for `ws` (an install, a refresh), after storing it and
 * before announcing it: a marking of `ws` in flight that read the old token cannot commit.
 */
export async function fenceMarks(markProducer: MarkProducers, ws: string): Promise<void> {
  const producer = markProducer(ws);
  try {
    await producer.connect();
  } finally {
    await producer.close().catch(() => undefined);
  }
}
