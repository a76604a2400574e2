import type { OutgoingRecord } from '../bus/types.ts';

/**
 * A producer whose transactional id is a workspace's marking id (`<group>-reauth-<workspace>`, the
 * same in every instance): connecting it fences every earlier holder of the id.
 */
export interface MarkProducer {
  connect(): Promise<void>;
  publishAtomic(records: OutgoingRecord[]): Promise<unknown>;
  close(): Promise<void>;
}

/** The marking's answer: marked, or not because newer credentials are stored (`superseded`) or none are (`gone`). */
export type FencedMark<R, T> = { marked: R } | { superseded: T } | { gone: true };

/**
 * Marks a workspace's connection as needing re-authorization for a vendor's refusal of the
 * credentials of generation `refused` (their `issued_at`), only while those are still the stored
 * ones: a compare-and-set against a reconnect, a reinstall or another instance's refresh. The mark
 * goes through the workspace's marking producer, connected (fencing any earlier one) before the
 * stored credentials are read; whoever stores new ones fences that id after storing them and
 * before announcing them (`fenceMarks`). So either the read sees the new credentials (nothing is
 * marked), or they were stored after it and their fence makes this transaction fail, after which
 * the read is made again. A refusal of old credentials never marks a newer connection.
 * `mark` builds the records (none: nothing to publish) and what to apply locally once they committed.
 */
export async function fencedMark<R, T extends { issued_at: number }>(o: {
  producer: MarkProducer;
  read: () => Promise<T | null>;
  refused: number;
  mark: () => Promise<{ records: OutgoingRecord[]; result: R; apply?: () => void }>;
  /** Tests only: awaited right before the mark is published. */
  beforeMark?: () => Promise<void>;
}): Promise<FencedMark<R, T>> {
  const judge = (t: T | null): FencedMark<R, T> | null => (!t ? { gone: true } : t.issued_at > o.refused ? { superseded: t } : null);
  try {
    await o.producer.connect();
    const before = judge(await o.read());
    if (before) return before;
    const m = await o.mark();
    if (m.records.length === 0) return { marked: m.result };
    await o.beforeMark?.();
    try {
      await o.producer.publishAtomic(m.records);
    } catch (e) {
      // Fenced by credentials stored since (or Kafka failing): the store says which.
      const after = judge(await o.read());
      if (after) return after;
      throw e;
    }
    m.apply?.();
    return { marked: m.result };
  } finally {
    await o.producer.close().catch(() => undefined);
  }
}

/**
 * Called by whoever stores new credentials for a workspace (a connect, an install, a refresh),
 * after storing them and before announcing them: a marking in flight that read the old ones is
 * fenced and cannot commit.
 */
export async function fenceMarks(producer: MarkProducer): Promise<void> {
  try {
    await producer.connect();
  } finally {
    await producer.close().catch(() => undefined);
  }
}
